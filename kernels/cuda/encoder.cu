// Encoder ops (ops_encoder.h): LayerNorm, bias + activation, and flash-style full attention.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/blas_loader.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/ops_encoder.h"
#include "kernels/cuda/reduce.cuh"

namespace omni::cuda {
namespace {

unsigned blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 * 64 ? b : 65535 * 64);  // grid-stride loops cover the rest
}

// One block per row; two passes (mean, then the centred sum of squares) as torch does, so a
// row with a large mean keeps its variance. Each thread writes only the elements it read, so
// y may alias x.
__global__ void layer_norm_kernel(LayerNormParams p) {
  const int64_t off = static_cast<int64_t>(blockIdx.x) * p.n;
  const float* x = p.x + off;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) s += x[i];
  const float mean = block_sum(s) / static_cast<float>(p.n);
  float v = 0.0f;
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) {
    const float d = x[i] - mean;
    v = fmaf(d, d, v);
  }
  const float inv = 1.0f / sqrtf(block_sum(v) / static_cast<float>(p.n) + p.eps);
  float* y = p.y + off;
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) {
    const float t = (x[i] - mean) * inv * p.w[i];
    y[i] = p.b ? t + p.b[i] : t;
  }
}

__device__ __forceinline__ float activate(float x, EncAct act) {
  switch (act) {
    case EncAct::kGeluErf: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case EncAct::kGeluTanh: {
      const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.0f + tanhf(u));
    }
    case EncAct::kQuickGelu: return x / (1.0f + expf(-1.702f * x));
    case EncAct::kSilu: return x / (1.0f + expf(-x));
    case EncAct::kNone: break;
  }
  return x;
}

__global__ void bias_act_kernel(BiasActParams p) {
  const int64_t total = p.rows * p.n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = p.bias ? p.x[i] + p.bias[i % p.n] : p.x[i];
    p.x[i] = activate(v, p.act);
  }
}

// Full attention. A block of 4 warps owns 32 queries (8 per warp) of one head and streams
// 32-key tiles of K and V through shared memory. Scores: lane j owns key j of the tile and
// dots it with the warp's 8 queries (float4 loads; a query row is a broadcast). Online softmax
// in the exp2 domain (q pre-scaled by scale * log2 e); the tile's probabilities go through
// shared memory (Ps[key][query]) so that in P.V each lane owns output dims lane + 32 c.
// Shared rows: Q and K padded to ks = r + 4 floats (r = head_dim rounded up to 4, zero-filled
// past head_dim) so that the lanes' float4 reads of different K rows hit different banks.
constexpr int kBQ = 32, kBK = 32, kQPerWarp = 8, kThreads = 128;

template <int C>
__global__ void __launch_bounds__(kThreads) attn_full_kernel(AttnFullParams p, int r, int ks) {
  extern __shared__ float4 smem4[];
  float* Qs = reinterpret_cast<float*>(smem4);  // [kBQ][ks]
  float* Ks = Qs + kBQ * ks;                    // [kBK][ks]
  float* Vs = Ks + kBK * ks;                    // [kBK][r]
  float* Ps = Vs + kBK * r;                     // [4 warps][kBK][kQPerWarp]
  const int warp = static_cast<int>(threadIdx.x >> 5), lane = static_cast<int>(threadIdx.x & 31);
  const int64_t hd = p.head_dim, h = blockIdx.y;
  const int64_t kvh = h / (p.n_head / p.n_kv_head);
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kBQ;
  const float qscale = p.scale * 1.4426950408889634f;
  for (int e = threadIdx.x; e < kBQ * r; e += kThreads) {
    const int row = e / r, d = e % r;
    const int64_t qi = q0 + row;
    Qs[row * ks + d] = (qi < p.n_q && d < hd) ? p.q[qi * p.q_stride + h * hd + d] * qscale : 0.0f;
  }
  float m[kQPerWarp], l[kQPerWarp], acc[kQPerWarp][C];
#pragma unroll
  for (int qi = 0; qi < kQPerWarp; ++qi) {
    m[qi] = -INFINITY;
    l[qi] = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c) acc[qi][c] = 0.0f;
  }
  const float* qw = Qs + warp * kQPerWarp * ks;
  float* pw = Ps + warp * kBK * kQPerWarp;
  for (int64_t k0 = 0; k0 < p.n_kv; k0 += kBK) {
    __syncthreads();  // the previous tile is no longer read (and Qs is complete)
    for (int e = threadIdx.x; e < kBK * r; e += kThreads) {
      const int row = e / r, d = e % r;
      const int64_t j = k0 + row;
      float kv = 0.0f, vv = 0.0f;
      if (j < p.n_kv && d < hd) {
        kv = p.k[j * p.kv_stride + kvh * hd + d];
        vv = p.v[j * p.kv_stride + kvh * hd + d];
      }
      Ks[row * ks + d] = kv;
      Vs[row * r + d] = vv;
    }
    __syncthreads();
    float s[kQPerWarp];
#pragma unroll
    for (int qi = 0; qi < kQPerWarp; ++qi) s[qi] = 0.0f;
    const float4* krow = reinterpret_cast<const float4*>(Ks + lane * ks);
    for (int d4 = 0; d4 < r / 4; ++d4) {
      const float4 kk = krow[d4];
#pragma unroll
      for (int qi = 0; qi < kQPerWarp; ++qi) {
        const float4 qq = reinterpret_cast<const float4*>(qw + qi * ks)[d4];
        s[qi] = fmaf(qq.x, kk.x, fmaf(qq.y, kk.y, fmaf(qq.z, kk.z, fmaf(qq.w, kk.w, s[qi]))));
      }
    }
    const bool valid = k0 + lane < p.n_kv;  // lane 0 always is: the tile maximum is finite
#pragma unroll
    for (int qi = 0; qi < kQPerWarp; ++qi) {
      const float sv = valid ? s[qi] : -INFINITY;
      const float mn = fmaxf(m[qi], warp_max(sv));
      const float pv = valid ? exp2f(sv - mn) : 0.0f;
      const float alpha = exp2f(m[qi] - mn);  // 0 on the first tile (m = -inf)
      l[qi] = l[qi] * alpha + warp_sum(pv);
      m[qi] = mn;
#pragma unroll
      for (int c = 0; c < C; ++c) acc[qi][c] *= alpha;
      pw[lane * kQPerWarp + qi] = pv;
    }
    __syncwarp();
    const int nk = p.n_kv - k0 < kBK ? static_cast<int>(p.n_kv - k0) : kBK;
    for (int j = 0; j < nk; ++j) {
      const float4 pa = reinterpret_cast<const float4*>(pw + j * kQPerWarp)[0];
      const float4 pb = reinterpret_cast<const float4*>(pw + j * kQPerWarp)[1];
      const float pj[kQPerWarp] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int d = lane + 32 * c;
        const float vv = d < r ? Vs[j * r + d] : 0.0f;
#pragma unroll
        for (int qi = 0; qi < kQPerWarp; ++qi) acc[qi][c] = fmaf(pj[qi], vv, acc[qi][c]);
      }
    }
    __syncwarp();  // Ps is rewritten by the next tile
  }
#pragma unroll
  for (int qi = 0; qi < kQPerWarp; ++qi) {
    const int64_t qg = q0 + warp * kQPerWarp + qi;
    if (qg >= p.n_q) continue;
    const float inv = 1.0f / l[qi];
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int64_t d = lane + 32 * c;
      if (d < hd) p.out[qg * p.out_stride + h * hd + d] = acc[qi][c] * inv;
    }
  }
}

template <int C>
cudaError_t launch_attn_c(const AttnFullParams& p, cudaStream_t stream) {
  const int r = static_cast<int>((p.head_dim + 3) / 4 * 4), ks = r + 4;
  const size_t smem = sizeof(float) * static_cast<size_t>(kBQ * ks + kBK * ks + kBK * r + 4 * kBK * kQPerWarp);
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(attn_full_kernel<C>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(static_cast<unsigned>((p.n_q + kBQ - 1) / kBQ), static_cast<unsigned>(p.n_head));
  attn_full_kernel<C><<<grid, kThreads, smem, stream>>>(p, r, ks);
  return cudaGetLastError();
}

// Softmax of each row of s [rows, n] in place, one warp per row. Three passes over the row
// (max, sum, write); the row (n floats) stays in L1 between them.
constexpr int kSoftmaxWarps = 4;
__global__ void __launch_bounds__(32 * kSoftmaxWarps) softmax_rows_kernel(float* s, int64_t rows, int64_t n) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kSoftmaxWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  float* x = s + row * n;
  float mx = -INFINITY;
  for (int64_t j = lane; j < n; j += 32) mx = fmaxf(mx, x[j]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int64_t j = lane; j < n; j += 32) sum += expf(x[j] - mx);
  const float inv = 1.0f / warp_sum(sum);
  for (int64_t j = lane; j < n; j += 32) x[j] = expf(x[j] - mx) * inv;
}

}  // namespace

Status check_params(const LayerNormParams& p) {
  if (!p.x || !p.y || !p.w) return invalid_argument("layer_norm: x, y and w must be set");
  if (p.rows <= 0 || p.n <= 0 || p.rows > INT32_MAX)
    return invalid_argument(fmt("layer_norm: bad shape rows = %lld, n = %lld", (long long)p.rows, (long long)p.n));
  if (!(p.eps > 0.0f)) return invalid_argument(fmt("layer_norm: eps = %g must be > 0", double(p.eps)));
  return Status::Ok();
}

cudaError_t launch_layer_norm(const LayerNormParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int threads = p.n >= 1024 ? 256 : p.n >= 256 ? 128 : 64;
  layer_norm_kernel<<<static_cast<unsigned>(p.rows), threads, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const BiasActParams& p) {
  if (!p.x) return invalid_argument("bias_act: x must be set");
  if (p.rows <= 0 || p.n <= 0)
    return invalid_argument(fmt("bias_act: bad shape rows = %lld, n = %lld", (long long)p.rows, (long long)p.n));
  const int a = static_cast<int>(p.act);
  if (a < static_cast<int>(EncAct::kNone) || a > static_cast<int>(EncAct::kSilu))
    return invalid_argument(fmt("bias_act: unknown activation %d", a));
  return Status::Ok();
}

cudaError_t launch_bias_act(const BiasActParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  bias_act_kernel<<<blocks_for(p.rows * p.n, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const AttnFullParams& p) {
  if (!p.q || !p.k || !p.v || !p.out) return invalid_argument("attn_full: q, k, v and out must be set");
  if (p.n_q <= 0 || p.n_kv <= 0 || p.n_head <= 0 || p.n_kv_head <= 0 || p.n_head > 65535 ||
      p.n_q > (int64_t(1) << 36))
    return invalid_argument(fmt("attn_full: bad shape n_q = %lld, n_kv = %lld, n_head = %lld, n_kv_head = %lld",
                                (long long)p.n_q, (long long)p.n_kv, (long long)p.n_head, (long long)p.n_kv_head));
  if (p.n_head % p.n_kv_head != 0)
    return invalid_argument(fmt("attn_full: n_head = %lld is not a multiple of n_kv_head = %lld",
                                (long long)p.n_head, (long long)p.n_kv_head));
  if (p.head_dim <= 0 || p.head_dim > kEncAttnMaxHeadDim)
    return invalid_argument(fmt("attn_full: head_dim = %lld outside [1, %d]", (long long)p.head_dim, kEncAttnMaxHeadDim));
  if (p.q_stride < p.n_head * p.head_dim || p.kv_stride < p.n_kv_head * p.head_dim ||
      p.out_stride < p.n_head * p.head_dim)
    return invalid_argument(fmt("attn_full: row strides q %lld, kv %lld, out %lld are shorter than a row "
                                "(%lld query / %lld key floats)", (long long)p.q_stride, (long long)p.kv_stride,
                                (long long)p.out_stride, (long long)(p.n_head * p.head_dim),
                                (long long)(p.n_kv_head * p.head_dim)));
  return Status::Ok();
}

cudaError_t launch_attn_full(const AttnFullParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  switch ((p.head_dim + 31) / 32) {
    case 1: return launch_attn_c<1>(p, stream);
    case 2: return launch_attn_c<2>(p, stream);
    case 3: return launch_attn_c<3>(p, stream);
    default: return launch_attn_c<4>(p, stream);
  }
}

}  // namespace omni::cuda

namespace omni::cuda {

bool encoder_attn_exact_env() {
  static const bool exact = [] {
    const char* e = std::getenv("OMNIRT_ENCODER_ATTN");
    return e && std::strcmp(e, "exact") == 0;
  }();
  return exact;
}

int64_t attn_fast_scores_floats(int64_t n_q, int64_t n_kv, int64_t n_head, size_t max_bytes) {
  if (n_q <= 0 || n_kv <= 0 || n_head <= 0) return 0;
  const int64_t per_head = n_q * n_kv;
  const int64_t fit = static_cast<int64_t>(max_bytes / sizeof(float)) / per_head;
  return std::min(fit, n_head) * per_head;
}

Status check_params(const AttnFastParams& p) {
  OMNI_RETURN_IF_ERROR(check_params(p.a));
  constexpr int64_t kIntMax = 2147483647;
  if (p.a.n_q > kIntMax || p.a.n_kv > kIntMax || p.a.q_stride > kIntMax || p.a.kv_stride > kIntMax ||
      p.a.out_stride > kIntMax)
    return invalid_argument(fmt("attn_fast: n_q = %lld, n_kv = %lld or a row stride (q %lld, kv %lld, out %lld) "
                                "exceeds cuBLAS's int range", (long long)p.a.n_q, (long long)p.a.n_kv,
                                (long long)p.a.q_stride, (long long)p.a.kv_stride, (long long)p.a.out_stride));
  if (!p.scores) return invalid_argument("attn_fast: scores scratch must be set");
  if (p.scores_floats < p.a.n_q * p.a.n_kv)
    return invalid_argument(fmt("attn_fast: scores scratch of %lld floats is smaller than one head's %lld x %lld",
                                (long long)p.scores_floats, (long long)p.a.n_q, (long long)p.a.n_kv));
  return Status::Ok();
}

// Column-major view (cuBLAS): a row-major [rows, cols] slice with row stride ld is the
// column-major [cols, rows] matrix with leading dimension ld: K_h is K_cm [hd, n_kv], Q_h is
// Q_cm [hd, n_q], O_h is O_cm [hd, n_q], and the row-major scores S [n_q, n_kv] are S_cm
// [n_kv, n_q] with ld n_kv. Per head: S_cm = scale * K_cm^T Q_cm, then O_cm = V_cm S_cm.
Status attn_full_fast(const AttnFastParams& p, const BlasHandle& blas) {
  OMNI_RETURN_IF_ERROR(check_params(p));
  OMNI_ASSIGN_OR_RETURN(const BlasApi* api, blas_api());
  if (!blas.blas()) return wrong_state("attn_fast: the BlasHandle was not created");
  const AttnFullParams& a = p.a;
  auto h = static_cast<cublasHandle_t>(blas.blas());
  const int64_t per_head = a.n_q * a.n_kv, chunk = std::min(a.n_head, p.scores_floats / per_head);
  const int64_t group = a.n_head / a.n_kv_head;
  const bool gqa = group > 1;
  const int nq = static_cast<int>(a.n_q), nkv = static_cast<int>(a.n_kv), hd = static_cast<int>(a.head_dim);
  const float zero = 0.0f, one = 1.0f;
  for (int64_t h0 = 0; h0 < a.n_head; h0 += chunk) {
    const int64_t h1 = std::min(a.n_head, h0 + chunk);
    // Without GQA one batched call for the chunk (head stride head_dim in q, k, v, out);
    // with it, one call per head (its K/V slice is its group's).
    const int64_t step = gqa ? 1 : h1 - h0;
    for (int64_t hh = h0; hh < h1; hh += step) {
      const int64_t kvh = hh / group;
      const cublasStatus_t st = api->gemm_strided_batched_ex(
          h, CUBLAS_OP_T, CUBLAS_OP_N, nkv, nq, hd, &a.scale, a.k + kvh * a.head_dim, CUDA_R_32F,
          static_cast<int>(a.kv_stride), a.head_dim, a.q + hh * a.head_dim, CUDA_R_32F, static_cast<int>(a.q_stride),
          a.head_dim, &zero, p.scores + (hh - h0) * per_head, CUDA_R_32F, nkv, per_head, static_cast<int>(step),
          CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
      OMNI_RETURN_IF_ERROR(cublas_status(st, "attn_fast: scores GEMM (cublasGemmStridedBatchedEx, TF32)"));
    }
    const int64_t rows = (h1 - h0) * a.n_q;
    softmax_rows_kernel<<<static_cast<unsigned>((rows + kSoftmaxWarps - 1) / kSoftmaxWarps), 32 * kSoftmaxWarps, 0,
                          blas.stream()>>>(p.scores, rows, a.n_kv);
    OMNI_RETURN_IF_ERROR(cuda_status(cudaGetLastError(), "attn_fast: softmax"));
    for (int64_t hh = h0; hh < h1; hh += step) {
      const int64_t kvh = hh / group;
      const cublasStatus_t st = api->gemm_strided_batched_ex(
          h, CUBLAS_OP_N, CUBLAS_OP_N, hd, nq, nkv, &one, a.v + kvh * a.head_dim, CUDA_R_32F,
          static_cast<int>(a.kv_stride), a.head_dim, p.scores + (hh - h0) * per_head, CUDA_R_32F, nkv, per_head, &zero,
          a.out + hh * a.head_dim, CUDA_R_32F, static_cast<int>(a.out_stride), a.head_dim, static_cast<int>(step),
          CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
      OMNI_RETURN_IF_ERROR(cublas_status(st, "attn_fast: output GEMM (cublasGemmStridedBatchedEx, TF32)"));
    }
  }
  return Status::Ok();
}

}  // namespace omni::cuda
