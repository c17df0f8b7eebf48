#include "runtime/model/whisper_loader.h"

#include <string_view>

#include "kernels/ref/ops_ref.h"

namespace omni {
namespace {

using audio::WhisperBlock;
using audio::WhisperLayerNorm;
using audio::WhisperLinear;
using audio::WhisperMatrix;

class Filler {
 public:
  explicit Filler(const gguf::GgufFile& f) : f_(f) {}

  // A tensor of exactly these dims (row-major order, as in PyTorch), any supported type.
  StatusOr<const gguf::TensorInfo*> tensor(const std::string& name, std::vector<int64_t> dims) {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (!t) return corrupt_file(fmt("whisper: tensor '%s' is missing", name.c_str()));
    bool same = t->n_dims == dims.size();
    for (size_t i = 0; same && i < dims.size(); ++i) same = t->ne[dims.size() - 1 - i] == dims[i];
    if (!same) {
      std::string want = "[";
      for (size_t i = dims.size(); i-- > 0;) want += std::to_string(dims[i]) + (i ? ", " : "]");
      return corrupt_file(fmt("whisper: tensor '%s' has shape %s, expected %s (ggml order)", name.c_str(),
                              t->shape_string().c_str(), want.c_str()));
    }
    const DTypeTraits& tr = dtype_traits(t->type);
    if (!tr.supported || t->ne[0] % tr.block_size != 0)
      return unsupported(fmt("whisper: tensor '%s' has type %s, which omnirt cannot compute with",
                             name.c_str(), tr.name));
    return t;
  }
  StatusOr<std::vector<float>> floats(const std::string& name, std::vector<int64_t> dims) {
    OMNI_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, tensor(name, std::move(dims)));
    std::vector<float> out(static_cast<size_t>(t->n_elements()));
    const int64_t row = t->ne[0], row_bytes = dtype_row_bytes(t->type, row);
    for (int64_t r = 0; r < t->n_elements() / row; ++r)
      ref::dequantize_row(t->type, t->data + r * row_bytes, out.data() + r * row, row);
    return out;
  }
  StatusOr<WhisperMatrix> matrix(const std::string& name, int64_t n_out, int64_t n_in) {
    OMNI_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, tensor(name, {n_out, n_in}));
    return WhisperMatrix{t->type, t->data, n_in, n_out};
  }
  StatusOr<WhisperLinear> linear(const std::string& name, int64_t n_out, int64_t n_in, bool bias) {
    WhisperLinear l;
    OMNI_ASSIGN_OR_RETURN(l.w, matrix(name + ".weight", n_out, n_in));
    if (bias) {
      OMNI_ASSIGN_OR_RETURN(l.b, floats(name + ".bias", {n_out}));
    }
    return l;
  }
  StatusOr<WhisperLayerNorm> norm(const std::string& name, int64_t d) {
    WhisperLayerNorm n;
    OMNI_ASSIGN_OR_RETURN(n.w, floats(name + ".weight", {d}));
    OMNI_ASSIGN_OR_RETURN(n.b, floats(name + ".bias", {d}));
    return n;
  }
  // [n_out, n_in, k] in the file -> [n_out, k, n_in] for im2col.
  StatusOr<audio::WhisperConv> conv(const std::string& name, int64_t n_out, int64_t n_in) {
    audio::WhisperConv c;
    OMNI_ASSIGN_OR_RETURN(std::vector<float> w, floats(name + ".weight", {n_out, n_in, 3}));
    OMNI_ASSIGN_OR_RETURN(c.b, floats(name + ".bias", {n_out}));
    c.n_in = n_in;
    c.n_out = n_out;
    c.w.resize(w.size());
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t i = 0; i < n_in; ++i)
        for (int64_t j = 0; j < 3; ++j) c.w[(o * 3 + j) * n_in + i] = w[(o * n_in + i) * 3 + j];
    return c;
  }
  StatusOr<audio::WhisperAttentionWeights> attention(const std::string& name, int64_t d) {
    audio::WhisperAttentionWeights a;
    OMNI_ASSIGN_OR_RETURN(a.query, linear(name + ".query", d, d, true));
    // Whisper's key projection has no bias; a converter may still have written one.
    OMNI_ASSIGN_OR_RETURN(a.key, linear(name + ".key", d, d, f_.find_tensor(name + ".key.bias") != nullptr));
    OMNI_ASSIGN_OR_RETURN(a.value, linear(name + ".value", d, d, true));
    OMNI_ASSIGN_OR_RETURN(a.out, linear(name + ".out", d, d, true));
    return a;
  }
  StatusOr<WhisperBlock> block(const std::string& name, int64_t d, bool cross) {
    WhisperBlock b;
    OMNI_ASSIGN_OR_RETURN(b.attn_ln, norm(name + ".attn_ln", d));
    OMNI_ASSIGN_OR_RETURN(b.attn, attention(name + ".attn", d));
    if (cross) {
      OMNI_ASSIGN_OR_RETURN(b.cross_attn_ln, norm(name + ".cross_attn_ln", d));
      OMNI_ASSIGN_OR_RETURN(b.cross_attn, attention(name + ".cross_attn", d));
    }
    OMNI_ASSIGN_OR_RETURN(b.mlp_ln, norm(name + ".mlp_ln", d));
    OMNI_ASSIGN_OR_RETURN(b.mlp0, linear(name + ".mlp.0", 4 * d, d, true));
    OMNI_ASSIGN_OR_RETURN(b.mlp2, linear(name + ".mlp.2", d, 4 * d, true));
    return b;
  }

 private:
  const gguf::GgufFile& f_;
};

// A positive u32 key no larger than `max`.
StatusOr<int64_t> hparam(const gguf::GgufFile& f, const char* key, int64_t max) {
  OMNI_ASSIGN_OR_RETURN(uint32_t v, f.get_u32(key));
  if (v == 0 || v > max)
    return corrupt_file(fmt("whisper: %s = %u is out of range [1, %lld]", key, v, static_cast<long long>(max)));
  return static_cast<int64_t>(v);
}

Status token_id(const gguf::GgufFile& f, const char* key, int64_t n_vocab, int32_t* out) {
  OMNI_ASSIGN_OR_RETURN(uint32_t v, f.get_u32(key));
  if (v >= n_vocab) return corrupt_file(fmt("whisper: %s = %u is not below n_vocab %lld", key, v,
                                            static_cast<long long>(n_vocab)));
  *out = static_cast<int32_t>(v);
  return Status::Ok();
}

StatusOr<std::vector<int32_t>> token_list(const gguf::GgufFile& f, const char* key, int64_t n_vocab) {
  if (!f.find(key)) return std::vector<int32_t>{};
  OMNI_ASSIGN_OR_RETURN(std::vector<int32_t> ids, f.get_i32_array(key));
  for (int32_t id : ids) {
    if (id < 0 || id >= n_vocab)
      return corrupt_file(fmt("whisper: %s holds token %d, outside [0, %lld)", key, id, static_cast<long long>(n_vocab)));
  }
  return ids;
}

}  // namespace

StatusOr<std::unique_ptr<WhisperModel>> load_whisper(const std::string& path) {
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::open(path));
  return load_whisper(std::move(file));
}

StatusOr<std::unique_ptr<WhisperModel>> load_whisper(std::unique_ptr<gguf::GgufFile> file) {
  const gguf::GgufFile& f = *file;
  OMNI_ASSIGN_OR_RETURN(std::string arch, f.get_string("general.architecture"));
  if (arch != "whisper") return unsupported(fmt("'%s' is a %s model, not whisper", f.path().c_str(), arch.c_str()));
  auto m = std::make_unique<WhisperModel>();
  audio::WhisperWeights& w = m->weights;
  audio::WhisperHParams& hp = w.hp;
  OMNI_ASSIGN_OR_RETURN(hp.n_mels, hparam(f, "whisper.n_mels", 1024));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_ctx, hparam(f, "whisper.n_audio_ctx", 1 << 16));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_state, hparam(f, "whisper.n_audio_state", 1 << 14));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_head, hparam(f, "whisper.n_audio_head", 256));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_layer, hparam(f, "whisper.n_audio_layer", 256));
  OMNI_ASSIGN_OR_RETURN(hp.n_text_ctx, hparam(f, "whisper.n_text_ctx", 1 << 16));
  OMNI_ASSIGN_OR_RETURN(hp.n_text_state, hparam(f, "whisper.n_text_state", 1 << 14));
  OMNI_ASSIGN_OR_RETURN(hp.n_text_head, hparam(f, "whisper.n_text_head", 256));
  OMNI_ASSIGN_OR_RETURN(hp.n_text_layer, hparam(f, "whisper.n_text_layer", 256));
  OMNI_ASSIGN_OR_RETURN(hp.n_vocab, hparam(f, "whisper.n_vocab", 1 << 24));
  if (hp.n_audio_state % hp.n_audio_head != 0 || hp.n_text_state % hp.n_text_head != 0)
    return corrupt_file(fmt("whisper: widths %lld / %lld are not multiples of the head counts %lld / %lld",
                            static_cast<long long>(hp.n_audio_state), static_cast<long long>(hp.n_text_state),
                            static_cast<long long>(hp.n_audio_head), static_cast<long long>(hp.n_text_head)));
  if (hp.n_audio_state != hp.n_text_state)
    return corrupt_file("whisper: n_audio_state and n_text_state differ");

  audio::WhisperVocab& v = w.vocab;
  OMNI_ASSIGN_OR_RETURN(std::vector<std::string_view> tokens, f.get_string_array("tokenizer.ggml.tokens"));
  if (static_cast<int64_t>(tokens.size()) != hp.n_vocab)
    return corrupt_file(fmt("whisper: tokenizer.ggml.tokens has %zu tokens, n_vocab is %lld", tokens.size(),
                            static_cast<long long>(hp.n_vocab)));
  v.tokens.assign(tokens.begin(), tokens.end());
  struct { const char* key; int32_t* id; } ids[] = {
      {"whisper.token.eot", &v.eot}, {"whisper.token.sot", &v.sot},
      {"whisper.token.translate", &v.translate}, {"whisper.token.transcribe", &v.transcribe},
      {"whisper.token.sot_prev", &v.sot_prev}, {"whisper.token.sot_lm", &v.sot_lm},
      {"whisper.token.no_speech", &v.no_speech}, {"whisper.token.no_timestamps", &v.no_timestamps},
      {"whisper.token.timestamp_begin", &v.timestamp_begin}};
  for (auto& [key, id] : ids) OMNI_RETURN_IF_ERROR(token_id(f, key, hp.n_vocab, id));
  OMNI_ASSIGN_OR_RETURN(v.multilingual, f.get_bool_or("whisper.multilingual", false));
  OMNI_ASSIGN_OR_RETURN(v.suppress_tokens, token_list(f, "whisper.suppress_tokens", hp.n_vocab));
  OMNI_ASSIGN_OR_RETURN(v.suppress_tokens_begin, token_list(f, "whisper.suppress_tokens_begin", hp.n_vocab));

  Filler fill(f);
  const int64_t d = hp.n_audio_state;
  OMNI_ASSIGN_OR_RETURN(w.conv1, fill.conv("encoder.conv1", d, hp.n_mels));
  OMNI_ASSIGN_OR_RETURN(w.conv2, fill.conv("encoder.conv2", d, d));
  OMNI_ASSIGN_OR_RETURN(w.enc_pos, fill.floats("encoder.positional_embedding", {hp.n_audio_ctx, d}));
  for (int64_t i = 0; i < hp.n_audio_layer; ++i) {
    OMNI_ASSIGN_OR_RETURN(WhisperBlock b, fill.block("encoder.blocks." + std::to_string(i), d, false));
    w.enc_blocks.push_back(std::move(b));
  }
  OMNI_ASSIGN_OR_RETURN(w.enc_ln_post, fill.norm("encoder.ln_post", d));
  OMNI_ASSIGN_OR_RETURN(w.token_embedding, fill.matrix("decoder.token_embedding.weight", hp.n_vocab, d));
  OMNI_ASSIGN_OR_RETURN(w.dec_pos, fill.floats("decoder.positional_embedding", {hp.n_text_ctx, d}));
  for (int64_t i = 0; i < hp.n_text_layer; ++i) {
    OMNI_ASSIGN_OR_RETURN(WhisperBlock b, fill.block("decoder.blocks." + std::to_string(i), d, true));
    w.dec_blocks.push_back(std::move(b));
  }
  OMNI_ASSIGN_OR_RETURN(w.dec_ln, fill.norm("decoder.ln", d));
  m->file = std::move(file);
  return m;
}

}  // namespace omni
