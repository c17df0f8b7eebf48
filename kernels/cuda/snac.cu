// SNAC decoder kernels (ops_codec.h). Element-wise ops run one thread per output element with
// the CPU's summation order (snac_ops.cpp), so results differ from the CPU only by FMA
// contraction and sinf/tanhf vs the CPU's polynomials (~1e-7 relative per op).
#include "kernels/cuda/ops_codec.h"

#include <cstdint>

namespace omni::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

bool overlaps(const void* a, int64_t a_bytes, const void* b, int64_t b_bytes) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + uintptr_t(b_bytes) && pb < pa + uintptr_t(a_bytes);
}

// Largest element count one launch indexes (grid.x of 256-thread blocks).
constexpr int64_t kMaxElements = int64_t(INT32_MAX) * kThreads;

__device__ __forceinline__ float snake1(float x, float alpha, float inv_alpha) {
  const float s = sinf(alpha * x);
  return x + inv_alpha * (s * s);
}

__global__ void snake_kernel(SnacSnakeParams p) {
  const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= p.T * p.C) return;
  const int64_t c = g % p.C;
  p.y[g] = snake1(p.x[g], p.alpha[c], p.inv_alpha[c]);
}

__global__ void dwconv_kernel(SnacDwConvParams p) {
  const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= p.T * p.C) return;
  const int64_t t = g / p.C, c = g - t * p.C;
  const int64_t pad = int64_t(p.k - 1) * p.dilation / 2;
  float acc = p.bias ? p.bias[c] : 0.0f;
  for (int j = 0; j < p.k; ++j) {
    const int64_t ts = t - pad + int64_t(j) * p.dilation;
    if (ts < 0 || ts >= p.T) continue;
    float v = p.x[ts * p.C + c];
    if (p.in_alpha) v = snake1(v, p.in_alpha[c], p.in_inv_alpha[c]);
    acc = fmaf(p.w[int64_t(j) * p.C + c], v, acc);
  }
  if (p.out_alpha) acc = snake1(acc, p.out_alpha[c], p.out_inv_alpha[c]);
  p.y[g] = acc;
}

// Tile of 64 tokens x 64 outputs, K in steps of 16 through shared memory (stored k-major so the
// inner loop reads rows). Thread (tx, ty) owns tokens ty + 16 i and outputs tx + 16 j (i, j < 4):
// a warp's B reads are 16 consecutive floats, its A reads 2 broadcast addresses.
constexpr int kTile = 64, kTileK = 16;

__global__ void __launch_bounds__(kThreads) matmul_kernel(SnacMatmulParams p) {
  __shared__ float xs[kTileK][kTile + 4];
  __shared__ float ws[kTileK][kTile + 4];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t t0 = int64_t(blockIdx.x) * kTile, o0 = int64_t(blockIdx.y) * kTile;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  for (int64_t k0 = 0; k0 < p.n_in; k0 += kTileK) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int idx = tid + kThreads * r, row = idx >> 4, kk = idx & 15;
      const int64_t k = k0 + kk, t = t0 + row, o = o0 + row;
      xs[kk][row] = (t < p.n_tok && k < p.n_in) ? p.x[t * p.n_in + k] : 0.0f;
      ws[kk][row] = (o < p.n_out && k < p.n_in) ? p.w[o * p.n_in + k] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = ws[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t t = t0 + ty + 16 * i;
    if (t >= p.n_tok) continue;
    const float scale = p.row_scale ? p.row_scale[t] : 1.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t o = o0 + tx + 16 * j;
      if (o >= p.n_out) continue;
      float v = acc[i][j];
      if (p.bias) v += p.bias[o];
      if (p.row_scale) v *= scale;
      const int64_t at = t * p.n_out + o;
      p.y[at] = p.add ? p.add[at] + v : v;
    }
  }
}

__global__ void overlap_add_kernel(SnacOverlapAddParams p) {
  const int64_t T_out = p.T_in * p.stride;
  const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= T_out * p.C_out) return;
  const int64_t t = g / p.C_out, o = g - t * p.C_out;
  const int64_t s = p.stride, zc = int64_t(p.k) * p.C_out;
  // Inputs i with j = t + p - i*s in [0, k).
  const int64_t num_hi = t + p.padding, num_lo = t + p.padding - (p.k - 1);
  int64_t i_lo = num_lo <= 0 ? -((-num_lo) / s) : (num_lo + s - 1) / s;
  int64_t i_hi = num_hi / s;
  i_lo = i_lo < 0 ? 0 : i_lo;
  i_hi = i_hi > p.T_in - 1 ? p.T_in - 1 : i_hi;
  float acc = p.bias ? p.bias[o] : 0.0f;
  for (int64_t i = i_lo; i <= i_hi; ++i) acc += p.z[i * zc + (t + p.padding - i * s) * p.C_out + o];
  p.y[g] = acc;
}

// audio::snac::noise_value, operation for operation (double precision like the host).
__device__ float noise_value(uint64_t seed, int block, int64_t t) {
  uint64_t r = seed * 0x9E3779B97F4A7C15ull + uint64_t(block + 1) * 0xD1B54A32D192ED03ull + uint64_t(t);
  r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
  r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
  r ^= r >> 31;
  const double u1 = (double(r >> 32) + 0.5) / 4294967296.0;
  const double u2 = double(r & 0xffffffffull) / 4294967296.0;
  const double radius = sqrt(__dmul_rn(-2.0, log(u1)));
  const double angle = __dmul_rn(2.0 * 3.14159265358979323846, u2);
  return float(__dmul_rn(radius, cos(angle)));
}

__global__ void noise_kernel(SnacNoiseParams p) {
  const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < p.n) p.noise[g] = noise_value(p.seed, p.block, p.t0 + g);
}

__global__ void taps_tanh_kernel(SnacTapsTanhParams p) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= p.T) return;
  const int64_t pad = (p.k - 1) / 2;
  float acc = p.bias;
  for (int j = 0; j < p.k; ++j) {
    const int64_t ts = t - pad + j;
    if (ts >= 0 && ts < p.T) acc += p.z[ts * p.k + j];
  }
  p.y[t] = tanhf(acc);
}

Status bad_shape(const char* op, const char* what, long long v) {
  return invalid_argument(fmt("%s: %s = %lld is out of range", op, what, v));
}

}  // namespace

Status check_params(const SnacSnakeParams& p) {
  if (!p.x || !p.y || !p.alpha || !p.inv_alpha) return invalid_argument("snac_snake: x, y, alpha and inv_alpha must be set");
  if (p.T <= 0) return bad_shape("snac_snake", "T", p.T);
  if (p.C <= 0 || p.C > kMaxElements / p.T) return bad_shape("snac_snake", "C", p.C);
  return Status::Ok();
}

cudaError_t launch_snac_snake(const SnacSnakeParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  snake_kernel<<<blocks_for(p.T * p.C), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const SnacDwConvParams& p) {
  if (!p.x || !p.y || !p.w) return invalid_argument("snac_dwconv: x, y and w must be set");
  if (!p.in_alpha != !p.in_inv_alpha || !p.out_alpha != !p.out_inv_alpha)
    return invalid_argument("snac_dwconv: a Snake needs both alpha and inv_alpha");
  if (p.T <= 0) return bad_shape("snac_dwconv", "T", p.T);
  if (p.C <= 0 || p.C > kMaxElements / p.T) return bad_shape("snac_dwconv", "C", p.C);
  if (p.k <= 0 || p.k % 2 == 0 || p.k > 1023) return bad_shape("snac_dwconv", "k (odd)", p.k);
  if (p.dilation <= 0 || p.dilation > 4096) return bad_shape("snac_dwconv", "dilation", p.dilation);
  const int64_t bytes = p.T * p.C * int64_t(sizeof(float));
  if (overlaps(p.x, bytes, p.y, bytes)) return invalid_argument("snac_dwconv: y overlaps x");
  return Status::Ok();
}

cudaError_t launch_snac_dwconv(const SnacDwConvParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  dwconv_kernel<<<blocks_for(p.T * p.C), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const SnacMatmulParams& p) {
  if (!p.x || !p.w || !p.y) return invalid_argument("snac_matmul: x, w and y must be set");
  if (p.n_tok <= 0 || p.n_tok > int64_t(INT32_MAX) * kTile) return bad_shape("snac_matmul", "n_tok", p.n_tok);
  if (p.n_out <= 0 || p.n_out > int64_t(65535) * kTile) return bad_shape("snac_matmul", "n_out", p.n_out);
  if (p.n_in <= 0 || p.n_in > (int64_t(1) << 40) / p.n_out || p.n_in > (int64_t(1) << 40) / p.n_tok)
    return bad_shape("snac_matmul", "n_in", p.n_in);
  if (overlaps(p.x, p.n_tok * p.n_in * int64_t(sizeof(float)), p.y, p.n_tok * p.n_out * int64_t(sizeof(float))))
    return invalid_argument("snac_matmul: y overlaps x");
  return Status::Ok();
}

cudaError_t launch_snac_matmul(const SnacMatmulParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((p.n_tok + kTile - 1) / kTile), static_cast<unsigned>((p.n_out + kTile - 1) / kTile));
  matmul_kernel<<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const SnacOverlapAddParams& p) {
  if (!p.z || !p.y) return invalid_argument("snac_overlap_add: z and y must be set");
  if (p.stride <= 0 || p.stride > 1024) return bad_shape("snac_overlap_add", "stride", p.stride);
  if (p.k <= 0 || p.k > 4096) return bad_shape("snac_overlap_add", "k", p.k);
  if (p.padding < 0 || p.padding >= p.k) return bad_shape("snac_overlap_add", "padding", p.padding);
  if (p.T_in <= 0 || p.T_in > kMaxElements / p.stride) return bad_shape("snac_overlap_add", "T_in", p.T_in);
  if (p.C_out <= 0 || p.C_out > kMaxElements / (p.T_in * p.stride) || p.C_out * p.k > kMaxElements / p.T_in)
    return bad_shape("snac_overlap_add", "C_out", p.C_out);
  if (overlaps(p.z, p.T_in * p.k * p.C_out * int64_t(sizeof(float)), p.y,
               p.T_in * p.stride * p.C_out * int64_t(sizeof(float))))
    return invalid_argument("snac_overlap_add: y overlaps z");
  return Status::Ok();
}

cudaError_t launch_snac_overlap_add(const SnacOverlapAddParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  overlap_add_kernel<<<blocks_for(p.T_in * p.stride * p.C_out), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const SnacNoiseParams& p) {
  if (!p.noise) return invalid_argument("snac_noise: noise must be set");
  if (p.n <= 0 || p.n > kMaxElements) return bad_shape("snac_noise", "n", p.n);
  if (p.t0 < 0) return bad_shape("snac_noise", "t0", p.t0);
  if (p.block < 0) return bad_shape("snac_noise", "block", p.block);
  return Status::Ok();
}

cudaError_t launch_snac_noise(const SnacNoiseParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  noise_kernel<<<blocks_for(p.n), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const SnacTapsTanhParams& p) {
  if (!p.z || !p.y) return invalid_argument("snac_taps_tanh: z and y must be set");
  if (p.k <= 0 || p.k % 2 == 0 || p.k > 1023) return bad_shape("snac_taps_tanh", "k (odd)", p.k);
  if (p.T <= 0 || p.T > kMaxElements / p.k) return bad_shape("snac_taps_tanh", "T", p.T);
  if (overlaps(p.z, p.T * p.k * int64_t(sizeof(float)), p.y, p.T * int64_t(sizeof(float))))
    return invalid_argument("snac_taps_tanh: y overlaps z");
  return Status::Ok();
}

cudaError_t launch_snac_taps_tanh(const SnacTapsTanhParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  taps_tanh_kernel<<<blocks_for(p.T), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace omni::cuda
