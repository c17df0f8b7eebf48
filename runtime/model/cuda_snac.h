// The SNAC codec decoder (audio/codec/snac.h) on one NVIDIA GPU: the same SnacWeights, the same
// codes, the same PCM as the CPU SnacDecoder (f32 math; tests: relative L2 <= 1e-4), and the
// same exact streaming (every emitted sample equals the whole decode; the same samples held back).
//
//   OMNI_ASSIGN_OR_RETURN(auto dec, CudaSnacDecoder::create(snac_model->weights));
//   std::vector<float> pcm;
//   OMNI_RETURN_IF_ERROR(dec->decode(codes, &pcm));          // n_groups * 2048 samples, 24 kHz
//   CudaSnacStreamDecoder stream(*dec);
//   OMNI_RETURN_IF_ERROR(stream.push(group_codes, &pcm));    // appends the final samples
//   OMNI_RETURN_IF_ERROR(stream.flush(&pcm));                // the rest, at the end
//
// Weights are uploaded once as f32 (matrices of other types are decoded at upload). The codes'
// latents (codebook lookup + out_proj, ~0.5 MFLOP per second of audio) are computed on the host
// by the CPU decoder's own code; everything after runs on the device. Device scratch grows with
// the longest window decoded (about 0.53 MB per latent step = 25 MB per second of audio at the
// 24 kHz shape) and is reused; decodes longer than kMaxWholeLatent latent steps go through the
// streaming path in bounded windows, with equal results.
// Thread-safety: one thread at a time per decoder (it owns a CUDA stream and scratch); the
// SnacWeights are only read and must outlive the decoder. Built without CUDA, create() returns
// kUnsupported.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "audio/codec/snac.h"
#include "kernels/core/status.h"

namespace omni {

class CudaSnacDecoder {
 public:
  // Whole decodes up to this many latent steps (43.7 s at 24 kHz) run as one window.
  static constexpr int64_t kMaxWholeLatent = 2048;

  // kUnsupported without a device (the driver's reason) or without CUDA in the build;
  // kOutOfMemory when the weights do not fit.
  static StatusOr<std::unique_ptr<CudaSnacDecoder>> create(const audio::SnacWeights& w, int device = 0);
  ~CudaSnacDecoder();
  CudaSnacDecoder(const CudaSnacDecoder&) = delete;
  CudaSnacDecoder& operator=(const CudaSnacDecoder&) = delete;

  const audio::SnacHParams& hparams() const;
  // As SnacDecoder::set_noise: on (default) or off; the seed picks the noise (same as the CPU's).
  void set_noise(bool on, uint64_t seed = 0);
  bool noise_on() const;

  // As SnacDecoder::check_codes.
  StatusOr<int64_t> check_codes(const audio::SnacCodes& codes) const;
  // As SnacDecoder::decode: pcm gets n_groups * samples_per_group() samples.
  Status decode(const audio::SnacCodes& codes, std::vector<float>* pcm);
  // As SnacDecoder::decode_latents on host memory: z [T, latent_dim] -> pcm [T * hop_length],
  // latent steps [t0, t0 + T) decoded as a whole sequence (noise positions absolute).
  Status decode_latents(const float* z, int64_t T, int64_t t0, float* pcm);
  // Sizes the device scratch for windows of up to T latent steps (cudaMalloc only when it grows).
  Status reserve(int64_t T);

  // The CPU decoder this one shares its code-checking, latents and dependency rules with.
  const audio::SnacDecoder& host() const;
  std::string device_name() const;
  size_t device_weight_bytes() const;
  size_t device_scratch_bytes() const;

 private:
  CudaSnacDecoder();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Streaming decode with SnacStreamDecoder's contract: push frame groups, get the samples no
// later code can change (the same count as the CPU stream decoder: 4757 held back at 24 kHz),
// flush() at the end. Each push re-decodes on the device the bounded window of latent steps
// the new samples depend on (at most kMaxNewLatent new steps plus the receptive field, ~20
// steps; larger pushes run in several windows), so device scratch is sized once, at the first
// push. Emitted samples equal CudaSnacDecoder::decode of all codes pushed.
// Thread-safety: one thread at a time; `dec` must outlive the stream and is used by it.
class CudaSnacStreamDecoder {
 public:
  static constexpr int64_t kMaxNewLatent = 64;  // new latent steps per window (16 frame groups)

  explicit CudaSnacStreamDecoder(CudaSnacDecoder& dec);
  Status push(const audio::SnacCodes& codes, std::vector<float>* pcm);
  Status flush(std::vector<float>* pcm);
  void reset();
  int64_t samples_emitted() const { return emitted_; }
  int64_t samples_pending() const;
  // Samples held back after a push in steady state (4757 at the 24 kHz shape).
  int64_t held_back() const { return held_back_; }

 private:
  // Decodes and appends samples [emitted_, avail) from the latents held in z_.
  Status emit(int64_t avail, bool final, std::vector<float>* pcm);

  CudaSnacDecoder& dec_;
  int64_t hop_ = 0, held_back_ = 0, max_window_ = 0;
  std::vector<float> z_;   // latent steps [z_first_, n_latent_), [.., latent_dim]
  int64_t z_first_ = 0, n_latent_ = 0, emitted_ = 0;
  bool ended_ = false;
  std::vector<float> window_pcm_;
};

}  // namespace omni
