// ViT helpers (ops_encoder.h): patch im2col over kept patches, indexed row gather/add, and the
// mean over index ranges (Gemma 3's pooling windows).
#include "kernels/cuda/ops_encoder.h"

namespace omni::cuda {
namespace {

unsigned blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 * 64 ? b : 65535 * 64);
}

__global__ void patch_gather_kernel(PatchGatherParams p) {
  const int64_t row = 3 * p.patch * p.patch, total = p.n_patch * row;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = e / row, i = e % row;
    const int64_t c = i / (p.patch * p.patch), y = (i / p.patch) % p.patch, x = i % p.patch;
    const int64_t g = p.patches[t], gy = g / p.grid_w, gx = g % p.grid_w;
    p.col[e] = p.pixels[(c * p.height + gy * p.patch + y) * p.width + gx * p.patch + x];
  }
}

__global__ void gather_rows_kernel(GatherRowsParams p) {
  const int64_t total = p.rows * p.n;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / p.n, i = e % p.n;
    const float v = p.src[static_cast<int64_t>(p.idx[r]) * p.n + i];
    p.dst[e] = p.accumulate ? p.dst[e] + v : v;
  }
}

__global__ void mean_rows_kernel(MeanRowsParams p) {
  const int64_t o = blockIdx.x;
  const int32_t b = p.offsets[o], e = p.offsets[o + 1];
  const float inv = 1.0f / static_cast<float>(e - b);
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) {
    float s = 0.0f;
    for (int32_t j = b; j < e; ++j) s += p.src[static_cast<int64_t>(p.idx[j]) * p.n + i];
    p.dst[o * p.n + i] = s * inv;
  }
}

}  // namespace

Status check_params(const PatchGatherParams& p) {
  if (!p.pixels || !p.patches || !p.col) return invalid_argument("patch_gather: pixels, patches and col must be set");
  if (p.patch <= 0 || p.width < p.patch || p.height < p.patch || p.n_patch <= 0 || p.grid_w != p.width / p.patch ||
      p.n_patch > (p.width / p.patch) * (p.height / p.patch))
    return invalid_argument(fmt("patch_gather: bad shape %lld x %lld pixels, patch %lld, grid_w %lld, %lld patches",
                                (long long)p.width, (long long)p.height, (long long)p.patch, (long long)p.grid_w,
                                (long long)p.n_patch));
  return Status::Ok();
}

cudaError_t launch_patch_gather(const PatchGatherParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  patch_gather_kernel<<<blocks_for(p.n_patch * 3 * p.patch * p.patch, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const GatherRowsParams& p) {
  if (!p.src || !p.idx || !p.dst) return invalid_argument("gather_rows: src, idx and dst must be set");
  if (p.rows <= 0 || p.n <= 0)
    return invalid_argument(fmt("gather_rows: bad shape rows = %lld, n = %lld", (long long)p.rows, (long long)p.n));
  return Status::Ok();
}

cudaError_t launch_gather_rows(const GatherRowsParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  gather_rows_kernel<<<blocks_for(p.rows * p.n, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const MeanRowsParams& p) {
  if (!p.src || !p.idx || !p.offsets || !p.dst) return invalid_argument("mean_rows: src, idx, offsets and dst must be set");
  if (p.rows <= 0 || p.n <= 0 || p.rows > INT32_MAX)
    return invalid_argument(fmt("mean_rows: bad shape rows = %lld, n = %lld", (long long)p.rows, (long long)p.n));
  return Status::Ok();
}

cudaError_t launch_mean_rows(const MeanRowsParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  mean_rows_kernel<<<static_cast<unsigned>(p.rows), 128, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace omni::cuda
