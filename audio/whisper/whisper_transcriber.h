// Speech to text with a Whisper model, window by window as faster-whisper (and openai-whisper's
// transcribe()) do at temperature 0: log-mel of the whole clip; each window is the next
// min(3000, frames left) frames, zero-padded (in the normalized log-mel) to 3000; encoder;
// prompt (whisper_prompt: sot [language task] [<|notimestamps|>]); greedy or beam search with
// the model's suppressed tokens (whisper_search). Without timestamps a window advances 30 s;
// with them, to the end of its last complete segment.
// chunk_seconds > 0 instead cuts the audio into fixed chunks decoded independently (each one
// zero-padded to a 30 s window, or with encode_chunk_only the encoder sees only its frames):
// live capture works like this; docs/WHISPER.md measures what it costs.
//
//   WhisperTranscriber tr(model_weights, pool);
//   auto text = tr.transcribe(samples.data(), samples.size(), {}, [](const std::string& t) {
//     std::fputs(t.c_str(), stdout);  // each window's text as soon as it is decoded
//   });
//
// Thread-safety: one thread at a time per transcriber; weights may be shared.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "audio/io/device.h"
#include "audio/whisper/whisper_decoder.h"
#include "audio/whisper/whisper_encoder.h"
#include "audio/whisper/whisper_search.h"
#include "audio/whisper/whisper_weights.h"
#include "kernels/core/status.h"

namespace omni::audio {

struct WhisperDecodeOptions {
  int max_new_tokens = 224;   // per 30 s window (openai-whisper's sample_len: n_text_ctx / 2)
  bool suppress_blank = true;
  int beam_size = 5;          // faster-whisper's default; 1 = greedy
  float patience = 1.0f;
  float length_penalty = 1.0f;
  bool timestamps = false;    // timestamp tokens and segment times
  std::string language;       // multilingual models ("" = English)
  bool translate = false;     // multilingual models: translate to English
  double chunk_seconds = 0;   // > 0: fixed chunks of this length, decoded independently
  bool encode_chunk_only = false;  // with chunk_seconds: encode the chunk's frames, no padding
};

// Where the time went since construction (wall seconds, summed over calls).
struct WhisperStats {
  double mel_s = 0, encode_s = 0, decode_s = 0;
  int64_t windows = 0, mel_samples = 0;
};

// Replaces the transcriber's CPU networks (`omnirt transcribe --gpu`: CudaWhisperEncoder and
// CudaWhisperDecoder); the log-mel, the search and the text stay on the host. Either part may
// be left empty (the CPU one is used).
struct WhisperBackend {
  // Normalized log-mel [n_frames, n_mels] (n_frames even) -> encoder output [n_frames / 2,
  // n_audio_state], after the final layer norm.
  std::function<Status(const float* mel, int64_t n_frames, std::vector<float>* out)> encode;
  WhisperTextDecoder* decoder = nullptr;  // not owned; must outlive the transcriber
};

class WhisperTranscriber {
 public:
  WhisperTranscriber(const WhisperWeights& w, ThreadPool& pool, WhisperBackend backend = {});

  // audio: 16 kHz mono f32. on_window (optional) gets each window's text as it is decoded.
  // invalid_argument for non-finite samples; an empty clip gives "".
  StatusOr<std::string> transcribe(const float* audio, size_t n, const WhisperDecodeOptions& opt = {},
                                   const std::function<void(const std::string&)>& on_window = {});
  // The same, as segments with times (one per window without timestamps); on_segment gets each
  // as soon as it is decoded. WhisperSegment::text is filled.
  StatusOr<std::vector<WhisperSegment>> transcribe_segments(
      const float* audio, size_t n, const WhisperDecodeOptions& opt = {},
      const std::function<void(const WhisperSegment&)>& on_segment = {});
  // Live audio: reads `capture` (16 kHz; a microphone or a stand-in) until it ends or fails,
  // transcribing each window_seconds (<= 30) of audio as soon as it is complete and the rest at
  // the end; segment times count from the stream's start. A failing device: what was captured
  // is transcribed, then its status returned. `stop` (optional) ends the capture when set.
  StatusOr<std::vector<WhisperSegment>> transcribe_capture(
      CaptureStream& capture, double window_seconds, const WhisperDecodeOptions& opt = {},
      const std::function<void(const WhisperSegment&)>& on_segment = {},
      const std::atomic<bool>* stop = nullptr);
  // One window: mel [n_frames, n_mels] (normalized, n_frames even) -> tokens (no prompt, no eot;
  // timestamp tokens when opt.timestamps).
  StatusOr<std::vector<int32_t>> decode_window(const float* mel, int64_t n_frames,
                                               const WhisperDecodeOptions& opt = {});
  // The prompt for timestamp-free English transcription.
  std::vector<int32_t> prompt() const;
  StatusOr<std::vector<int32_t>> prompt(const WhisperDecodeOptions& opt) const;
  // Token ids -> UTF-8 text (GPT-2 byte-level symbols mapped back to bytes); special and
  // timestamp tokens (>= eot) are skipped.
  std::string detokenize(const std::vector<int32_t>& tokens) const;
  const WhisperStats& stats() const { return stats_; }

 private:
  const WhisperWeights& w_;
  WhisperEncoder encoder_;
  WhisperDecoder decoder_;
  WhisperBackend backend_;
  std::vector<float> encoded_, window_;
  WhisperStats stats_;
};

}  // namespace omni::audio
