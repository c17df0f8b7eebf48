// CUDA kernels of the SNAC codec decoder (audio/codec/snac.h; runtime/model/cuda_snac.h drives
// them). Activations are time-major f32 [T, C] (one row per time step, channels contiguous),
// the layout of the CPU decoder, so every op here has its CPU twin in audio/codec/snac_ops.h,
// which is the numerical reference (tests/cuda_snac_test.cpp). All math is f32 (the noise in
// double, as the CPU); weights are f32 (CudaSnacDecoder decodes other types once at upload).
// As ops_cuda.h: a params struct (direction and shape of each device pointer), check_params()
// naming the bad value, `cudaError_t launch_xxx(params, stream)` returning
// cudaErrorInvalidValue when check_params fails; no launcher allocates or synchronizes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/core/status.h"

namespace omni::cuda {

// y[t, c] = x[t, c] + inv_alpha[c] * sin(alpha[c] * x[t, c])^2 (Snake1d). y may alias x.
struct SnacSnakeParams {
  const float* x = nullptr;          // in:  [T, C]
  float* y = nullptr;                // out: [T, C]
  const float* alpha = nullptr;      // in:  [C]
  const float* inv_alpha = nullptr;  // in:  [C] = 1 / (alpha + 1e-9)
  int64_t T = 0, C = 0;
};
Status check_params(const SnacSnakeParams& p);
cudaError_t launch_snac_snake(const SnacSnakeParams& p, cudaStream_t stream);

// Depthwise Conv1d (groups = C), kernel k (odd), dilation d, zero padding (k-1)*d/2 each side
// (same length): y[t, c] = bias[c] + sum_j w[j, c] * s_in(x[t - pad + j*d, c]), then y = s_out(y).
// s_in / s_out: Snake with (in_alpha, in_inv_alpha) / (out_alpha, out_inv_alpha), or identity
// when null (snake_ops' snake then depthwise_conv1d with its fused output snake).
struct SnacDwConvParams {
  const float* x = nullptr;              // in:  [T, C]
  float* y = nullptr;                    // out: [T, C]; must not overlap x
  const float* w = nullptr;              // in:  [k, C] tap-major
  const float* bias = nullptr;           // in:  [C] or null
  const float* in_alpha = nullptr;       // in:  [C] or null (both or neither with in_inv_alpha)
  const float* in_inv_alpha = nullptr;
  const float* out_alpha = nullptr;      // in:  [C] or null (both or neither with out_inv_alpha)
  const float* out_inv_alpha = nullptr;
  int64_t T = 0, C = 0;
  int k = 7, dilation = 1;
};
Status check_params(const SnacDwConvParams& p);
cudaError_t launch_snac_dwconv(const SnacDwConvParams& p, cudaStream_t stream);

// f32 GEMM for 1x1 convs and the transposed convs' tap products, with the decoder's epilogues:
//   y[t, o] = add[t, o] + row_scale[t] * (sum_i W[o, i] x[t, i] + bias[o])
// (add = 0, row_scale = 1, bias = 0 when null). Residual units: add = y (in place); noise
// blocks: add = the block's activations, row_scale = noise. Each output's sum runs over i in
// order with f32 FMA, independent of the tiling and of n_tok (so windows equal whole decodes
// bit for bit). 64 x 64 output tiles, 256 threads.
struct SnacMatmulParams {
  const float* x = nullptr;          // in:  [n_tok, n_in]
  const float* w = nullptr;          // in:  [n_out, n_in] f32
  float* y = nullptr;                // out: [n_tok, n_out]; must not overlap x
  const float* bias = nullptr;       // in:  [n_out] or null
  const float* add = nullptr;        // in:  [n_tok, n_out] or null; may be y itself
  const float* row_scale = nullptr;  // in:  [n_tok] or null
  int64_t n_tok = 0, n_in = 0, n_out = 0;
};
Status check_params(const SnacMatmulParams& p);
cudaError_t launch_snac_matmul(const SnacMatmulParams& p, cudaStream_t stream);

// Overlap-add half of ConvTranspose1d (stride s, kernel k, padding p, T_in * s outputs):
// z[i, j * C_out + o] = sum_c x[i, c] W[c, o, j] (launch_snac_matmul); y[i*s - p + j, o] =
// bias[o] + the z landing there, summed in increasing i (snac_ops' overlap_add).
struct SnacOverlapAddParams {
  const float* z = nullptr;     // in:  [T_in, k * C_out]
  float* y = nullptr;           // out: [T_in * stride, C_out]; must not overlap z
  const float* bias = nullptr;  // in:  [C_out] or null
  int64_t T_in = 0, C_out = 0;
  int k = 0, stride = 0, padding = 0;
};
Status check_params(const SnacOverlapAddParams& p);
cudaError_t launch_snac_overlap_add(const SnacOverlapAddParams& p, cudaStream_t stream);

// noise[i] = audio::snac::noise_value(seed, block, t0 + i): the CPU's counter-based standard
// normal (splitmix64 finaliser, Box-Muller in double), so GPU and CPU decodes see the same noise.
struct SnacNoiseParams {
  float* noise = nullptr;  // out: [n]
  int64_t n = 0;
  int64_t t0 = 0;          // absolute position of noise[0] at the block's rate (>= 0)
  uint64_t seed = 0;
  int block = 0;
};
Status check_params(const SnacNoiseParams& p);
cudaError_t launch_snac_noise(const SnacNoiseParams& p, cudaStream_t stream);

// Second half of the output Conv1d C -> 1 (kernel k odd, padding (k-1)/2) and tanh:
// z[t, j] = sum_c x[t, c] w[0, c, j]; y[t] = tanh(bias + sum_j z[t - pad + j, j]) (in j order).
struct SnacTapsTanhParams {
  const float* z = nullptr;  // in:  [T, k]
  float* y = nullptr;        // out: [T]; must not overlap z
  int64_t T = 0;
  int k = 7;
  float bias = 0.0f;
};
Status check_params(const SnacTapsTanhParams& p);
cudaError_t launch_snac_taps_tanh(const SnacTapsTanhParams& p, cudaStream_t stream);

}  // namespace omni::cuda
