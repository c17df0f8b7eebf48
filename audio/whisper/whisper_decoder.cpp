#include "audio/whisper/whisper_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/ops_cpu.h"

namespace omni::audio {
namespace {

enum Slot : size_t {
  kX = whisper::Scratch::kFirstFreeSlot, kNorm, kQ, kK, kV, kAttn, kMlp, kAttnScratch, kLast,
};

}  // namespace

void WhisperTextCache::copy_from(const WhisperTextCache& other) {
  n_layer = other.n_layer;
  n_ctx = other.n_ctx;
  d = other.d;
  n_past = other.n_past;
  k.resize(other.k.size());
  v.resize(other.v.size());
  const auto room = static_cast<size_t>(n_ctx * d);
  for (size_t l = 0; l < k.size(); ++l) {
    k[l].reserve(room);  // no-op for caches made by new_cache()
    v[l].reserve(room);
    k[l].assign(other.k[l].begin(), other.k[l].end());
    v[l].assign(other.v[l].begin(), other.v[l].end());
  }
}

Status WhisperDecoder::set_audio(const float* encoder_out, int64_t n_audio) {
  const WhisperHParams& hp = w_.hp;
  if (n_audio < 1 || n_audio > hp.n_audio_ctx)
    return invalid_argument(fmt("whisper decoder: %lld audio positions (need 1..%lld)",
                                static_cast<long long>(n_audio), static_cast<long long>(hp.n_audio_ctx)));
  const int64_t d = hp.n_text_state, n_head = hp.n_text_head, head_dim = d / n_head;
  n_audio_ = n_audio;
  cross_k_.resize(w_.dec_blocks.size());
  cross_vt_.resize(w_.dec_blocks.size());
  float* k = scratch_.get(kK, static_cast<size_t>(n_audio * d));
  float* v = scratch_.get(kV, static_cast<size_t>(n_audio * d));
  for (size_t l = 0; l < w_.dec_blocks.size(); ++l) {
    const WhisperBlock& b = w_.dec_blocks[l];
    whisper::linear(pool_, b.cross_attn.key, encoder_out, n_audio, k, scratch_);
    whisper::linear(pool_, b.cross_attn.value, encoder_out, n_audio, v, scratch_);
    cross_k_[l].resize(static_cast<size_t>(n_audio * d));
    cross_vt_[l].resize(static_cast<size_t>(n_audio * d));
    whisper::split_heads(k, v, n_audio, n_head, head_dim, cross_k_[l].data(), cross_vt_[l].data());
  }
  return Status::Ok();
}

WhisperTextCache WhisperDecoder::new_cache() const {
  WhisperTextCache c;
  c.n_layer = w_.hp.n_text_layer;
  c.n_ctx = w_.hp.n_text_ctx;
  c.d = w_.hp.n_text_state;
  c.k.resize(static_cast<size_t>(c.n_layer));
  c.v.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    c.k[static_cast<size_t>(l)].reserve(static_cast<size_t>(c.n_ctx * c.d));
    c.v[static_cast<size_t>(l)].reserve(static_cast<size_t>(c.n_ctx * c.d));
  }
  return c;
}

// Makes room for n more rows in every layer of the cache (within the capacity new_cache()
// reserved: no allocation) and returns the first new row's offset.
static int64_t grow_cache(WhisperTextCache& c, int64_t n) {
  const auto rows = static_cast<size_t>((c.n_past + n) * c.d);
  for (size_t l = 0; l < c.k.size(); ++l) {
    c.k[l].resize(rows);
    c.v[l].resize(rows);
  }
  return c.n_past * c.d;
}

Status WhisperDecoder::check_step(const WhisperTextCache& cache, const int32_t* tokens, int64_t n) const {
  const WhisperHParams& hp = w_.hp;
  if (n_audio_ == 0) return wrong_state("whisper decoder: decode() before set_audio()");
  if (n < 1) return invalid_argument(fmt("whisper decoder: %lld tokens", static_cast<long long>(n)));
  if (cache.n_past + n > hp.n_text_ctx)
    return out_of_range(fmt("whisper decoder: %lld + %lld tokens exceed the text context of %lld",
                            static_cast<long long>(cache.n_past), static_cast<long long>(n),
                            static_cast<long long>(hp.n_text_ctx)));
  bool ok = cache.n_ctx == hp.n_text_ctx && cache.d == hp.n_text_state &&
            cache.k.size() == static_cast<size_t>(hp.n_text_layer) && cache.v.size() == cache.k.size();
  for (size_t l = 0; ok && l < cache.k.size(); ++l)
    ok = cache.k[l].size() == static_cast<size_t>(cache.n_past * cache.d) && cache.v[l].size() == cache.k[l].size();
  if (!ok) return invalid_argument("whisper decoder: the cache was not made by this decoder's new_cache()");
  return whisper_check_tokens(tokens, n, hp.n_vocab);
}

Status WhisperDecoder::decode(WhisperTextCache& cache, const int32_t* tokens, int64_t n,
                              float* logits, bool all_logits) {
  const WhisperHParams& hp = w_.hp;
  OMNI_RETURN_IF_ERROR(check_step(cache, tokens, n));
  const int64_t d = hp.n_text_state, n_head = hp.n_text_head, head_dim = d / n_head;
  const ThreadPool::Spin spin(pool_);
  const int64_t pos0 = cache.n_past, d_mlp = 4 * d;
  auto buf = [&](size_t slot, int64_t count) { return scratch_.get(slot, static_cast<size_t>(count)); };
  float* x = buf(kX, n * d);
  float* h = buf(kNorm, n * d);
  float* q = buf(kQ, n * d);
  float* attn = buf(kAttn, n * d);
  float* mlp = buf(kMlp, n * d_mlp);

  const WhisperMatrix& emb = w_.token_embedding;
  const int64_t emb_row = dtype_row_bytes(emb.type, d);
  for (int64_t t = 0; t < n; ++t) {
    cpu::dequantize_row(emb.type, static_cast<const uint8_t*>(emb.data) + tokens[t] * emb_row, x + t * d, d);
    cpu::add(x + t * d, w_.dec_pos.data() + (pos0 + t) * d, x + t * d, d);
  }

  AttentionParams ap;
  ap.n_q = n;
  ap.n_head = n_head;
  ap.n_kv_head = n_head;
  ap.head_dim = head_dim;
  ap.pos0 = pos0;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  ap.kv_type = DType::kF32;
  float* att_scratch = buf(kAttnScratch, cpu::attention_scratch_floats(ap, pool_.n_threads()));
  grow_cache(cache, n);
  for (size_t l = 0; l < w_.dec_blocks.size(); ++l) {
    const WhisperBlock& b = w_.dec_blocks[l];
    float* kc = cache.k[l].data();
    float* vc = cache.v[l].data();
    whisper::layer_norm(pool_, x, b.attn_ln, h, n, d);
    whisper::linear(pool_, b.attn.query, h, n, q, scratch_);
    whisper::linear(pool_, b.attn.key, h, n, kc + pos0 * d, scratch_);
    whisper::linear(pool_, b.attn.value, h, n, vc + pos0 * d, scratch_);
    cpu::attention(pool_, ap, q, kc, vc, attn, att_scratch);
    whisper::linear(pool_, b.attn.out, attn, n, h, scratch_);
    cpu::add(x, h, x, n * d);

    whisper::layer_norm(pool_, x, b.cross_attn_ln, h, n, d);
    whisper::linear(pool_, b.cross_attn.query, h, n, q, scratch_);
    whisper::attention_full(pool_, q, n, cross_k_[l].data(), cross_vt_[l].data(), n_audio_, n_head,
                            head_dim, attn, scratch_);
    whisper::linear(pool_, b.cross_attn.out, attn, n, h, scratch_);
    cpu::add(x, h, x, n * d);

    whisper::layer_norm(pool_, x, b.mlp_ln, h, n, d);
    whisper::linear(pool_, b.mlp0, h, n, mlp, scratch_);
    whisper::gelu_erf(pool_, mlp, n * d_mlp);
    whisper::linear(pool_, b.mlp2, mlp, n, h, scratch_);
    cpu::add(x, h, x, n * d);
  }
  cache.n_past += n;
  const int64_t first = all_logits ? 0 : n - 1, n_out = all_logits ? n : 1;
  whisper::layer_norm(pool_, x + first * d, w_.dec_ln, h, n_out, d);
  float* s = buf(kLast, cpu::matmul_scratch_floats(d, pool_.n_threads()));
  cpu::matmul(pool_, emb.type, emb.data, hp.n_vocab, d, h, n_out, logits, s);
  return Status::Ok();
}

Status WhisperDecoder::decode_beams(WhisperTextCache* const* caches, const int32_t* tokens, int64_t n_beams,
                                    float* logits) {
  const WhisperHParams& hp = w_.hp;
  if (n_beams < 1) return invalid_argument(fmt("whisper decoder: %lld beams", static_cast<long long>(n_beams)));
  for (int64_t b = 0; b < n_beams; ++b) OMNI_RETURN_IF_ERROR(check_step(*caches[b], tokens + b, 1));
  const int64_t d = hp.n_text_state, n_head = hp.n_text_head, head_dim = d / n_head, d_mlp = 4 * d;
  const int64_t n = n_beams;
  auto buf = [&](size_t slot, int64_t count) { return scratch_.get(slot, static_cast<size_t>(count)); };
  float* x = buf(kX, n * d);
  float* h = buf(kNorm, n * d);
  float* q = buf(kQ, n * d);
  float* k = buf(kK, n * d);
  float* v = buf(kV, n * d);
  float* attn = buf(kAttn, n * d);
  float* mlp = buf(kMlp, n * d_mlp);
  const WhisperMatrix& emb = w_.token_embedding;
  const int64_t emb_row = dtype_row_bytes(emb.type, d);
  for (int64_t t = 0; t < n; ++t) {
    cpu::dequantize_row(emb.type, static_cast<const uint8_t*>(emb.data) + tokens[t] * emb_row, x + t * d, d);
    cpu::add(x + t * d, w_.dec_pos.data() + caches[t]->n_past * d, x + t * d, d);
  }
  AttentionParams ap;
  ap.n_q = 1;
  ap.n_head = n_head;
  ap.n_kv_head = n_head;
  ap.head_dim = head_dim;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  ap.kv_type = DType::kF32;
  for (int64_t t = 0; t < n; ++t) ap.pos0 = std::max(ap.pos0, caches[t]->n_past);  // scratch for the longest
  for (int64_t t = 0; t < n; ++t) grow_cache(*caches[t], 1);
  float* att_scratch = buf(kAttnScratch, cpu::attention_scratch_floats(ap, pool_.n_threads()));
  for (size_t l = 0; l < w_.dec_blocks.size(); ++l) {
    const WhisperBlock& b = w_.dec_blocks[l];
    whisper::layer_norm(pool_, x, b.attn_ln, h, n, d);
    whisper::linear(pool_, b.attn.query, h, n, q, scratch_);
    whisper::linear(pool_, b.attn.key, h, n, k, scratch_);
    whisper::linear(pool_, b.attn.value, h, n, v, scratch_);
    for (int64_t t = 0; t < n; ++t) {
      WhisperTextCache& c = *caches[t];
      float* kc = c.k[l].data();
      float* vc = c.v[l].data();
      std::memcpy(kc + c.n_past * d, k + t * d, static_cast<size_t>(d) * sizeof(float));
      std::memcpy(vc + c.n_past * d, v + t * d, static_cast<size_t>(d) * sizeof(float));
      ap.pos0 = c.n_past;
      cpu::attention(pool_, ap, q + t * d, kc, vc, attn + t * d, att_scratch);
    }
    whisper::linear(pool_, b.attn.out, attn, n, h, scratch_);
    cpu::add(x, h, x, n * d);

    whisper::layer_norm(pool_, x, b.cross_attn_ln, h, n, d);
    whisper::linear(pool_, b.cross_attn.query, h, n, q, scratch_);
    whisper::attention_few(pool_, q, n, cross_k_[l].data(), cross_vt_[l].data(), n_audio_, n_head,
                            head_dim, attn, scratch_);
    whisper::linear(pool_, b.cross_attn.out, attn, n, h, scratch_);
    cpu::add(x, h, x, n * d);

    whisper::layer_norm(pool_, x, b.mlp_ln, h, n, d);
    whisper::linear(pool_, b.mlp0, h, n, mlp, scratch_);
    whisper::gelu_erf(pool_, mlp, n * d_mlp);
    whisper::linear(pool_, b.mlp2, mlp, n, h, scratch_);
    cpu::add(x, h, x, n * d);
  }
  for (int64_t t = 0; t < n; ++t) caches[t]->n_past += 1;
  whisper::layer_norm(pool_, x, w_.dec_ln, h, n, d);
  float* s = buf(kLast, cpu::matmul_scratch_floats(d, pool_.n_threads()));
  cpu::matmul(pool_, emb.type, emb.data, hp.n_vocab, d, h, n, logits, s);
  return Status::Ok();
}

Status whisper_check_tokens(const int32_t* tokens, int64_t n, int64_t n_vocab) {
  if (n > 0 && !tokens) return invalid_argument("whisper decoder: null tokens");
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab)
      return invalid_argument(fmt("whisper decoder: token %d at %lld is outside [0, %lld)", tokens[i],
                                  static_cast<long long>(i), static_cast<long long>(n_vocab)));
  }
  return Status::Ok();
}

Status whisper_check_slot(int slot, size_t n_slots) {
  if (slot < 0 || static_cast<size_t>(slot) >= n_slots)
    return out_of_range(fmt("whisper decoder: slot %d is outside [0, %zu)", slot, n_slots));
  return Status::Ok();
}

Status whisper_check_slots(const int* slots, int64_t n, size_t n_slots) {
  if (n > 0 && !slots) return invalid_argument("whisper decoder: null slots");
  for (int64_t b = 0; b < n; ++b) {
    OMNI_RETURN_IF_ERROR(whisper_check_slot(slots[b], n_slots));
    for (int64_t a = 0; a < b; ++a)
      if (slots[a] == slots[b]) return invalid_argument(fmt("whisper decoder: slot %d given twice", slots[b]));
  }
  return Status::Ok();
}

Status WhisperDecoder::reset_slots(int n_slots) {
  if (n_slots < 1) return invalid_argument(fmt("whisper decoder: %d slots", n_slots));
  slots_.resize(static_cast<size_t>(n_slots));
  for (WhisperTextCache& c : slots_) {
    if (c.n_ctx != w_.hp.n_text_ctx || c.d != w_.hp.n_text_state || c.n_layer != w_.hp.n_text_layer) c = new_cache();
    c.n_past = 0;
    for (auto& rows : c.k) rows.clear();  // keeps the reserved room
    for (auto& rows : c.v) rows.clear();
  }
  return Status::Ok();
}

Status WhisperDecoder::decode_slot(int slot, const int32_t* tokens, int64_t n, float* logits) {
  OMNI_RETURN_IF_ERROR(whisper_check_slot(slot, slots_.size()));
  return decode(slots_[static_cast<size_t>(slot)], tokens, n, logits);
}

Status WhisperDecoder::decode_slots(const int* slots, const int32_t* tokens, int64_t n, float* logits) {
  if (n < 1) return invalid_argument(fmt("whisper decoder: %lld beams", static_cast<long long>(n)));
  OMNI_RETURN_IF_ERROR(whisper_check_slots(slots, n, slots_.size()));
  slot_ptrs_.clear();
  for (int64_t b = 0; b < n; ++b) slot_ptrs_.push_back(&slots_[static_cast<size_t>(slots[b])]);
  return decode_beams(slot_ptrs_.data(), tokens, n, logits);
}

Status WhisperDecoder::copy_slot(int dst, int src) {
  OMNI_RETURN_IF_ERROR(whisper_check_slot(dst, slots_.size()));
  OMNI_RETURN_IF_ERROR(whisper_check_slot(src, slots_.size()));
  if (dst != src) slots_[static_cast<size_t>(dst)].copy_from(slots_[static_cast<size_t>(src)]);
  return Status::Ok();
}

}  // namespace omni::audio
