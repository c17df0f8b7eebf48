// Speech to text with a Whisper model: log-mel of the whole clip (30 s of zeros appended, as
// openai-whisper's transcribe() does), then for each 30-second window the encoder and a greedy
// decoder (timestamps off: prompt <|startoftranscript|> [language, <|transcribe|>]
// <|notimestamps|>), suppressing the model's suppress_tokens at every step and " "/eot at the
// first, as CTranslate2 / faster-whisper do with beam_size 1, temperature 0.
//
//   WhisperTranscriber tr(model_weights, pool);
//   auto text = tr.transcribe(samples.data(), samples.size(), {}, [](const std::string& t) {
//     std::fputs(t.c_str(), stdout);  // each window's text as soon as it is decoded
//   });
//
// Thread-safety: one thread at a time per transcriber; weights may be shared.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "audio/whisper/whisper_decoder.h"
#include "audio/whisper/whisper_encoder.h"
#include "audio/whisper/whisper_weights.h"
#include "kernels/core/status.h"

namespace omni::audio {

struct WhisperDecodeOptions {
  int max_new_tokens = 224;   // per 30 s window (openai-whisper's sample_len: n_text_ctx / 2)
  bool suppress_blank = true;
};

class WhisperTranscriber {
 public:
  WhisperTranscriber(const WhisperWeights& w, ThreadPool& pool);

  // audio: 16 kHz mono f32. on_window (optional) gets each window's text as it is decoded.
  // invalid_argument for non-finite samples; an empty clip gives "".
  StatusOr<std::string> transcribe(const float* audio, size_t n, const WhisperDecodeOptions& opt = {},
                                   const std::function<void(const std::string&)>& on_window = {});
  // One window: mel [n_frames, n_mels] (normalized, n_frames even) -> text tokens (no prompt,
  // no eot).
  StatusOr<std::vector<int32_t>> decode_window(const float* mel, int64_t n_frames,
                                               const WhisperDecodeOptions& opt = {});
  // The prompt for timestamp-free English transcription.
  std::vector<int32_t> prompt() const;
  // Token ids -> UTF-8 text (GPT-2 byte-level symbols mapped back to bytes); special and
  // timestamp tokens (>= eot) are skipped.
  std::string detokenize(const std::vector<int32_t>& tokens) const;

 private:
  const WhisperWeights& w_;
  WhisperEncoder encoder_;
  WhisperDecoder decoder_;
  std::vector<float> encoded_, logits_;
};

}  // namespace omni::audio
