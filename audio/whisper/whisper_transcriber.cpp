#include "audio/whisper/whisper_transcriber.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <utility>

#include "audio/features/log_mel.h"

namespace omni::audio {
namespace {

constexpr int64_t kWindowFrames = 3000;                       // 30 s of 10 ms frames
constexpr size_t kWindowSamples = 30 * kWhisperSampleRate;  // 480000

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

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

WhisperTranscriber::WhisperTranscriber(const WhisperWeights& w, ThreadPool& pool, WhisperBackend backend)
    : w_(w), encoder_(w, pool), decoder_(w, pool), backend_(std::move(backend)) {}

std::vector<int32_t> WhisperTranscriber::prompt() const {
  auto p = whisper_prompt(w_.vocab, {});
  return p.ok() ? *p : std::vector<int32_t>{};
}

StatusOr<std::vector<int32_t>> WhisperTranscriber::prompt(const WhisperDecodeOptions& opt) const {
  WhisperPromptOptions po;
  po.language = opt.language;
  po.translate = opt.translate;
  po.timestamps = opt.timestamps;
  return whisper_prompt(w_.vocab, po);
}

StatusOr<std::vector<int32_t>> WhisperTranscriber::decode_window(const float* mel, int64_t n_frames,
                                                                 const WhisperDecodeOptions& opt) {
  OMNI_ASSIGN_OR_RETURN(std::vector<int32_t> p, prompt(opt));
  const double t0 = seconds_now();
  if (backend_.encode) {
    OMNI_RETURN_IF_ERROR(backend_.encode(mel, n_frames, &encoded_));
  } else {
    OMNI_RETURN_IF_ERROR(encoder_.encode(mel, n_frames, &encoded_));
  }
  const double t1 = seconds_now();
  stats_.encode_s += t1 - t0;
  ++stats_.windows;
  struct AddDecodeTime {
    WhisperStats& s;
    double t;
    ~AddDecodeTime() { s.decode_s += seconds_now() - t; }
  } add_decode_time{stats_, t1};
  WhisperTextDecoder& decoder = backend_.decoder ? *backend_.decoder : decoder_;
  OMNI_RETURN_IF_ERROR(decoder.set_audio(encoded_.data(), n_frames / 2));
  WhisperSearchOptions so;
  so.beam_size = opt.beam_size;
  so.patience = opt.patience;
  so.length_penalty = opt.length_penalty;
  so.suppress_blank = opt.suppress_blank;
  so.timestamps = opt.timestamps;
  so.max_new_tokens = opt.max_new_tokens;
  return whisper_search(decoder, w_, p, so);
}

std::string WhisperTranscriber::detokenize(const std::vector<int32_t>& tokens) const {
  std::string text;
  for (int32_t t : tokens) {
    if (t < 0 || t >= w_.vocab.eot || static_cast<size_t>(t) >= w_.vocab.tokens.size()) continue;
    append_token_bytes(w_.vocab.tokens[static_cast<size_t>(t)], &text);
  }
  return text;
}

StatusOr<std::vector<WhisperSegment>> WhisperTranscriber::transcribe_segments(
    const float* audio, size_t n, const WhisperDecodeOptions& opt,
    const std::function<void(const WhisperSegment&)>& on_segment) {
  std::vector<WhisperSegment> out;
  if (n == 0) return out;
  if (!(opt.chunk_seconds >= 0) || opt.chunk_seconds > 30)
    return invalid_argument(fmt("whisper: chunk of %g s (need 0 = off, or up to 30 s)", opt.chunk_seconds));
  const int64_t n_mels = w_.hp.n_mels;
  if (opt.chunk_seconds > 0) {
    // Fixed chunks, each its own clip (its own log-mel normalization, as a live stream has).
    const auto chunk = static_cast<size_t>(opt.chunk_seconds * kWhisperSampleRate);
    if (chunk < 2 * kWhisperHop) return invalid_argument(fmt("whisper: chunk of %g s is too short", opt.chunk_seconds));
    WhisperDecodeOptions one = opt;
    one.chunk_seconds = 0;
    for (size_t at = 0; at < n; at += chunk) {
      const size_t len = std::min(chunk, n - at);
      std::vector<WhisperSegment> segs;
      if (opt.encode_chunk_only) {
        const double t_mel = seconds_now();
        OMNI_ASSIGN_OR_RETURN(std::vector<float> mel,
                              whisper_log_mel(audio + at, len, static_cast<int>(n_mels), 0));
        stats_.mel_s += seconds_now() - t_mel;
        stats_.mel_samples += static_cast<int64_t>(len);
        int64_t frames = std::max<int64_t>(2, static_cast<int64_t>(len / kWhisperHop) & ~int64_t{1});
        mel.resize(static_cast<size_t>(frames * n_mels), 0.0f);
        OMNI_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, decode_window(mel.data(), frames, one));
        int64_t advance = 0;
        segs = whisper_split_segments(w_.vocab, tokens, 0.0, frames, &advance);
      } else {
        OMNI_ASSIGN_OR_RETURN(segs, transcribe_segments(audio + at, len, one, {}));
      }
      for (WhisperSegment& s : segs) {
        s.start += static_cast<double>(at) / kWhisperSampleRate;
        s.end += static_cast<double>(at) / kWhisperSampleRate;
        s.text = detokenize(s.tokens);
        if (on_segment) on_segment(s);
        out.push_back(std::move(s));
      }
    }
    return out;
  }
  const double t_mel = seconds_now();
  OMNI_ASSIGN_OR_RETURN(std::vector<float> mel,
                        whisper_log_mel(audio, n, static_cast<int>(n_mels), kWindowSamples));
  stats_.mel_s += seconds_now() - t_mel;
  stats_.mel_samples += static_cast<int64_t>(n + kWindowSamples);
  const int64_t content_frames = static_cast<int64_t>(n / kWhisperHop);
  window_.resize(static_cast<size_t>(kWindowFrames * n_mels));
  int64_t seek = 0;
  do {
    // The next frames of speech, zero-padded to a whole window (faster-whisper's pad_or_trim).
    const int64_t segment = std::max<int64_t>(std::min(kWindowFrames, content_frames - seek), 0);
    std::fill(window_.begin(), window_.end(), 0.0f);
    std::copy(mel.begin() + seek * n_mels, mel.begin() + (seek + segment) * n_mels, window_.begin());
    OMNI_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, decode_window(window_.data(), kWindowFrames, opt));
    int64_t advance = 0;
    std::vector<WhisperSegment> segs =
        whisper_split_segments(w_.vocab, tokens, static_cast<double>(seek) * kWhisperHop / kWhisperSampleRate,
                               segment, &advance);
    if (!opt.timestamps) advance = segment;
    for (WhisperSegment& s : segs) {
      s.text = detokenize(s.tokens);
      if (on_segment) on_segment(s);
      out.push_back(std::move(s));
    }
    seek += std::max<int64_t>(advance, 1);  // a window that ends at its first timestamp still moves on
  } while (seek < content_frames);
  return out;
}

StatusOr<std::vector<WhisperSegment>> WhisperTranscriber::transcribe_capture(
    CaptureStream& capture, double window_seconds, const WhisperDecodeOptions& opt,
    const std::function<void(const WhisperSegment&)>& on_segment, const std::atomic<bool>* stop) {
  if (capture.sample_rate() != kWhisperSampleRate)
    return invalid_argument(fmt("whisper: capture at %d Hz (need %d)", capture.sample_rate(), kWhisperSampleRate));
  if (!(window_seconds >= 0.1 && window_seconds <= 30))
    return invalid_argument(fmt("whisper: window of %g s (need 0.1..30)", window_seconds));
  const auto window = static_cast<size_t>(window_seconds * kWhisperSampleRate);
  std::vector<WhisperSegment> out;
  std::vector<float> pending, buf(1600);
  size_t done = 0;  // samples transcribed so far
  auto flush = [&](size_t n) -> Status {
    OMNI_ASSIGN_OR_RETURN(std::vector<WhisperSegment> segs, transcribe_segments(pending.data(), n, opt, {}));
    for (WhisperSegment& s : segs) {
      s.start += static_cast<double>(done) / kWhisperSampleRate;
      s.end += static_cast<double>(done) / kWhisperSampleRate;
      if (on_segment) on_segment(s);
      out.push_back(std::move(s));
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<int64_t>(n));
    done += n;
    return Status::Ok();
  };
  Status device = Status::Ok();
  while (!(stop && stop->load(std::memory_order_relaxed))) {
    auto n = capture.read(buf.data(), buf.size(), 200);
    if (!n.ok()) {
      device = n.status();
      break;
    }
    if (*n == 0 && capture.at_end()) break;
    pending.insert(pending.end(), buf.begin(), buf.begin() + static_cast<int64_t>(*n));
    while (pending.size() >= window) OMNI_RETURN_IF_ERROR(flush(window));
  }
  if (!pending.empty()) OMNI_RETURN_IF_ERROR(flush(pending.size()));
  if (!device.ok()) return device;
  return out;
}

StatusOr<std::string> WhisperTranscriber::transcribe(const float* audio, size_t n, const WhisperDecodeOptions& opt,
                                                     const std::function<void(const std::string&)>& on_window) {
  std::string text;
  OMNI_ASSIGN_OR_RETURN(std::vector<WhisperSegment> segs,
                        transcribe_segments(audio, n, opt, [&](const WhisperSegment& s) {
                          if (on_window) on_window(s.text);
                        }));
  for (const WhisperSegment& s : segs) text += s.text;
  return text;
}

}  // namespace omni::audio
