// The audio adapter of the omni models: Whisper-encoder frames grouped in time and projected
// into a language model's embedding width, and the encoder + adapter as one network
// (AudioEncoder: normalized log-mel in, backbone-space rows out). Two families:
//
//   Ultravox (projector "ultravox"): stack k consecutive encoder frames ([n, d] -> [n/k, k*d],
//     the last group padded with zero frames), RMSNorm (eps 1e-6, weight mm.a.norm_pre),
//     Linear (no bias) -> [H], SwiGLU (x, gate = halves; silu(gate) * x) -> [H/2],
//     RMSNorm (mm.a.norm_mid), Linear (no bias) -> [n_embd_out]. (Ultravox >= v0.5:
//     ln_mid after the first linear; as llama.cpp's clip graph.)
//   Qwen2-Audio (projector "qwen2a"): the encoder's blocks, AvgPool1d(2, 2) over time (an odd
//     last frame is dropped), then the encoder's final layer norm, Linear (with bias).
//
// One adapter row covers rows_per_group() encoder frames = 2 * rows_per_group() mel frames
// (10 ms each): Ultravox k = 8 -> 160 ms, Qwen2-Audio 2 -> 40 ms.
// Thread-safety: AudioAdapterWeights are immutable once filled; an AudioEncoder owns scratch
// (one thread at a time), any number may share the weights.
#pragma once

#include <cstdint>
#include <vector>

#include "audio/whisper/whisper_encoder.h"
#include "audio/whisper/whisper_ops.h"
#include "audio/whisper/whisper_weights.h"
#include "kernels/core/status.h"
#include "kernels/core/thread_pool.h"

namespace omni::audio {

enum class AudioProjector { kUltravox, kQwen2Audio };
const char* audio_projector_name(AudioProjector p);  // "ultravox" / "qwen2a"

struct AudioAdapterWeights {
  AudioProjector type = AudioProjector::kUltravox;
  int64_t n_in = 0;        // encoder width d
  int64_t n_embd_out = 0;  // backbone width
  // Ultravox.
  int64_t stack = 8;                // k
  float rms_eps = 1e-6f;
  std::vector<float> norm_pre;      // [k * d]
  WhisperMatrix fc1;                // [H, k * d]
  std::vector<float> norm_mid;      // [H / 2]
  WhisperMatrix fc2;                // [n_embd_out, H / 2]
  // Qwen2-Audio: the final layer norm (applied after pooling) and the projection.
  WhisperLayerNorm pooled_ln;       // [d]
  WhisperLinear fc;                 // [n_embd_out, d] + bias

  // Encoder frames per output row: k (Ultravox) or 2 (Qwen2-Audio's pooling).
  int64_t frames_per_row() const { return type == AudioProjector::kUltravox ? stack : 2; }
  // Rows made from n encoder frames: ceil(n / k) (Ultravox pads), floor(n / 2) (AvgPool1d).
  int64_t rows_for_frames(int64_t n) const {
    return type == AudioProjector::kUltravox ? (n + stack - 1) / stack : n / 2;
  }
};

// The encoder (Whisper's, from the same file) and its adapter. For Qwen2-Audio, `whisper`'s
// enc_ln_post is the norm the adapter applies after pooling (pooled_ln holds the same values).
struct AudioEncoderWeights {
  WhisperWeights whisper;  // hp and encoder parts only (no decoder, no vocabulary)
  AudioAdapterWeights adapter;
  // The encoder chunk a stream uses unless told otherwise, in ms (key omni.audio_in.chunk_ms;
  // 0: absent, AudioStreamOptions::kDefaultChunkMs). A model trained with a chunked encoder
  // stores its training window; docs/AUDIO.md says what the chunk costs and buys.
  int64_t chunk_ms = 0;
};

class AudioEncoder {
 public:
  AudioEncoder(const AudioEncoderWeights& w, ThreadPool& pool);
  // Normalized log-mel [n_frames, n_mels] -> rows [rows_for_mel_frames(n_frames), n_embd_out].
  // The frames are encoded as one window with positions from 0 (n_frames even, in
  // [2, 2 * n_audio_ctx]: invalid_argument otherwise, or for a non-finite value).
  Status encode(const float* mel, int64_t n_frames, std::vector<float>* rows);
  int64_t rows_for_mel_frames(int64_t n_frames) const {
    return w_.adapter.rows_for_frames(n_frames / 2);
  }
  // Encoder output [n, d] (before the adapter) -> rows; exposed for tests.
  Status project(const float* frames, int64_t n, std::vector<float>* rows);

 private:
  const AudioEncoderWeights& w_;
  ThreadPool& pool_;
  WhisperEncoder encoder_;
  whisper::Scratch scratch_;
  std::vector<float> frames_, grouped_, hidden_;
};

}  // namespace omni::audio
