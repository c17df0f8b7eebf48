#include "audio/whisper/whisper_transcriber.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "audio/features/log_mel.h"

namespace omni::audio {
namespace {

constexpr int64_t kWindowFrames = 3000;                       // 30 s of 10 ms frames
constexpr size_t kWindowSamples = 30 * kWhisperSampleRate;  // 480000

// GPT-2's bytes_to_unicode, inverted: code point -> byte, -1 if the point is no byte's symbol.
int byte_of_symbol(uint32_t cp) {
  auto printable = [](uint32_t b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); };
  if (cp < 256) return printable(cp) ? static_cast<int>(cp) : -1;
  uint32_t n = 0;  // the others are numbered 256, 257, ... in byte order
  for (uint32_t b = 0; b < 256; ++b) {
    if (printable(b)) continue;
    if (256 + n == cp) return static_cast<int>(b);
    ++n;
  }
  return -1;
}

// Appends the bytes a token's symbols stand for. Invalid UTF-8 or foreign symbols pass through.
void append_token_bytes(const std::string& symbols, std::string* out) {
  for (size_t i = 0; i < symbols.size();) {
    const auto c = static_cast<unsigned char>(symbols[i]);
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0xC0 && c < 0xE0 && i + 1 < symbols.size()) {
      cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(symbols[i + 1]) & 0x3Fu);
      len = 2;
    }
    const int b = byte_of_symbol(cp);
    if (b >= 0) out->push_back(static_cast<char>(b));
    else out->append(symbols, i, len);
    i += len;
  }
}

}  // namespace

WhisperTranscriber::WhisperTranscriber(const WhisperWeights& w, ThreadPool& pool)
    : w_(w), encoder_(w, pool), decoder_(w, pool) {}

std::vector<int32_t> WhisperTranscriber::prompt() const {
  std::vector<int32_t> p{w_.vocab.sot};
  if (w_.vocab.multilingual) {
    p.push_back(w_.vocab.sot + 1);  // <|en|>, the first language token
    p.push_back(w_.vocab.transcribe);
  }
  p.push_back(w_.vocab.no_timestamps);
  return p;
}

StatusOr<std::vector<int32_t>> WhisperTranscriber::decode_window(const float* mel, int64_t n_frames,
                                                                 const WhisperDecodeOptions& opt) {
  OMNI_RETURN_IF_ERROR(encoder_.encode(mel, n_frames, &encoded_));
  OMNI_RETURN_IF_ERROR(decoder_.set_audio(encoded_.data(), n_frames / 2));
  WhisperTextCache cache = decoder_.new_cache();
  const std::vector<int32_t> p = prompt();
  logits_.resize(static_cast<size_t>(w_.hp.n_vocab));
  OMNI_RETURN_IF_ERROR(decoder_.decode(cache, p.data(), static_cast<int64_t>(p.size()), logits_.data()));
  std::vector<int32_t> out;
  const float kMasked = -std::numeric_limits<float>::infinity();
  while (true) {
    for (int32_t id : w_.vocab.suppress_tokens) logits_[id] = kMasked;
    if (out.empty() && opt.suppress_blank)
      for (int32_t id : w_.vocab.suppress_tokens_begin) logits_[id] = kMasked;
    const int32_t next = static_cast<int32_t>(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
    if (next == w_.vocab.eot) break;
    out.push_back(next);
    if (static_cast<int>(out.size()) >= opt.max_new_tokens || cache.n_past >= w_.hp.n_text_ctx) break;
    OMNI_RETURN_IF_ERROR(decoder_.decode(cache, &next, 1, logits_.data()));
  }
  return out;
}

std::string WhisperTranscriber::detokenize(const std::vector<int32_t>& tokens) const {
  std::string text;
  for (int32_t t : tokens) {
    if (t < 0 || t >= w_.vocab.eot || static_cast<size_t>(t) >= w_.vocab.tokens.size()) continue;
    append_token_bytes(w_.vocab.tokens[static_cast<size_t>(t)], &text);
  }
  return text;
}

StatusOr<std::string> WhisperTranscriber::transcribe(const float* audio, size_t n, const WhisperDecodeOptions& opt,
                                                     const std::function<void(const std::string&)>& on_window) {
  if (n == 0) return std::string();
  OMNI_ASSIGN_OR_RETURN(std::vector<float> mel,
                        whisper_log_mel(audio, n, static_cast<int>(w_.hp.n_mels), kWindowSamples));
  const int64_t n_mels = w_.hp.n_mels;
  const int64_t content_frames = static_cast<int64_t>(n / kWhisperHop);
  std::string text;
  for (int64_t seek = 0; seek < std::max<int64_t>(content_frames, 1); seek += kWindowFrames) {
    // mel holds content + 3000 padding frames, so every window is whole.
    OMNI_ASSIGN_OR_RETURN(std::vector<int32_t> tokens,
                          decode_window(mel.data() + seek * n_mels, kWindowFrames, opt));
    const std::string piece = detokenize(tokens);
    if (on_window) on_window(piece);
    text += piece;
  }
  return text;
}

}  // namespace omni::audio
