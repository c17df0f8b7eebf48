// Streaming an utterance into a language model's context while it is spoken: 16 kHz mono PCM
// in, as it arrives -> incremental log-mel -> the audio encoder on fixed chunks of mel frames
// (each chunk one encoder window, positions from 0) -> the adapter -> rows handed to a sink
// (a session's Context::eval_embeddings). At the end of the turn only the last partial chunk
// is left to encode, so the work then does not grow with the utterance (docs/AUDIO.md).
//
//   AudioStream::create(weights, pool, [&](const float* rows, int64_t n) {
//     return ctx->eval_embeddings(rows, n, false); });
//   stream->push(pcm, n);  ...  stream->finish();   // the sink has seen every row
//
// Normalization: Whisper's last log-mel step, max(x, max - 8) then (x + 4) / 4, needs the
// clip's maximum; a chunk is normalized with the running maximum over every frame up to its
// own end (not what arrived after it: the result does not depend on how the PCM was split),
// the only causal choice. It equals Whisper's once the loudest frame has arrived; before that
// only values more than 8 (log10 units) below the running max differ.
// Chunk boundaries fall on adapter groups (2 * frames_per_row mel frames), so a row never
// spans two chunks; the last partial chunk is padded to an even frame count with one zero
// (normalized) frame, and the adapter pads or drops its last group as its family does.
// The Whisper encoder step can be replaced (AudioStreamOptions::frame_encoder: `omnirt voice
// --gpu` runs it on a CudaWhisperEncoder); the adapter then runs on the CPU on its frames.
// Thread-safety: one thread at a time; the weights and pool may be shared with other users
// that do not run concurrently on the same pool.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "audio/adapter/audio_adapter.h"
#include "audio/features/log_mel.h"
#include "kernels/core/status.h"
#include "kernels/core/thread_pool.h"

namespace omni::audio {

// Receives [n_rows, n_embd_out] rows, in order; a non-ok status stops the stream (returned by
// the push()/finish() that called it; reset() to start over).
using AudioRowSink = std::function<Status(const float* rows, int64_t n_rows)>;

// Replaces the stream's Whisper encoder (e.g. a CudaWhisperEncoder; log-mel, normalization,
// chunking and the adapter stay on the CPU): normalized log-mel [n_frames, n_mels] (n_frames
// even) -> encoder frames [n_frames / 2, n_audio_state] into *frames, after the final layer
// norm when final_norm, before it otherwise (Qwen2-Audio's adapter pools first, then norms).
// A non-ok status stops the stream as a sink's does.
using AudioFrameEncoder =
    std::function<Status(const float* mel, int64_t n_frames, bool final_norm, std::vector<float>* frames)>;

struct AudioStreamOptions {
  // Mel frames (10 ms each) per encoder chunk; 0 = the default: chunk_frames_for_ms() of the
  // weights' chunk_ms (the model file's omni.audio_in.chunk_ms), else of kDefaultChunkMs. Must
  // be a multiple of the adapter's group (2 * frames_per_row) and at most 2 * n_audio_ctx
  // (invalid_argument otherwise).
  int64_t chunk_frames = 0;
  // Empty: the CPU encoder (AudioEncoder::encode).
  AudioFrameEncoder frame_encoder = {};
  static constexpr int64_t kDefaultChunkMs = 2000;
};

struct AudioStreamStats {
  int64_t samples = 0, frames = 0, chunks = 0, rows = 0;
  double mel_s = 0, encode_s = 0, sink_s = 0;  // wall seconds spent in each, all calls together
  int64_t finish_frames = 0;                   // mel frames encoded by finish()
  double finish_s = 0;                         // wall seconds of the last finish()
};

// The multiple of the adapter's group of mel frames (2 * frames_per_row, 10 ms each) nearest to
// `ms`, at least one group: what a chunk of `ms` milliseconds becomes.
int64_t chunk_frames_for_ms(const AudioEncoderWeights& w, int64_t ms);

class AudioStream;

// A recording fed as a user speaks it (benchmarks, `omnirt voice --input`): 16 kHz pcm [0, n)
// in blocks of `block` samples; paced, a block goes in once its last sample has been spoken
// (real time from t0), else at once. Returns the first failing push's status. The user's last
// sample was spoken at spoken_at(t0, n): a clock started there counts the time a push that
// completed a chunk kept the stream behind.
Status push_paced(AudioStream& s, const float* pcm, size_t n, size_t block, std::chrono::steady_clock::time_point t0,
                  bool paced);
std::chrono::steady_clock::time_point spoken_at(std::chrono::steady_clock::time_point t0, size_t n);

class AudioStream {
 public:
  // The weights and pool outlive the stream.
  static StatusOr<std::unique_ptr<AudioStream>> create(const AudioEncoderWeights& w, ThreadPool& pool,
                                                       AudioRowSink sink, const AudioStreamOptions& opt = {});
  // Appends samples; encodes and sinks every chunk they complete. invalid_argument for a
  // non-finite sample (nothing consumed); wrong_state after finish() or a failed call.
  Status push(const float* pcm, size_t n);
  // End of the turn: the mel tail, the remaining full chunks and the last partial one.
  // invalid_argument when fewer than 201 samples arrived in all (no complete frame).
  Status finish();
  // Ready for the next turn (stats are kept; counters of the next turn add to them).
  void reset();

  int64_t chunk_frames() const { return chunk_frames_; }
  // Rows a chunk of chunk_frames() frames gives.
  int64_t rows_per_chunk() const { return encoder_.rows_for_mel_frames(chunk_frames_); }
  const AudioStreamStats& stats() const { return stats_; }
  // True after finish() or after a call that failed past its input checks (the encoder or the
  // sink refused); push() and finish() then return wrong_state until reset().
  bool closed() const { return done_; }

 private:
  AudioStream(const AudioEncoderWeights& w, ThreadPool& pool, AudioRowSink sink, AudioFrameEncoder frame_encoder,
              int64_t chunk_frames, std::unique_ptr<LogMel> mel);
  // Normalizes, encodes and sinks `n` raw frames from pending_ (n <= chunk_frames_).
  Status encode_chunk(int64_t n);
  Status drain_full_chunks();

  const AudioEncoderWeights& w_;
  AudioEncoder encoder_;
  AudioRowSink sink_;
  AudioFrameEncoder frame_encoder_;
  int64_t chunk_frames_;
  std::unique_ptr<LogMel> mel_;
  std::vector<float> pending_;  // raw log10 frames not yet encoded [n, n_mels]
  std::vector<float> chunk_, rows_, frames_;  // frames_: frame_encoder_'s output
  float running_max_;
  bool done_ = false;  // finished or failed
  AudioStreamStats stats_;
};

}  // namespace omni::audio
