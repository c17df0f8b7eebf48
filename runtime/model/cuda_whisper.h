// Whisper's front end and audio encoder on one NVIDIA GPU: the log-mel spectrogram (cuFFT, f64)
// and the encoder (conv stem, pre-LN blocks, final LayerNorm), equal to audio/features/log_mel.h
// and audio/whisper/whisper_encoder.h on the CPU within the bounds in docs/AUDIO.md.
//
//   OMNI_ASSIGN_OR_RETURN(auto mel, CudaLogMel::create(80));
//   mel->push(chunk, n, nullptr);            // new frames stay on the device (device_data())
//   mel->finish(nullptr);
//   OMNI_ASSIGN_OR_RETURN(float mx, mel->normalize());   // whole-window max on the device
//   OMNI_ASSIGN_OR_RETURN(auto enc, CudaWhisperEncoder::create(weights));
//   enc->encode_device(mel->device_data(), mel->device_frames(), out_dev);
//
// Weights are uploaded once at create() in their stored type (f32 matrices as f16, which is
// what the f16 GEMM path would round them to on every call; q/k/v as one fused matrix), and
// every device buffer is sized there for the longest window (2 * n_audio_ctx frames): encode()
// allocates nothing on the device. Without CUDA (or without a device, cuBLAS or cuFFT) create()
// returns kUnsupported with the reason.
// Thread-safety: one thread at a time per object; distinct objects are independent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "audio/whisper/whisper_decoder.h"
#include "audio/whisper/whisper_weights.h"
#include "kernels/core/status.h"
#include "kernels/core/thread_pool.h"

namespace omni {

struct CudaWhisperOptions {
  int device = 0;
};

// Incremental log-mel with audio::LogMel's contract (push / finish / reset, unnormalized log10
// rows [n, n_mels]); the frames are also kept on the device, appended to device_data() until
// clear_frames(), so the encoder can read them there.
class CudaLogMel {
 public:
  // n_mels: 80 or 128 (invalid_argument otherwise). max_frames: device rows kept between
  // clear_frames() calls (>= 1; 3000 = 30 s), also the most frames one push() may complete.
  static StatusOr<std::unique_ptr<CudaLogMel>> create(int n_mels, int64_t max_frames = 3000,
                                                      const CudaWhisperOptions& options = {});
  ~CudaLogMel();
  CudaLogMel(const CudaLogMel&) = delete;
  CudaLogMel& operator=(const CudaLogMel&) = delete;

  int n_mels() const;
  // As LogMel::push; `out` may be null (frames on the device only). out_of_range, with the
  // stream unchanged, when the new frames would not fit beside the rows already kept.
  Status push(const float* samples, size_t n, std::vector<float>* out);
  // As LogMel::finish (the reflected tail; invalid_argument for <= 200 samples in all).
  Status finish(std::vector<float>* out);
  void reset();  // the stream and the kept rows
  int64_t samples_received() const;
  int64_t frames_emitted() const;

  // Rows kept on the device since the last clear_frames(): [device_frames(), n_mels] f32.
  const float* device_data() const;
  int64_t device_frames() const;
  void clear_frames();
  // Whisper's normalization of the kept rows in place on the device: the maximum over all of
  // them (one reduction), then (max(x, max - 8) + 4) / 4. Returns that maximum. wrong_state
  // when no row is kept.
  StatusOr<float> normalize();
  // The kept rows, copied to the host.
  StatusOr<std::vector<float>> download() const;

 private:
  struct Impl;
  explicit CudaLogMel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// audio::whisper_log_mel on the GPU: the clip plus padding_zeros zero samples, normalized over
// all of it on the device. [(n + padding_zeros) / 160, n_mels].
StatusOr<std::vector<float>> cuda_whisper_log_mel(const float* audio, size_t n, int n_mels, size_t padding_zeros,
                                                  const CudaWhisperOptions& options = {});

class CudaWhisperEncoder {
 public:
  // The encoder part of `w` (hp, conv1/2, enc_pos, enc_blocks, enc_ln_post); `w` may be freed
  // after create(). kUnsupported: no device/cuBLAS, a matrix type without a CUDA kernel, or a
  // head size over the attention kernel's limit; kInvalidArgument for inconsistent shapes.
  static StatusOr<std::unique_ptr<CudaWhisperEncoder>> create(const audio::WhisperWeights& w,
                                                              const CudaWhisperOptions& options = {});
  ~CudaWhisperEncoder();
  CudaWhisperEncoder(const CudaWhisperEncoder&) = delete;
  CudaWhisperEncoder& operator=(const CudaWhisperEncoder&) = delete;

  // As audio::WhisperEncoder::encode: host mel [n_frames, n_mels] -> host [n_frames / 2, d];
  // the same checks (even n_frames in [2, 2 * n_audio_ctx], finite values).
  Status encode(const float* mel, int64_t n_frames, std::vector<float>* out);
  Status encode_before_final_norm(const float* mel, int64_t n_frames, std::vector<float>* out);
  // Device in, device out ([n_frames / 2, d] f32); returns when the result is complete.
  // mel is not scanned for non-finite values here. mel and out must not overlap. The encoder
  // runs on its own non-blocking stream: mel must be complete when this is called (CudaLogMel
  // returns from push/finish/normalize with its work done; synchronize other writers first).
  Status encode_device(const float* mel, int64_t n_frames, float* out, bool final_norm = true);

  int64_t n_state() const;
  int64_t n_mels() const;
  int64_t max_frames() const;  // 2 * n_audio_ctx
  size_t device_weight_bytes() const;

 private:
  struct Impl;
  explicit CudaWhisperEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whisper's text decoder on the GPU: audio::WhisperDecoder's network step for step, behind the
// audio::WhisperTextDecoder interface that whisper_search and WhisperTranscriber drive (so
// `omnirt transcribe --gpu` runs greedy and beam search on it unchanged).
//
//   OMNI_ASSIGN_OR_RETURN(auto dec, CudaWhisperDecoder::create(weights, pool));
//   dec->set_audio(encoder_out.data(), 1500);     // cross-attention K/V of every layer, once
//   auto tokens = audio::whisper_search(*dec, weights, prompt, options);
//
// Weights are uploaded once at create() in their stored type (every matrix type the matvec
// kernels read). Every matrix runs through cuda::launch_matvec (f32 accumulation, up to
// kMatvecMaxTokens rows per launch: a longer prompt goes through in chunks of that many
// tokens), attention through cuda::launch_attn_full (f32, exact softmax) over f32 caches, so
// the logits equal the CPU decoder's to f32 rounding (the bound is asserted in
// tests/cuda_whisper_test.cpp). Hypotheses' self-attention caches live in device slots
// ([2, n_text_layer, n_text_ctx, n_text_state] f32 each); reset_slots() sizes them, the only
// device allocation after create(). Logits come back to the host for the search's rules.
// Without CUDA (or without a device) create() returns kUnsupported with the reason.
// Thread-safety: one thread at a time per object.
class CudaWhisperDecoder : public audio::WhisperTextDecoder {
 public:
  // The decoder part of `w` (token_embedding, dec_pos, dec_blocks, dec_ln); `w` may be freed
  // after create(). `pool` (kept) runs the search's host work. kUnsupported: no device, or a
  // matrix type without a CUDA kernel, or a head size over launch_attn_full's limit;
  // kInvalidArgument for inconsistent shapes.
  static StatusOr<std::unique_ptr<CudaWhisperDecoder>> create(const audio::WhisperWeights& w, ThreadPool& pool,
                                                              const CudaWhisperOptions& options = {});
  ~CudaWhisperDecoder() override;
  CudaWhisperDecoder(const CudaWhisperDecoder&) = delete;
  CudaWhisperDecoder& operator=(const CudaWhisperDecoder&) = delete;

  Status set_audio(const float* encoder_out, int64_t n_audio) override;
  Status reset_slots(int n_slots) override;
  Status decode_slot(int slot, const int32_t* tokens, int64_t n, float* logits) override;
  Status decode_slots(const int* slots, const int32_t* tokens, int64_t n, float* logits) override;
  Status copy_slot(int dst, int src) override;
  ThreadPool& pool() const override;

  // As decode_slot, with the logits of every token: [n, n_vocab].
  Status decode_slot_all(int slot, const int32_t* tokens, int64_t n, float* logits);
  size_t device_weight_bytes() const;

 private:
  struct Impl;
  explicit CudaWhisperDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace omni
