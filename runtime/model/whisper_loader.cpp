#include "runtime/model/whisper_loader.h"

#include <string_view>

#include "runtime/model/gguf_bind.h"

namespace omni {
namespace {

using audio::WhisperBlock;
using audio::WhisperLayerNorm;
using audio::WhisperLinear;
using audio::WhisperMatrix;

// Whisper's attention and block layouts over the shared binder.
class Filler : public gguf_bind::Binder {
 public:
  explicit Filler(const gguf::GgufFile& f) : Binder(f, "whisper") {}

  StatusOr<audio::WhisperAttentionWeights> attention(const std::string& name, int64_t d) {
    audio::WhisperAttentionWeights a;
    OMNI_ASSIGN_OR_RETURN(a.query, linear<WhisperLinear>(name + ".query", d, d, true));
    // Whisper's key projection has no bias; a converter may still have written one.
    OMNI_ASSIGN_OR_RETURN(a.key, linear<WhisperLinear>(name + ".key", d, d, has(name + ".key.bias")));
    OMNI_ASSIGN_OR_RETURN(a.value, linear<WhisperLinear>(name + ".value", d, d, true));
    OMNI_ASSIGN_OR_RETURN(a.out, linear<WhisperLinear>(name + ".out", d, d, true));
    return a;
  }
  StatusOr<WhisperBlock> block(const std::string& name, int64_t d, bool cross) {
    WhisperBlock b;
    OMNI_ASSIGN_OR_RETURN(b.attn_ln, norm<WhisperLayerNorm>(name + ".attn_ln", d));
    OMNI_ASSIGN_OR_RETURN(b.attn, attention(name + ".attn", d));
    if (cross) {
      OMNI_ASSIGN_OR_RETURN(b.cross_attn_ln, norm<WhisperLayerNorm>(name + ".cross_attn_ln", d));
      OMNI_ASSIGN_OR_RETURN(b.cross_attn, attention(name + ".cross_attn", d));
    }
    OMNI_ASSIGN_OR_RETURN(b.mlp_ln, norm<WhisperLayerNorm>(name + ".mlp_ln", d));
    OMNI_ASSIGN_OR_RETURN(b.mlp0, linear<WhisperLinear>(name + ".mlp.0", 4 * d, d, true));
    OMNI_ASSIGN_OR_RETURN(b.mlp2, linear<WhisperLinear>(name + ".mlp.2", d, 4 * d, true));
    return b;
  }
};

// A positive u32 key no larger than `max`.
StatusOr<int64_t> hparam(const gguf::GgufFile& f, const char* key, int64_t max) {
  return gguf_bind::u32_in(f, "whisper", key, 1, max);
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
  OMNI_ASSIGN_OR_RETURN(w.conv1, fill.conv3<audio::WhisperConv>("encoder.conv1", d, hp.n_mels));
  OMNI_ASSIGN_OR_RETURN(w.conv2, fill.conv3<audio::WhisperConv>("encoder.conv2", d, d));
  OMNI_ASSIGN_OR_RETURN(w.enc_pos, fill.floats("encoder.positional_embedding", {hp.n_audio_ctx, d}));
  for (int64_t i = 0; i < hp.n_audio_layer; ++i) {
    OMNI_ASSIGN_OR_RETURN(WhisperBlock b, fill.block("encoder.blocks." + std::to_string(i), d, false));
    w.enc_blocks.push_back(std::move(b));
  }
  OMNI_ASSIGN_OR_RETURN(w.enc_ln_post, fill.norm<WhisperLayerNorm>("encoder.ln_post", d));
  OMNI_ASSIGN_OR_RETURN(w.token_embedding,
                        fill.matrix<WhisperMatrix>("decoder.token_embedding.weight", hp.n_vocab, d));
  OMNI_ASSIGN_OR_RETURN(w.dec_pos, fill.floats("decoder.positional_embedding", {hp.n_text_ctx, d}));
  for (int64_t i = 0; i < hp.n_text_layer; ++i) {
    OMNI_ASSIGN_OR_RETURN(WhisperBlock b, fill.block("decoder.blocks." + std::to_string(i), d, true));
    w.dec_blocks.push_back(std::move(b));
  }
  OMNI_ASSIGN_OR_RETURN(w.dec_ln, fill.norm<WhisperLayerNorm>("decoder.ln", d));
  m->file = std::move(file);
  return m;
}

}  // namespace omni
