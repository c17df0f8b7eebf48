#include "runtime/model/audio_loader.h"

#include <cmath>

#include "kernels/ref/ops_ref.h"

namespace omni {
namespace {

using audio::WhisperBlock;
using audio::WhisperLayerNorm;
using audio::WhisperLinear;
using audio::WhisperMatrix;

std::string ggml_shape(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += std::to_string(ne[i]) + (i + 1 < ne.size() ? ", " : "]");
  return s;
}

// Tensors by name with shapes in ggml order (ne[0] innermost), as llama.cpp's files list them.
class Tensors {
 public:
  explicit Tensors(const gguf::GgufFile& f) : f_(f) {}

  StatusOr<const gguf::TensorInfo*> get(const std::string& name, std::vector<int64_t> ne) {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (!t) return corrupt_file(fmt("audio encoder: tensor '%s' is missing", name.c_str()));
    bool same = t->n_dims == ne.size();
    for (size_t i = 0; same && i < ne.size(); ++i) same = t->ne[i] == ne[i];
    // A vector may be stored as [1, n] (llama.cpp's converter unsqueezes the conv biases).
    if (!same && ne.size() == 1 && t->n_dims == 2 && t->ne[0] == 1 && t->ne[1] == ne[0]) same = true;
    if (!same)
      return corrupt_file(fmt("audio encoder: tensor '%s' has shape %s, expected %s (ggml order)", name.c_str(),
                              t->shape_string().c_str(), ggml_shape(ne).c_str()));
    const DTypeTraits& tr = dtype_traits(t->type);
    if (!tr.supported || t->ne[0] % tr.block_size != 0)
      return unsupported(fmt("audio encoder: tensor '%s' has type %s, which omnirt cannot compute with",
                             name.c_str(), tr.name));
    return t;
  }
  StatusOr<std::vector<float>> floats(const std::string& name, std::vector<int64_t> ne) {
    OMNI_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, get(name, std::move(ne)));
    std::vector<float> out(static_cast<size_t>(t->n_elements()));
    const int64_t row = t->ne[0], row_bytes = dtype_row_bytes(t->type, row);
    for (int64_t r = 0; r < t->n_elements() / row; ++r)
      ref::dequantize_row(t->type, t->data + r * row_bytes, out.data() + r * row, row);
    return out;
  }
  StatusOr<WhisperMatrix> matrix(const std::string& name, int64_t n_in, int64_t n_out) {
    OMNI_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, get(name, {n_in, n_out}));
    return WhisperMatrix{t->type, t->data, n_in, n_out};
  }
  StatusOr<WhisperLinear> linear(const std::string& name, int64_t n_in, int64_t n_out, bool bias) {
    WhisperLinear l;
    OMNI_ASSIGN_OR_RETURN(l.w, matrix(name + ".weight", n_in, n_out));
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
  // ggml [3, n_in, n_out] (PyTorch [n_out, n_in, 3]) -> [n_out, 3, n_in] for im2col.
  StatusOr<audio::WhisperConv> conv(const std::string& name, int64_t n_in, int64_t n_out) {
    audio::WhisperConv c;
    OMNI_ASSIGN_OR_RETURN(std::vector<float> w, floats(name + ".weight", {3, n_in, n_out}));
    OMNI_ASSIGN_OR_RETURN(c.b, floats(name + ".bias", {n_out}));
    c.n_in = n_in;
    c.n_out = n_out;
    c.w.resize(w.size());
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t i = 0; i < n_in; ++i)
        for (int64_t j = 0; j < 3; ++j) c.w[(o * 3 + j) * n_in + i] = w[(o * n_in + i) * 3 + j];
    return c;
  }
  bool has(const std::string& name) const { return f_.find_tensor(name) != nullptr; }

 private:
  const gguf::GgufFile& f_;
};

StatusOr<int64_t> hparam(const gguf::GgufFile& f, const char* key, int64_t max) {
  OMNI_ASSIGN_OR_RETURN(uint32_t v, f.get_u32(key));
  if (v == 0 || v > max)
    return corrupt_file(fmt("audio encoder: %s = %u is out of range [1, %lld]", key, v, static_cast<long long>(max)));
  return static_cast<int64_t>(v);
}

Status load_into(const gguf::GgufFile& f, audio::AudioEncoderWeights* out) {
  OMNI_ASSIGN_OR_RETURN(bool has_audio, f.get_bool_or("clip.has_audio_encoder", false));
  if (!has_audio)
    return unsupported(fmt("'%s' has no audio encoder (clip.has_audio_encoder is absent or false)", f.path().c_str()));
  std::string proj;
  if (f.find("clip.audio.projector_type")) {
    OMNI_ASSIGN_OR_RETURN(proj, f.get_string("clip.audio.projector_type"));
  } else {
    OMNI_ASSIGN_OR_RETURN(proj, f.get_string("clip.projector_type"));
  }
  audio::AudioAdapterWeights& a = out->adapter;
  if (proj == "ultravox") {
    a.type = audio::AudioProjector::kUltravox;
  } else if (proj == "qwen2a") {
    a.type = audio::AudioProjector::kQwen2Audio;
  } else {
    return unsupported(fmt("audio encoder: projector type '%s' is not supported (ultravox, qwen2a)", proj.c_str()));
  }
  audio::WhisperHParams& hp = out->whisper.hp;
  OMNI_ASSIGN_OR_RETURN(hp.n_mels, hparam(f, "clip.audio.num_mel_bins", 1024));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_state, hparam(f, "clip.audio.embedding_length", 1 << 14));
  OMNI_ASSIGN_OR_RETURN(int64_t n_ff, hparam(f, "clip.audio.feed_forward_length", 1 << 16));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_layer, hparam(f, "clip.audio.block_count", 256));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_head, hparam(f, "clip.audio.attention.head_count", 256));
  OMNI_ASSIGN_OR_RETURN(a.n_embd_out, hparam(f, "clip.audio.projection_dim", 1 << 16));
  OMNI_ASSIGN_OR_RETURN(float eps, f.get_f32_or("clip.audio.attention.layer_norm_epsilon", 1e-5f));
  const int64_t d = hp.n_audio_state;
  if (hp.n_mels != 80 && hp.n_mels != 128)
    return unsupported(fmt("audio encoder: clip.audio.num_mel_bins = %lld (Whisper's log-mel has 80 or 128)",
                           static_cast<long long>(hp.n_mels)));
  if (d % hp.n_audio_head != 0)
    return corrupt_file(fmt("audio encoder: embedding_length %lld is not a multiple of head_count %lld",
                            static_cast<long long>(d), static_cast<long long>(hp.n_audio_head)));
  if (n_ff != 4 * d)
    return unsupported(fmt("audio encoder: feed_forward_length %lld is not 4 x embedding_length %lld (Whisper's)",
                           static_cast<long long>(n_ff), static_cast<long long>(d)));
  if (!(std::fabs(eps - 1e-5f) <= 1e-9f))
    return unsupported(fmt("audio encoder: layer_norm_epsilon %g (Whisper's encoder uses 1e-5)", double(eps)));

  if (a.type == audio::AudioProjector::kUltravox) {
    OMNI_ASSIGN_OR_RETURN(a.stack, hparam(f, "clip.audio.projector.stack_factor", 64));
  }

  Tensors t(f);
  const gguf::TensorInfo* pos = f.find_tensor("a.position_embd.weight");
  if (!pos) return corrupt_file("audio encoder: tensor 'a.position_embd.weight' is missing");
  hp.n_audio_ctx = pos->n_dims == 2 ? pos->ne[1] : 0;
  if (hp.n_audio_ctx < 1 || hp.n_audio_ctx > (1 << 16))
    return corrupt_file(fmt("audio encoder: a.position_embd.weight has shape %s, expected [%lld, n_positions]",
                            pos->shape_string().c_str(), static_cast<long long>(d)));
  audio::WhisperWeights& w = out->whisper;
  OMNI_ASSIGN_OR_RETURN(w.enc_pos, t.floats("a.position_embd.weight", {d, hp.n_audio_ctx}));
  OMNI_ASSIGN_OR_RETURN(w.conv1, t.conv("a.conv1d.1", hp.n_mels, d));
  OMNI_ASSIGN_OR_RETURN(w.conv2, t.conv("a.conv1d.2", d, d));
  for (int64_t i = 0; i < hp.n_audio_layer; ++i) {
    const std::string b = "a.blk." + std::to_string(i) + ".";
    WhisperBlock blk;
    OMNI_ASSIGN_OR_RETURN(blk.attn_ln, t.norm(b + "ln1", d));
    OMNI_ASSIGN_OR_RETURN(blk.attn.query, t.linear(b + "attn_q", d, d, true));
    OMNI_ASSIGN_OR_RETURN(blk.attn.key, t.linear(b + "attn_k", d, d, t.has(b + "attn_k.bias")));
    OMNI_ASSIGN_OR_RETURN(blk.attn.value, t.linear(b + "attn_v", d, d, true));
    OMNI_ASSIGN_OR_RETURN(blk.attn.out, t.linear(b + "attn_out", d, d, true));
    OMNI_ASSIGN_OR_RETURN(blk.mlp_ln, t.norm(b + "ln2", d));
    OMNI_ASSIGN_OR_RETURN(blk.mlp0, t.linear(b + "ffn_up", d, n_ff, true));
    OMNI_ASSIGN_OR_RETURN(blk.mlp2, t.linear(b + "ffn_down", n_ff, d, true));
    w.enc_blocks.push_back(std::move(blk));
  }
  OMNI_ASSIGN_OR_RETURN(w.enc_ln_post, t.norm("a.post_ln", d));

  a.n_in = d;
  if (a.type == audio::AudioProjector::kQwen2Audio) {
    a.pooled_ln = w.enc_ln_post;
    OMNI_ASSIGN_OR_RETURN(a.fc, t.linear("mm.a.fc", d, a.n_embd_out, true));
    return Status::Ok();
  }
  const int64_t kd = a.stack * d;
  const gguf::TensorInfo* fc1 = f.find_tensor("mm.a.mlp.1.weight");
  if (!fc1) return corrupt_file("audio encoder: tensor 'mm.a.mlp.1.weight' is missing");
  const int64_t h = fc1->n_dims == 2 ? fc1->ne[1] : 0;
  if (h < 2 || h % 2 != 0)
    return corrupt_file(fmt("audio encoder: mm.a.mlp.1.weight has shape %s, expected [%lld, an even width] "
                            "(stack_factor %lld x embedding_length %lld)",
                            fc1->shape_string().c_str(), static_cast<long long>(kd),
                            static_cast<long long>(a.stack), static_cast<long long>(d)));
  OMNI_ASSIGN_OR_RETURN(a.norm_pre, t.floats("mm.a.norm_pre.weight", {kd}));
  OMNI_ASSIGN_OR_RETURN(a.fc1, t.matrix("mm.a.mlp.1.weight", kd, h));
  OMNI_ASSIGN_OR_RETURN(a.norm_mid, t.floats("mm.a.norm_mid.weight", {h / 2}));
  OMNI_ASSIGN_OR_RETURN(a.fc2, t.matrix("mm.a.mlp.2.weight", h / 2, a.n_embd_out));
  return Status::Ok();
}

}  // namespace

bool has_audio_component(const gguf::GgufFile& f) {
  auto v = f.get_bool_or("clip.has_audio_encoder", false);
  return v.ok() && *v;
}

StatusOr<std::unique_ptr<AudioEncoderModel>> load_audio_encoder(const gguf::GgufFile& f) {
  auto m = std::make_unique<AudioEncoderModel>();
  OMNI_RETURN_IF_ERROR(load_into(f, &m->weights));
  return m;
}

StatusOr<std::unique_ptr<AudioEncoderModel>> load_audio_encoder(const std::string& path) {
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::open(path));
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<AudioEncoderModel> m, load_audio_encoder(*file));
  m->file = std::move(file);
  return m;
}

}  // namespace omni
