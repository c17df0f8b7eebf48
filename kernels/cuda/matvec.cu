// Matrix-vector for 1..16 tokens (decode and batched decode): one warp per output row; each
// lane decodes 8 consecutive weights per step and multiplies them with every token's x, so the
// weights are read once for all tokens. Rows of plain types whose length is not a multiple of 8
// (or that are not 16-byte aligned) take a scalar path.
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/quant_cuda.cuh"

namespace omni::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

struct MatvecArgs {
  const uint8_t* w;
  const float* x;
  float* y;
  const float* bias;
  int64_t n_out, n_in, row_bytes;
  int n_tok;
  bool accumulate;
};

template <int NT>
__device__ __forceinline__ void warp_reduce_and_store(float (&acc)[NT], const MatvecArgs& a, int64_t o, int lane) {
#pragma unroll
  for (int t = 0; t < NT; ++t) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], off);
  }
  if (lane == 0) {
    const float b = a.bias ? a.bias[o] : 0.0f;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t < a.n_tok) {
        float* dst = a.y + static_cast<int64_t>(t) * a.n_out + o;
        const float v = acc[t] + b;
        *dst = a.accumulate ? *dst + v : v;
      }
    }
  }
}

template <DType T, int NT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) matvec_octets(MatvecArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (o >= a.n_out) return;
  const uint8_t* row = a.w + o * a.row_bytes;
  const int64_t n8 = a.n_in >> 3;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
#pragma unroll 2
  for (int64_t k = lane; k < n8; k += 32) {
    float w[8];
    Quant<T>::load8(row, k, w);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t < a.n_tok) {
        const float4* xp = reinterpret_cast<const float4*>(a.x + static_cast<int64_t>(t) * a.n_in) + 2 * k;
        const float4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
        float s = w[0] * x0.x;
        s = fmaf(w[1], x0.y, s);
        s = fmaf(w[2], x0.z, s);
        s = fmaf(w[3], x0.w, s);
        s = fmaf(w[4], x1.x, s);
        s = fmaf(w[5], x1.y, s);
        s = fmaf(w[6], x1.z, s);
        s = fmaf(w[7], x1.w, s);
        acc[t] += s;
      }
    }
  }
  warp_reduce_and_store<NT>(acc, a, o, lane);
}

// Plain types, any length and alignment.
template <DType T, int NT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) matvec_scalar(MatvecArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
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
  warp_reduce_and_store<NT>(acc, a, o, lane);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <DType T, int NT>
cudaError_t launch_nt(const MatvecArgs& a, bool vector_path, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.n_out + kWarpsPerBlock - 1) / kWarpsPerBlock));
  if constexpr (is_plain_type(T)) {
    if (!vector_path) {
      matvec_scalar<T, NT><<<grid, kWarpsPerBlock * 32, 0, stream>>>(a);
      return cudaGetLastError();
    }
  }
  matvec_octets<T, NT><<<grid, kWarpsPerBlock * 32, 0, stream>>>(a);
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
  if (p.n_out <= 0 || p.n_in <= 0 || p.n_out > (int64_t(1) << 31) * kWarpsPerBlock)
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
