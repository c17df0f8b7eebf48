// Matrix-vector for 1..16 tokens (decode and batched decode). A block is 8 warps; a warp owns R
// consecutive output rows (register tile: each x value loaded once feeds R rows) over one of S
// slices of the row (split-K inside the block, combined through shared memory), so that small
// matrices (K/V projections: 512 rows) still put thousands of warps in flight. Each lane decodes
// 8 consecutive weights per step (Quant<T>::load8) and multiplies them with every token's x, so
// the weights are read once for all tokens. Q4_K has its own inner loop: a lane takes a 16-byte
// chunk of nibbles (32 weights of two sub-blocks) and the super-block header in one 16-byte load,
// converts nibbles exactly with the 2^23 float trick (no int->float conversions) and applies the
// sub-block scale and min once per 16 products: d1*sum(q x) - m1*sum(x) (reference: per weight
// d1*q - m1, a rounding difference of a few ulps). S and R depend on the shape only, never on
// n_tok, so batched and single-token results are the same bits. Rows of plain types whose length
// is not a multiple of 8 (or that are not 16-byte aligned) take a scalar path.
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/quant_cuda.cuh"

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
template <DType T, int NT, int R>
__global__ void __launch_bounds__(kWarps * 32) matvec_tiled(MatvecArgs a, int S) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp / S, slice = warp % S;
  const int64_t o0 = (static_cast<int64_t>(blockIdx.x) * (kWarps / S) + group) * R;
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
  reduce_and_store<R, NT>(acc, a, o0, S);
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
__global__ void __launch_bounds__(kWarps * 32) matvec_q4_k(MatvecArgs a, int S) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int group = warp / S, slice = warp % S;
  const int64_t o0 = (static_cast<int64_t>(blockIdx.x) * (kWarps / S) + group) * R;
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

template <DType T, int NT>
cudaError_t launch_nt(const MatvecArgs& a, bool vector_path, cudaStream_t stream) {
  if constexpr (is_plain_type(T)) {
    if (!vector_path) {
      const dim3 grid(static_cast<unsigned>((a.n_out + kScalarWarps - 1) / kScalarWarps));
      matvec_scalar<T, NT><<<grid, kScalarWarps * 32, 0, stream>>>(a);
      return cudaGetLastError();
    }
  }
  constexpr bool q4k = T == DType::kQ4_K;
  // Several tokens: 4 rows per warp, so each x load (the traffic that grows with the tokens)
  // feeds more weights. S does not depend on R: a row's sums are the same for any n_tok.
  constexpr int R = NT >= 4 ? 4 : kRows;
  const int64_t n_units = q4k ? a.n_in >> 4 : a.n_in >> 3;
  const int S = slices_for(a.n_out, n_units);
  const int64_t rows_per_block = int64_t(kWarps / S) * R;
  const dim3 grid(static_cast<unsigned>((a.n_out + rows_per_block - 1) / rows_per_block));
  if constexpr (q4k)
    matvec_q4_k<NT, R><<<grid, kWarps * 32, 0, stream>>>(a, S);
  else
    matvec_tiled<T, NT, R><<<grid, kWarps * 32, 0, stream>>>(a, S);
  return cudaGetLastError();
}

template <DType T>
cudaError_t launch_type(const MatvecArgs& a, bool vector_path, cudaStream_t stream) {
  if (a.n_tok <= 1) return launch_nt<T, 1>(a, vector_path, stream);
  if (a.n_tok <= 2) return launch_nt<T, 2>(a, vector_path, stream);
  if (a.n_tok <= 4) return launch_nt<T, 4>(a, vector_path, stream);
  if (a.n_tok <= 8) return launch_nt<T, 8>(a, vector_path, stream);
  return launch_nt<T, 16>(a, vector_path, stream);
}

}  // namespace

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

cudaError_t launch_matvec(const MatvecParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  MatvecArgs a{static_cast<const uint8_t*>(p.w), p.x, p.y, p.bias, p.n_out, p.n_in,
               dtype_row_bytes(p.w_type, p.n_in), static_cast<int>(p.n_tok), p.accumulate};
  // Vector path: every row and x row 16-byte aligned and a whole number of octets.
  const bool vector_path = p.n_in % 8 == 0 && aligned16(p.w) && aligned16(p.x) && a.row_bytes % 16 == 0;
  cudaError_t err = cudaErrorInvalidValue;
  const bool known = dispatch_weight_type(p.w_type, [&]<DType T>() { err = launch_type<T>(a, vector_path, stream); });
  return known ? err : cudaErrorInvalidValue;
}

}  // namespace omni::cuda
