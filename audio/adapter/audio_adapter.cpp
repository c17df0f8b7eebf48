#include "audio/adapter/audio_adapter.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/ops_cpu.h"

namespace omni::audio {
namespace {

enum Slot : size_t { kPooled = whisper::Scratch::kFirstFreeSlot };

}  // namespace

const char* audio_projector_name(AudioProjector p) {
  return p == AudioProjector::kUltravox ? "ultravox" : "qwen2a";
}

AudioEncoder::AudioEncoder(const AudioEncoderWeights& w, ThreadPool& pool)
    : w_(w), pool_(pool), encoder_(w.whisper, pool) {}

Status AudioEncoder::encode(const float* mel, int64_t n_frames, std::vector<float>* rows) {
  if (w_.adapter.type == AudioProjector::kUltravox) {
    OMNI_RETURN_IF_ERROR(encoder_.encode(mel, n_frames, &frames_));
  } else {
    // Qwen2-Audio pools the residual stream first; its final norm comes after (project()).
    OMNI_RETURN_IF_ERROR(encoder_.encode_before_final_norm(mel, n_frames, &frames_));
  }
  return project(frames_.data(), n_frames / 2, rows);
}

Status AudioEncoder::project(const float* frames, int64_t n, std::vector<float>* rows) {
  const AudioAdapterWeights& a = w_.adapter;
  const int64_t d = a.n_in, n_rows = a.rows_for_frames(n);
  if (n < 1 || n_rows < 1)
    return invalid_argument(fmt("audio adapter (%s): %lld encoder frames make no row (a row needs %lld)",
                                audio_projector_name(a.type), static_cast<long long>(n),
                                static_cast<long long>(a.frames_per_row())));
  rows->resize(static_cast<size_t>(n_rows * a.n_embd_out));
  if (a.type == AudioProjector::kQwen2Audio) {
    // AvgPool1d(2, 2) over time, then the final layer norm, then the linear projection.
    float* pooled = scratch_.get(kPooled, static_cast<size_t>(n_rows * d));
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* f0 = frames + 2 * r * d;
      for (int64_t i = 0; i < d; ++i) pooled[r * d + i] = (f0[i] + f0[d + i]) * 0.5f;
    }
    whisper::layer_norm(pool_, pooled, a.pooled_ln, pooled, n_rows, d);
    whisper::linear(pool_, a.fc, pooled, n_rows, rows->data(), scratch_);
    return Status::Ok();
  }
  // Ultravox: stack k frames per row (zero frames pad the last group), RMSNorm.
  const int64_t kd = a.stack * d, h = a.fc1.n_out, h2 = h / 2;
  grouped_.assign(static_cast<size_t>(n_rows * kd), 0.0f);
  std::memcpy(grouped_.data(), frames, static_cast<size_t>(n * d) * sizeof(float));
  for (int64_t r = 0; r < n_rows; ++r)
    cpu::rms_norm(grouped_.data() + r * kd, a.norm_pre.data(), grouped_.data() + r * kd, kd, a.rms_eps);
  hidden_.resize(static_cast<size_t>(n_rows * h));
  whisper::linear(pool_, WhisperLinear{a.fc1, {}}, grouped_.data(), n_rows, hidden_.data(), scratch_);
  // SwiGLU with Ultravox's halves: x = first half, gate = second; silu(gate) * x, packed to [n, h/2].
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* x = hidden_.data() + r * h;
    float* y = hidden_.data() + r * h2;  // writes never pass the reads of this row
    for (int64_t i = 0; i < h2; ++i) {
      const float g = x[h2 + i];
      y[i] = x[i] * (g / (1.0f + std::exp(-g)));
    }
    cpu::rms_norm(y, a.norm_mid.data(), y, h2, a.rms_eps);
  }
  whisper::linear(pool_, WhisperLinear{a.fc2, {}}, hidden_.data(), n_rows, rows->data(), scratch_);
  return Status::Ok();
}

}  // namespace omni::audio
