// Attention over an f16 KV cache laid out [pos, kv_head, head_dim] (the CPU Context's layout).
// Decode: flash-decoding (split along the keys, then combine). Prefill: tiled online softmax.
// Scores follow ref::attention: s = (q . k) * scale, then softcap * tanh(s / softcap) if set.
#include <cuda_fp16.h>

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

Status check_heads(const char* op, int64_t n_head, int64_t n_kv_head, int64_t head_dim) {
  if (n_head <= 0 || n_kv_head <= 0 || n_head % n_kv_head != 0 || n_head > 65535)
    return invalid_argument(fmt("%s: n_head = %lld must be a positive multiple of n_kv_head = %lld (and <= 65535)", op,
                                (long long)n_head, (long long)n_kv_head));
  if (head_dim <= 0 || head_dim > kAttnMaxHeadDim)
    return invalid_argument(fmt("%s: head_dim = %lld must be in [1, %d]", op, (long long)head_dim, kAttnMaxHeadDim));
  return Status::Ok();
}

int64_t n_splits(int64_t n_ctx) { return (n_ctx + kAttnSplitChunk - 1) / kAttnSplitChunk; }

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

cudaError_t launch_attn_prefill(const AttnPrefillParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((p.n_q + kPrefillWarps - 1) / kPrefillWarps), static_cast<unsigned>(p.n_head));
  attn_prefill_tiled<<<grid, kPrefillWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace omni::cuda
