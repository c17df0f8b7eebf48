#include "audio/whisper/whisper_encoder.h"

#include <cmath>

#include "kernels/cpu/ops_cpu.h"

namespace omni::audio {
namespace {

enum Slot : size_t {
  kConv1 = whisper::Scratch::kFirstFreeSlot, kNorm, kQ, kK, kV, kKHeads, kVtHeads, kAttn, kMlp,
};

}  // namespace

Status WhisperEncoder::run(const float* mel, int64_t n_frames, std::vector<float>* out, bool final_norm) {
  const WhisperHParams& hp = w_.hp;
  if (n_frames < 2 || n_frames % 2 != 0 || n_frames > 2 * hp.n_audio_ctx)
    return invalid_argument(fmt("whisper encoder: %lld mel frames (need an even count in [2, %lld])",
                                static_cast<long long>(n_frames), static_cast<long long>(2 * hp.n_audio_ctx)));
  for (int64_t i = 0; i < n_frames * hp.n_mels; ++i) {
    if (!std::isfinite(mel[i]))
      return invalid_argument(fmt("whisper encoder: mel value %lld is not finite", static_cast<long long>(i)));
  }
  const int64_t d = hp.n_audio_state, n_tok = n_frames / 2, n_head = hp.n_audio_head;
  const ThreadPool::Spin spin(pool_);  // a burst of jobs: the worker does not sleep between them
  const int64_t head_dim = d / n_head;
  auto buf = [&](size_t slot, int64_t n) { return scratch_.get(slot, static_cast<size_t>(n)); };

  float* c1 = buf(kConv1, n_frames * d);
  whisper::conv1d(pool_, w_.conv1, mel, n_frames, 1, c1, scratch_);
  whisper::gelu_erf(pool_, c1, n_frames * d);
  out->resize(static_cast<size_t>(n_tok * d));
  float* x = out->data();  // the residual stream [n_tok, d]
  whisper::conv1d(pool_, w_.conv2, c1, n_frames, 2, x, scratch_);
  whisper::gelu_erf(pool_, x, n_tok * d);
  cpu::add(x, w_.enc_pos.data(), x, n_tok * d);

  float* h = buf(kNorm, n_tok * d);
  float* q = buf(kQ, n_tok * d);
  float* k = buf(kK, n_tok * d);
  float* v = buf(kV, n_tok * d);
  float* kh = buf(kKHeads, n_tok * d);
  float* vth = buf(kVtHeads, n_tok * d);
  float* attn = buf(kAttn, n_tok * d);
  float* mlp = buf(kMlp, n_tok * 4 * d);
  for (const WhisperBlock& b : w_.enc_blocks) {
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
  if (final_norm) whisper::layer_norm(pool_, x, w_.enc_ln_post, x, n_tok, d);
  return Status::Ok();
}

}  // namespace omni::audio
