// Whisper log-mel on the device (ops_audio.h): windowing into f64 frames for cuFFT, the power
// spectrum through the Slaney filters to log10, the whole-window maximum, the clamp/scale.
// Precision follows audio/features/log_mel.cpp step for step: f64 window and FFT, power
// rounded to f32, the filter sum in f64, log10 in f64 rounded to f32.
#include <cmath>

#include "kernels/cuda/ops_audio.h"
#include "kernels/cuda/reduce.cuh"

namespace omni::cuda {
namespace {

unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

__global__ void mel_window_kernel(MelWindowParams p) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n_frames * kMelNFft) return;
  const int64_t t = i / kMelNFft, j = i % kMelNFft;
  p.frames[i] = static_cast<double>(p.padded[t * kMelHop + j]) * p.window[j];
}

constexpr int kFilterThreads = 128;

// One block per frame: the 201 powers into shared memory, then one thread per mel band.
__global__ void __launch_bounds__(kFilterThreads) mel_filter_kernel(MelFilterParams p) {
  __shared__ float power[kMelBins];
  const int64_t t = blockIdx.x;
  const double* s = p.spec + t * kMelBins * 2;
  for (int k = threadIdx.x; k < kMelBins; k += blockDim.x) {
    const double re = s[2 * k], im = s[2 * k + 1];
    power[k] = static_cast<float>(__dadd_rn(__dmul_rn(re, re), __dmul_rn(im, im)));
  }
  __syncthreads();
  for (int64_t m = threadIdx.x; m < p.n_mels; m += blockDim.x) {
    const float* f = p.filters + m * kMelBins;
    double acc = 0.0;
    for (int k = 0; k < kMelBins; ++k) {
      const float w = f[k];
      if (w != 0.0f) acc = __dadd_rn(acc, __dmul_rn(static_cast<double>(w), static_cast<double>(power[k])));
    }
    p.out[t * p.n_mels + m] = static_cast<float>(log10(fmax(acc, 1e-10)));
  }
}

constexpr int kMaxThreads = 1024;

__global__ void __launch_bounds__(kMaxThreads) max_kernel(MaxParams p) {
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) m = fmaxf(m, p.x[i]);
  m = block_max(m);
  if (threadIdx.x == 0) *p.out = m;
}

__global__ void mel_normalize_kernel(MelNormalizeParams p) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n) return;
  const float floor = *p.max_value - 8.0f;
  p.x[i] = (fmaxf(p.x[i], floor) + 4.0f) / 4.0f;
}

}  // namespace

Status check_params(const MelWindowParams& p) {
  if (!p.padded || !p.window || !p.frames) return invalid_argument("mel_window: padded, window and frames must be set");
  if (p.n_frames <= 0 || p.n_frames > (int64_t(1) << 31) / kMelNFft)
    return invalid_argument(fmt("mel_window: n_frames = %lld (need 1 .. %lld)", (long long)p.n_frames,
                                (long long)((int64_t(1) << 31) / kMelNFft)));
  return Status::Ok();
}

cudaError_t launch_mel_window(const MelWindowParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  mel_window_kernel<<<blocks_for(p.n_frames * kMelNFft, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const MelFilterParams& p) {
  if (!p.spec || !p.filters || !p.out) return invalid_argument("mel_filter: spec, filters and out must be set");
  if (p.n_frames <= 0 || p.n_frames > INT32_MAX)
    return invalid_argument(fmt("mel_filter: n_frames = %lld (need 1 .. 2^31-1)", (long long)p.n_frames));
  if (p.n_mels <= 0 || p.n_mels > 1024)
    return invalid_argument(fmt("mel_filter: n_mels = %lld (need 1 .. 1024)", (long long)p.n_mels));
  return Status::Ok();
}

cudaError_t launch_mel_filter(const MelFilterParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  mel_filter_kernel<<<static_cast<unsigned>(p.n_frames), kFilterThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const MaxParams& p) {
  if (!p.x || !p.out) return invalid_argument("max: x and out must be set");
  if (p.n <= 0) return invalid_argument(fmt("max: n = %lld (need >= 1)", (long long)p.n));
  return Status::Ok();
}

cudaError_t launch_max(const MaxParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  max_kernel<<<1, kMaxThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const MelNormalizeParams& p) {
  if (!p.x || !p.max_value) return invalid_argument("mel_normalize: x and max_value must be set");
  if (p.n <= 0) return invalid_argument(fmt("mel_normalize: n = %lld (need >= 1)", (long long)p.n));
  return Status::Ok();
}

cudaError_t launch_mel_normalize(const MelNormalizeParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  mel_normalize_kernel<<<blocks_for(p.n, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace omni::cuda
