// Token selection on the device: argmax (greedy) and top-k / top-p / min-p / temperature
// sampling, so that logits never leave the GPU. Top-k runs in two stages: each block takes the
// K best of an 8192-logit slice (K rounds of a block argmax over a shared-memory copy), then one
// block per row picks the K best of the slices' candidates and samples serially from them.
#include <cfloat>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/reduce.cuh"

namespace omni::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kSlice = 8192;  // logits per stage-1 block

// (value, index) order: larger value first, then lower index. NaN never wins.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

__device__ __forceinline__ void warp_argmax(float& v, int& i) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, off);
    const int oi = __shfl_xor_sync(0xffffffffu, i, off);
    if (better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

// Every thread gets the block's best (value, index); index INT32_MAX when all were NaN.
__device__ void block_argmax(float& v, int& i) {
  __shared__ float sv[32];
  __shared__ int si[32];
  warp_argmax(v, i);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = i;
  }
  __syncthreads();
  v = lane < n_warps ? sv[lane] : -INFINITY;
  i = lane < n_warps ? si[lane] : INT32_MAX;
  warp_argmax(v, i);
}

__global__ void argmax_kernel(ArgmaxParams p) {
  const float* x = p.logits + static_cast<int64_t>(blockIdx.x) * p.n;
  float bv = -INFINITY;
  int bi = INT32_MAX;
  // 8 independent loads in flight per thread (a vocabulary row is ~600 KB read by one block).
  constexpr int kU = 8;
  int64_t j0 = threadIdx.x;
  for (; j0 + int64_t(kU - 1) * blockDim.x < p.n; j0 += int64_t(kU) * blockDim.x) {
    float v[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) v[u] = x[j0 + int64_t(u) * blockDim.x];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int j = static_cast<int>(j0 + int64_t(u) * blockDim.x);
      if (better(v[u], j, bv, bi)) {
        bv = v[u];
        bi = j;
      }
    }
  }
  for (int64_t j = j0; j < p.n; j += blockDim.x) {
    const float v = x[j];
    if (better(v, static_cast<int>(j), bv, bi)) {
      bv = v;
      bi = static_cast<int>(j);
    }
  }
  block_argmax(bv, bi);
  if (threadIdx.x == 0) p.out[blockIdx.x] = bi == INT32_MAX ? 0 : bi;
}

int effective_k(int32_t top_k) { return top_k > 0 && top_k < kSampleMaxTopK ? top_k : kSampleMaxTopK; }
int64_t n_slices(int64_t n) { return (n + kSlice - 1) / kSlice; }

// Stage 1: grid (slices, rows). Candidates: ws[((row * slices + slice) * K + r) * 2 + {0: value, 1: index bits}].
__global__ void __launch_bounds__(kThreads) topk_slices(SampleParams p, int k) {
  __shared__ float vals[kSlice];
  const int64_t slices = gridDim.x;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kSlice;
  const int count = static_cast<int>(min(static_cast<int64_t>(kSlice), p.n - base));
  const float* x = p.logits + static_cast<int64_t>(blockIdx.y) * p.n + base;
  for (int j = threadIdx.x; j < count; j += kThreads) vals[j] = x[j];
  __syncthreads();
  float* out = p.workspace + ((static_cast<int64_t>(blockIdx.y) * slices + blockIdx.x) * k) * 2;
  for (int r = 0; r < k; ++r) {
    float bv = -INFINITY;
    int bi = INT32_MAX;
    for (int j = threadIdx.x; j < count; j += kThreads)
      if (better(vals[j], j, bv, bi)) {
        bv = vals[j];
        bi = j;
      }
    block_argmax(bv, bi);
    if (threadIdx.x == 0) {
      const bool found = bi != INT32_MAX;
      out[2 * r] = found ? bv : __int_as_float(0x7fc00000);  // NaN marks "no candidate"
      out[2 * r + 1] = __int_as_float(found ? static_cast<int>(base) + bi : -1);
      if (found) vals[bi] = __int_as_float(0x7fc00000);  // taken
    }
    __syncthreads();
  }
}

// Stage 2: one block per row.
__global__ void __launch_bounds__(kThreads) sample_final(SampleParams p, int k, int slices) {
  __shared__ float top_v[kSampleMaxTopK];
  __shared__ int top_i[kSampleMaxTopK];
  float* cand = p.workspace + static_cast<int64_t>(blockIdx.x) * slices * k * 2;
  const int n_cand = slices * k;
  for (int r = 0; r < k; ++r) {
    float bv = -INFINITY;
    int bi = INT32_MAX;
    for (int j = threadIdx.x; j < n_cand; j += kThreads)
      if (better(cand[2 * j], j, bv, bi)) {
        bv = cand[2 * j];
        bi = j;
      }
    block_argmax(bv, bi);
    if (threadIdx.x == 0) {
      if (bi == INT32_MAX) {
        top_v[r] = -INFINITY;
        top_i[r] = -1;
      } else {
        top_v[r] = bv;
        top_i[r] = __float_as_int(cand[2 * bi + 1]);
        cand[2 * bi] = __int_as_float(0x7fc00000);
      }
    }
    __syncthreads();
  }
  if (threadIdx.x != 0) return;
  int kept = 0;
  while (kept < k && top_i[kept] >= 0) ++kept;
  if (kept == 0) {
    p.out[blockIdx.x] = 0;
    return;
  }
  if (p.temperature <= 0.0f) {
    p.out[blockIdx.x] = top_i[0];
    return;
  }
  const float vmax = top_v[0];
  if (p.top_p < 1.0f) {  // smallest prefix whose softmax mass reaches top_p
    float sum = 0.0f;
    for (int r = 0; r < kept; ++r) sum += expf(top_v[r] - vmax);
    float cum = 0.0f;
    for (int r = 0; r < kept; ++r) {
      cum += expf(top_v[r] - vmax) / sum;
      if (cum >= p.top_p) {
        kept = r + 1;
        break;
      }
    }
  }
  if (p.min_p > 0.0f) {  // p_r / p_0 >= min_p
    const float floor_logit = vmax + logf(p.min_p);
    int r = 1;
    while (r < kept && top_v[r] >= floor_logit) ++r;
    kept = r;
  }
  float sum = 0.0f;
  for (int r = 0; r < kept; ++r) sum += expf((top_v[r] - vmax) / p.temperature);
  const float target = p.uniform[blockIdx.x] * sum;
  float cum = 0.0f;
  int pick = kept - 1;
  for (int r = 0; r < kept; ++r) {
    cum += expf((top_v[r] - vmax) / p.temperature);
    if (target < cum) {
      pick = r;
      break;
    }
  }
  p.out[blockIdx.x] = top_i[pick];
}

}  // namespace

Status check_params(const ArgmaxParams& p) {
  if (!p.logits || !p.out) return invalid_argument("argmax: logits and out must be set");
  if (p.rows <= 0 || p.rows > INT32_MAX || p.n <= 0 || p.n > INT32_MAX - 1)
    return invalid_argument(fmt("argmax: bad shape rows = %lld, n = %lld", (long long)p.rows, (long long)p.n));
  return Status::Ok();
}

cudaError_t launch_argmax(const ArgmaxParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  argmax_kernel<<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

int64_t sample_workspace_floats(int64_t rows, int64_t n) { return rows * n_slices(n) * kSampleMaxTopK * 2; }

Status check_params(const SampleParams& p) {
  if (!p.logits || !p.uniform || !p.out || !p.workspace)
    return invalid_argument("sample: logits, uniform, out and workspace must be set");
  if (p.rows <= 0 || p.rows > 65535 || p.n <= 0 || p.n > INT32_MAX - 1)
    return invalid_argument(fmt("sample: bad shape rows = %lld, n = %lld", (long long)p.rows, (long long)p.n));
  if (!(p.top_p > 0.0f)) return invalid_argument(fmt("sample: top_p = %g must be > 0", double(p.top_p)));
  if (!(p.min_p < 1.0f)) return invalid_argument(fmt("sample: min_p = %g must be < 1", double(p.min_p)));
  return Status::Ok();
}

cudaError_t launch_sample(const SampleParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int k = effective_k(p.top_k);
  const auto slices = static_cast<unsigned>(n_slices(p.n));
  topk_slices<<<dim3(slices, static_cast<unsigned>(p.rows)), kThreads, 0, stream>>>(p, k);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  sample_final<<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p, k, static_cast<int>(slices));
  return cudaGetLastError();
}

}  // namespace omni::cuda
