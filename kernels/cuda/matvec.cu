// Matrix-vector for 1..16 tokens (decode and batched decode).
// One token (CUDA cores): a block is 8 warps; a warp owns R consecutive output rows (register
// tile: each x value loaded once feeds R rows) over one of S slices of the row (split-K inside
// the block, combined through shared memory), so that small matrices (K/V projections: 512 rows)
// still put thousands of warps in flight. Each lane decodes 8 consecutive weights per step
// (Quant<T>::load8). Q4_K has its own inner loop: a lane takes 8 bytes of nibbles (two
// sub-blocks) and the super-block header in one 16-byte load, converts nibbles exactly with the
// 2^23 float trick (no int->float conversions) and applies the sub-block scale and min once per
// 16 products: d1*sum(q x) - m1*sum(x) (reference: per weight d1*q - m1, a rounding difference of
// a few ulps). Rows of plain types whose length is not a multiple of 8 (or that are not 16-byte
// aligned) take a scalar path.
// 2..16 tokens (sm_80+): tensor cores, see matvec_mma below; results within ~1e-6 of the
// one-token kernel and independent of n_tok (bit for bit).
// launch_matvecs runs up to 3 matrices over the same x in one launch (q/k/v, gate/up); each
// matrix keeps its own slicing, so fused and separate launches give the same bits.
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/quant_cuda.cuh"
#include "kernels/cuda/reduce.cuh"

#include <atomic>
#include <cstdlib>
#include <type_traits>

namespace omni::cuda {
namespace {

constexpr int kWarps = 8;            // warps per block of the tiled kernels
constexpr int kScalarWarps = 4;      // warps per block of the scalar kernel (one row each)
constexpr int kTargetWarps = 8192;   // ~ 64 resident warps on each of 128+ SMs

struct MatvecArgs {
  const uint8_t* w;
  const float* x;
  float* y;
  const float* bias;
  int64_t n_out, n_in, row_bytes;
  int n_tok;
  bool accumulate;
};

// Up to kMaxSegs matrices sharing x, type and n_in in one launch (q/k/v, gate/up): blocks
// [begin[i], begin[i+1]) compute segment i with its own slice count S[i], exactly as a launch of
// that matrix alone would (same S, same per-row code), so fusing changes no bits.
constexpr int kMaxSegs = 3;
struct MatvecSegs {
  MatvecArgs seg[kMaxSegs];
  int S[kMaxSegs];
  unsigned begin[kMaxSegs];
  int n;
};

// This block's segment: its args, slice count and block index inside the segment.
__device__ __forceinline__ unsigned pick_segment(const MatvecSegs& m, MatvecArgs* a, int* S) {
  int i = 0;
  if (m.n > 1 && blockIdx.x >= m.begin[1]) i = 1;
  if (m.n > 2 && blockIdx.x >= m.begin[2]) i = 2;
  *a = i == 0 ? m.seg[0] : i == 1 ? m.seg[1] : m.seg[2];
  *S = i == 0 ? m.S[0] : i == 1 ? m.S[1] : m.S[2];
  return blockIdx.x - (i == 0 ? m.begin[0] : i == 1 ? m.begin[1] : m.begin[2]);
}

__device__ __forceinline__ void store_row(const MatvecArgs& a, int64_t o, int t, float v) {
  float* dst = a.y + static_cast<int64_t>(t) * a.n_out + o;
  v += a.bias ? a.bias[o] : 0.0f;
  *dst = a.accumulate ? *dst + v : v;
}

// Warp sums, then the S slices of each row group are added in shared memory (slice order, so the
// result does not depend on scheduling) and stored by lane 0 of the group's first warp.
template <int R, int NT>
__device__ __forceinline__ void reduce_and_store(float (&acc)[R][NT], const MatvecArgs& a, int64_t o0, int S) {
  __shared__ float part[kWarps][R * NT];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) acc[r][t] += __shfl_xor_sync(0xffffffffu, acc[r][t], off);
  if (S == 1) {
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t)
          if (t < a.n_tok && o0 + r < a.n_out) store_row(a, o0 + r, t, acc[r][t]);
    return;
  }
  if (lane == 0)
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t) part[warp][r * NT + t] = acc[r][t];
  __syncthreads();
  if (warp % S == 0)
    for (int e = lane; e < R * NT; e += 32) {
      const int r = e / NT, t = e % NT;
      float v = part[warp][e];
      for (int i = 1; i < S; ++i) v += part[warp + i][e];
      if (t < a.n_tok && o0 + r < a.n_out) store_row(a, o0 + r, t, v);
    }
}

__device__ __forceinline__ float dot8(const float (&w)[8], float4 x0, float4 x1) {
  float s = w[0] * x0.x;
  s = fmaf(w[1], x0.y, s);
  s = fmaf(w[2], x0.z, s);
  s = fmaf(w[3], x0.w, s);
  s = fmaf(w[4], x1.x, s);
  s = fmaf(w[5], x1.y, s);
  s = fmaf(w[6], x1.z, s);
  s = fmaf(w[7], x1.w, s);
  return s;
}

// Any weight type through Quant<T>::load8; requires n_in % 8 == 0 and 16-byte aligned rows/x.
// U > 1 (one token, generation 2 with OMNIRT_CUDA_TILED_STEPS=4; not the default, see
// launch_tiled): the loop runs in groups of U steps whose loads are all issued
// before any product (steps past the row end are predicated off, not added), so a warp has U
// steps of every row in flight: the short rows of the attention projections (3.5 steps per warp
// at 3584 x 3584) finish in about one memory round trip instead of two. The steps are added in
// the same order, so the sums are U = 1's bit for bit.
template <DType T, int NT, int R, int U = 1>
__global__ void __launch_bounds__(kWarps * 32) matvec_tiled(MatvecSegs segs) {
  MatvecArgs a;
  int S;
  const unsigned bid = pick_segment(segs, &a, &S);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp / S, slice = warp % S;
  const int64_t o0 = (static_cast<int64_t>(bid) * (kWarps / S) + group) * R;
  const int64_t n8 = a.n_in >> 3;
  float acc[R][NT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
  if (o0 < a.n_out) {
    const uint8_t* row[R];
#pragma unroll
    for (int r = 0; r < R; ++r) row[r] = a.w + min(o0 + r, a.n_out - 1) * a.row_bytes;  // clamped rows are not stored
    if constexpr (U > 1) {
      for (int64_t k0 = slice * 32 + lane; k0 < n8; k0 += int64_t(32) * S * U) {
        float w[U][R][8];
        float4 x0[U], x1[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int64_t k = k0 + int64_t(32) * S * u;
          if (k < n8) {
#pragma unroll
            for (int r = 0; r < R; ++r) Quant<T>::load8(row[r], k, w[u][r]);
            const float4* xp = reinterpret_cast<const float4*>(a.x) + 2 * k;
            x0[u] = __ldg(xp);
            x1[u] = __ldg(xp + 1);
          }
        }
#pragma unroll
        for (int u = 0; u < U; ++u)
          if (k0 + int64_t(32) * S * u < n8)
#pragma unroll
            for (int r = 0; r < R; ++r) acc[r][0] += dot8(w[u][r], x0[u], x1[u]);
      }
    } else {
#pragma unroll 2
      for (int64_t k = slice * 32 + lane; k < n8; k += 32 * S) {
        float w[R][8];
#pragma unroll
        for (int r = 0; r < R; ++r) Quant<T>::load8(row[r], k, w[r]);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          if (t < a.n_tok) {
            const float4* xp = reinterpret_cast<const float4*>(a.x + static_cast<int64_t>(t) * a.n_in) + 2 * k;
            const float4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
#pragma unroll
            for (int r = 0; r < R; ++r) acc[r][t] += dot8(w[r], x0, x1);
          }
        }
      }
    }
  }
  reduce_and_store<R, NT>(acc, a, o0, S);
}

// GLU epilogue, one token: a warp owns rows o0 .. o0+R-1 of gate (acc[0, R)) and the same rows
// of up (acc[R, 2R)), with the slicing S of a launch of gate or up alone, so each sum is
// matvec_tiled's bit for bit (same lanes, order and slice combination) and y = glu_value(gate, up)
// is what launch_glu computes from them. Each x load feeds 2R rows.
template <DType T, int R>
__global__ void __launch_bounds__(kWarps * 32) matvec_glu_tiled(MatvecArgs g, const uint8_t* up, int S, int act) {
  __shared__ float part[kWarps][2 * R];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp / S, slice = warp % S;
  const int64_t o0 = (static_cast<int64_t>(blockIdx.x) * (kWarps / S) + group) * R;
  const int64_t n8 = g.n_in >> 3;
  float acc[2 * R];
#pragma unroll
  for (int r = 0; r < 2 * R; ++r) acc[r] = 0.0f;
  if (o0 < g.n_out) {
    const uint8_t* row[2 * R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t o = min(o0 + r, g.n_out - 1);  // clamped rows are not stored
      row[r] = g.w + o * g.row_bytes;
      row[R + r] = up + o * g.row_bytes;
    }
#pragma unroll 2
    for (int64_t k = slice * 32 + lane; k < n8; k += 32 * S) {
      float w[2 * R][8];
#pragma unroll
      for (int r = 0; r < 2 * R; ++r) Quant<T>::load8(row[r], k, w[r]);
      const float4* xp = reinterpret_cast<const float4*>(g.x) + 2 * k;
      const float4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
#pragma unroll
      for (int r = 0; r < 2 * R; ++r) acc[r] += dot8(w[r], x0, x1);
    }
  }
#pragma unroll
  for (int r = 0; r < 2 * R; ++r)
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
  if (S == 1) {
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (o0 + r < g.n_out) g.y[o0 + r] = glu_value(acc[r] + 0.0f, acc[R + r] + 0.0f, act);  // + 0: store_row's null bias
    return;
  }
  if (lane == 0)
#pragma unroll
    for (int r = 0; r < 2 * R; ++r) part[warp][r] = acc[r];
  __syncthreads();
  if (warp % S == 0 && lane < R) {
    const int r = lane;
    float vg = part[warp][r], vu = part[warp][R + r];
    for (int i = 1; i < S; ++i) {
      vg += part[warp + i][r];
      vu += part[warp + i][R + r];
    }
    if (o0 + r < g.n_out) g.y[o0 + r] = glu_value(vg + 0.0f, vu + 0.0f, act);
  }
}

// Exact small integer v (< 2^23) as a float: one OR and one subtract, no I2F.
__device__ __forceinline__ float small_int_to_float(uint32_t v) {
  return __int_as_float(0x4B000000u | v) - 8388608.0f;
}

__device__ __forceinline__ uint32_t byte_of(uint4 h, int i) {  // byte i (0..15) of a 16-byte value
  const uint32_t w = i < 4 ? h.x : i < 8 ? h.y : i < 12 ? h.z : h.w;
  return (w >> (8 * (i & 3))) & 0xFFu;
}

// Q4_K: unit c = 8 bytes of nibbles = elements 8m..8m+7 of sub-blocks 2j (low nibbles) and 2j+1
// (high nibbles) of super-block c/16, j = (c/4)%4, m = c%4. A warp's 32 consecutive units are two
// whole super-blocks: 256 contiguous bytes of nibbles, and each x load instruction reads whole
// 32-byte runs (lanes of one sub-block are adjacent).
template <int NT, int R>
__global__ void __launch_bounds__(kWarps * 32) matvec_q4_k(MatvecSegs segs) {
  MatvecArgs a;
  int S;
  const unsigned bid = pick_segment(segs, &a, &S);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp / S, slice = warp % S;
  const int64_t o0 = (static_cast<int64_t>(bid) * (kWarps / S) + group) * R;
  const int64_t n_units = a.n_in >> 4;
  float acc[R][NT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
  if (o0 < a.n_out) {
    const uint8_t* row[R];
#pragma unroll
    for (int r = 0; r < R; ++r) row[r] = a.w + min(o0 + r, a.n_out - 1) * a.row_bytes;
    // j and m are the same in every iteration (the stride is a multiple of 32 units).
    const int j = (lane >> 2) & 3, m8 = 8 * (lane & 3);
#pragma unroll 2
    for (int64_t c = slice * 32 + lane; c < n_units; c += 32 * S) {
      const int64_t sb = c >> 4;
      uint4 head[R];
      uint2 qs[R];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const uint8_t* blk = row[r] + sb * 144;
        head[r] = __ldg(reinterpret_cast<const uint4*>(blk));
        qs[r] = __ldg(reinterpret_cast<const uint2*>(blk + 16 + 32 * j + m8));
      }
      // Scales of sub-blocks 2j and 2j+1 (ref k_scale_min); the 12 scale bytes start at header byte 4.
      float d1a[R], m1a[R], d1b[R], m1b[R];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float d = half_bits_to_f32(static_cast<uint16_t>(head[r].x & 0xFFFF));
        const float dmin = half_bits_to_f32(static_cast<uint16_t>(head[r].x >> 16));
        uint32_t sc[2], mn[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int s = 2 * j + h;
          if (s < 4) {
            sc[h] = byte_of(head[r], 4 + s) & 63;
            mn[h] = byte_of(head[r], 8 + s) & 63;
          } else {
            sc[h] = (byte_of(head[r], 8 + s) & 0xF) | ((byte_of(head[r], s) >> 6) << 4);
            mn[h] = (byte_of(head[r], 8 + s) >> 4) | ((byte_of(head[r], 4 + s) >> 6) << 4);
          }
        }
        d1a[r] = __fmul_rn(d, small_int_to_float(sc[0]));
        m1a[r] = __fmul_rn(dmin, small_int_to_float(mn[0]));
        d1b[r] = __fmul_rn(d, small_int_to_float(sc[1]));
        m1b[r] = __fmul_rn(dmin, small_int_to_float(mn[1]));
      }
      const int64_t xoff = sb * 256 + 64 * j + m8;
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t < a.n_tok) {
          const float4* xa = reinterpret_cast<const float4*>(a.x + static_cast<int64_t>(t) * a.n_in + xoff);
          const float4* xb = xa + 8;  // 32 floats later: sub-block 2j+1
          const float4 u0 = __ldg(xa), u1 = __ldg(xa + 1), v0 = __ldg(xb), v1 = __ldg(xb + 1);
          const float xl[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
          const float xh[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
          float sxl = 0.0f, sxh = 0.0f;
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            sxl += xl[i];
            sxh += xh[i];
          }
#pragma unroll
          for (int r = 0; r < R; ++r) {
            float sl = 0.0f, sh = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
              const uint32_t b = (i < 4 ? qs[r].x : qs[r].y) >> (8 * (i & 3));
              sl = fmaf(small_int_to_float(b & 0xF), xl[i], sl);
              sh = fmaf(small_int_to_float((b >> 4) & 0xF), xh[i], sh);
            }
            acc[r][t] += (d1a[r] * sl - m1a[r] * sxl) + (d1b[r] * sh - m1b[r] * sxh);
          }
        }
      }
    }
  }
  reduce_and_store<R, NT>(acc, a, o0, S);
}

// ---- one token, Q8_0 / Q4_K: row spans staged through shared memory ----------------------
// The kernels above are instruction bound on these types (Q8_0: five 2-byte loads, eight I2F
// conversions at quarter rate and eight multiplies per 8 weights; Q4_K: the 16-byte header and
// the scale selection once per 16 weights). Here a warp owns kSpanRows rows and walks its slice
// of each row in spans (16 Q8_0 blocks or 4 Q4_K super-blocks, contiguous bytes): the span is
// copied into shared memory by cp.async 16-byte copies (double-buffered: the next span is in
// flight while this one is multiplied), then each lane decodes its 16 (Q8_0) or 32 (Q4_K)
// weights there with the exact PRMT/2^23 conversion (quant_cuda.cuh: q8_0_span_dot,
// q4_k_lane_dot, tested on the host), the Q4_K header read once per 32 weights. Each x value
// loaded feeds kSpanRows rows. OMNIRT_CUDA_MATVEC_V1=1 selects the kernels above instead; Q8_0
// takes the span kernel only with OMNIRT_CUDA_Q8_0_SPAN=1 (slower than matvec_tiled in GPU run 1).
constexpr int kSpanRows = 4;

// 16 bytes to shared memory, of which the first src_bytes (1..16) are read and the rest zero
// (the last piece of a matrix whose end is not 16-byte aligned reads nothing past it).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
#else
  __trap();  // launch_type never selects the span kernels below sm_80
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

struct SpanQ8_0 {
  static constexpr int kUnitElems = 32, kUnitBytes = 34, kSpanUnits = 16;
  static constexpr int kSpanBytes = kUnitBytes * kSpanUnits;  // 544 = 34 x 16: every span of a row has the row's shift
  static constexpr int kSpanVecs = (kSpanBytes + 15 + 15) / 16;
  template <int R>
  __device__ __forceinline__ static void compute(const uint4 (&st)[R][kSpanVecs], const uint32_t (&shift)[R],
                                                 const float* x, int64_t sp, int64_t n_units, int lane, float (&acc)[R][1]) {
    if (sp * kSpanUnits + (lane >> 1) >= n_units) return;
    const float4* xp = reinterpret_cast<const float4*>(x + sp * (kSpanUnits * kUnitElems) + 16 * lane);
    float xv[16];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float4 v = __ldg(xp + i);
      xv[4 * i] = v.x, xv[4 * i + 1] = v.y, xv[4 * i + 2] = v.z, xv[4 * i + 3] = v.w;
    }
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r][0] += q8_0_span_dot(reinterpret_cast<const uint32_t*>(st[r]), shift[r], lane, xv);
  }
};

struct SpanQ4_K {
  static constexpr int kUnitElems = 256, kUnitBytes = 144, kSpanUnits = 4;
  static constexpr int kSpanBytes = kUnitBytes * kSpanUnits;  // 576 = 16 x 36; rows are whole 16-byte multiples
  static constexpr int kSpanVecs = (kSpanBytes + 15 + 15) / 16;
  template <int R>
  __device__ __forceinline__ static void compute(const uint4 (&st)[R][kSpanVecs], const uint32_t (&)[R],
                                                 const float* x, int64_t sp, int64_t n_units, int lane, float (&acc)[R][1]) {
    if (sp * kSpanUnits + (lane >> 3) >= n_units) return;
    const float4* xp = reinterpret_cast<const float4*>(x + sp * (kSpanUnits * kUnitElems) + q4_k_span_x(lane));
    float xa[16], xb[16];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float4 u = __ldg(xp + i), v = __ldg(xp + 8 + i);  // xb: 32 floats later
      xa[4 * i] = u.x, xa[4 * i + 1] = u.y, xa[4 * i + 2] = u.z, xa[4 * i + 3] = u.w;
      xb[4 * i] = v.x, xb[4 * i + 1] = v.y, xb[4 * i + 2] = v.z, xb[4 * i + 3] = v.w;
    }
    float sxa = 0.0f, sxb = 0.0f;
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      sxa += xa[i];
      sxb += xb[i];
    }
    const int j = (lane >> 1) & 3, ih = q4_k_span_head(lane), iq = q4_k_span_qs(lane);
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r][0] += q4_k_lane_dot(st[r][ih], st[r][iq], j, xa, xb, sxa, sxb);
  }
};

template <class Sp, int R>
__global__ void __launch_bounds__(kWarps * 32) matvec_span(MatvecSegs segs) {
  __shared__ __align__(16) uint4 stage[kWarps][2][R][Sp::kSpanVecs];
  MatvecArgs a;
  int S;
  const unsigned bid = pick_segment(segs, &a, &S);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp / S, slice = warp % S;
  const int64_t o0 = (static_cast<int64_t>(bid) * (kWarps / S) + group) * R;
  float acc[R][1];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r][0] = 0.0f;
  if (o0 < a.n_out) {
    const int64_t n_units = a.n_in / Sp::kUnitElems;
    const int64_t n_spans = (n_units + Sp::kSpanUnits - 1) / Sp::kSpanUnits;
    const uint8_t* row[R];
    uint32_t shift[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      row[r] = a.w + min(o0 + r, a.n_out - 1) * a.row_bytes;  // clamped rows are not stored
      shift[r] = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(row[r]) & 15);
    }
    // Copies span sp of every row into buffer b (one commit group).
    const uint8_t* const w_end = a.w + a.n_out * a.row_bytes;
    auto issue = [&](int64_t sp, int b) {
      const int64_t bytes = min(static_cast<int64_t>(Sp::kSpanBytes), a.row_bytes - sp * Sp::kSpanBytes);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const SpanCopy c = span_copy(reinterpret_cast<uintptr_t>(row[r] + sp * Sp::kSpanBytes), bytes);
        for (int v = lane; v < c.nvec; v += 32) {
          const uint8_t* src = reinterpret_cast<const uint8_t*>(c.base) + 16 * v;
          cp_async16(&stage[warp][b][r][v], src, static_cast<int>(min(static_cast<int64_t>(16), w_end - src)));
        }
      }
      cp_async_commit();
    };
    int b = 0;
    if (slice < n_spans) issue(slice, 0);
    for (int64_t sp = slice; sp < n_spans; sp += S, b ^= 1) {
      if (sp + S < n_spans) {
        issue(sp + S, b ^ 1);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncwarp();  // every lane's copies of span sp are visible to the warp
      Sp::template compute<R>(stage[warp][b], shift, a.x, sp, n_units, lane, acc);
      __syncwarp();  // buffer b is free for span sp + 2S
    }
  }
  reduce_and_store<R, 1>(acc, a, o0, S);
}

// Slices per row for the span kernels: enough warps for small matrices, each slice >= 1 span.
int span_slices_for(int64_t n_out, int64_t n_spans) {
  const int64_t warps_rows = (n_out + kSpanRows - 1) / kSpanRows;
  int S = 1;
  while (S < kWarps && warps_rows * S < kTargetWarps && n_spans >= 2 * S) S *= 2;
  return S;
}

template <class Sp>
cudaError_t launch_span(const MatvecArgs* a, int n, cudaStream_t stream) {
  MatvecSegs m{};
  m.n = n;
  unsigned blocks = 0;
  for (int i = 0; i < n; ++i) {
    m.seg[i] = a[i];
    const int64_t n_spans = (a[i].n_in / Sp::kUnitElems + Sp::kSpanUnits - 1) / Sp::kSpanUnits;
    m.S[i] = span_slices_for(a[i].n_out, n_spans);
    const int64_t rows_per_block = int64_t(kWarps / m.S[i]) * kSpanRows;
    m.begin[i] = blocks;
    blocks += static_cast<unsigned>((a[i].n_out + rows_per_block - 1) / rows_per_block);
  }
  matvec_span<Sp, kSpanRows><<<blocks, kWarps * 32, 0, stream>>>(m);
  return cudaGetLastError();
}

std::atomic<int> g_matvec_generation{0};  // 0: not read from the environment yet
std::atomic<int> g_q8_0_span{-1};         // -1: not read from the environment yet
std::atomic<int> g_q8_0_mma_words{-1};    // -1: not read from the environment yet
std::atomic<int> g_tiled_steps{0};        // 0: not read from the environment yet

// A 0/1 switch read once from the environment (`unset` is its not-read-yet value); a setter
// that ran in between wins.
int env_switch(std::atomic<int>& v, int unset, const char* name, int (*parse)(const char*)) {
  int x = v.load(std::memory_order_relaxed);
  if (x == unset) {
    const char* e = std::getenv(name);
    x = parse(e);
    int expected = unset;
    if (!v.compare_exchange_strong(expected, x, std::memory_order_relaxed)) x = expected;
  }
  return x;
}
int parse_flag(const char* e) { return e && *e && std::atoi(e) != 0 ? 1 : 0; }
int parse_steps(const char* e) { return e && std::atoi(e) == 4 ? 4 : 1; }

// ---- 2..16 tokens: tensor cores ---------------------------------------------------------
// Batched decode reads each weight once for all tokens, so the work per weight grows with the
// tokens; on CUDA cores (above) that is 16 FMAs and 16 x loads per weight and the kernel was
// L1/issue bound at 60-460 GB/s. Here a warp owns 16*MT rows and multiplies them with 8 or 16
// tokens by mma.sync m16n8k16 (bf16 operands, f32 accumulation), weights decoded in registers.
// f32 accuracy from split operands: x = xh + xl (both bf16, |x - xh - xl| <= 2^-18 |x|), and for
// weights that are not bf16 w = wh + wl likewise; products wh*xh + wh*xl + wl*xh (wl*xl, ~2^-18,
// dropped). bf16 weights are exact in one operand: two mma per tile.
// The k order inside an mma is free as long as A and B agree: lane (g, t) loads octet 4c + t of
// rows g and g+8 (chunk c = 32 weights) and octet 4c + t of tokens g and g+8, and mma m (0, 1)
// takes the octet's pairs (4m, 4m+1) as logical columns (2t, 2t+1) and (4m+2, 4m+3) as
// (2t+8, 2t+9). So every load is 16 contiguous bytes of a row (bf16) or one Quant<T>::load8.
// Results differ from the one-token kernel by rounding (~1e-6 relative); they do not depend on
// n_tok (each output is its own chain of mma over the same weights), and S/MT depend on the shape.

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {  // lo -> bits 0..15
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Splits 8 floats into bf16 pairs hi[4] (+ lo[4], the rounding residuals).
__device__ __forceinline__ void split8(const float (&v)[8], uint32_t (&hi)[4], uint32_t (&lo)[4]) {
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    hi[p] = pack_bf16(v[2 * p], v[2 * p + 1]);
    const float r0 = v[2 * p] - __uint_as_float(hi[p] << 16);
    const float r1 = v[2 * p + 1] - __uint_as_float(hi[p] & 0xFFFF0000u);
    lo[p] = pack_bf16(r0, r1);
  }
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm(  // not volatile: a pure function of its operands, so loads may be scheduled around it
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
  __trap();  // launch_matvec never selects this kernel below sm_80
#endif
}

// Exact small integers as bf16 bit pairs, without the (eighth-rate) conversion units: v in
// [0, 255] becomes the f32 2^23 + v by an OR, minus `bias` (exact), and v - bias has at most 8
// significant bits, so its bf16 is the f32's upper half (PRMT packs two of them).
__device__ __forceinline__ float small_to_f32(uint32_t v, float bias) { return __int_as_float(0x4B000000u | v) - bias; }
__device__ __forceinline__ uint32_t pack_upper(float lo, float hi) {
  return __byte_perm(__float_as_uint(lo), __float_as_uint(hi), 0x7632);
}

// Types whose chunk (32 weights of a row: one Q8_0 block, one Q4_K sub-block) is scale * q
// (- min) with small integer q: the mma runs on q exactly and the scale is applied to the chunk's
// partial sum: sum(w x) = d * sum(q x) (- m * sum(x)). Q8_0: d*q is exact in f32 (11 x 8 bits),
// so this is the reference's sum in another order; Q4_K: as the CUDA-core Q4_K loop.
template <DType T>
struct MmaInt {
  static constexpr bool kOn = false;
};
template <>
struct MmaInt<DType::kQ8_0> {
  static constexpr bool kOn = true, kHasMin = false;
  // V2 with 4-byte aligned rows (an even block count): the 8 bytes as 2 aligned 4-byte loads
  // (odd blocks) or 3 and two funnel shifts (even blocks: they start 2 bytes past a word), not
  // four 2-byte loads. The same bytes, so the same bits.
  template <bool V2>
  __device__ __forceinline__ static void load(const uint8_t* row, int64_t k8, bool rows_a4, uint32_t (&q)[4], float* d,
                                              float* m) {
    const uint8_t* blk = row + (k8 >> 2) * 34;
    *d = half_bits_to_f32(ld_u16(blk));
    *m = 0.0f;
    const uint8_t* qs = blk + 2 + 8 * (k8 & 3);  // 2-byte aligned
    uint32_t v[4];  // bytes 2p, 2p+1 in bits 0..15
    if (V2 && rows_a4) {
      const uint32_t* w = reinterpret_cast<const uint32_t*>(reinterpret_cast<uintptr_t>(qs) & ~uintptr_t(3));
      uint32_t u0, u1;
      if ((reinterpret_cast<uintptr_t>(qs) & 3) == 0) {  // the same for every lane of the chunk
        u0 = __ldg(w);
        u1 = __ldg(w + 1);
      } else {
        const uint32_t a = __ldg(w), b = __ldg(w + 1), c = __ldg(w + 2);
        u0 = __funnelshift_r(a, b, 16);
        u1 = __funnelshift_r(b, c, 16);
      }
      v[0] = u0 & 0xFFFF, v[1] = u0 >> 16, v[2] = u1 & 0xFFFF, v[3] = u1 >> 16;
    } else {
#pragma unroll
      for (int p = 0; p < 4; ++p) v[p] = ld_u16(qs + 2 * p);
    }
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const uint32_t x = v[p] ^ 0x8080u;  // int8 + 128, two bytes
      q[p] = pack_upper(small_to_f32(x & 0xFF, 8388736.0f), small_to_f32(x >> 8, 8388736.0f));
    }
  }
};
template <>
struct MmaInt<DType::kQ4_K> {
  static constexpr bool kOn = true, kHasMin = true;
  // V2: the 16-byte header in one load and the scale/min pair selected without byte loads
  // (quant_cuda.cuh q4_k_scale_min_pair); V1: 2-byte and 1-byte loads. The same values.
  template <bool V2>
  __device__ __forceinline__ static void load(const uint8_t* row, int64_t k8, bool, uint32_t (&q)[4], float* d1,
                                              float* m1) {
    const uint8_t* blk = row + (k8 >> 5) * 144;
    const int kk = static_cast<int>(k8 & 31), s = kk >> 2, l0 = 8 * (kk & 3);
    if (V2) {
      const uint4 h = __ldg(reinterpret_cast<const uint4*>(blk));
      uint32_t sc2, mn2;
      q4_k_scale_min_pair(h.y, h.z, h.w, s >> 1, &sc2, &mn2);
      *d1 = __fmul_rn(half_bits_to_f32(static_cast<uint16_t>(h.x & 0xFFFF)), byte_to_f32(sc2, s & 1, kMagicU8));
      *m1 = __fmul_rn(half_bits_to_f32(static_cast<uint16_t>(h.x >> 16)), byte_to_f32(mn2, s & 1, kMagicU8));
    } else {
      const float d = half_bits_to_f32(ld_u16(blk)), dmin = half_bits_to_f32(ld_u16(blk + 2));
      int sc, mn;
      k_scale_min(blk + 4, s, &sc, &mn);
      *d1 = __fmul_rn(d, static_cast<float>(sc));
      *m1 = __fmul_rn(dmin, static_cast<float>(mn));
    }
    const uint2 b = __ldg(reinterpret_cast<const uint2*>(blk + 16 + 32 * (s >> 1) + l0));
    const int shift = (s & 1) ? 4 : 0;
    const uint32_t w[2] = {(b.x >> shift) & 0x0F0F0F0Fu, (b.y >> shift) & 0x0F0F0F0Fu};
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const uint32_t v = w[p >> 1] >> (16 * (p & 1));
      q[p] = pack_upper(small_to_f32(v & 0xFF, 8388608.0f), small_to_f32((v >> 8) & 0xFF, 8388608.0f));
    }
  }
};

// One chunk's operands as loaded: bf16 rows raw; Q8_0/Q4_K as integer bf16 pairs and the rows'
// chunk scales; other types decoded to f32 (split later); x f32.
template <DType T, int NT, int MT, bool V2>
struct MmaChunk {
  static constexpr bool kExactW = T == DType::kBF16;
  static constexpr bool kInt = MmaInt<T>::kOn;
  static constexpr bool kFloat = !kExactW && !kInt;
  uint4 wr[kExactW ? MT : 1][2];
  uint32_t wq[kInt ? MT : 1][2][4];
  float wd[kInt ? MT : 1][2], wm[kInt ? MT : 1][2];
  float wf[kFloat ? MT : 1][2][8];
  float xv[NT][8];

  __device__ __forceinline__ void load(const MatvecArgs& a, const uint8_t* const (&row)[MT][2], int64_t c, int g, int t) {
    const int64_t k8 = 4 * c + t;
    const bool rows_a4 = (a.row_bytes & 3) == 0;  // the matrix is 16-byte aligned
    const bool valid = k8 < (a.n_in >> 3);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int tok = g + 8 * nt;
      if (valid && tok < a.n_tok) {
        const float4* xp = reinterpret_cast<const float4*>(a.x + static_cast<int64_t>(tok) * a.n_in) + 2 * k8;
        const float4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
        xv[nt][0] = x0.x, xv[nt][1] = x0.y, xv[nt][2] = x0.z, xv[nt][3] = x0.w;
        xv[nt][4] = x1.x, xv[nt][5] = x1.y, xv[nt][6] = x1.z, xv[nt][7] = x1.w;
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) xv[nt][i] = 0.0f;
      }
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if constexpr (kExactW) {
          wr[mt][h] = valid ? __ldg(reinterpret_cast<const uint4*>(row[mt][h]) + k8) : make_uint4(0, 0, 0, 0);
        } else if constexpr (kInt) {
          if (valid) {
            MmaInt<T>::template load<V2>(row[mt][h], k8, rows_a4, wq[mt][h], &wd[mt][h], &wm[mt][h]);
          } else {
#pragma unroll
            for (int p = 0; p < 4; ++p) wq[mt][h][p] = 0;
            wd[mt][h] = wm[mt][h] = 0.0f;
          }
        } else if (valid) {
          Quant<T>::load8(row[mt][h], k8, wf[mt][h]);
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i) wf[mt][h][i] = 0.0f;
        }
      }
  }

  __device__ __forceinline__ void compute(float (&acc)[MT][NT][4]) const {
    uint32_t xh[NT][4], xl[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) split8(xv[nt], xh[nt], xl[nt]);
    if constexpr (kInt) {
      // sum(x) of the chunk per token (Q4_K mins): mma with A = 1.0 in every element.
      float sx[NT][4];
      if constexpr (MmaInt<T>::kHasMin) {
        constexpr uint32_t one2 = 0x3F803F80u;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
          for (int i = 0; i < 4; ++i) sx[nt][i] = 0.0f;
#pragma unroll
          for (int m = 0; m < 2; ++m) {
            mma_bf16(sx[nt], one2, one2, one2, one2, xl[nt][2 * m], xl[nt][2 * m + 1]);
            mma_bf16(sx[nt], one2, one2, one2, one2, xh[nt][2 * m], xh[nt][2 * m + 1]);
          }
        }
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          float sq[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
          for (int m = 0; m < 2; ++m) {
            const uint32_t(&q0)[4] = wq[mt][0];
            const uint32_t(&q1)[4] = wq[mt][1];
            mma_bf16(sq, q0[2 * m], q1[2 * m], q0[2 * m + 1], q1[2 * m + 1], xl[nt][2 * m], xl[nt][2 * m + 1]);
            mma_bf16(sq, q0[2 * m], q1[2 * m], q0[2 * m + 1], q1[2 * m + 1], xh[nt][2 * m], xh[nt][2 * m + 1]);
          }
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int h = i >> 1;  // c0, c1: row g (h = 0); c2, c3: row g + 8 (h = 1)
            if constexpr (MmaInt<T>::kHasMin)
              acc[mt][nt][i] += wd[mt][h] * sq[i] - wm[mt][h] * sx[nt][i];
            else
              acc[mt][nt][i] += wd[mt][h] * sq[i];
          }
        }
    } else {
      compute_split(acc, xh, xl);
    }
  }

  __device__ __forceinline__ void compute_split(float (&acc)[MT][NT][4], const uint32_t (&xh)[NT][4],
                                                const uint32_t (&xl)[NT][4]) const {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      uint32_t wh[2][4], wl[2][4];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if constexpr (kExactW) {
          wh[h][0] = wr[mt][h].x, wh[h][1] = wr[mt][h].y, wh[h][2] = wr[mt][h].z, wh[h][3] = wr[mt][h].w;
        } else {
          split8(wf[mt][h], wh[h], wl[h]);
        }
      }
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          float(&c4)[4] = acc[mt][nt];
          mma_bf16(c4, wh[0][2 * m], wh[1][2 * m], wh[0][2 * m + 1], wh[1][2 * m + 1], xl[nt][2 * m], xl[nt][2 * m + 1]);
          if constexpr (!kExactW)
            mma_bf16(c4, wl[0][2 * m], wl[1][2 * m], wl[0][2 * m + 1], wl[1][2 * m + 1], xh[nt][2 * m],
                     xh[nt][2 * m + 1]);
          mma_bf16(c4, wh[0][2 * m], wh[1][2 * m], wh[0][2 * m + 1], wh[1][2 * m + 1], xh[nt][2 * m], xh[nt][2 * m + 1]);
        }
    }
  }
};

// The chunk loop is software-pipelined: chunk c + S is loaded before chunk c is multiplied, so
// each warp has two chunks of weights in flight (HBM latency is what limits a warp here).
template <DType T, int NT, int MT, bool V2>
__global__ void __launch_bounds__(kWarps * 32, 2) matvec_mma(MatvecSegs segs) {  // <= 128 registers: 16 warps per SM
  MatvecArgs a;
  int S;
  const unsigned bid = pick_segment(segs, &a, &S);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int group = warp / S, slice = warp % S;
  const int64_t o0 = (static_cast<int64_t>(bid) * (kWarps / S) + group) * (16 * MT);
  const int64_t n_chunks = ((a.n_in >> 3) + 3) >> 2;
  float acc[MT][NT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.0f;
  if (o0 < a.n_out && slice < n_chunks) {
    const uint8_t* row[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) row[mt][h] = a.w + min(o0 + 16 * mt + 8 * h + g, a.n_out - 1) * a.row_bytes;
    MmaChunk<T, NT, MT, V2> cur, nxt;
    cur.load(a, row, slice, g, t);
#pragma unroll 2
    for (int64_t c = slice; c < n_chunks; c += S) {
      if (c + S < n_chunks) nxt.load(a, row, c + S, g, t);
      cur.compute(acc);
      cur = nxt;
    }
  }
  // Lane (g, t) holds rows g (c0, c1) and g+8 (c2, c3) of each m-tile for tokens 2t, 2t+1 of
  // each n-tile. Slices are added in slice order through shared memory.
  __shared__ float part[kWarps][MT * NT * 4][32];
  if (S > 1) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) part[warp][(mt * NT + nt) * 4 + i][lane] = acc[mt][nt][i];
    __syncthreads();
    if (slice != 0) return;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i)
          for (int s = 1; s < S; ++s) acc[mt][nt][i] += part[warp + s][(mt * NT + nt) * 4 + i][lane];
  }
  if (o0 >= a.n_out) return;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t o = o0 + 16 * mt + g + 8 * (i >> 1);
        const int tok = 8 * nt + 2 * t + (i & 1);
        if (o < a.n_out && tok < a.n_tok) store_row(a, o, tok, acc[mt][nt][i]);
      }
}

// Plain types, any length and alignment: one warp per row.
template <DType T, int NT>
__global__ void __launch_bounds__(kScalarWarps * 32) matvec_scalar(MatvecArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kScalarWarps + (threadIdx.x >> 5);
  if (o >= a.n_out) return;
  const uint8_t* row = a.w + o * a.row_bytes;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  for (int64_t i = lane; i < a.n_in; i += 32) {
    const float w = Quant<T>::load1(row, i);
#pragma unroll
    for (int t = 0; t < NT; ++t)
      if (t < a.n_tok) acc[t] = fmaf(w, a.x[static_cast<int64_t>(t) * a.n_in + i], acc[t]);
  }
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], off);
  if (lane == 0)
#pragma unroll
    for (int t = 0; t < NT; ++t)
      if (t < a.n_tok) store_row(a, o, t, acc[t]);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Rows per warp for one token (x loads shared by two rows); the slice count assumes it.
constexpr int kRows = 2;

// Slices per row: enough warps in flight for small matrices, each slice at least one step long.
int slices_for(int64_t n_out, int64_t n_units) {
  const int64_t warps_rows = (n_out + kRows - 1) / kRows;
  int S = 1;
  while (S < kWarps && warps_rows * S < kTargetWarps && n_units >= 32 * 2 * S) S *= 2;
  return S;
}

// Rows per warp of the tensor-core kernel (16 * kMmaTiles) and the warps it aims to put in flight
// (register-limited to ~16-24 resident warps per SM).
constexpr int kMmaTiles = 2;
constexpr int kMmaTargetWarps = 2048;

int mma_slices_for(int64_t n_out, int64_t n_chunks) {
  const int64_t warps_rows = (n_out + 16 * kMmaTiles - 1) / (16 * kMmaTiles);
  int S = 1;
  while (S < kWarps && warps_rows * S < kMmaTargetWarps && n_chunks >= 2 * S) S *= 2;
  return S;
}

// Compute capability major of the current device (mma.sync bf16 needs 8.x+); cached per device.
int device_major() {
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

// Fills the segment table: S and block range of each matrix for rows_per_warp rows per warp.
// mma: the tensor-core kernel's slicing (chunks of 32 weights); otherwise the CUDA-core one's.
MatvecSegs make_segs(const MatvecArgs* a, int n, int rows_per_warp, bool mma, bool q4k, unsigned* grid) {
  MatvecSegs m{};
  m.n = n;
  unsigned blocks = 0;
  for (int i = 0; i < n; ++i) {
    m.seg[i] = a[i];
    m.S[i] = mma ? mma_slices_for(a[i].n_out, ((a[i].n_in >> 3) + 3) >> 2)
                 : slices_for(a[i].n_out, q4k ? a[i].n_in >> 4 : a[i].n_in >> 3);
    const int64_t rows_per_block = int64_t(kWarps / m.S[i]) * rows_per_warp;
    m.begin[i] = blocks;
    blocks += static_cast<unsigned>((a[i].n_out + rows_per_block - 1) / rows_per_block);
  }
  *grid = blocks;
  return m;
}

// One token at generation 2 with matvec_tiled_steps() == 4: 4 steps of every row in flight per
// warp (matvec_tiled's U). Not the default: GPU run 2 (H200) measured it at 128-130 registers
// (one or two blocks of 8 warps per SM) and the bf16 step went from 4.79 to 7.93 ms (ffn_down
// 3284 -> 1456 GB/s, attention projections 1.7-1.9 -> 0.7 TB/s).
constexpr int kTiledSteps = 4;
template <DType T, int NT, int R>
void launch_tiled(unsigned grid, const MatvecSegs& m, cudaStream_t stream) {
  if constexpr (NT == 1) {
    if (matvec_generation() >= 2 && matvec_tiled_steps() == kTiledSteps) {
      matvec_tiled<T, 1, R, kTiledSteps><<<grid, kWarps * 32, 0, stream>>>(m);
      return;
    }
  }
  matvec_tiled<T, NT, R><<<grid, kWarps * 32, 0, stream>>>(m);
}

template <DType T, int NT>
cudaError_t launch_nt(const MatvecArgs* a, int n, bool vector_path, cudaStream_t stream) {
  if constexpr (is_plain_type(T)) {
    if (!vector_path) {  // one matrix at a time (launch_matvecs passes one)
      for (int i = 0; i < n; ++i) {
        const dim3 grid(static_cast<unsigned>((a[i].n_out + kScalarWarps - 1) / kScalarWarps));
        matvec_scalar<T, NT><<<grid, kScalarWarps * 32, 0, stream>>>(a[i]);
      }
      return cudaGetLastError();
    }
  }
  constexpr bool q4k = T == DType::kQ4_K;
  // Several tokens: 4 rows per warp, so each x load (the traffic that grows with the tokens)
  // feeds more weights. S does not depend on R: a row's sums are the same for any n_tok.
  constexpr int R = NT >= 4 ? 4 : kRows;
  unsigned grid = 0;
  const MatvecSegs m = make_segs(a, n, R, false, q4k, &grid);
  if constexpr (q4k)
    matvec_q4_k<NT, R><<<grid, kWarps * 32, 0, stream>>>(m);
  else
    launch_tiled<T, NT, R>(grid, m, stream);
  return cudaGetLastError();
}

// Generation 1 (OMNIRT_CUDA_MATVEC_V1=1): Q8_0/Q4_K weights through the previous 2- and 1-byte
// loads. Q8_0 keeps them at generation 2 too unless q8_0_mma_words(): GPU run 2 measured the
// word loads slower (batch-16 ffn_gate_up 542 vs 671 GB/s in run 1; Q4_K's header load neutral).
template <DType T, int NT, int MT>
void launch_mma_kernel(unsigned grid, const MatvecSegs& m, cudaStream_t stream) {
  if constexpr (T == DType::kQ8_0 || T == DType::kQ4_K) {
    if (matvec_generation() < 2 || (T == DType::kQ8_0 && !q8_0_mma_words())) {
      matvec_mma<T, NT, MT, false><<<grid, kWarps * 32, 0, stream>>>(m);
      return;
    }
  }
  matvec_mma<T, NT, MT, true><<<grid, kWarps * 32, 0, stream>>>(m);
}

// bf16, Q8_0: two m-tiles (32 rows) per warp share each x fragment; where that leaves fewer than
// kMmaTargetWarps warps (ffn_down, attention: n_out of a few thousand, long rows) one m-tile per
// warp doubles the warps in flight. Other types: one m-tile. S comes from the 32-row count either way, and an output's
// mma chain does not depend on its tile-mates, so the choice changes no bits.
template <DType T, int NT>
cudaError_t launch_mma(const MatvecArgs* a, int n, cudaStream_t stream) {
  int64_t warps = 0;
  for (int i = 0; i < n; ++i)
    warps += (a[i].n_out + 16 * kMmaTiles - 1) / (16 * kMmaTiles) * mma_slices_for(a[i].n_out, ((a[i].n_in >> 3) + 3) >> 2);
  unsigned grid = 0;
  if constexpr (T == DType::kBF16 || T == DType::kQ8_0) {  // Q4_K at two m-tiles spills (ptxas, sm_90)
    if (warps >= kMmaTargetWarps) {
      const MatvecSegs m = make_segs(a, n, 16 * kMmaTiles, true, false, &grid);
      launch_mma_kernel<T, NT, kMmaTiles>(grid, m, stream);
      return cudaGetLastError();
    }
  }
  // Weights decoded to f32 take twice the registers: two m-tiles would spill at 128.
  const MatvecSegs m = make_segs(a, n, 16, true, false, &grid);
  launch_mma_kernel<T, NT, 1>(grid, m, stream);
  return cudaGetLastError();
}

// Fewest tokens that take the tensor-core kernel: 2, or OMNIRT_CUDA_MMA_MIN_TOKENS (1..17) for
// measurements (1: single-token decode of quantized weights on tensor cores too; 17: never).
int mma_min_tokens() {
  static const int v = [] {
    const char* e = std::getenv("OMNIRT_CUDA_MMA_MIN_TOKENS");
    const int n = e ? std::atoi(e) : 2;
    return n >= 1 && n <= kMatvecMaxTokens + 1 ? n : 2;
  }();
  return v;
}

template <DType T>
cudaError_t launch_type(const MatvecArgs* a, int n, bool vector_path, cudaStream_t stream) {
  const int n_tok = a[0].n_tok;
  // 2..16 tokens on tensor cores wherever the rows are read by load8 (quantized types always,
  // plain types on the vector path).
  if (n_tok >= mma_min_tokens() && (vector_path || !is_plain_type(T)) && device_major() >= 8)
    return n_tok <= 8 ? launch_mma<T, 1>(a, n, stream) : launch_mma<T, 2>(a, n, stream);
  if constexpr (T == DType::kQ8_0 || T == DType::kQ4_K) {
    // Q8_0 only with q8_0_span(): GPU run 1 (H200) measured the span kernel slower than
    // matvec_tiled for Q8_0 rows (decode step 4.48 vs 4.07 ms), faster for Q4_K (3.78 vs 4.90).
    if (n_tok == 1 && matvec_generation() >= 2 && device_major() >= 8 && (T == DType::kQ4_K || q8_0_span()))
      return launch_span<std::conditional_t<T == DType::kQ8_0, SpanQ8_0, SpanQ4_K>>(a, n, stream);
  }
  if (n_tok <= 1) return launch_nt<T, 1>(a, n, vector_path, stream);
  if (n_tok <= 2) return launch_nt<T, 2>(a, n, vector_path, stream);
  if (n_tok <= 4) return launch_nt<T, 4>(a, n, vector_path, stream);
  if (n_tok <= 8) return launch_nt<T, 8>(a, n, vector_path, stream);
  return launch_nt<T, 16>(a, n, vector_path, stream);
}

}  // namespace

int matvec_generation() {
  int g = g_matvec_generation.load(std::memory_order_relaxed);
  if (g == 0) {
    const char* e = std::getenv("OMNIRT_CUDA_MATVEC_V1");
    g = e && *e && std::atoi(e) != 0 ? 1 : 2;
    int expected = 0;  // a set_matvec_generation() in between wins
    if (!g_matvec_generation.compare_exchange_strong(expected, g, std::memory_order_relaxed)) g = expected;
  }
  return g;
}

void set_matvec_generation(int g) { g_matvec_generation.store(g == 1 ? 1 : 2, std::memory_order_relaxed); }

bool q8_0_span() { return env_switch(g_q8_0_span, -1, "OMNIRT_CUDA_Q8_0_SPAN", parse_flag) != 0; }
void set_q8_0_span(bool on) { g_q8_0_span.store(on ? 1 : 0, std::memory_order_relaxed); }
bool q8_0_mma_words() { return env_switch(g_q8_0_mma_words, -1, "OMNIRT_CUDA_Q8_0_MMA_WORDS", parse_flag) != 0; }
void set_q8_0_mma_words(bool on) { g_q8_0_mma_words.store(on ? 1 : 0, std::memory_order_relaxed); }
int matvec_tiled_steps() { return env_switch(g_tiled_steps, 0, "OMNIRT_CUDA_TILED_STEPS", parse_steps); }
void set_matvec_tiled_steps(int steps) { g_tiled_steps.store(steps == 4 ? 4 : 1, std::memory_order_relaxed); }

Status check_params(const MatvecGluParams& p) {
  MatvecParams m;
  m.w_type = p.w_type;
  m.w = p.gate;
  m.x = p.x;
  m.y = p.y;
  m.n_out = p.n_out;
  m.n_in = p.n_in;
  OMNI_RETURN_IF_ERROR(check_params(m));
  if (!p.up || !p.tmp) return invalid_argument("matvec_glu: up and tmp must be set");
  if (!is_plain_type(p.w_type) && !aligned16(p.up)) return invalid_argument("matvec_glu: quantized up must be 16-byte aligned");
  if (p.act != GluAct::kSilu && p.act != GluAct::kGeluTanh) return invalid_argument("matvec_glu: unknown activation");
  const auto* xb = reinterpret_cast<const uint8_t*>(p.x);
  const auto* yb = reinterpret_cast<const uint8_t*>(p.y);
  const auto* tb = reinterpret_cast<const uint8_t*>(p.tmp);
  const int64_t ob = p.n_out * 4;
  if ((tb < xb + p.n_in * 4 && xb < tb + ob) || (tb < yb + ob && yb < tb + ob))
    return invalid_argument("matvec_glu: tmp overlaps x or y");
  return Status::Ok();
}

cudaError_t launch_matvec_glu(const MatvecGluParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int64_t row_bytes = dtype_row_bytes(p.w_type, p.n_in);
  const bool vector_path =
      p.n_in % 8 == 0 && aligned16(p.gate) && aligned16(p.up) && aligned16(p.x) && row_bytes % 16 == 0;
  // Q4_K single-token rows have their own kernels (span, or matvec_q4_k below sm_80). Q8_0 takes
  // the two launches as well: on an H200 (GPU run 3, qwen2.5-7b shape) the decode step with the
  // fused Q8_0 epilogue (2065 GB/s) took 4.41 ms, with two launches + GLU 4.08 ms; same bits.
  const bool own_kernel = p.w_type == DType::kQ4_K || p.w_type == DType::kQ8_0;
  if (matvec_generation() >= 2 && vector_path && !own_kernel) {
    const MatvecArgs g{static_cast<const uint8_t*>(p.gate), p.x, p.y, nullptr, p.n_out, p.n_in, row_bytes, 1, false};
    const int S = slices_for(p.n_out, p.n_in >> 3);  // as launch_matvec of gate or up: the same sums
    const int64_t rows_per_block = int64_t(kWarps / S) * kRows;
    const unsigned grid = static_cast<unsigned>((p.n_out + rows_per_block - 1) / rows_per_block);
    cudaError_t err = cudaErrorInvalidValue;
    dispatch_weight_type(p.w_type, [&]<DType T>() {
      if constexpr (T != DType::kQ4_K) {
        matvec_glu_tiled<T, kRows><<<grid, kWarps * 32, 0, stream>>>(g, static_cast<const uint8_t*>(p.up), S,
                                                                     static_cast<int>(p.act));
        err = cudaGetLastError();
      }
    });
    return err;
  }
  MatvecParams m[2];
  for (int i = 0; i < 2; ++i) {
    m[i].w_type = p.w_type;
    m[i].w = i == 0 ? p.gate : p.up;
    m[i].x = p.x;
    m[i].y = i == 0 ? p.y : p.tmp;
    m[i].n_out = p.n_out;
    m[i].n_in = p.n_in;
  }
  if (const cudaError_t err = launch_matvecs(m, 2, stream); err != cudaSuccess) return err;
  return launch_glu(GluParams{p.y, p.tmp, p.y, p.n_out, p.act}, stream);
}

bool weight_type_supported(DType t) {
  switch (t) {
    case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kQ8_0: case DType::kQ4_0:
    case DType::kQ5_0: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

Status check_params(const MatvecParams& p) {
  if (!weight_type_supported(p.w_type))
    return unsupported(fmt("matvec: weight type %s has no CUDA kernel", dtype_traits(static_cast<uint32_t>(p.w_type))
                                                                            ? dtype_name(p.w_type) : "?"));
  if (!p.w || !p.x || !p.y) return invalid_argument("matvec: w, x and y must be set");
  if (p.n_out <= 0 || p.n_in <= 0 || p.n_out > (int64_t(1) << 31))
    return invalid_argument(fmt("matvec: bad shape n_out = %lld, n_in = %lld", (long long)p.n_out, (long long)p.n_in));
  if (p.n_tok < 1 || p.n_tok > kMatvecMaxTokens)
    return invalid_argument(fmt("matvec: n_tok = %lld must be in [1, %d]", (long long)p.n_tok, kMatvecMaxTokens));
  if (dtype_row_bytes(p.w_type, p.n_in) < 0)
    return invalid_argument(fmt("matvec: n_in = %lld is not a multiple of %s's block size", (long long)p.n_in,
                                dtype_name(p.w_type)));
  if (!is_plain_type(p.w_type) && (!aligned16(p.w) || !aligned16(p.x)))
    return invalid_argument("matvec: quantized weights and x must be 16-byte aligned");
  const auto* xb = reinterpret_cast<const uint8_t*>(p.x);
  const auto* yb = reinterpret_cast<const uint8_t*>(p.y);
  if (xb < yb + p.n_tok * p.n_out * 4 && yb < xb + p.n_tok * p.n_in * 4)
    return invalid_argument("matvec: y overlaps x");
  return Status::Ok();
}

cudaError_t launch_matvec(const MatvecParams& p, cudaStream_t stream) { return launch_matvecs(&p, 1, stream); }

cudaError_t launch_matvecs(const MatvecParams* p, int count, cudaStream_t stream) {
  if (count < 1 || count > kMaxSegs) return cudaErrorInvalidValue;
  MatvecArgs a[kMaxSegs];
  bool vector_path = true;
  for (int i = 0; i < count; ++i) {
    if (!check_params(p[i]).ok()) return cudaErrorInvalidValue;
    if (p[i].w_type != p[0].w_type || p[i].x != p[0].x || p[i].n_in != p[0].n_in || p[i].n_tok != p[0].n_tok)
      return cudaErrorInvalidValue;
    a[i] = MatvecArgs{static_cast<const uint8_t*>(p[i].w), p[i].x, p[i].y, p[i].bias, p[i].n_out, p[i].n_in,
                      dtype_row_bytes(p[i].w_type, p[i].n_in), static_cast<int>(p[i].n_tok), p[i].accumulate};
    // Vector path: every row and x row 16-byte aligned and a whole number of octets.
    vector_path = vector_path && p[i].n_in % 8 == 0 && aligned16(p[i].w) && aligned16(p[i].x) && a[i].row_bytes % 16 == 0;
  }
  cudaError_t err = cudaErrorInvalidValue;
  const bool known = dispatch_weight_type(p[0].w_type, [&]<DType T>() {
    if (is_plain_type(T) && !vector_path && count > 1) {  // the scalar kernel takes one matrix
      for (int i = 0; i < count; ++i)
        if ((err = launch_type<T>(a + i, 1, false, stream)) != cudaSuccess) return;
      return;
    }
    err = launch_type<T>(a, count, vector_path, stream);
  });
  return known ? err : cudaErrorInvalidValue;
}

}  // namespace omni::cuda
