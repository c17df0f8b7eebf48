// CUDA ops of the audio front end and the Whisper encoder's conv stem. Same conventions as
// ops_cuda.h: a params struct (direction and shape of each pointer), check_params() naming the
// bad value, a launcher returning cudaErrorInvalidValue when check_params fails and otherwise
// the launch error; device pointers; no launcher allocates or synchronizes.
//
// Log-mel, as audio/features/log_mel.cpp computes it (its oracle), in three launches around a
// batched cuFFT D2Z of size 400 (runtime/model/cuda_whisper.cpp owns the plan):
//   launch_mel_window:  frames[t, i] = double(padded[t * 160 + i]) * window[i]     (f64)
//   cuFFT D2Z:          spec[t, k], k in [0, 201)                                   (complex f64)
//   launch_mel_filter:  mel[t, m] = float(log10(max(sum_k double(f[m,k]) * float(|spec|^2), 1e-10)))
// then, once the whole window is known, launch_max (one block reduces the whole window: the
// clamp needs the global maximum) and launch_mel_normalize: x = (max(x, max - 8) + 4) / 4.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/core/status.h"

namespace omni::cuda {

constexpr int kMelNFft = 400;  // samples per frame (25 ms at 16 kHz)
constexpr int kMelHop = 160;   // samples between frames
constexpr int kMelBins = kMelNFft / 2 + 1;  // 201 rfft bins

// frames[t, i] = double(padded[t * hop + i]) * window[i], t < n_frames, i < 400.
struct MelWindowParams {
  const float* padded = nullptr;   // in:  >= (n_frames - 1) * 160 + 400 samples
  const double* window = nullptr;  // in:  [400] periodic Hann
  double* frames = nullptr;        // out: [n_frames, 400]
  int64_t n_frames = 0;
};
Status check_params(const MelWindowParams& p);
cudaError_t launch_mel_window(const MelWindowParams& p, cudaStream_t stream);

// Power spectrum -> Slaney filters -> log10 with the 1e-10 floor; one block per frame.
struct MelFilterParams {
  const double* spec = nullptr;    // in:  [n_frames, 201] complex f64 (re, im interleaved)
  const float* filters = nullptr;  // in:  [n_mels, 201] f32
  float* out = nullptr;            // out: [n_frames, n_mels] log10 values, not normalized
  int64_t n_frames = 0, n_mels = 0;
};
Status check_params(const MelFilterParams& p);
cudaError_t launch_mel_filter(const MelFilterParams& p, cudaStream_t stream);

// *out = max(x[0..n)) by one block (deterministic; NaN is ignored; -inf for n == 0 is an error).
struct MaxParams {
  const float* x = nullptr;  // in:  [n]
  float* out = nullptr;      // out: [1]
  int64_t n = 0;
};
Status check_params(const MaxParams& p);
cudaError_t launch_max(const MaxParams& p, cudaStream_t stream);

// x[i] = (max(x[i], *max_value - 8) + 4) / 4, in place (whisper_normalize).
struct MelNormalizeParams {
  float* x = nullptr;                // in/out: [n]
  const float* max_value = nullptr;  // in:     [1] (device)
  int64_t n = 0;
};
Status check_params(const MelNormalizeParams& p);
cudaError_t launch_mel_normalize(const MelNormalizeParams& p, cudaStream_t stream);

// Conv1d (padding 1, kernel k, stride 1 or 2) as im2col for the GEMM that follows:
// col[t, j * c_in + i] = x[stride * t + j - (k - 1) / 2, i], zero outside [0, n_in_t);
// t < n_out_t = (n_in_t - 1) / stride + 1 (audio/whisper/whisper_ops.cpp conv1d's layout).
struct Im2colParams {
  const float* x = nullptr;  // in:  [n_in_t, c_in]
  float* col = nullptr;      // out: [n_out_t, kernel * c_in]; must not overlap x
  int64_t n_in_t = 0, c_in = 0, kernel = 3;
  int stride = 1;
};
int64_t im2col_out_rows(const Im2colParams& p);
Status check_params(const Im2colParams& p);
cudaError_t launch_im2col(const Im2colParams& p, cudaStream_t stream);

}  // namespace omni::cuda
