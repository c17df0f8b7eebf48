// Synthetic vision encoders: mmproj GGUF files with random weights at real shapes (see
// vision_loader.h). Norm weights are 1, biases and tables small normals, matrices normal with
// std 1/sqrt(n_in) so activations keep their scale through the blocks.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "kernels/ref/ops_ref.h"
#include "runtime/model/synthetic.h"
#include "runtime/model/vision_loader.h"

namespace omni {
namespace {

struct VisionPreset {
  const char* name;
  vision::ViTHParams hp;
  bool clip_style;     // class token + pre-LN, no post-LN, no patch bias; else SigLIP style
  int64_t proj_hidden; // LLaVA MLP hidden width (0: no projector)
};

vision::ViTHParams make_hp(int64_t image, int64_t patch, int64_t d, int64_t heads, int64_t layers,
                           int64_t ff, float eps, vision::ViTActivation act, int64_t proj_out,
                           bool clip_mean) {
  vision::ViTHParams hp;
  hp.image_size = image;
  hp.patch_size = patch;
  hp.n_embd = d;
  hp.n_head = heads;
  hp.n_layer = layers;
  hp.n_ff = ff;
  hp.eps = eps;
  hp.act = act;
  hp.projector = proj_out > 0 ? vision::ProjectorType::kMlp : vision::ProjectorType::kNone;
  hp.n_proj_out = proj_out;
  if (!clip_mean) {
    for (int i = 0; i < 3; ++i) hp.image_mean[i] = hp.image_std[i] = 0.5f;
  }
  return hp;
}

std::vector<VisionPreset> presets() {
  using A = vision::ViTActivation;
  return {
      // Tests: CLIP-style with a projector into a 64-wide backbone.
      {"vit-tiny", make_hp(32, 8, 64, 4, 2, 128, 1e-5f, A::kQuickGelu, 64, true), true, 128},
      // google/siglip-so400m-patch14-384: 27 x 27 patches, no class token.
      {"siglip-so400m-384", make_hp(384, 14, 1152, 16, 27, 4304, 1e-6f, A::kGeluTanh, 0, false),
       false, 0},
      // openai/clip-vit-large-patch14-336 as LLaVA-1.5 uses it: 23 of 24 blocks, MLP to 4096.
      {"clip-vit-l-336", make_hp(336, 14, 1024, 16, 23, 4096, 1e-5f, A::kQuickGelu, 4096, true),
       true, 4096},
  };
}

const VisionPreset* find_preset(const std::string& name) {
  static const std::vector<VisionPreset> all = presets();
  for (const VisionPreset& p : all) if (name == p.name) return &p;
  return nullptr;
}

class Random {
 public:
  explicit Random(uint64_t seed) : gen_(seed) {}
  std::vector<float> normal(size_t n, float stddev) {
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> v(n);
    for (float& x : v) x = dist(gen_);
    return v;
  }

 private:
  std::mt19937_64 gen_;
};

}  // namespace

std::vector<std::string> synthetic_vision_presets() {
  std::vector<std::string> names;
  for (const VisionPreset& p : presets()) names.emplace_back(p.name);
  return names;
}

StatusOr<vision::ViTHParams> synthetic_vision_hparams(const std::string& preset) {
  const VisionPreset* p = find_preset(preset);
  if (!p) {
    std::string known;
    for (const std::string& n : synthetic_vision_presets()) known += (known.empty() ? "" : ", ") + n;
    return invalid_argument(fmt("unknown vision preset '%s' (known: %s)", preset.c_str(),
                                known.c_str()));
  }
  return p->hp;
}

Status add_synthetic_vision(gguf::GgufWriter& w, const std::string& preset, int64_t n_embd_out,
                            DType type, uint64_t seed) {
  const VisionPreset* p = find_preset(preset);
  if (!p) return synthetic_vision_hparams(preset).status();
  if (type != DType::kF32 && type != DType::kF16 && type != DType::kBF16 &&
      type != DType::kQ8_0 && type != DType::kQ4_0) {
    return unsupported(fmt("cannot create vision weights of type '%s' (use f32, f16, bf16, q8_0, "
                           "q4_0)", dtype_traits(type).name));
  }
  if (n_embd_out < 0 || n_embd_out > (int64_t(1) << 20)) {
    return invalid_argument(fmt("vision projection width %lld is outside [0, 2^20]",
                                static_cast<long long>(n_embd_out)));
  }
  vision::ViTHParams hp = p->hp;
  int64_t proj_hidden = p->proj_hidden;
  if (n_embd_out > 0) {
    hp.projector = vision::ProjectorType::kMlp;
    hp.n_proj_out = n_embd_out;
    if (proj_hidden == 0) proj_hidden = n_embd_out;
  }
  const int64_t d = hp.n_embd, ps = hp.patch_size, g = hp.grid();
  Random rng(seed);
  Status st;
  w.add_bool("clip.has_vision_encoder", true);
  w.add_bool("clip.has_text_encoder", false);
  w.add_u32("clip.vision.image_size", static_cast<uint32_t>(hp.image_size));
  w.add_u32("clip.vision.patch_size", static_cast<uint32_t>(ps));
  w.add_u32("clip.vision.embedding_length", static_cast<uint32_t>(d));
  w.add_u32("clip.vision.feed_forward_length", static_cast<uint32_t>(hp.n_ff));
  w.add_u32("clip.vision.block_count", static_cast<uint32_t>(hp.n_layer));
  w.add_u32("clip.vision.attention.head_count", static_cast<uint32_t>(hp.n_head));
  w.add_f32("clip.vision.attention.layer_norm_epsilon", hp.eps);
  w.add_bool("clip.use_gelu", hp.act != vision::ViTActivation::kQuickGelu);
  w.add_f32_array("clip.vision.image_mean", {hp.image_mean[0], hp.image_mean[1], hp.image_mean[2]});
  w.add_f32_array("clip.vision.image_std", {hp.image_std[0], hp.image_std[1], hp.image_std[2]});
  if (proj_hidden > 0) {
    w.add_bool("clip.has_llava_projector", true);
    w.add_string("clip.projector_type", "mlp");
    w.add_u32("clip.vision.projection_dim", static_cast<uint32_t>(hp.n_proj_out));
  }
  auto f32 = [&](const std::string& name, std::vector<int64_t> ne, std::vector<float> v) {
    if (st.ok()) st = w.add_tensor(name, DType::kF32, std::move(ne), v.data(), v.size() * 4);
  };
  auto vec = [&](const std::string& name, int64_t n, float stddev) {
    f32(name, {n}, rng.normal(size_t(n), stddev));
  };
  auto ones = [&](const std::string& name, int64_t n) { f32(name, {n}, std::vector<float>(n, 1.f)); };
  // ne in ggml order: {n_in, n_out} (or the conv's {p, p, 3, d}). The type must fit rows of
  // ne[0] (the conv's p: 8 or 14 is no quantized block, so it falls back to f16).
  auto matrix = [&](const std::string& name, std::vector<int64_t> ne, int64_t n_in, int64_t n_out) {
    if (!st.ok()) return;
    const DType t = synthetic_weight_type(type, ne[0]);
    const int64_t row_bytes = dtype_row_bytes(t, n_in);
    std::vector<uint8_t> bytes(size_t(row_bytes * n_out));
    const float sd = 1.0f / std::sqrt(static_cast<float>(n_in));
    for (int64_t r = 0; r < n_out; ++r) {
      std::vector<float> row = rng.normal(size_t(n_in), sd);
      ref::quantize_row(t, row.data(), bytes.data() + r * row_bytes, n_in);
    }
    st = w.add_tensor(name, t, std::move(ne), bytes.data(), bytes.size());
  };
  matrix("v.patch_embd.weight", {ps, ps, 3, d}, 3 * ps * ps, d);
  if (p->clip_style) {
    vec("v.class_embd", d, 0.02f);
    ones("v.pre_ln.weight", d);
    vec("v.pre_ln.bias", d, 0.02f);
  } else {
    vec("v.patch_embd.bias", d, 0.02f);
  }
  const int64_t n_pos = g * g + (p->clip_style ? 1 : 0);
  f32("v.position_embd.weight", {d, n_pos}, rng.normal(size_t(n_pos * d), 0.02f));
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const std::string b = "v.blk." + std::to_string(l) + ".";
    ones(b + "ln1.weight", d);
    vec(b + "ln1.bias", d, 0.02f);
    for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      matrix(b + m + ".weight", {d, d}, d, d);
      vec(b + m + ".bias", d, 0.02f);
    }
    ones(b + "ln2.weight", d);
    vec(b + "ln2.bias", d, 0.02f);
    matrix(b + "ffn_up.weight", {d, hp.n_ff}, d, hp.n_ff);
    vec(b + "ffn_up.bias", hp.n_ff, 0.02f);
    matrix(b + "ffn_down.weight", {hp.n_ff, d}, hp.n_ff, d);
    vec(b + "ffn_down.bias", d, 0.02f);
  }
  if (!p->clip_style) {
    ones("v.post_ln.weight", d);
    vec("v.post_ln.bias", d, 0.02f);
  }
  if (proj_hidden > 0) {
    matrix("mm.0.weight", {d, proj_hidden}, d, proj_hidden);
    vec("mm.0.bias", proj_hidden, 0.02f);
    matrix("mm.2.weight", {proj_hidden, hp.n_proj_out}, proj_hidden, hp.n_proj_out);
    vec("mm.2.bias", hp.n_proj_out, 0.02f);
  }
  return st;
}

Status create_synthetic_vision(const SyntheticVisionSpec& spec, const std::string& out_path) {
  gguf::GgufWriter w;
  w.add_string("general.architecture", "clip");
  w.add_string("general.name", "synthetic " + spec.preset);
  w.add_bool("omnirt.synthetic", true);
  OMNI_RETURN_IF_ERROR(add_synthetic_vision(w, spec.preset, 0, spec.type, spec.seed));
  const std::string tmp = out_path + ".tmp";
  OMNI_RETURN_IF_ERROR(w.write(tmp));
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return io_error(fmt("cannot rename '%s' to '%s': %s", tmp.c_str(), out_path.c_str(),
                        std::strerror(errno)));
  }
  return Status::Ok();
}

}  // namespace omni
