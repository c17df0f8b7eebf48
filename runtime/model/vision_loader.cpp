#include "runtime/model/vision_loader.h"

#include <string_view>

#include "runtime/model/gguf_bind.h"

namespace omni {
namespace {

using vision::ViTBlock;
using vision::ViTLayerNorm;
using vision::ViTLinear;
using vision::ViTMatrix;

class Filler : public gguf_bind::Binder {
 public:
  explicit Filler(const gguf::GgufFile& f) : Binder(f, "vision") {}

  // Weight [n_out, n_in] and, when the file has one, bias [n_out].
  StatusOr<ViTLinear> linear(const std::string& name, int64_t n_out, int64_t n_in) const {
    return Binder::linear<ViTLinear>(name, n_out, n_in, has(name + ".bias"));
  }
  // The name of the matrix with n_in = `n_in` among two candidates (shape decides).
  std::string pick(const std::string& a, const std::string& b, int64_t n_in) const {
    const gguf::TensorInfo* t = file().find_tensor(a + ".weight");
    if (t && t->ne[0] == n_in) return a;
    const gguf::TensorInfo* u = file().find_tensor(b + ".weight");
    if (u && u->ne[0] == n_in) return b;
    return a;  // the error message will name it
  }
};

StatusOr<int64_t> hparam(const gguf::GgufFile& f, const char* key, int64_t max) {
  return gguf_bind::u32_in(f, "vision", key, 1, max);
}

StatusOr<std::unique_ptr<VisionModel>> load_weights(const gguf::GgufFile& f);

}  // namespace

StatusOr<std::unique_ptr<VisionModel>> load_vision(const std::string& path) {
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::open(path));
  return load_vision(std::move(file));
}

StatusOr<std::unique_ptr<VisionModel>> load_vision(std::unique_ptr<gguf::GgufFile> file) {
  if (!file) return invalid_argument("vision: no file");
  OMNI_ASSIGN_OR_RETURN(std::string arch, file->get_string_or("general.architecture", "clip"));
  if (arch != "clip") {
    return unsupported(fmt("vision: general.architecture is '%s', not 'clip' (an mmproj file)",
                           arch.c_str()));
  }
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<VisionModel> model, load_weights(*file));
  model->file = std::move(file);
  return model;
}

bool has_vision_component(const gguf::GgufFile& f) {
  return f.find("clip.vision.image_size") != nullptr && f.find_tensor("v.patch_embd.weight") != nullptr;
}

StatusOr<std::unique_ptr<VisionModel>> load_vision(const gguf::GgufFile& f) {
  if (!has_vision_component(f)) {
    return unsupported(fmt("vision: '%s' has no vision component (clip.vision.image_size and "
                           "v.patch_embd.weight)", f.path().c_str()));
  }
  return load_weights(f);
}

namespace {

StatusOr<std::unique_ptr<VisionModel>> load_weights(const gguf::GgufFile& f) {
  OMNI_ASSIGN_OR_RETURN(bool has_vision, f.get_bool_or("clip.has_vision_encoder", true));
  if (!has_vision) return unsupported("vision: clip.has_vision_encoder is false");

  auto model = std::make_unique<VisionModel>();
  vision::ViTWeights& w = model->weights;
  vision::ViTHParams& hp = w.hp;
  OMNI_ASSIGN_OR_RETURN(hp.image_size, hparam(f, "clip.vision.image_size", 8192));
  OMNI_ASSIGN_OR_RETURN(hp.patch_size, hparam(f, "clip.vision.patch_size", 256));
  OMNI_ASSIGN_OR_RETURN(hp.n_embd, hparam(f, "clip.vision.embedding_length", 16384));
  OMNI_ASSIGN_OR_RETURN(hp.n_ff, hparam(f, "clip.vision.feed_forward_length", 131072));
  OMNI_ASSIGN_OR_RETURN(hp.n_layer, hparam(f, "clip.vision.block_count", 512));
  OMNI_ASSIGN_OR_RETURN(hp.n_head, hparam(f, "clip.vision.attention.head_count", 1024));
  OMNI_ASSIGN_OR_RETURN(hp.eps, f.get_f32_or("clip.vision.attention.layer_norm_epsilon", 1e-5f));
  if (!(hp.eps > 0.0f && hp.eps < 1.0f)) {
    return corrupt_file(fmt("vision: clip.vision.attention.layer_norm_epsilon = %g (0 < eps < 1)",
                            hp.eps));
  }
  if (hp.image_size < hp.patch_size) {
    return corrupt_file(fmt("vision: image_size %lld is smaller than patch_size %lld",
                            static_cast<long long>(hp.image_size),
                            static_cast<long long>(hp.patch_size)));
  }
  if (hp.n_embd % hp.n_head != 0) {
    return corrupt_file(fmt("vision: embedding_length %lld is not a multiple of head_count %lld",
                            static_cast<long long>(hp.n_embd), static_cast<long long>(hp.n_head)));
  }
  for (const char* key : {"clip.vision.image_mean", "clip.vision.image_std"}) {
    if (!f.find(key)) continue;
    OMNI_ASSIGN_OR_RETURN(std::vector<float> v, f.get_f32_array(key));
    if (v.size() != 3) return corrupt_file(fmt("vision: %s has %zu values, expected 3", key, v.size()));
    float* dst = std::string_view(key).ends_with("mean") ? hp.image_mean : hp.image_std;
    for (int i = 0; i < 3; ++i) dst[i] = v[i];
  }
  OMNI_ASSIGN_OR_RETURN(bool use_gelu, f.get_bool_or("clip.use_gelu", false));
  hp.act = use_gelu ? vision::ViTActivation::kGeluTanh : vision::ViTActivation::kQuickGelu;
  OMNI_ASSIGN_OR_RETURN(bool llava, f.get_bool_or("clip.has_llava_projector", false));
  OMNI_ASSIGN_OR_RETURN(std::string proj, f.get_string_or("clip.projector_type", llava ? "mlp" : ""));
  if (proj == "mlp") {
    hp.projector = vision::ProjectorType::kMlp;
  } else if (proj == "gemma3" || proj == "idefics3") {
    const bool gemma = proj == "gemma3";
    hp.projector = gemma ? vision::ProjectorType::kGemma3Pool : vision::ProjectorType::kIdefics3Merge;
    // llama.cpp's defaults: 4 for every Gemma 3 size, 3 for Idefics3 (SmolVLM).
    OMNI_ASSIGN_OR_RETURN(uint32_t k, f.get_u32_or("clip.vision.projector.scale_factor", gemma ? 4 : 3));
    if (k == 0 || k > 1024) {
      return corrupt_file(fmt("vision: clip.vision.projector.scale_factor = %u is out of range "
                              "[1, 1024]", k));
    }
    hp.pool_kernel = k;
  } else if (!proj.empty()) {
    return unsupported(fmt("vision: clip.projector_type '%s' (omnirt has 'mlp', 'gemma3' and 'idefics3')",
                           proj.c_str()));
  }

  const int64_t d = hp.n_embd, p = hp.patch_size, g = hp.grid();
  Filler fl(f);
  const gguf::TensorInfo* pe = f.find_tensor("v.patch_embd.weight");
  if (!pe) return corrupt_file("vision: tensor 'v.patch_embd.weight' is missing");
  {
    // Conv weight [n_embd, 3, p, p] (ggml [p, p, 3, n_embd]); rows of 3*p*p are contiguous.
    OMNI_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, fl.tensor("v.patch_embd.weight", {d, 3, p, p}));
    if ((3 * p * p) % dtype_traits(t->type).block_size != 0) {
      return unsupported(fmt("vision: v.patch_embd.weight type %s does not fit rows of %lld",
                             dtype_traits(t->type).name, static_cast<long long>(3 * p * p)));
    }
    w.patch = ViTMatrix{t->type, t->data, 3 * p * p, d};
  }
  if (fl.has("v.patch_embd.bias")) {
    OMNI_ASSIGN_OR_RETURN(w.patch_bias, fl.floats("v.patch_embd.bias", {d}));
  }
  const bool cls = fl.has("v.class_embd");
  if (cls) {
    OMNI_ASSIGN_OR_RETURN(w.class_embd, fl.floats("v.class_embd", {d}));
  }
  OMNI_ASSIGN_OR_RETURN(w.pos_embd, fl.floats("v.position_embd.weight", {g * g + (cls ? 1 : 0), d}));
  if (fl.has("v.pre_ln.weight")) {
    OMNI_ASSIGN_OR_RETURN(w.pre_ln, fl.norm<ViTLayerNorm>("v.pre_ln", d));
  }
  w.blocks.resize(static_cast<size_t>(hp.n_layer));
  for (int64_t i = 0; i < hp.n_layer; ++i) {
    const std::string b = "v.blk." + std::to_string(i);
    ViTBlock& blk = w.blocks[static_cast<size_t>(i)];
    OMNI_ASSIGN_OR_RETURN(blk.ln1, fl.norm<ViTLayerNorm>(b + ".ln1", d));
    OMNI_ASSIGN_OR_RETURN(blk.q, fl.linear(b + ".attn_q", d, d));
    OMNI_ASSIGN_OR_RETURN(blk.k, fl.linear(b + ".attn_k", d, d));
    OMNI_ASSIGN_OR_RETURN(blk.v, fl.linear(b + ".attn_v", d, d));
    OMNI_ASSIGN_OR_RETURN(blk.out, fl.linear(b + ".attn_out", d, d));
    OMNI_ASSIGN_OR_RETURN(blk.ln2, fl.norm<ViTLayerNorm>(b + ".ln2", d));
    const std::string fc1 = fl.pick(b + ".ffn_up", b + ".ffn_down", d);
    const std::string fc2 = fc1 == b + ".ffn_up" ? b + ".ffn_down" : b + ".ffn_up";
    OMNI_ASSIGN_OR_RETURN(blk.fc1, fl.linear(fc1, hp.n_ff, d));
    OMNI_ASSIGN_OR_RETURN(blk.fc2, fl.linear(fc2, d, hp.n_ff));
  }
  if (fl.has("v.post_ln.weight")) {
    OMNI_ASSIGN_OR_RETURN(w.post_ln, fl.norm<ViTLayerNorm>("v.post_ln", d));
  }
  if (hp.projector == vision::ProjectorType::kMlp) {
    const gguf::TensorInfo* m0 = f.find_tensor("mm.0.weight");
    const gguf::TensorInfo* m2 = f.find_tensor("mm.2.weight");
    if (!m0 || !m2) return corrupt_file("vision: the mlp projector needs mm.0.weight and mm.2.weight");
    const int64_t hidden = m0->ne[1], out = m2->ne[1];
    OMNI_ASSIGN_OR_RETURN(w.mm0, fl.linear("mm.0", hidden, d));
    OMNI_ASSIGN_OR_RETURN(w.mm2, fl.linear("mm.2", out, hidden));
    hp.n_proj_out = out;
  } else if (hp.projector == vision::ProjectorType::kIdefics3Merge) {
    const gguf::TensorInfo* fc = f.find_tensor("mm.model.fc.weight");
    if (!fc) return corrupt_file("vision: tensor 'mm.model.fc.weight' is missing");
    const int64_t k = hp.pool_kernel;
    if (fc->ne[1] <= 0 || fc->ne[1] > 131072 || d * k * k > (int64_t(1) << 24)) {
      return corrupt_file(fmt("vision: merge projection %lld x %lld^2 -> %lld is out of range",
                              static_cast<long long>(d), static_cast<long long>(k),
                              static_cast<long long>(fc->ne[1])));
    }
    OMNI_ASSIGN_OR_RETURN(w.mm0, fl.linear("mm.model.fc", fc->ne[1], d * k * k));
    hp.n_proj_out = fc->ne[1];
  } else if (hp.projector == vision::ProjectorType::kGemma3Pool) {
    OMNI_ASSIGN_OR_RETURN(w.mm_soft_emb_norm, fl.floats("mm.soft_emb_norm.weight", {d}));
    const gguf::TensorInfo* mp = f.find_tensor("mm.input_projection.weight");
    if (!mp) return corrupt_file("vision: tensor 'mm.input_projection.weight' is missing");
    const int64_t out = mp->ne[0];
    if (out <= 0 || out > 131072) {
      return corrupt_file(fmt("vision: mm.input_projection.weight width %lld is out of range",
                              static_cast<long long>(out)));
    }
    // Torch's [d_vision, d_text] (ggml ne = [d_text, d_vision]): transposed to [out, d].
    OMNI_ASSIGN_OR_RETURN(std::vector<float> t, fl.floats("mm.input_projection.weight", {d, out}));
    w.mm_input_proj.resize(t.size());
    for (int64_t i = 0; i < d; ++i)
      for (int64_t o = 0; o < out; ++o) w.mm_input_proj[size_t(o * d + i)] = t[size_t(i * out + o)];
    hp.n_proj_out = out;
  }
  return model;
}

}  // namespace

}  // namespace omni
