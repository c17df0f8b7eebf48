// Whisper's decoding rules for one 30-second window: the prompt (sot / language / task /
// timestamps tokens), the logits rules (suppressed tokens, timestamp rules) and greedy or beam
// search over a WhisperTextDecoder (CPU or CUDA), as CTranslate2 does it for faster-whisper (its decoding.cc
// BeamSearch and whisper.cc ApplyTimestampRules), so that tokens match token for token.
//
//   WhisperSearchOptions o;                   // beam 5, patience 1, length penalty 1
//   auto prompt = whisper_prompt(vocab, {.timestamps = true});
//   auto tokens = whisper_search(decoder, weights, *prompt, o);  // after decoder.set_audio()
//
// Thread-safety: stateless functions; the decoder is used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "audio/whisper/whisper_decoder.h"
#include "audio/whisper/whisper_weights.h"
#include "kernels/core/status.h"

namespace omni::audio {

struct WhisperPromptOptions {
  // Multilingual models: a language code ("en", "de", ...; <|xx|> must be in the vocabulary);
  // "" = English. English-only models accept only "" or "en".
  std::string language;
  bool translate = false;   // <|translate|> instead of <|transcribe|> (multilingual only)
  bool timestamps = false;  // false: end with <|notimestamps|>
};

// English-only: <|startoftranscript|> [<|notimestamps|>]. Multilingual:
// <|startoftranscript|> <|lang|> <|transcribe|>/<|translate|> [<|notimestamps|>]
// (openai-whisper's sot_sequence). invalid_argument for an unknown language, or a language or
// translation asked of an English-only model.
StatusOr<std::vector<int32_t>> whisper_prompt(const WhisperVocab& vocab, const WhisperPromptOptions& opt);

struct WhisperSearchOptions {
  int beam_size = 5;           // 1 = greedy (argmax)
  float patience = 1.0f;       // stop when round(beam_size * patience) hypotheses finished
  float length_penalty = 1.0f; // final score = sum log p / length^length_penalty
  bool suppress_blank = true;  // " " and eot not as the first token
  bool timestamps = false;     // apply the timestamp rules (the prompt has no <|notimestamps|>)
  int max_initial_timestamp_index = 50;  // first timestamp <= 50 * 20 ms = 1 s
  int max_new_tokens = 224;    // per window, eot included (n_text_ctx / 2)
};

// Applies, in CTranslate2's order, the suppressed tokens, the first-step suppression and (with
// timestamps) the timestamp rules to the logits [n_vocab] of a hypothesis that has generated
// `seq` so far (after the prompt). Suppressed entries become -inf.
void whisper_process_logits(const WhisperVocab& vocab, int64_t n_vocab, const WhisperSearchOptions& opt,
                            const std::vector<int32_t>& seq, float* logits);

// Decodes one window: the prompt, then greedy or beam search. Returns the generated tokens
// without the prompt and without eot (timestamp tokens included when opt.timestamps).
// Needs decoder.set_audio() first; uses slots [0, 2 * beam_size) (reset here); invalid_argument
// for beam_size outside [1, 16].
StatusOr<std::vector<int32_t>> whisper_search(WhisperTextDecoder& decoder, const WhisperWeights& w,
                                              const std::vector<int32_t>& prompt,
                                              const WhisperSearchOptions& opt);

// A stretch of text between two timestamps of one window (seconds from the clip's start).
struct WhisperSegment {
  double start = 0, end = 0;
  std::vector<int32_t> tokens;  // with their timestamp tokens
  std::string text;             // filled by WhisperTranscriber
};

// Splits a window's tokens into segments at consecutive timestamp tokens, as faster-whisper's
// _split_segments_by_timestamps (and openai-whisper) do; also returns how many mel frames to
// advance (*seek_advance): to the last complete segment's end, or the whole segment_frames
// when the window ends with a single timestamp or has no timestamp pair.
std::vector<WhisperSegment> whisper_split_segments(const WhisperVocab& vocab, const std::vector<int32_t>& tokens,
                                                   double time_offset, int64_t segment_frames,
                                                   int64_t* seek_advance);

}  // namespace omni::audio
