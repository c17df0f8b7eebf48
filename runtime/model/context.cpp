#include "runtime/model/context.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "kernels/cpu/ops_cpu.h"

namespace omni {

StatusOr<std::unique_ptr<Context>> Context::create(const Model& model, const ContextParams& params) {
  const HParams& hp = model.hparams();
  std::unique_ptr<Context> c(new Context());
  c->model_ = &model;
  c->params_ = params;
  c->n_ctx_ = params.n_ctx > 0 ? params.n_ctx : std::min<int64_t>(hp.n_ctx_train, 4096);
  if (params.n_ctx < 0) return invalid_argument(fmt("n_ctx = %lld must be >= 0", (long long)params.n_ctx));
  if (c->n_ctx_ > (int64_t(1) << 22))
    return invalid_argument(fmt("n_ctx = %lld is too large (limit %lld)", (long long)c->n_ctx_, (long long)(1 << 22)));
  if (params.n_batch <= 0 || params.n_batch > 65536)
    return invalid_argument(fmt("n_batch = %lld must be in [1, 65536]", (long long)params.n_batch));
  if (params.kv_type != DType::kF16 && params.kv_type != DType::kF32)
    return invalid_argument(fmt("KV cache type %s is not supported (f16, f32)", dtype_name(params.kv_type)));
  if (params.n_threads < 0 || params.n_threads > 1024)
    return invalid_argument(fmt("n_threads = %d must be in [0, 1024]", params.n_threads));
  int n_threads = params.n_threads;
  if (n_threads == 0) n_threads = std::max(1u, std::thread::hardware_concurrency());
  c->params_.n_ctx = c->n_ctx_;
  c->params_.n_threads = n_threads;
  if (cpu::int8_dot_env()) c->params_.int8_activations = true;
  if (cpu::decode_f32_env()) c->params_.int8x3_decode = false;
  c->pool_ = std::make_unique<ThreadPool>(n_threads);
  c->n_vocab_ = hp.n_vocab;

  const int64_t nb = std::min(params.n_batch, c->n_ctx_);
  c->params_.n_batch = nb;
  const int64_t d = hp.n_embd, q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
  const size_t kv_elem = params.kv_type == DType::kF16 ? 2 : 4;
  try {
    // One block for every layer's K and V, with 2 MiB pages where the kernel gives them (a long
    // context's decode streams it as it streams the weights), touched now so that no decode step
    // takes a page fault.
    const size_t layer_bytes = (static_cast<size_t>(c->n_ctx_ * kv_dim) * kv_elem + 63) / 64 * 64;
    c->kv_ = HugeBuffer(2 * layer_bytes * static_cast<size_t>(hp.n_layer));
    if (!c->kv_.data() && layer_bytes > 0) throw std::bad_alloc();
    if (c->kv_.size()) std::memset(c->kv_.data(), 0, c->kv_.size());
    c->kv_bytes_ = 2 * static_cast<size_t>(c->n_ctx_ * kv_dim) * kv_elem * static_cast<size_t>(hp.n_layer);
    c->k_cache_.resize(static_cast<size_t>(hp.n_layer));
    c->v_cache_.resize(static_cast<size_t>(hp.n_layer));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
      c->k_cache_[il] = c->kv_.data() + 2 * il * layer_bytes;
      c->v_cache_[il] = c->kv_.data() + (2 * il + 1) * layer_bytes;
    }
    c->x_.resize(nb * d);
    c->xn_.resize(nb * d);
    c->q_.resize(nb * q_dim);
    c->k_.resize(nb * kv_dim);
    c->v_.resize(nb * kv_dim);
    c->attn_.resize(nb * q_dim);
    c->ffn_a_.resize(nb * hp.n_ff);
    c->ffn_b_.resize(nb * hp.n_ff);
    c->tmp_.resize(nb * d);
    const int64_t max_in = std::max({d, q_dim, hp.n_ff});
    c->matmul_scratch_.resize(static_cast<size_t>(std::max(cpu::matmul_scratch_floats(max_in, n_threads),
                                                           cpu::matvec_int8_scratch_bytes(max_in) / 4 + 1)));
    AttentionParams ap;
    ap.n_q = nb;
    ap.n_head = hp.n_head;
    ap.n_kv_head = hp.n_head_kv;
    ap.head_dim = hp.head_dim;
    ap.pos0 = c->n_ctx_ - nb;
    ap.kv_type = params.kv_type;
    c->attn_scratch_.resize(static_cast<size_t>(cpu::attention_scratch_floats(ap, n_threads)));
    c->logits_.resize(static_cast<size_t>(c->n_vocab_));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory,
                  fmt("cannot allocate the KV cache and buffers for n_ctx = %lld", (long long)c->n_ctx_));
  }
  return c;
}

Context::~Context() = default;

size_t Context::kv_bytes() const { return kv_bytes_; }

Status Context::rewind(int64_t n) {
  if (n < 0 || n > n_past_)
    return out_of_range(fmt("cannot rewind to %lld: the context holds %lld tokens", (long long)n, (long long)n_past_));
  n_past_ = n;
  return Status::Ok();
}

Status Context::set_step_threads(int n) {
  if (n < 1 || n > pool_->n_threads())
    return invalid_argument(fmt("step threads = %d must be in [1, %d]", n, pool_->n_threads()));
  if (n == pool_->n_threads()) {
    step_pool_.reset();
  } else if (!step_pool_ || step_pool_->n_threads() != n) {
    step_pool_ = std::make_unique<ThreadPool>(n);  // n = 1 starts no thread
  }
  return Status::Ok();
}

Status check_token_ids(std::span<const int32_t> tokens, int64_t n_vocab) {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= n_vocab)
      return out_of_range(fmt("token id %d at index %zu is outside the vocabulary [0, %lld)", tokens[i], i,
                              (long long)n_vocab));
  return Status::Ok();
}

Status check_eval_input(std::span<const int32_t> tokens, int64_t n_past, int64_t n_ctx, int64_t n_vocab) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return invalid_argument("eval needs at least one token");
  if (n_past + n > n_ctx)
    return out_of_range(fmt("%lld tokens do not fit: the context holds %lld of %lld", (long long)n,
                            (long long)n_past, (long long)n_ctx));
  return check_token_ids(tokens, n_vocab);
}

Status check_embedding_input(const float* embd, int64_t n, int64_t n_embd, int64_t n_past, int64_t n_ctx) {
  if (n <= 0) return invalid_argument(fmt("eval needs at least one embedding row (got %lld)", (long long)n));
  if (embd == nullptr) return invalid_argument("embedding rows are null");
  if (n_past + n > n_ctx)
    return out_of_range(fmt("%lld embedding rows do not fit: the context holds %lld of %lld", (long long)n,
                            (long long)n_past, (long long)n_ctx));
  for (int64_t i = 0; i < n * n_embd; ++i) {
    if (!std::isfinite(embd[i]))
      return invalid_argument(fmt("embedding row %lld, column %lld is not finite", (long long)(i / n_embd),
                                  (long long)(i % n_embd)));
  }
  return Status::Ok();
}

Status Context::eval(std::span<const int32_t> tokens, bool all_logits) {
  OMNI_RETURN_IF_ERROR(check_eval_input(tokens, n_past_, n_ctx_, n_vocab_));
  return eval_rows(tokens.data(), nullptr, static_cast<int64_t>(tokens.size()),
                   all_logits ? Output::kAllLogits : Output::kLastLogits);
}

Status Context::eval_embeddings(const float* embd, int64_t n, bool all_logits) {
  OMNI_RETURN_IF_ERROR(check_embedding_input(embd, n, model_->hparams().n_embd, n_past_, n_ctx_));
  return eval_rows(nullptr, embd, n, all_logits ? Output::kAllLogits : Output::kLastLogits);
}

Status Context::eval_embeddings_hidden(const float* embd, int64_t n) {
  OMNI_RETURN_IF_ERROR(check_embedding_input(embd, n, model_->hparams().n_embd, n_past_, n_ctx_));
  return eval_rows(nullptr, embd, n, Output::kHiddenOnly);
}

Status Context::eval_rows(const int32_t* tokens, const float* embd, int64_t n, Output mode) {
  const int64_t d = model_->hparams().n_embd;
  if (mode == Output::kHiddenOnly) {
    for (int64_t begin = 0; begin < n; begin += params_.n_batch) {
      const int64_t len = std::min(params_.n_batch, n - begin);
      forward_chunk(tokens ? tokens + begin : nullptr, embd ? embd + begin * d : nullptr, len, false, nullptr,
                    begin + len == n);
    }
    n_logit_rows_ = 0;
    return Status::Ok();
  }
  const bool all_logits = mode == Output::kAllLogits;
  const int64_t rows = all_logits ? n : 1;
  if (static_cast<int64_t>(logits_.size()) < rows * n_vocab_) {
    try {
      logits_.resize(static_cast<size_t>(rows * n_vocab_));
    } catch (const std::bad_alloc&) {
      return Status(StatusCode::kOutOfMemory, fmt("cannot allocate logits for %lld tokens", (long long)rows));
    }
  }
  for (int64_t begin = 0; begin < n; begin += params_.n_batch) {
    const int64_t len = std::min(params_.n_batch, n - begin);
    const bool last_chunk = begin + len == n;
    float* out = all_logits ? logits_.data() + begin * n_vocab_ : (last_chunk ? logits_.data() : nullptr);
    forward_chunk(tokens ? tokens + begin : nullptr, embd ? embd + begin * d : nullptr, len, all_logits, out);
  }
  n_logit_rows_ = rows;
  return Status::Ok();
}

// One forward pass over n tokens at positions [n_past_, n_past_ + n). Writes K/V for those
// positions, advances n_past_, and, when logits_out is set, writes logits for every token
// (all_logits) or for the last one; with `hidden` (and no logits_out) only the last row's
// final-norm hidden state.
void Context::forward_chunk(const int32_t* tokens, const float* embd, int64_t n, bool all_logits, float* logits_out,
                            bool hidden) {
  const Model& m = *model_;
  const HParams& hp = m.hparams();
  ThreadPool& pool = n == 1 ? step_pool() : *pool_;
  const ThreadPool::Spin spin(pool);  // ~8 jobs per layer with short serial parts between them
  const int64_t d = hp.n_embd, hd = hp.head_dim, n_ff = hp.n_ff;
  const int64_t q_dim = hp.n_head * hd, kv_dim = hp.n_head_kv * hd;
  const int64_t pos0 = n_past_;
  float* ms = matmul_scratch_.data();
  const bool int8 = params_.int8_activations && n == 1;
  const bool x3 = !int8 && params_.int8x3_decode && n == 1;
  const auto ms_bytes = static_cast<int64_t>(matmul_scratch_.size() * sizeof(float));
  auto matmul = [&](const Weight& w, const float* in, float* out) {
    if (int8 && cpu::matvec_int8(pool, w.type, w.data, w.n_out, w.n_in, in, out, ms, ms_bytes)) return;
    if (x3 && cpu::int8x3_decode_faster(w.type) &&
        cpu::matvec_int8x3(pool, w.type, w.data, w.n_out, w.n_in, in, out, ms, ms_bytes))
      return;
    cpu::matmul(pool, w.type, w.data, w.n_out, w.n_in, in, n, out, ms);
  };
  // Row-wise work (norms, RoPE, activations, KV conversion) runs on the pool for prefill
  // chunks; a decode step's single row is cheaper inline than a fork/join. The per-element
  // arithmetic is the same either way, so results do not depend on the thread count.
  auto rows_for = [&](int64_t rows, auto&& body) {  // body(row_begin, row_end)
    if (n < 2 || rows < 4) {
      body(int64_t{0}, rows);
    } else {
      pool.parallel_for(rows, 1, [&](int64_t b, int64_t e, int) { body(b, e); });
    }
  };
  auto norm_rows = [&](const float* in, const std::vector<float>& w, float* out, int64_t rows, int64_t width) {
    rows_for(rows, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) cpu::rms_norm(in + t * width, w.data(), out + t * width, width, hp.norm_eps);
    });
  };
  auto add_bias = [&](float* y, const std::vector<float>& b, int64_t width) {
    if (b.empty()) return;
    for (int64_t t = 0; t < n; ++t) cpu::add(y + t * width, b.data(), y + t * width, width);
  };

  // Input rows: [n, d], token embeddings (scaled) or the caller's rows as given.
  if (embd) {
    std::copy(embd, embd + n * d, x_.data());
  } else {
    const Weight& emb = m.token_embd();
    const int64_t emb_row_bytes = dtype_row_bytes(emb.type, d);
    for (int64_t t = 0; t < n; ++t) {
      const auto* row = static_cast<const uint8_t*>(emb.data) + tokens[t] * emb_row_bytes;
      cpu::dequantize_row(emb.type, row, x_.data() + t * d, d);
      if (hp.embd_scale != 1.0f) cpu::scale(x_.data() + t * d, hp.embd_scale, d);
    }
  }

  const size_t kv_elem = params_.kv_type == DType::kF16 ? 2 : 4;
  for (int64_t il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& L = m.layers()[static_cast<size_t>(il)];
    const bool swa = hp.layer_is_swa[static_cast<size_t>(il)] != 0;

    // Attention block.
    norm_rows(x_.data(), L.attn_norm, xn_.data(), n, d);
    matmul(L.wq, xn_.data(), q_.data());
    matmul(L.wk, xn_.data(), k_.data());
    matmul(L.wv, xn_.data(), v_.data());
    add_bias(q_.data(), L.bq, q_dim);
    add_bias(k_.data(), L.bk, kv_dim);
    add_bias(v_.data(), L.bv, kv_dim);
    if (!L.q_norm.empty()) norm_rows(q_.data(), L.q_norm, q_.data(), n * hp.n_head, hd);
    if (!L.k_norm.empty()) norm_rows(k_.data(), L.k_norm, k_.data(), n * hp.n_head_kv, hd);
    const float base = swa ? hp.rope_freq_base_swa : hp.rope_freq_base;
    const float fscale = swa ? 1.0f : hp.rope_freq_scale;
    rows_for(n, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        cpu::rope_qk(q_.data() + t * q_dim, hp.n_head, k_.data() + t * kv_dim, hp.n_head_kv, hd, hp.rope_dim, pos0 + t,
                     base, fscale, hp.rope_style);
      }
    });
    // Append this chunk's K and V at positions [pos0, pos0 + n).
    uint8_t* kc = k_cache_[static_cast<size_t>(il)];
    uint8_t* vc = v_cache_[static_cast<size_t>(il)];
    if (params_.kv_type == DType::kF32) {
      std::memcpy(kc + pos0 * kv_dim * kv_elem, k_.data(), static_cast<size_t>(n * kv_dim) * kv_elem);
      std::memcpy(vc + pos0 * kv_dim * kv_elem, v_.data(), static_cast<size_t>(n * kv_dim) * kv_elem);
    } else {
      auto* k16 = reinterpret_cast<uint16_t*>(kc) + pos0 * kv_dim;
      auto* v16 = reinterpret_cast<uint16_t*>(vc) + pos0 * kv_dim;
      rows_for(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b * kv_dim; i < e * kv_dim; ++i) {
          k16[i] = f32_to_f16(k_[i]);
          v16[i] = f32_to_f16(v_[i]);
        }
      });
    }
    AttentionParams ap;
    ap.n_q = n;
    ap.n_head = hp.n_head;
    ap.n_kv_head = hp.n_head_kv;
    ap.head_dim = hd;
    ap.pos0 = pos0;
    ap.window = swa ? hp.sliding_window : 0;
    ap.scale = hp.attn_scale;
    ap.kv_type = params_.kv_type;
    cpu::attention(pool, ap, q_.data(), kc, vc, attn_.data(), attn_scratch_.data());
    matmul(L.wo, attn_.data(), tmp_.data());
    if (!L.post_attn_norm.empty()) norm_rows(tmp_.data(), L.post_attn_norm, tmp_.data(), n, d);
    cpu::add(x_.data(), tmp_.data(), x_.data(), n * d);

    // Feed-forward block: down(act(gate(x)) * up(x)).
    norm_rows(x_.data(), L.ffn_norm, xn_.data(), n, d);
    matmul(L.ffn_gate, xn_.data(), ffn_a_.data());
    matmul(L.ffn_up, xn_.data(), ffn_b_.data());
    // Per row, so the vector/scalar split of each row (at a multiple of 16) is the same for
    // every thread count and chunking.
    rows_for(n, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        float* a = ffn_a_.data() + t * n_ff;
        if (hp.ffn_act == FfnActivation::kSilu)
          cpu::silu(a, n_ff);
        else
          cpu::gelu_tanh(a, n_ff);
        cpu::mul(a, ffn_b_.data() + t * n_ff, a, n_ff);
      }
    });
    matmul(L.ffn_down, ffn_a_.data(), tmp_.data());
    if (!L.post_ffn_norm.empty()) norm_rows(tmp_.data(), L.post_ffn_norm, tmp_.data(), n, d);
    cpu::add(x_.data(), tmp_.data(), x_.data(), n * d);
  }
  n_past_ += n;

  if (!logits_out && !hidden) return;
  // Output head on every row (all_logits) or on the last row only.
  const int64_t first = all_logits ? 0 : n - 1, rows = n - first;
  norm_rows(x_.data() + first * d, m.output_norm(), xn_.data(), rows, d);
  last_hidden_ = xn_.data() + (rows - 1) * d;
  if (!logits_out) return;
  const Weight& out = m.output();
  if (n == 1) {  // a decode step: the same matvec paths as the layers
    matmul(out, xn_.data(), logits_out);
  } else {
    cpu::matmul(pool, out.type, out.data, out.n_out, out.n_in, xn_.data(), rows, logits_out, ms);
  }
  if (hp.final_logit_softcap > 0.0f) {
    const float c = hp.final_logit_softcap;
    for (int64_t i = 0; i < rows * n_vocab_; ++i) logits_out[i] = c * std::tanh(logits_out[i] / c);
  }
}

}  // namespace omni
