// Synthetic audio encoders: Whisper encoder + Ultravox adapter with random weights at real
// shapes, in llama.cpp's mmproj layout (see audio_loader.h). Norm weights are 1, biases small
// normals, matrices normal with std 1/sqrt(n_in) so activations keep their scale through the
// blocks; positions are Whisper's sinusoids.
#include <cmath>
#include <random>

#include "kernels/ref/ops_ref.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/synthetic.h"

namespace omni {
namespace {

struct AudioPreset {
  const char* name;
  int64_t d, n_layer, n_head, n_mels, n_ctx;
};

constexpr AudioPreset kPresets[] = {
    {"whisper-tiny-enc", 64, 2, 4, 80, 128},     // tests: chunks up to 256 mel frames (2.56 s)
    {"whisper-small-enc", 768, 12, 12, 80, 1500},  // Whisper small's encoder (mini-omni)
};
constexpr int64_t kStack = 8;  // Ultravox's stack_factor

}  // namespace

std::vector<std::string> synthetic_audio_presets() {
  std::vector<std::string> names;
  for (const AudioPreset& p : kPresets) names.emplace_back(p.name);
  return names;
}

Status add_synthetic_audio_encoder(gguf::GgufWriter& w, const std::string& preset, int64_t n_embd_out,
                                   DType type, uint64_t seed) {
  const AudioPreset* p = nullptr;
  for (const AudioPreset& q : kPresets) if (preset == q.name) p = &q;
  if (!p) {
    std::string known;
    for (const std::string& n : synthetic_audio_presets()) known += (known.empty() ? "" : ", ") + n;
    return invalid_argument(fmt("unknown audio encoder preset '%s' (known: %s)", preset.c_str(), known.c_str()));
  }
  if (n_embd_out < 1 || n_embd_out > 65536)
    return invalid_argument(fmt("audio encoder: output width %lld is outside [1, 65536]",
                                static_cast<long long>(n_embd_out)));
  if (type != DType::kF32 && type != DType::kF16 && type != DType::kBF16 && type != DType::kQ8_0 &&
      type != DType::kQ4_0)
    return unsupported(fmt("cannot create audio encoder weights of type '%s' (use f32, f16, bf16, q8_0, q4_0)",
                           dtype_traits(type).name));
  const int64_t d = p->d, ff = 4 * d, h = 2 * n_embd_out;
  std::mt19937_64 gen(seed);
  auto normal = [&](size_t n, float sd) {
    std::normal_distribution<float> dist(0.0f, sd);
    std::vector<float> v(n);
    for (float& x : v) x = dist(gen);
    return v;
  };
  w.add_bool("clip.has_audio_encoder", true);
  w.add_string("clip.audio.projector_type", "ultravox");
  w.add_u32("clip.audio.num_mel_bins", static_cast<uint32_t>(p->n_mels));
  w.add_u32("clip.audio.embedding_length", static_cast<uint32_t>(d));
  w.add_u32("clip.audio.feed_forward_length", static_cast<uint32_t>(ff));
  w.add_u32("clip.audio.block_count", static_cast<uint32_t>(p->n_layer));
  w.add_u32("clip.audio.attention.head_count", static_cast<uint32_t>(p->n_head));
  w.add_f32("clip.audio.attention.layer_norm_epsilon", 1e-5f);
  w.add_u32("clip.audio.projection_dim", static_cast<uint32_t>(n_embd_out));
  w.add_u32("clip.audio.projector.stack_factor", static_cast<uint32_t>(kStack));
  Status st;
  auto f32 = [&](const std::string& name, std::vector<int64_t> ne, const std::vector<float>& v) {
    if (st.ok()) st = w.add_tensor(name, DType::kF32, std::move(ne), v.data(), v.size() * 4);
  };
  auto vec = [&](const std::string& name, int64_t n, float sd) { f32(name, {n}, normal(size_t(n), sd)); };
  auto ones = [&](const std::string& name, int64_t n) { f32(name, {n}, std::vector<float>(size_t(n), 1.0f)); };
  // ne in ggml order; rows of n_in values, n_rows of them.
  auto matrix = [&](const std::string& name, std::vector<int64_t> ne, int64_t n_in, int64_t n_rows, DType t,
                    float sd) {
    if (!st.ok()) return;
    t = synthetic_weight_type(t, n_in);
    const int64_t row_bytes = dtype_row_bytes(t, n_in);
    std::vector<uint8_t> bytes(size_t(row_bytes * n_rows));
    for (int64_t r = 0; r < n_rows; ++r) {
      const std::vector<float> row = normal(size_t(n_in), sd);
      ref::quantize_row(t, row.data(), bytes.data() + r * row_bytes, n_in);
    }
    st = w.add_tensor(name, t, std::move(ne), bytes.data(), bytes.size());
  };
  auto linear = [&](const std::string& name, int64_t n_in, int64_t n_out, bool bias) {
    matrix(name + ".weight", {n_in, n_out}, n_in, n_out, type, 1.0f / std::sqrt(float(n_in)));
    if (bias) vec(name + ".bias", n_out, 0.02f);
  };
  // Conv kernels f16 (llama.cpp's converter forces it); rows of 3 taps.
  matrix("a.conv1d.1.weight", {3, p->n_mels, d}, 3, p->n_mels * d, DType::kF16,
         1.0f / std::sqrt(float(3 * p->n_mels)));
  f32("a.conv1d.1.bias", {1, d}, normal(size_t(d), 0.02f));
  matrix("a.conv1d.2.weight", {3, d, d}, 3, d * d, DType::kF16, 1.0f / std::sqrt(float(3 * d)));
  f32("a.conv1d.2.bias", {1, d}, normal(size_t(d), 0.02f));
  // Whisper's sinusoids: [sin(t * inv_i) for i < d/2, cos(...)], inv_i = 10000^(-i / (d/2 - 1)).
  std::vector<float> pos(size_t(p->n_ctx * d));
  const double inc = std::log(10000.0) / double(d / 2 - 1);
  for (int64_t t = 0; t < p->n_ctx; ++t)
    for (int64_t i = 0; i < d / 2; ++i) {
      const double a = double(t) * std::exp(-inc * double(i));
      pos[size_t(t * d + i)] = float(std::sin(a));
      pos[size_t(t * d + d / 2 + i)] = float(std::cos(a));
    }
  f32("a.position_embd.weight", {d, p->n_ctx}, pos);
  for (int64_t l = 0; l < p->n_layer; ++l) {
    const std::string b = "a.blk." + std::to_string(l) + ".";
    ones(b + "ln1.weight", d);
    vec(b + "ln1.bias", d, 0.02f);
    linear(b + "attn_q", d, d, true);
    linear(b + "attn_k", d, d, false);
    linear(b + "attn_v", d, d, true);
    linear(b + "attn_out", d, d, true);
    ones(b + "ln2.weight", d);
    vec(b + "ln2.bias", d, 0.02f);
    linear(b + "ffn_up", d, ff, true);
    linear(b + "ffn_down", ff, d, true);
  }
  ones("a.post_ln.weight", d);
  vec("a.post_ln.bias", d, 0.02f);
  ones("mm.a.norm_pre.weight", kStack * d);
  linear("mm.a.mlp.1", kStack * d, h, false);
  ones("mm.a.norm_mid.weight", h / 2);
  linear("mm.a.mlp.2", h / 2, n_embd_out, false);
  return st;
}

}  // namespace omni
