#include "audio/adapter/audio_adapter.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/ops_cpu.h"

namespace omni::audio {
namespace {

enum Slot : size_t {
  kConv1 = whisper::Scratch::kFirstFreeSlot, kNorm, kQ, kK, kV, kKHeads, kVtHeads, kAttn, kMlp,
};

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
    OMNI_RETURN_IF_ERROR(encode_blocks(mel, n_frames, &frames_));
  }
  return project(frames_.data(), n_frames / 2, rows);
}

// WhisperEncoder::encode without its last step (ln_post): Qwen2-Audio pools first. The same
// ops in the same order, so the pooled path sees the same numbers as Ultravox's.
Status AudioEncoder::encode_blocks(const float* mel, int64_t n_frames, std::vector<float>* out) {
  const WhisperHParams& hp = w_.whisper.hp;
  if (n_frames < 2 || n_frames % 2 != 0 || n_frames > 2 * hp.n_audio_ctx)
    return invalid_argument(fmt("audio encoder: %lld mel frames (need an even count in [2, %lld])",
                                static_cast<long long>(n_frames), static_cast<long long>(2 * hp.n_audio_ctx)));
  for (int64_t i = 0; i < n_frames * hp.n_mels; ++i) {
    if (!std::isfinite(mel[i]))
      return invalid_argument(fmt("audio encoder: mel value %lld is not finite", static_cast<long long>(i)));
  }
  const WhisperWeights& w = w_.whisper;
  const int64_t d = hp.n_audio_state, n_tok = n_frames / 2, n_head = hp.n_audio_head;
  const int64_t head_dim = d / n_head;
  auto buf = [&](size_t slot, int64_t n) { return scratch_.get(slot, static_cast<size_t>(n)); };
  float* c1 = buf(kConv1, n_frames * d);
  whisper::conv1d(pool_, w.conv1, mel, n_frames, 1, c1, scratch_);
  whisper::gelu_erf(pool_, c1, n_frames * d);
  out->resize(static_cast<size_t>(n_tok * d));
  float* x = out->data();
  whisper::conv1d(pool_, w.conv2, c1, n_frames, 2, x, scratch_);
  whisper::gelu_erf(pool_, x, n_tok * d);
  cpu::add(x, w.enc_pos.data(), x, n_tok * d);
  float* h = buf(kNorm, n_tok * d);
  float* q = buf(kQ, n_tok * d);
  float* k = buf(kK, n_tok * d);
  float* v = buf(kV, n_tok * d);
  float* kh = buf(kKHeads, n_tok * d);
  float* vth = buf(kVtHeads, n_tok * d);
  float* attn = buf(kAttn, n_tok * d);
  float* mlp = buf(kMlp, n_tok * 4 * d);
  for (const WhisperBlock& b : w.enc_blocks) {
    whisper::layer_norm(pool_, x, b.attn_ln, h, n_tok, d);
    whisper::linear(pool_, b.attn.query, h, n_tok, q, scratch_);
    whisper::linear(pool_, b.attn.key, h, n_tok, k, scratch_);
    whisper::linear(pool_, b.attn.value, h, n_tok, v, scratch_);
    whisper::split_heads(k, v, n_tok, n_head, head_dim, kh, vth);
    whisper::attention_full(pool_, q, n_tok, kh, vth, n_tok, n_head, head_dim, attn, scratch_);
    whisper::linear(pool_, b.attn.out, attn, n_tok, h, scratch_);
    cpu::add(x, h, x, n_tok * d);
    whisper::layer_norm(pool_, x, b.mlp_ln, h, n_tok, d);
    whisper::linear(pool_, b.mlp0, h, n_tok, mlp, scratch_);
    whisper::gelu_erf(pool_, mlp, n_tok * 4 * d);
    whisper::linear(pool_, b.mlp2, mlp, n_tok, h, scratch_);
    cpu::add(x, h, x, n_tok * d);
  }
  return Status::Ok();
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
    float* pooled = scratch_.get(kNorm, static_cast<size_t>(n_rows * d));
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
