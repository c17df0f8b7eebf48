// Attention over an f16 KV cache laid out [pos, kv_head, head_dim] (the CPU Context's layout).
// Decode: flash-decoding (split along the keys, then combine). Prefill: flash-attention 2 on
// tensor cores (sm_80+, head_dim a multiple of 16), else the CUDA-core tiled online softmax.
// Scores follow ref::attention: s = (q . k) * scale, then softcap * tanh(s / softcap) if set.
#include <cuda_fp16.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/reduce.cuh"

namespace omni::cuda {
namespace {

constexpr int kDecodeThreads = 128;
constexpr int kPrefillWarps = 8;
constexpr int kPrefillTile = 32;                          // keys per shared-memory tile
constexpr int kPrefillKStride = kAttnMaxHeadDim + 2;      // halves; odd word count: no bank conflicts

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }

__device__ __forceinline__ float score_transform(float dot, float scale, float softcap) {
  const float s = dot * scale;
  return softcap > 0.0f ? softcap * tanhf(s / softcap) : s;
}

// Workspace layout: o[n_seq][n_head][n_split][head_dim], then ml[n_seq][n_head][n_split][2].
__global__ void __launch_bounds__(kDecodeThreads) attn_decode_split(AttnDecodeParams p, int n_split) {
  const int split = blockIdx.x, h = blockIdx.y, s = blockIdx.z;
  const int hd = static_cast<int>(p.head_dim), tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int kvh = h / static_cast<int>(p.n_head / p.n_kv_head);
  const int64_t kv_row = p.n_kv_head * p.head_dim;
  const int pos = p.pos[s];
  const int lo = p.window > 0 ? max(0, pos - static_cast<int>(p.window) + 1) : 0;
  const int start = max(lo, split * kAttnSplitChunk);
  const int end = min(min(pos + 1, static_cast<int>(p.n_ctx)), (split + 1) * kAttnSplitChunk);  // exclusive
  const int64_t slot = (static_cast<int64_t>(s) * p.n_head + h) * n_split + split;
  float* ws_o = p.workspace + slot * hd;
  float* ws_ml = p.workspace + p.n_seq * p.n_head * n_split * p.head_dim + slot * 2;
  if (start >= end) {  // nothing to attend in this split: mark it empty for the combine
    if (tid == 0) {
      ws_ml[0] = -INFINITY;
      ws_ml[1] = 0.0f;
    }
    return;
  }
  __shared__ float q_s[kAttnMaxHeadDim];
  __shared__ float score[kAttnSplitChunk];
  const float* q = p.q + (static_cast<int64_t>(s) * p.n_head + h) * hd;
  for (int d = tid; d < hd; d += kDecodeThreads) q_s[d] = q[d];
  __syncthreads();

  const uint16_t* kb = p.k + s * p.seq_stride + kvh * p.head_dim;
  const uint16_t* vb = p.v + s * p.seq_stride + kvh * p.head_dim;
  const int n = end - start;
  for (int j = warp; j < n; j += kDecodeThreads / 32) {  // a warp per key, lanes along head_dim
    const uint16_t* kr = kb + static_cast<int64_t>(start + j) * kv_row;
    float dot = 0.0f;
    for (int d = lane; d < hd; d += 32) dot = fmaf(q_s[d], h2f(kr[d]), dot);
    dot = warp_sum(dot);
    if (lane == 0) score[j] = score_transform(dot, p.scale, p.softcap);
  }
  __syncthreads();
  float m = -INFINITY;
  for (int j = tid; j < n; j += kDecodeThreads) m = fmaxf(m, score[j]);
  m = block_max(m);
  float l = 0.0f;
  for (int j = tid; j < n; j += kDecodeThreads) {
    const float e = expf(score[j] - m);
    score[j] = e;
    l += e;
  }
  l = block_sum(l);  // its barriers also publish score[]
  for (int d = tid; d < hd; d += kDecodeThreads) {  // threads along head_dim: coalesced V rows
    float acc = 0.0f;
    for (int j = 0; j < n; ++j) acc = fmaf(score[j], h2f(vb[static_cast<int64_t>(start + j) * kv_row + d]), acc);
    ws_o[d] = acc;
  }
  if (tid == 0) {
    ws_ml[0] = m;
    ws_ml[1] = l;
  }
}

__global__ void attn_decode_combine(AttnDecodeParams p, int n_split) {
  const int h = blockIdx.x, s = blockIdx.y, hd = static_cast<int>(p.head_dim);
  const int64_t slot0 = (static_cast<int64_t>(s) * p.n_head + h) * n_split;
  const float* ws_o = p.workspace + slot0 * hd;
  const float* ws_ml = p.workspace + p.n_seq * p.n_head * n_split * p.head_dim + slot0 * 2;
  float m = -INFINITY;
  for (int i = 0; i < n_split; ++i)
    if (ws_ml[2 * i + 1] > 0.0f) m = fmaxf(m, ws_ml[2 * i]);
  float l = 0.0f;
  for (int i = 0; i < n_split; ++i)
    if (ws_ml[2 * i + 1] > 0.0f) l += ws_ml[2 * i + 1] * expf(ws_ml[2 * i] - m);
  float* out = p.out + (static_cast<int64_t>(s) * p.n_head + h) * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.0f;
    for (int i = 0; i < n_split; ++i)
      if (ws_ml[2 * i + 1] > 0.0f) acc += ws_o[static_cast<int64_t>(i) * hd + d] * expf(ws_ml[2 * i] - m);
    out[d] = l > 0.0f ? acc / l : __int_as_float(0x7fc00000);  // l == 0 only if the position was invalid
  }
}

// Block: kPrefillWarps consecutive queries of one head (a warp each); grid (query blocks, n_head).
__global__ void __launch_bounds__(kPrefillWarps * 32) attn_prefill_tiled(AttnPrefillParams p) {
  __shared__ uint16_t k_s[kPrefillTile * kPrefillKStride];
  __shared__ uint16_t v_s[kPrefillTile * kAttnMaxHeadDim];
  __shared__ float q_s[kPrefillWarps][kAttnMaxHeadDim];
  __shared__ float p_s[kPrefillWarps][kPrefillTile];
  __shared__ int range_s[2 * kPrefillWarps];

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, hd = static_cast<int>(p.head_dim);
  const int h = blockIdx.y, kvh = h / static_cast<int>(p.n_head / p.n_kv_head);
  const int64_t kv_row = p.n_kv_head * p.head_dim;
  const int64_t qi = static_cast<int64_t>(blockIdx.x) * kPrefillWarps + warp;
  const bool active = qi < p.n_q;
  const int pos = active ? p.pos[qi] : -1;
  const int lo = active ? (p.window > 0 ? max(0, pos - static_cast<int>(p.window) + 1) : 0) : INT32_MAX;
  if (lane == 0) {
    range_s[warp] = lo;
    range_s[kPrefillWarps + warp] = pos;
  }
  if (active) {
    const float* q = p.q + (qi * p.n_head + h) * hd;
    for (int d = lane; d < hd; d += 32) q_s[warp][d] = q[d];
  }
  __syncthreads();
  int k_begin = INT32_MAX, k_last = -1;  // keys the block needs: [min lo, max pos]
  for (int w = 0; w < kPrefillWarps; ++w) {
    k_begin = min(k_begin, range_s[w]);
    k_last = max(k_last, range_s[kPrefillWarps + w]);
  }

  float m = -INFINITY, l = 0.0f;
  float acc[kAttnMaxHeadDim / 32];
#pragma unroll
  for (int c = 0; c < kAttnMaxHeadDim / 32; ++c) acc[c] = 0.0f;
  const uint16_t* kb = p.k + kvh * p.head_dim;
  const uint16_t* vb = p.v + kvh * p.head_dim;

  for (int t0 = k_begin; t0 <= k_last; t0 += kPrefillTile) {
    for (int idx = tid; idx < kPrefillTile * hd; idx += kPrefillWarps * 32) {
      const int r = idx / hd, d = idx - r * hd, key = t0 + r;
      const bool in = key <= k_last;
      k_s[r * kPrefillKStride + d] = in ? kb[static_cast<int64_t>(key) * kv_row + d] : 0;
      v_s[r * kAttnMaxHeadDim + d] = in ? vb[static_cast<int64_t>(key) * kv_row + d] : 0;
    }
    __syncthreads();
    if (active) {
      const int key = t0 + lane;
      const bool valid = key >= lo && key <= pos;
      float s = -INFINITY;
      if (valid) {
        float dot = 0.0f;
        const uint16_t* kr = k_s + lane * kPrefillKStride;
        for (int d = 0; d < hd; ++d) dot = fmaf(q_s[warp][d], h2f(kr[d]), dot);
        s = score_transform(dot, p.scale, p.softcap);
      }
      const float m_new = fmaxf(m, warp_max(s));
      if (m_new != -INFINITY) {  // else no key of this tile (or before) is visible to this query
        const float corr = expf(m - m_new);  // 0 on the first visible tile (m = -inf)
        const float pj = valid ? expf(s - m_new) : 0.0f;
        l = l * corr + warp_sum(pj);
        p_s[warp][lane] = pj;
        __syncwarp();
#pragma unroll
        for (int c = 0; c < kAttnMaxHeadDim / 32; ++c) {
          const int d = lane + 32 * c;
          if (d < hd) {
            float a = acc[c] * corr;
            for (int r = 0; r < kPrefillTile; ++r) a = fmaf(p_s[warp][r], h2f(v_s[r * kAttnMaxHeadDim + d]), a);
            acc[c] = a;
          }
        }
        m = m_new;
        __syncwarp();
      }
    }
    __syncthreads();
  }
  if (active) {
    float* out = p.out + (qi * p.n_head + h) * hd;
#pragma unroll
    for (int c = 0; c < kAttnMaxHeadDim / 32; ++c) {
      const int d = lane + 32 * c;
      if (d < hd) out[d] = l > 0.0f ? acc[c] / l : __int_as_float(0x7fc00000);
    }
  }
}

// ---- prefill on tensor cores: flash-attention 2 ------------------------------------------
// Block: kFlashWarps warps x 16 consecutive queries (rows) of one head; grid (query blocks,
// n_head), the blocks with the latest queries (the most keys) first. The block streams tiles of
// BC keys [t0, t0 + BC) of its kv head through shared memory (cp.async: V of tile j is in flight
// while S = Q K^T of tile j is computed, K of tile j + 1 while the softmax and O += P V run) from
// the smallest window start of its rows to their largest position; a warp skips the math of a
// tile none of its rows sees.
// Per warp, mma.sync m16n8k16 (f16 operands, f32 accumulation): Q (16 x D, pre-multiplied by
// scale, rounded to f16 once) stays in registers as A fragments; K fragments come from shared
// memory by ldmatrix, V fragments by ldmatrix.trans; S (16 x BC) is in registers as C
// fragments, softcapped and masked by the rows' positions in f32, the online softmax runs per
// row (each row's 4 lanes combine by shuffles), P is rounded to f16 and, since the C layout of
// two n-tiles is the A layout of one k-step, multiplies V without a trip through memory.
// Fragment layout (PTX ISA, m16n8k16 .f16): lane = 4g + t; A regs (row g, cols 2t..2t+1),
// (g + 8, 2t), (g, 2t + 8), (g + 8, 2t + 8); B regs (k 2t..2t+1, col g), (k 2t + 8, col g);
// C (row g, cols 2t, 2t + 1), (row g + 8, cols 2t, 2t + 1). The lower half of a register holds
// the lower index.
// Precision: q * scale and p rounded to f16 (relative 2^-11 each), K/V exact (the cache is f16),
// sums in f32: ~1e-4..1e-3 relative L2 against ref::attention (docs/CUDA.md). l sums the rounded
// p, so the weights that multiply V are normalized exactly.
constexpr int kFlashWarps = 4;
constexpr int kFlashRows = 16 * kFlashWarps;  // queries per block
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared; src_bytes 0 reads nothing and zero-fills (keys past the last one).
__device__ __forceinline__ void cp_async16(uint32_t smem, const void* gmem, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem), "r"(src_bytes) : "memory");
#else
  __trap();  // launch_attn_prefill takes the flash kernel on sm_80+ only
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, r[i] receives it.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
#else
  r[0] = r[1] = r[2] = r[3] = 0;
  __trap();
#endif
}
// Transposed: lane 4g + t receives elements (rows 2t, 2t + 1; column g) of each matrix.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
#else
  r[0] = r[1] = r[2] = r[3] = 0;
  __trap();
#endif
}

__device__ __forceinline__ void mma_f16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();
#endif
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {  // lo -> bits 0..15
  const __half2 v = __floats2half2_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  return u;
}
__device__ __forceinline__ float half2_sum(uint32_t u) {  // lo + hi of a packed pair
  return __half2float(__ushort_as_half(static_cast<unsigned short>(u & 0xFFFFu))) +
         __half2float(__ushort_as_half(static_cast<unsigned short>(u >> 16)));
}

// D = head_dim (multiple of 16, <= 256); BC keys per tile (64, or 32 for D > 128 so that K and V
// tiles stay within 48 KB of static shared memory and O within the register file).
template <int D, int BC>
__global__ void __launch_bounds__(kFlashWarps * 32) attn_prefill_flash(AttnPrefillParams p) {
  constexpr int kStride = D + 8;  // halves per smem row: rows 16-byte aligned, ldmatrix phases conflict-free
  constexpr int KT = D / 16;      // k-steps of S = Q K^T
  constexpr int NS = BC / 8;      // n-tiles of S (keys)
  constexpr int NO = D / 8;       // n-tiles of O (dims)
  constexpr int kPieces = BC * D / 8;  // 16-byte pieces per tile
  static_assert(D % 16 == 0 && D <= kAttnMaxHeadDim && BC % 16 == 0, "flash tile shape");
  __shared__ __align__(16) uint16_t k_s[BC * kStride];
  __shared__ __align__(16) uint16_t v_s[BC * kStride];
  __shared__ int range_s[2][kFlashWarps];

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int qb = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);
  const int h = blockIdx.y, kvh = h / static_cast<int>(p.n_head / p.n_kv_head);
  const int64_t kv_row = p.n_kv_head * D;
  const int64_t row0 = static_cast<int64_t>(qb) * kFlashRows + warp * 16;

  // This lane's rows g and g + 8: visible keys [lo, pos]; a row past n_q sees none.
  int pos_r[2], lo_r[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t qi = row0 + g + 8 * r;
    if (qi < p.n_q) {
      pos_r[r] = p.pos[qi];
      lo_r[r] = p.window > 0 ? static_cast<int>(max(int64_t(0), int64_t(pos_r[r]) - p.window + 1)) : 0;
    } else {
      pos_r[r] = -1;
      lo_r[r] = INT32_MAX;
    }
  }
  int warp_lo = min(lo_r[0], lo_r[1]), warp_hi = max(pos_r[0], pos_r[1]);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    warp_lo = min(warp_lo, __shfl_xor_sync(0xffffffffu, warp_lo, o));
    warp_hi = max(warp_hi, __shfl_xor_sync(0xffffffffu, warp_hi, o));
  }
  if (lane == 0) {
    range_s[0][warp] = warp_lo;
    range_s[1][warp] = warp_hi;
  }

  // Q fragments: q * scale in f16 (saturated at +-65504), zero for rows past n_q.
  uint32_t qf[KT][4];
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = i & 1, col = kt * 16 + 2 * t + 8 * (i >> 1);
      const int64_t qi = row0 + g + 8 * r;
      float2 v = make_float2(0.0f, 0.0f);
      if (qi < p.n_q) v = *reinterpret_cast<const float2*>(p.q + (qi * p.n_head + h) * D + col);
      qf[kt][i] = pack_half2(fminf(fmaxf(v.x * p.scale, -65504.0f), 65504.0f),
                             fminf(fmaxf(v.y * p.scale, -65504.0f), 65504.0f));
    }
  }
  __syncthreads();
  int k_begin = INT32_MAX, k_last = -1;  // keys the block needs: [min lo, max pos]
#pragma unroll
  for (int w = 0; w < kFlashWarps; ++w) {
    k_begin = min(k_begin, range_s[0][w]);
    k_last = max(k_last, range_s[1][w]);
  }

  const uint16_t* kb = p.k + kvh * D;
  const uint16_t* vb = p.v + kvh * D;
  // Keys past k_last (the last tile's tail) are zero-filled, never read: the cache may end there.
  auto load_tile = [&](uint16_t* dst, const uint16_t* src, int t0) {
    for (int c = tid; c < kPieces; c += kFlashWarps * 32) {
      const int r = c / (D / 8), d = (c - r * (D / 8)) * 8, key = t0 + r;
      const bool in = key <= k_last;
      cp_async16(smem_u32(dst + r * kStride + d), src + static_cast<int64_t>(in ? key : t0) * kv_row + d, in ? 16 : 0);
    }
  };

  float o[NO][4];
#pragma unroll
  for (int n = 0; n < NO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.0f, 0.0f};  // l_r: this lane's part of the row sum

  // ldmatrix row addresses: lane 8i + j gives row j of matrix i.
  const int lm = lane >> 3, lr = lane & 7;
  // K (non-transposed), matrices (n-tile 2np, d + 0), (2np, d + 8), (2np + 1, d + 0), (2np + 1, d + 8).
  const uint32_t k_lane = smem_u32(k_s) + static_cast<uint32_t>(((lm >> 1) * 8 + lr) * kStride + (lm & 1) * 8) * 2u;
  // V (transposed), matrices (keys +0..7, n-tile 2np), (keys +8..15, 2np), (+0..7, 2np + 1), (+8..15, 2np + 1).
  const uint32_t v_lane = smem_u32(v_s) + static_cast<uint32_t>(((lm & 1) * 8 + lr) * kStride + (lm >> 1) * 8) * 2u;

  if (k_begin <= k_last) load_tile(k_s, kb, k_begin);
  cp_async_commit();
  for (int t0 = k_begin; t0 <= k_last; t0 += BC) {
    __syncthreads();  // every warp is done with v_s (previous tile)
    load_tile(v_s, vb, t0);
    cp_async_commit();
    cp_async_wait<1>();  // this thread's K pieces landed ...
    __syncthreads();     // ... and everyone's
    const bool busy = t0 <= warp_hi && t0 + (BC - 1) >= warp_lo;  // warp-uniform
    float s[NS][4];
    if (busy) {
#pragma unroll
      for (int n = 0; n < NS; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
        for (int np = 0; np < NS / 2; ++np) {
          uint32_t b[4];
          ldmatrix_x4(b, k_lane + static_cast<uint32_t>((np * 16 * kStride + kt * 16) * 2));
          mma_f16(s[2 * np], qf[kt], b[0], b[1]);
          mma_f16(s[2 * np + 1], qf[kt], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with k_s
    if (t0 + BC <= k_last) load_tile(k_s, kb, t0 + BC);
    cp_async_commit();  // possibly empty: keeps the wait counts uniform
    uint32_t pa[BC / 16][4];
    if (busy) {
      // softcap, mask, online softmax; s[n][i] is row g + 8 (i >> 1), key t0 + 8n + 2t + (i & 1).
      float mx[2] = {m_r[0], m_r[1]};
#pragma unroll
      for (int n = 0; n < NS; ++n) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int r = i >> 1, key = t0 + 8 * n + 2 * t + (i & 1);
          float v = s[n][i];
          if (p.softcap > 0.0f) v = p.softcap * tanhf(v / p.softcap);
          v = key >= lo_r[r] && key <= pos_r[r] ? v : -INFINITY;
          s[n][i] = v;
          mx[r] = fmaxf(mx[r], v);
        }
      }
      float corr[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        // mx = -inf: nothing visible to this row yet (o and l are still 0).
        corr[r] = mx[r] == -INFINITY ? 1.0f : exp2f((m_r[r] - mx[r]) * kLog2e);
        m_r[r] = mx[r];
        l_r[r] *= corr[r];
      }
#pragma unroll
      for (int n = 0; n < NS; ++n) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int r = i >> 1;
          s[n][i] = s[n][i] == -INFINITY ? 0.0f : exp2f((s[n][i] - mx[r]) * kLog2e);
        }
      }
#pragma unroll
      for (int kk = 0; kk < BC / 16; ++kk) {  // C of n-tiles 2kk, 2kk + 1 = A of k-step kk
        pa[kk][0] = pack_half2(s[2 * kk][0], s[2 * kk][1]);
        pa[kk][1] = pack_half2(s[2 * kk][2], s[2 * kk][3]);
        pa[kk][2] = pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        pa[kk][3] = pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        l_r[0] += half2_sum(pa[kk][0]) + half2_sum(pa[kk][2]);
        l_r[1] += half2_sum(pa[kk][1]) + half2_sum(pa[kk][3]);
      }
#pragma unroll
      for (int n = 0; n < NO; ++n) {
        o[n][0] *= corr[0];
        o[n][1] *= corr[0];
        o[n][2] *= corr[1];
        o[n][3] *= corr[1];
      }
    }
    cp_async_wait<1>();  // this thread's V pieces landed (the next K may still be in flight) ...
    __syncthreads();     // ... and everyone's
    if (busy) {
#pragma unroll
      for (int kk = 0; kk < BC / 16; ++kk) {
#pragma unroll
        for (int np = 0; np < NO / 2; ++np) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, v_lane + static_cast<uint32_t>((kk * 16 * kStride + np * 16) * 2));
          mma_f16(o[2 * np], pa[kk], b[0], b[1]);
          mma_f16(o[2 * np + 1], pa[kk], b[2], b[3]);
        }
      }
    }
  }
  cp_async_wait<0>();

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_r[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    inv[r] = l > 0.0f ? 1.0f / l : 0.0f;  // a row with no visible key gives 0, not NaN
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t qi = row0 + g + 8 * r;
    if (qi >= p.n_q) continue;
    float* out = p.out + (qi * p.n_head + h) * D + 2 * t;
#pragma unroll
    for (int n = 0; n < NO; ++n)
      *reinterpret_cast<float2*>(out + 8 * n) = make_float2(o[n][2 * r] * inv[r], o[n][2 * r + 1] * inv[r]);
  }
}

Status check_heads(const char* op, int64_t n_head, int64_t n_kv_head, int64_t head_dim) {
  if (n_head <= 0 || n_kv_head <= 0 || n_head % n_kv_head != 0 || n_head > 65535)
    return invalid_argument(fmt("%s: n_head = %lld must be a positive multiple of n_kv_head = %lld (and <= 65535)", op,
                                (long long)n_head, (long long)n_kv_head));
  if (head_dim <= 0 || head_dim > kAttnMaxHeadDim)
    return invalid_argument(fmt("%s: head_dim = %lld must be in [1, %d]", op, (long long)head_dim, kAttnMaxHeadDim));
  return Status::Ok();
}

int64_t n_splits(int64_t n_ctx) { return (n_ctx + kAttnSplitChunk - 1) / kAttnSplitChunk; }

std::atomic<int> g_prefill_attn_kernel{0};  // 0: not read from the environment yet

// Compute capability major of the current device (mma.sync f16, ldmatrix, cp.async: 8.x+);
// cached per device.
int prefill_device_major() {
  static std::atomic<int> cache[64];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0) return 0;
  if (dev >= 64) {
    int major = 0;
    return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess ? major : 0;
  }
  int v = cache[dev].load(std::memory_order_relaxed);
  if (v == 0) {
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return 0;
    cache[dev].store(v = major, std::memory_order_relaxed);
  }
  return v;
}

}  // namespace

int64_t attn_decode_workspace_floats(int64_t n_seq, int64_t n_head, int64_t head_dim, int64_t n_ctx) {
  return n_seq * n_head * n_splits(n_ctx) * (head_dim + 2);
}

Status check_params(const AttnDecodeParams& p) {
  if (!p.q || !p.k || !p.v || !p.pos || !p.out || !p.workspace)
    return invalid_argument("attn_decode: q, k, v, pos, out and workspace must be set");
  OMNI_RETURN_IF_ERROR(check_heads("attn_decode", p.n_head, p.n_kv_head, p.head_dim));
  if (p.n_seq <= 0 || p.n_seq > 65535) return invalid_argument(fmt("attn_decode: n_seq = %lld must be in [1, 65535]", (long long)p.n_seq));
  if (p.n_ctx <= 0 || p.n_ctx > INT32_MAX / 2) return invalid_argument(fmt("attn_decode: bad n_ctx = %lld", (long long)p.n_ctx));
  if (p.n_seq > 1 && p.seq_stride < p.n_ctx * p.n_kv_head * p.head_dim)
    return invalid_argument("attn_decode: seq_stride is smaller than one sequence's cache");
  if (p.window < 0) return invalid_argument("attn_decode: window must be >= 0");
  return Status::Ok();
}

cudaError_t launch_attn_decode(const AttnDecodeParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int ns = static_cast<int>(n_splits(p.n_ctx));
  attn_decode_split<<<dim3(static_cast<unsigned>(ns), static_cast<unsigned>(p.n_head), static_cast<unsigned>(p.n_seq)),
                      kDecodeThreads, 0, stream>>>(p, ns);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  attn_decode_combine<<<dim3(static_cast<unsigned>(p.n_head), static_cast<unsigned>(p.n_seq)), 128, 0, stream>>>(p, ns);
  return cudaGetLastError();
}

Status check_params(const AttnPrefillParams& p) {
  if (!p.q || !p.k || !p.v || !p.pos || !p.out) return invalid_argument("attn_prefill: q, k, v, pos and out must be set");
  OMNI_RETURN_IF_ERROR(check_heads("attn_prefill", p.n_head, p.n_kv_head, p.head_dim));
  if (p.n_q <= 0 || p.n_q > (int64_t(1) << 30)) return invalid_argument(fmt("attn_prefill: bad n_q = %lld", (long long)p.n_q));
  if (p.window < 0) return invalid_argument("attn_prefill: window must be >= 0");
  return Status::Ok();
}

PrefillAttnKernel prefill_attn_kernel() {
  int k = g_prefill_attn_kernel.load(std::memory_order_relaxed);
  if (k == 0) {
    const char* e = std::getenv("OMNIRT_CUDA_PREFILL_ATTN");
    k = static_cast<int>(e && std::strcmp(e, "tiled") == 0 ? PrefillAttnKernel::kTiled : PrefillAttnKernel::kFlash);
    int expected = 0;  // a set_prefill_attn_kernel() in between wins
    if (!g_prefill_attn_kernel.compare_exchange_strong(expected, k, std::memory_order_relaxed)) k = expected;
  }
  return static_cast<PrefillAttnKernel>(k);
}

void set_prefill_attn_kernel(PrefillAttnKernel k) {
  g_prefill_attn_kernel.store(static_cast<int>(k == PrefillAttnKernel::kTiled ? PrefillAttnKernel::kTiled
                                                                             : PrefillAttnKernel::kFlash),
                              std::memory_order_relaxed);
}

bool attn_prefill_uses_flash(const AttnPrefillParams& p) {
  const auto aligned = [](const void* ptr, uintptr_t a) { return (reinterpret_cast<uintptr_t>(ptr) & (a - 1)) == 0; };
  return prefill_attn_kernel() == PrefillAttnKernel::kFlash && p.head_dim % 16 == 0 && p.head_dim > 0 &&
         p.head_dim <= kAttnMaxHeadDim && aligned(p.q, 8) && aligned(p.out, 8) && aligned(p.k, 16) &&
         aligned(p.v, 16) && prefill_device_major() >= 8;
}

cudaError_t launch_attn_prefill(const AttnPrefillParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  if (attn_prefill_uses_flash(p)) {
    const dim3 grid(static_cast<unsigned>((p.n_q + kFlashRows - 1) / kFlashRows), static_cast<unsigned>(p.n_head));
    switch (p.head_dim / 16) {
#define OMNI_FLASH_CASE(i)                                                                  \
  case i:                                                                                   \
    attn_prefill_flash<16 * i, (16 * i > 128 ? 32 : 64)><<<grid, kFlashWarps * 32, 0, stream>>>(p); \
    return cudaGetLastError();
      OMNI_FLASH_CASE(1)
      OMNI_FLASH_CASE(2)
      OMNI_FLASH_CASE(3)
      OMNI_FLASH_CASE(4)
      OMNI_FLASH_CASE(5)
      OMNI_FLASH_CASE(6)
      OMNI_FLASH_CASE(7)
      OMNI_FLASH_CASE(8)
      OMNI_FLASH_CASE(9)
      OMNI_FLASH_CASE(10)
      OMNI_FLASH_CASE(11)
      OMNI_FLASH_CASE(12)
      OMNI_FLASH_CASE(13)
      OMNI_FLASH_CASE(14)
      OMNI_FLASH_CASE(15)
      OMNI_FLASH_CASE(16)
#undef OMNI_FLASH_CASE
      default:
        break;  // unreachable: attn_prefill_uses_flash checked head_dim
    }
  }
  const dim3 grid(static_cast<unsigned>((p.n_q + kPrefillWarps - 1) / kPrefillWarps), static_cast<unsigned>(p.n_head));
  attn_prefill_tiled<<<grid, kPrefillWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace omni::cuda
