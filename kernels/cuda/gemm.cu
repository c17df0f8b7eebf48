// Prefill matmul: one cuBLASLt GEMM with f32 accumulation and f32 output, then the optional bias.
// Operand type: bf16 for bf16 weights (used in place), f16 for every other type (f16 weights used
// in place, others dequantized to f16): f16 keeps 3 more mantissa bits than bf16, so a whole
// model's prefill stays close to the f32 reference (bf16 operands alone cost ~1e-2 relative over
// a few layers). Activations are rounded to the same type; for f16 they saturate at +-65504
// instead of becoming inf (activations entering a matmul are normalized or gated, far below).
// The cuBLASLt heuristic is asked once per (handle, shape, type, beta) and cached.
// Row-major Y[n_tok, n_out] = X[n_tok, n_in] W[n_out, n_in]^T is, in cuBLAS's column-major
// terms, Y^T (n_out x n_tok) = op_T(W^T as stored: n_in x n_out, ld n_in) * X^T (n_in x n_tok).
#include "kernels/cuda/blas_loader.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/quant_cuda.cuh"

#include <algorithm>
#include <type_traits>
#include <unordered_map>

namespace omni::cuda {
namespace {

__device__ __forceinline__ uint16_t to_bits(float v, bool f16) {
  if (f16) return __half_as_ushort(__float2half_rn(fminf(fmaxf(v, -65504.0f), 65504.0f)));
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

__device__ __forceinline__ uint32_t pack2(float lo, float hi, bool f16) {
  return uint32_t(to_bits(lo, f16)) | (uint32_t(to_bits(hi, f16)) << 16);
}

// One thread per octet of the [rows, n] matrix (n % 8 == 0).
template <DType T>
__global__ void dequant_octets(const uint8_t* src, int64_t row_bytes, uint16_t* dst, int64_t rows, int64_t n,
                               bool f16) {
  const int64_t n8 = n >> 3;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= rows * n8) return;
  const int64_t r = g / n8, k = g - r * n8;
  float w[8];
  Quant<T>::load8(src + r * row_bytes, k, w);
  uint4 out;
  out.x = pack2(w[0], w[1], f16);
  out.y = pack2(w[2], w[3], f16);
  out.z = pack2(w[4], w[5], f16);
  out.w = pack2(w[6], w[7], f16);
  *reinterpret_cast<uint4*>(dst + r * n + 8 * k) = out;
}

template <DType T>
__global__ void dequant_scalar(const uint8_t* src, int64_t row_bytes, uint16_t* dst, int64_t rows, int64_t n,
                               bool f16) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= rows * n) return;
  const int64_t r = g / n, i = g - r * n;
  dst[g] = to_bits(Quant<T>::load1(src + r * row_bytes, i), f16);
}

__global__ void round_activations(const float* x, uint16_t* y, int64_t n, bool f16) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = to_bits(x[i], f16);
}

__global__ void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * n) y[i] += bias[i % n];
}

// One thread per source element: coalesced reads of src, coalesced writes within each output.
// Rows on grid y (strided), columns on x; V floats per thread (4: widths multiples of 4 and the
// pointers 16-byte aligned, so every float4 lies inside one part). No 64-bit division: one thread
// per float with g / total ran the qwen2.5-7b q|k|v split (512 x 4608) at ~470 GB/s.
template <int V>
__global__ void split_cols_kernel(SplitColsParams p, int64_t total) {
  using Vec = std::conditional_t<V == 4, float4, float>;
  const int64_t nv = total / V;
  for (int64_t t = blockIdx.y; t < p.rows; t += gridDim.y) {
    const Vec* src = reinterpret_cast<const Vec*>(p.src + t * total);
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < nv;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      int64_t c = i * V;
      int j = 0;
      while (j < 2 && c >= p.width[j]) c -= p.width[j++];
      reinterpret_cast<Vec*>(p.dst[j] + t * p.width[j])[c / V] = src[i];
    }
  }
}

dim3 row_col_grid(int64_t rows, int64_t cols, int threads) {
  return dim3(static_cast<unsigned>(std::min<int64_t>((cols + threads - 1) / threads, 65535)),
              static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
}

unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// The heuristic's answer depends on the handle, shape, operand type and beta (workspace and
// alignment are fixed per handle), so it is asked once. Callers use one thread per handle.
struct AlgoKey {
  const void* lt;
  uint64_t m, n, k;
  bool f16, beta;
  bool operator==(const AlgoKey&) const = default;
};
struct AlgoKeyHash {
  size_t operator()(const AlgoKey& a) const {
    size_t h = std::hash<const void*>()(a.lt);
    for (uint64_t v : {a.m, a.n, a.k, uint64_t(a.f16) * 2 + uint64_t(a.beta)}) h = h * 1000003u ^ std::hash<uint64_t>()(v);
    return h;
  }
};
std::unordered_map<AlgoKey, cublasLtMatmulHeuristicResult_t, AlgoKeyHash>& algo_cache() {
  static thread_local std::unordered_map<AlgoKey, cublasLtMatmulHeuristicResult_t, AlgoKeyHash> cache;
  return cache;
}

}  // namespace

Status check_params(const DequantBf16Params& p) {
  if (!weight_type_supported(p.type)) return unsupported("dequant_bf16: weight type has no CUDA kernel");
  if (!p.src || !p.dst) return invalid_argument("dequant_bf16: src and dst must be set");
  if (p.rows <= 0 || p.n <= 0 || dtype_row_bytes(p.type, p.n) < 0)
    return invalid_argument(fmt("dequant_bf16: bad shape rows = %lld, n = %lld for %s", (long long)p.rows,
                                (long long)p.n, dtype_name(p.type)));
  if (!is_plain_type(p.type) && ((reinterpret_cast<uintptr_t>(p.src) | reinterpret_cast<uintptr_t>(p.dst)) & 15))
    return invalid_argument("dequant_bf16: quantized src and dst must be 16-byte aligned");
  return Status::Ok();
}

cudaError_t launch_dequant_bf16(const DequantBf16Params& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int64_t row_bytes = dtype_row_bytes(p.type, p.n);
  const bool octets = p.n % 8 == 0 && row_bytes % 16 == 0 &&
                      ((reinterpret_cast<uintptr_t>(p.src) | reinterpret_cast<uintptr_t>(p.dst)) & 15) == 0;
  const auto* src = static_cast<const uint8_t*>(p.src);
  cudaError_t err = cudaErrorInvalidValue;
  dispatch_weight_type(p.type, [&]<DType T>() {
    if constexpr (is_plain_type(T)) {
      if (!octets) {
        dequant_scalar<T><<<blocks_for(p.rows * p.n, 256), 256, 0, stream>>>(src, row_bytes, p.dst, p.rows, p.n, p.to_f16);
        err = cudaGetLastError();
        return;
      }
    }
    dequant_octets<T><<<blocks_for(p.rows * (p.n / 8), 256), 256, 0, stream>>>(src, row_bytes, p.dst, p.rows, p.n,
                                                                                p.to_f16);
    err = cudaGetLastError();
  });
  return err;
}

Status check_params(const SplitColsParams& p) {
  if (!p.src) return invalid_argument("split_cols: src must be set");
  if (p.rows <= 0) return invalid_argument(fmt("split_cols: rows = %lld must be > 0", (long long)p.rows));
  int64_t total = 0;
  const auto src_lo = reinterpret_cast<uintptr_t>(p.src);
  for (int j = 0; j < 3; ++j) {
    if (p.width[j] < 0) return invalid_argument(fmt("split_cols: width[%d] = %lld < 0", j, (long long)p.width[j]));
    if (p.width[j] > 0 && !p.dst[j]) return invalid_argument(fmt("split_cols: dst[%d] must be set", j));
    total += p.width[j];
  }
  if (total <= 0) return invalid_argument("split_cols: all widths are 0");
  const auto src_hi = reinterpret_cast<uintptr_t>(p.src + p.rows * total);
  for (int j = 0; j < 3; ++j) {
    if (p.width[j] == 0) continue;
    const auto lo = reinterpret_cast<uintptr_t>(p.dst[j]), hi = reinterpret_cast<uintptr_t>(p.dst[j] + p.rows * p.width[j]);
    if (lo < src_hi && src_lo < hi) return invalid_argument(fmt("split_cols: dst[%d] overlaps src", j));
  }
  return Status::Ok();
}

cudaError_t launch_split_cols(const SplitColsParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int64_t total = p.width[0] + p.width[1] + p.width[2];
  bool vec4 = (reinterpret_cast<uintptr_t>(p.src) & 15) == 0;
  for (int j = 0; j < 3; ++j)
    if (p.width[j] % 4 != 0 || (reinterpret_cast<uintptr_t>(p.dst[j]) & 15) != 0) vec4 = false;
  if (vec4)
    split_cols_kernel<4><<<row_col_grid(p.rows, total / 4, 256), 256, 0, stream>>>(p, total);
  else
    split_cols_kernel<1><<<row_col_grid(p.rows, total, 256), 256, 0, stream>>>(p, total);
  return cudaGetLastError();
}

Status check_params(const GemmParams& p) {
  if (!p.w || !p.x || !p.y || !p.x_scratch) return invalid_argument("gemm: w, x, y and x_scratch must be set");
  if (p.w_type != DType::kBF16 && p.w_type != DType::kF16 && !p.w_scratch)
    return invalid_argument("gemm: w_scratch is needed for weights other than bf16/f16");
  if (p.n_out <= 0 || p.n_in <= 0 || p.n_tok <= 0 || p.n_out > INT32_MAX || p.n_in > INT32_MAX || p.n_tok > INT32_MAX)
    return invalid_argument(fmt("gemm: bad shape n_out = %lld, n_in = %lld, n_tok = %lld", (long long)p.n_out,
                                (long long)p.n_in, (long long)p.n_tok));
  if ((p.w_type == DType::kBF16 || p.w_type == DType::kF16) && (reinterpret_cast<uintptr_t>(p.w) & 15))
    return invalid_argument("gemm: bf16/f16 weights must be 16-byte aligned");
  if (p.w_type != DType::kBF16 && p.w_type != DType::kF16) {
    DequantBf16Params d{p.w_type, p.w, p.w_scratch, p.n_out, p.n_in, true};
    OMNI_RETURN_IF_ERROR(check_params(d));
  }
  return Status::Ok();
}

Status gemm_bf16(const GemmParams& p, const BlasHandle& blas) {
  OMNI_RETURN_IF_ERROR(check_params(p));
  OMNI_ASSIGN_OR_RETURN(const BlasApi* api, blas_api());
  if (!blas.blas_lt()) return wrong_state("gemm: the BlasHandle was not created");
  cudaStream_t stream = blas.stream();
  const bool f16 = p.w_type != DType::kBF16;
  const cudaDataType_t op_type = f16 ? CUDA_R_16F : CUDA_R_16BF;
  const uint16_t* w16 = static_cast<const uint16_t*>(p.w);
  if (p.w_type != DType::kBF16 && p.w_type != DType::kF16) {
    DequantBf16Params d{p.w_type, p.w, p.w_scratch, p.n_out, p.n_in, true};
    OMNI_RETURN_IF_ERROR(cuda_status(launch_dequant_bf16(d, stream), "gemm: dequantize weights"));
    w16 = p.w_scratch;
  }
  round_activations<<<blocks_for(p.n_tok * p.n_in, 256), 256, 0, stream>>>(p.x, p.x_scratch, p.n_tok * p.n_in, f16);
  OMNI_RETURN_IF_ERROR(cuda_status(cudaGetLastError(), "gemm: round activations"));

  const float alpha = 1.0f, beta = p.accumulate ? 1.0f : 0.0f;
  const auto m = static_cast<uint64_t>(p.n_out), n = static_cast<uint64_t>(p.n_tok), k = static_cast<uint64_t>(p.n_in);
  auto lt = static_cast<cublasLtHandle_t>(blas.blas_lt());
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  const size_t ws_bytes = blas.workspace_bytes();
  cublasStatus_t st = api->lt_desc_create(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (st == CUBLAS_STATUS_SUCCESS) st = api->lt_desc_set(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  if (st == CUBLAS_STATUS_SUCCESS) st = api->lt_desc_set(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  if (st == CUBLAS_STATUS_SUCCESS) st = api->lt_layout_create(&la, op_type, k, m, static_cast<int64_t>(k));
  if (st == CUBLAS_STATUS_SUCCESS) st = api->lt_layout_create(&lb, op_type, k, n, static_cast<int64_t>(k));
  if (st == CUBLAS_STATUS_SUCCESS) st = api->lt_layout_create(&lc, CUDA_R_32F, m, n, static_cast<int64_t>(m));
  if (st == CUBLAS_STATUS_SUCCESS) st = api->lt_pref_create(&pref);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = api->lt_pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes);
  const AlgoKey key{lt, m, n, k, f16, beta != 0.0f};
  auto& cache = algo_cache();
  if (auto it = cache.find(key); it != cache.end()) {
    heur = it->second;
    found = 1;
  } else if (st == CUBLAS_STATUS_SUCCESS) {
    st = api->lt_heuristic(lt, op, la, lb, lc, lc, pref, 1, &heur, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) cache.emplace(key, heur);
  }
  bool done = false;
  if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
    st = api->lt_matmul(lt, op, &alpha, w16, la, p.x_scratch, lb, &beta, p.y, lc, p.y, lc, &heur.algo,
                        blas.workspace(), ws_bytes, stream);
    done = st == CUBLAS_STATUS_SUCCESS;
  }
  if (pref) api->lt_pref_destroy(pref);
  if (lc) api->lt_layout_destroy(lc);
  if (lb) api->lt_layout_destroy(lb);
  if (la) api->lt_layout_destroy(la);
  if (op) api->lt_desc_destroy(op);
  if (!done) {  // no cuBLASLt algorithm for this shape: the classic GEMM entry point
    st = api->gemm_ex(static_cast<cublasHandle_t>(blas.blas()), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m),
                      static_cast<int>(n), static_cast<int>(k), &alpha, w16, op_type, static_cast<int>(k),
                      p.x_scratch, op_type, static_cast<int>(k), &beta, p.y, CUDA_R_32F, static_cast<int>(m),
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    OMNI_RETURN_IF_ERROR(cublas_status(st, f16 ? "gemm: cublasGemmEx (f16 x f16 -> f32)" : "gemm: cublasGemmEx (bf16 x bf16 -> f32)"));
  }
  if (p.bias) {
    add_bias_rows<<<blocks_for(p.n_tok * p.n_out, 256), 256, 0, stream>>>(p.y, p.bias, p.n_tok, p.n_out);
    OMNI_RETURN_IF_ERROR(cuda_status(cudaGetLastError(), "gemm: add bias"));
  }
  return Status::Ok();
}

}  // namespace omni::cuda
