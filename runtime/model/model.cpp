#include "runtime/model/model.h"

#include <cmath>

#include "runtime/model/arch.h"

namespace omni {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::kLlama: return "llama";
    case Arch::kQwen2: return "qwen2";
    case Arch::kGemma3: return "gemma3";
  }
  return "?";
}

const ArchSpec* find_arch_spec(std::string_view name) {
  for (const ArchSpec* s : {&llama_arch_spec(), &qwen2_arch_spec(), &gemma3_arch_spec()})
    if (name == s->name) return s;
  return nullptr;
}

namespace {

// Reads a required positive integer hyperparameter with a bound that rules out absurd values.
Status read_dim(const gguf::GgufFile& f, const std::string& key, int64_t max, int64_t* out) {
  OMNI_ASSIGN_OR_RETURN(uint64_t v, f.get_u64(key));
  if (v == 0 || v > static_cast<uint64_t>(max))
    return corrupt_file(fmt("%s = %llu is out of range [1, %lld]", key.c_str(),
                            static_cast<unsigned long long>(v), static_cast<long long>(max)));
  *out = static_cast<int64_t>(v);
  return Status::Ok();
}

Status read_dim_or(const gguf::GgufFile& f, const std::string& key, int64_t dflt, int64_t max, int64_t* out) {
  if (!f.find(key)) {
    *out = dflt;
    return Status::Ok();
  }
  return read_dim(f, key, max, out);
}

Status read_shared_hparams(const gguf::GgufFile& f, const std::string& a, HParams& hp) {
  constexpr int64_t kMaxDim = int64_t(1) << 20;
  OMNI_RETURN_IF_ERROR(read_dim(f, a + ".embedding_length", kMaxDim, &hp.n_embd));
  OMNI_RETURN_IF_ERROR(read_dim(f, a + ".block_count", 4096, &hp.n_layer));
  OMNI_RETURN_IF_ERROR(read_dim(f, a + ".feed_forward_length", kMaxDim, &hp.n_ff));
  OMNI_RETURN_IF_ERROR(read_dim(f, a + ".attention.head_count", 4096, &hp.n_head));
  OMNI_RETURN_IF_ERROR(read_dim_or(f, a + ".attention.head_count_kv", hp.n_head, 4096, &hp.n_head_kv));
  OMNI_RETURN_IF_ERROR(read_dim_or(f, a + ".context_length", 4096, int64_t(1) << 24, &hp.n_ctx_train));
  if (hp.n_head % hp.n_head_kv != 0)
    return corrupt_file(fmt("%s.attention.head_count = %lld is not a multiple of head_count_kv = %lld",
                            a.c_str(), (long long)hp.n_head, (long long)hp.n_head_kv));
  int64_t dflt_head_dim = hp.n_embd / hp.n_head;
  OMNI_RETURN_IF_ERROR(read_dim_or(f, a + ".attention.key_length", dflt_head_dim, 65536, &hp.head_dim));
  int64_t v_dim = 0;
  OMNI_RETURN_IF_ERROR(read_dim_or(f, a + ".attention.value_length", hp.head_dim, 65536, &v_dim));
  if (v_dim != hp.head_dim)
    return unsupported(fmt("%s.attention.value_length = %lld differs from key_length = %lld",
                           a.c_str(), (long long)v_dim, (long long)hp.head_dim));
  if (hp.head_dim % 2 != 0)
    return corrupt_file(fmt("head dimension %lld must be even for rotary embeddings", (long long)hp.head_dim));
  OMNI_RETURN_IF_ERROR(read_dim_or(f, a + ".rope.dimension_count", hp.head_dim, hp.head_dim, &hp.rope_dim));
  if (hp.rope_dim % 2 != 0)
    return corrupt_file(fmt("%s.rope.dimension_count = %lld must be even", a.c_str(), (long long)hp.rope_dim));
  OMNI_ASSIGN_OR_RETURN(hp.norm_eps, f.get_f32_or(a + ".attention.layer_norm_rms_epsilon", 1e-5f));
  if (!(hp.norm_eps > 0.0f && hp.norm_eps < 1.0f))
    return corrupt_file(fmt("%s.attention.layer_norm_rms_epsilon = %g is out of range (0, 1)", a.c_str(), hp.norm_eps));
  OMNI_ASSIGN_OR_RETURN(hp.rope_freq_base, f.get_f32_or(a + ".rope.freq_base", 10000.0f));
  if (!(hp.rope_freq_base > 1.0f))
    return corrupt_file(fmt("%s.rope.freq_base = %g must be > 1", a.c_str(), hp.rope_freq_base));
  hp.layer_is_swa.assign(static_cast<size_t>(hp.n_layer), 0);
  return Status::Ok();
}

std::string expected_shape(int64_t n_in, int64_t n_out) {
  return n_out > 0 ? fmt("[%lld, %lld]", (long long)n_in, (long long)n_out) : fmt("[%lld]", (long long)n_in);
}

}  // namespace

StatusOr<std::unique_ptr<Model>> Model::load(const std::string& path, const ModelParams& params) {
  std::unique_ptr<Model> m(new Model());
  OMNI_ASSIGN_OR_RETURN(m->file_, gguf::GgufFile::open(path));
  OMNI_RETURN_IF_ERROR(m->bind());
  if (!params.validate_only) {
    m->pages_ = m->file_->settle_pages();
    OMNI_ASSIGN_OR_RETURN(m->tokenizer_, Tokenizer::from_gguf(*m->file_));
    if (m->tokenizer_->n_vocab() > m->hp_.n_vocab)
      return corrupt_file(fmt("the tokenizer has %d tokens but token_embd.weight has only %lld rows",
                              m->tokenizer_->n_vocab(), (long long)m->hp_.n_vocab));
    m->chat_template_ = detect_chat_template(*m->file_, *m->tokenizer_);
  }
  return m;
}

Status Model::bind() {
  const gguf::GgufFile& f = *file_;
  OMNI_ASSIGN_OR_RETURN(std::string arch, f.get_string("general.architecture"));
  const ArchSpec* spec = find_arch_spec(arch);
  if (!spec)
    return unsupported(fmt("architecture '%s' is not supported (supported: llama, qwen2, gemma3)", arch.c_str()));
  hp_.arch = spec->arch;
  OMNI_ASSIGN_OR_RETURN(name_, f.get_string_or("general.name", ""));
  OMNI_ASSIGN_OR_RETURN(synthetic_, f.get_bool_or("omnirt.synthetic", false));
  OMNI_RETURN_IF_ERROR(read_shared_hparams(f, arch, hp_));
  OMNI_RETURN_IF_ERROR(spec->read_hparams(f, hp_));

  // Binding helpers: every tensor's type must be computable and its shape must agree with the
  // hyperparameters; the message names the tensor, what it is, and where the expectation came from.
  auto find = [&](const std::string& name, bool required, const gguf::TensorInfo** out) -> Status {
    *out = f.find_tensor(name);
    if (!*out && required) return not_found(fmt("tensor '%s' is missing (required by %s)", name.c_str(), arch.c_str()));
    if (*out && !dtype_traits((*out)->type).supported)
      return unsupported(fmt("tensor '%s' has type %s, which omnirt cannot compute with yet", name.c_str(),
                             dtype_name((*out)->type)));
    return Status::Ok();
  };
  auto bind_matrix = [&](const std::string& name, int64_t n_in, int64_t n_out, bool required, Weight* w) -> Status {
    const gguf::TensorInfo* t = nullptr;
    OMNI_RETURN_IF_ERROR(find(name, required, &t));
    if (!t) return Status::Ok();
    if (t->n_dims != 2 || t->ne[0] != n_in || (n_out > 0 && t->ne[1] != n_out))
      return corrupt_file(fmt("tensor '%s' has shape %s, but the %s hyperparameters give %s", name.c_str(),
                              t->shape_string().c_str(), arch.c_str(), expected_shape(n_in, n_out).c_str()));
    *w = Weight{t->type, t->data, t->ne[0], t->ne[1]};
    weight_bytes_ += t->n_bytes;
    return Status::Ok();
  };
  auto bind_vector = [&](const std::string& name, int64_t n, bool required, std::vector<float>* v) -> Status {
    const gguf::TensorInfo* t = nullptr;
    OMNI_RETURN_IF_ERROR(find(name, required, &t));
    if (!t) return Status::Ok();
    if (t->n_elements() != n || t->ne[0] != n)
      return corrupt_file(fmt("tensor '%s' has shape %s, but the %s hyperparameters give [%lld]", name.c_str(),
                              t->shape_string().c_str(), arch.c_str(), (long long)n));
    if (t->type != DType::kF32 && t->type != DType::kF16 && t->type != DType::kBF16)
      return unsupported(fmt("tensor '%s' has type %s; norms and biases must be f32, f16 or bf16", name.c_str(),
                             dtype_name(t->type)));
    v->resize(static_cast<size_t>(n));
    ref::dequantize_row(t->type, t->data, v->data(), n);
    weight_bytes_ += t->n_bytes;
    return Status::Ok();
  };

  const int64_t d = hp_.n_embd, hd = hp_.head_dim;
  const int64_t q_dim = hp_.n_head * hd, kv_dim = hp_.n_head_kv * hd;
  OMNI_RETURN_IF_ERROR(bind_matrix("token_embd.weight", d, 0, true, &token_embd_));
  hp_.n_vocab = token_embd_.n_out;
  if (hp_.n_vocab > (int64_t(1) << 31) - 1) return corrupt_file("token_embd.weight has more than 2^31 rows");
  OMNI_RETURN_IF_ERROR(bind_vector("output_norm.weight", d, true, &output_norm_));
  OMNI_RETURN_IF_ERROR(bind_matrix("output.weight", d, hp_.n_vocab, !spec->output_may_be_tied, &output_));
  if (!output_) output_ = token_embd_;

  layers_.resize(static_cast<size_t>(hp_.n_layer));
  for (int64_t il = 0; il < hp_.n_layer; ++il) {
    LayerWeights& L = layers_[static_cast<size_t>(il)];
    const std::string p = fmt("blk.%lld.", (long long)il);
    OMNI_RETURN_IF_ERROR(bind_vector(p + "attn_norm.weight", d, true, &L.attn_norm));
    OMNI_RETURN_IF_ERROR(bind_matrix(p + "attn_q.weight", d, q_dim, true, &L.wq));
    OMNI_RETURN_IF_ERROR(bind_matrix(p + "attn_k.weight", d, kv_dim, true, &L.wk));
    OMNI_RETURN_IF_ERROR(bind_matrix(p + "attn_v.weight", d, kv_dim, true, &L.wv));
    OMNI_RETURN_IF_ERROR(bind_matrix(p + "attn_output.weight", q_dim, d, true, &L.wo));
    OMNI_RETURN_IF_ERROR(bind_vector(p + "attn_q.bias", q_dim, spec->attn_bias, &L.bq));
    OMNI_RETURN_IF_ERROR(bind_vector(p + "attn_k.bias", kv_dim, spec->attn_bias, &L.bk));
    OMNI_RETURN_IF_ERROR(bind_vector(p + "attn_v.bias", kv_dim, spec->attn_bias, &L.bv));
    OMNI_RETURN_IF_ERROR(bind_vector(p + "attn_q_norm.weight", hd, spec->qk_norm, &L.q_norm));
    OMNI_RETURN_IF_ERROR(bind_vector(p + "attn_k_norm.weight", hd, spec->qk_norm, &L.k_norm));
    OMNI_RETURN_IF_ERROR(bind_vector(p + "post_attention_norm.weight", d, spec->post_norms, &L.post_attn_norm));
    OMNI_RETURN_IF_ERROR(bind_vector(p + "ffn_norm.weight", d, true, &L.ffn_norm));
    OMNI_RETURN_IF_ERROR(bind_matrix(p + "ffn_gate.weight", d, hp_.n_ff, true, &L.ffn_gate));
    OMNI_RETURN_IF_ERROR(bind_matrix(p + "ffn_up.weight", d, hp_.n_ff, true, &L.ffn_up));
    OMNI_RETURN_IF_ERROR(bind_matrix(p + "ffn_down.weight", hp_.n_ff, d, true, &L.ffn_down));
    OMNI_RETURN_IF_ERROR(bind_vector(p + "post_ffw_norm.weight", d, spec->post_norms, &L.post_ffn_norm));
  }
  return Status::Ok();
}

}  // namespace omni
