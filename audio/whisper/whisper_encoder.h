// Whisper's audio encoder on the CPU: conv1d(n_mels -> d, k3) + GELU, conv1d(d -> d, k3,
// stride 2) + GELU, + sinusoidal positions, n_audio_layer pre-LN transformer blocks
// (self-attention without a mask, GELU MLP), final layer norm.
//
//   WhisperEncoder enc(weights, pool);
//   std::vector<float> out;                        // [n_frames / 2, n_audio_state]
//   Status s = enc.encode(mel.data(), 3000, &out); // mel: [n_frames, n_mels], time-major
//
// OpenAI's models always see 3000 frames (30 s, zero audio padded); fewer frames (an even
// number >= 2) encode a shorter window with the first n_frames / 2 positions.
// Thread-safety: one thread at a time per encoder (it owns scratch); the weights may be shared.
#pragma once

#include <vector>

#include "audio/whisper/whisper_ops.h"
#include "audio/whisper/whisper_weights.h"
#include "kernels/core/status.h"
#include "kernels/core/thread_pool.h"

namespace omni::audio {

class WhisperEncoder {
 public:
  WhisperEncoder(const WhisperWeights& w, ThreadPool& pool) : w_(w), pool_(pool) {}
  // invalid_argument unless n_frames is even, >= 2 and <= 2 * n_audio_ctx, and mel is finite.
  Status encode(const float* mel, int64_t n_frames, std::vector<float>* out) {
    return run(mel, n_frames, out, /*final_norm=*/true);
  }
  // The same without the final layer norm (ln_post): the residual stream after the last block,
  // for adapters that pool before that norm (Qwen2-Audio). Same checks, same ops in the same
  // order, so encode() == this followed by layer_norm(enc_ln_post) bit for bit.
  Status encode_before_final_norm(const float* mel, int64_t n_frames, std::vector<float>* out) {
    return run(mel, n_frames, out, /*final_norm=*/false);
  }

 private:
  Status run(const float* mel, int64_t n_frames, std::vector<float>* out, bool final_norm);

  const WhisperWeights& w_;
  ThreadPool& pool_;
  whisper::Scratch scratch_;
};

}  // namespace omni::audio
