#include "audio/adapter/audio_stream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

namespace omni::audio {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int64_t chunk_frames_for_ms(const AudioEncoderWeights& w, int64_t ms) {
  const int64_t unit = 2 * w.adapter.frames_per_row();
  return std::max<int64_t>(1, (ms / 10 + unit / 2) / unit) * unit;
}

std::chrono::steady_clock::time_point spoken_at(std::chrono::steady_clock::time_point t0, size_t n) {
  return t0 + std::chrono::microseconds(static_cast<int64_t>(static_cast<double>(n) * 1e6 / 16000));
}

Status push_paced(AudioStream& s, const float* pcm, size_t n, size_t block, std::chrono::steady_clock::time_point t0,
                  bool paced) {
  for (size_t i = 0; i < n; i += block) {
    const size_t m = std::min(block, n - i);
    if (paced) std::this_thread::sleep_until(spoken_at(t0, i + m));
    OMNI_RETURN_IF_ERROR(s.push(pcm + i, m));
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<AudioStream>> AudioStream::create(const AudioEncoderWeights& w, ThreadPool& pool,
                                                           AudioRowSink sink, const AudioStreamOptions& opt) {
  if (!sink) return invalid_argument("audio stream: no row sink");
  const int64_t unit = 2 * w.adapter.frames_per_row(), max_frames = 2 * w.whisper.hp.n_audio_ctx;
  int64_t chunk = opt.chunk_frames;
  if (chunk == 0) {
    chunk = chunk_frames_for_ms(w, w.chunk_ms > 0 ? w.chunk_ms : AudioStreamOptions::kDefaultChunkMs);
    chunk = std::min(chunk, max_frames / unit * unit);
  }
  if (chunk <= 0 || chunk % unit != 0 || chunk > max_frames)
    return invalid_argument(fmt("audio stream: chunk of %lld mel frames (need a positive multiple of %lld, "
                                "the %s adapter's group, at most %lld)",
                                static_cast<long long>(chunk), static_cast<long long>(unit),
                                audio_projector_name(w.adapter.type), static_cast<long long>(max_frames)));
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<LogMel> mel, LogMel::create(static_cast<int>(w.whisper.hp.n_mels)));
  return std::unique_ptr<AudioStream>(
      new AudioStream(w, pool, std::move(sink), opt.frame_encoder, chunk, std::move(mel)));
}

AudioStream::AudioStream(const AudioEncoderWeights& w, ThreadPool& pool, AudioRowSink sink,
                         AudioFrameEncoder frame_encoder, int64_t chunk_frames, std::unique_ptr<LogMel> mel)
    : w_(w), encoder_(w, pool), sink_(std::move(sink)), frame_encoder_(std::move(frame_encoder)),
      chunk_frames_(chunk_frames), mel_(std::move(mel)),
      running_max_(-std::numeric_limits<float>::infinity()) {}

void AudioStream::reset() {
  mel_->reset();
  pending_.clear();
  running_max_ = -std::numeric_limits<float>::infinity();
  done_ = false;
}

Status AudioStream::push(const float* pcm, size_t n) {
  if (done_) return wrong_state("audio stream: push() after finish() or a failed call (reset() first)");
  const auto t0 = std::chrono::steady_clock::now();
  const size_t before = pending_.size();
  OMNI_RETURN_IF_ERROR(mel_->push(pcm, n, &pending_));  // non-finite samples: nothing consumed
  stats_.mel_s += seconds_since(t0);
  stats_.samples += static_cast<int64_t>(n);
  stats_.frames += static_cast<int64_t>((pending_.size() - before) / mel_->n_mels());
  Status st = drain_full_chunks();
  if (!st.ok()) done_ = true;
  return st;
}

Status AudioStream::drain_full_chunks() {
  const int64_t n_mels = mel_->n_mels();
  while (static_cast<int64_t>(pending_.size()) >= chunk_frames_ * n_mels) {
    OMNI_RETURN_IF_ERROR(encode_chunk(chunk_frames_));
  }
  return Status::Ok();
}

Status AudioStream::encode_chunk(int64_t n) {
  const int64_t n_mels = mel_->n_mels();
  const int64_t n_even = n + (n % 2);
  chunk_.assign(pending_.begin(), pending_.begin() + n * n_mels);
  // The maximum over every frame up to this chunk's end: independent of how the PCM was split.
  for (float v : chunk_) running_max_ = std::max(running_max_, v);
  whisper_normalize(chunk_.data(), chunk_.size(), running_max_);
  chunk_.resize(static_cast<size_t>(n_even * n_mels), 0.0f);  // Whisper's pad_or_trim pads with 0
  pending_.erase(pending_.begin(), pending_.begin() + n * n_mels);
  if (encoder_.rows_for_mel_frames(n_even) == 0) return Status::Ok();  // too short for one row
  auto t0 = std::chrono::steady_clock::now();
  if (!frame_encoder_) {
    OMNI_RETURN_IF_ERROR(encoder_.encode(chunk_.data(), n_even, &rows_));
  } else {
    // What AudioEncoder::encode does, with the frames from the hook: Ultravox stacks normed
    // frames; Qwen2-Audio pools the residual stream and norms after (project()).
    const bool final_norm = w_.adapter.type == AudioProjector::kUltravox;
    OMNI_RETURN_IF_ERROR(frame_encoder_(chunk_.data(), n_even, final_norm, &frames_));
    const int64_t want = n_even / 2 * w_.whisper.hp.n_audio_state;
    if (static_cast<int64_t>(frames_.size()) != want)
      return internal_error(fmt("audio stream: the frame encoder gave %zu values for %lld mel frames (want %lld)",
                                frames_.size(), static_cast<long long>(n_even), static_cast<long long>(want)));
    OMNI_RETURN_IF_ERROR(encoder_.project(frames_.data(), n_even / 2, &rows_));
  }
  stats_.encode_s += seconds_since(t0);
  const int64_t n_rows = static_cast<int64_t>(rows_.size()) / w_.adapter.n_embd_out;
  t0 = std::chrono::steady_clock::now();
  OMNI_RETURN_IF_ERROR(sink_(rows_.data(), n_rows));
  stats_.sink_s += seconds_since(t0);
  stats_.chunks += 1;
  stats_.rows += n_rows;
  return Status::Ok();
}

Status AudioStream::finish() {
  if (done_) return wrong_state("audio stream: finish() after finish() or a failed call (reset() first)");
  const auto t0 = std::chrono::steady_clock::now();
  done_ = true;
  const size_t before = pending_.size();
  OMNI_RETURN_IF_ERROR(mel_->finish(&pending_));
  const int64_t n_mels = mel_->n_mels();
  stats_.frames += static_cast<int64_t>((pending_.size() - before) / n_mels);
  stats_.finish_frames = static_cast<int64_t>(pending_.size()) / n_mels;
  OMNI_RETURN_IF_ERROR(drain_full_chunks());
  if (!pending_.empty()) OMNI_RETURN_IF_ERROR(encode_chunk(static_cast<int64_t>(pending_.size()) / n_mels));
  stats_.finish_s = seconds_since(t0);
  return Status::Ok();
}

}  // namespace omni::audio
