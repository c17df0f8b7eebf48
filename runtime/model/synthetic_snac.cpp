// Synthetic SNAC codecs: random weights at a preset's shape (for tests, benchmarks and the omni
// presets that embed a codec). Matrices are normal with std 1/sqrt(n_in) so activations keep
// their scale through the blocks; Snake alphas are 1 (PyTorch's init), biases small normals.
// Tensor names and layouts are those of tools/convert_snac.py (docs/CODEC.md).
#include <cmath>
#include <random>

#include "kernels/ref/ops_ref.h"
#include "runtime/model/snac_loader.h"

namespace omni {
namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  std::vector<float> normal(size_t n, float stddev) {
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> v(n);
    for (float& x : v) x = dist(gen_);
    return v;
  }

 private:
  std::mt19937_64 gen_;
};

class Builder {
 public:
  Builder(gguf::GgufWriter& w, DType mat_type, uint64_t seed) : w_(w), mt_(mat_type), rng_(seed) {}
  Status status() const { return st_; }

  // dims row-major (PyTorch order); written f32.
  void f32(const std::string& name, std::vector<int64_t> dims, const std::vector<float>& v) {
    if (!st_.ok()) return;
    std::vector<int64_t> ne(dims.rbegin(), dims.rend());
    st_ = w_.add_tensor("codec." + name, DType::kF32, std::move(ne), v.data(), v.size() * 4);
  }
  void normal(const std::string& name, std::vector<int64_t> dims, float sd) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    f32(name, std::move(dims), rng_.normal(size_t(n), sd));
  }
  void ones(const std::string& name, int64_t n) { f32(name, {n}, std::vector<float>(size_t(n), 1.0f)); }
  // [rows..., n_in] in the matrix type, std sd / sqrt(n_in).
  void matrix(const std::string& name, std::vector<int64_t> dims, float gain = 1.0f) {
    if (!st_.ok()) return;
    const int64_t n_in = dims.back();
    int64_t n_out = 1;
    for (size_t i = 0; i + 1 < dims.size(); ++i) n_out *= dims[i];
    const DTypeTraits& tr = dtype_traits(mt_);
    const DType t = n_in % tr.block_size == 0 ? mt_ : DType::kF32;  // rows must be whole blocks
    const int64_t row_bytes = dtype_row_bytes(t, n_in);
    std::vector<uint8_t> bytes(size_t(row_bytes * n_out));
    const float sd = gain / std::sqrt(float(n_in));
    for (int64_t r = 0; r < n_out; ++r) {
      std::vector<float> row = rng_.normal(size_t(n_in), sd);
      if (ref::quantize_row(t, row.data(), bytes.data() + r * row_bytes, n_in) != row_bytes) {
        st_ = invalid_argument(fmt("snac synthetic: cannot encode matrices as %s", tr.name));
        return;
      }
    }
    std::vector<int64_t> ne(dims.rbegin(), dims.rend());
    st_ = w_.add_tensor("codec." + name, t, std::move(ne), bytes.data(), bytes.size());
  }

 private:
  gguf::GgufWriter& w_;
  DType mt_;
  Rng rng_;
  Status st_;
};

struct Preset {
  const char* name;
  int64_t latent, dim, codebook;
};

const Preset kPresets[] = {
    {"snac-tiny", 32, 64, 64},       // tests: same structure, tiny widths
    {"snac-24khz", 768, 1024, 4096},  // hubertsiuzdak/snac_24khz
};

const Preset* find_preset(const std::string& name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return &p;
  return nullptr;
}

}  // namespace

std::vector<std::string> synthetic_snac_presets() {
  std::vector<std::string> v;
  for (const Preset& p : kPresets) v.push_back(p.name);
  return v;
}

StatusOr<audio::SnacHParams> synthetic_snac_hparams(const std::string& preset) {
  const Preset* p = find_preset(preset);
  if (!p) return invalid_argument(fmt("snac: unknown preset '%s' (snac-tiny, snac-24khz)", preset.c_str()));
  audio::SnacHParams hp;  // the 24 kHz structure
  hp.latent_dim = p->latent;
  hp.decoder_dim = p->dim;
  hp.codebook_size = p->codebook;
  return hp;
}

Status add_synthetic_snac(gguf::GgufWriter& w, const std::string& preset, DType type, uint64_t seed) {
  OMNI_ASSIGN_OR_RETURN(audio::SnacHParams hp, synthetic_snac_hparams(preset));
  w.add_u32("snac.sampling_rate", uint32_t(hp.sampling_rate));
  w.add_u32("snac.hop_length", uint32_t(hp.hop_length));
  w.add_u32("snac.latent_dim", uint32_t(hp.latent_dim));
  w.add_u32("snac.decoder_dim", uint32_t(hp.decoder_dim));
  w.add_i32_array("snac.decoder_rates", std::vector<int32_t>(hp.decoder_rates.begin(), hp.decoder_rates.end()));
  w.add_u32("snac.codebook_size", uint32_t(hp.codebook_size));
  w.add_u32("snac.codebook_dim", uint32_t(hp.codebook_dim));
  w.add_i32_array("snac.vq_strides", std::vector<int32_t>(hp.vq_strides.begin(), hp.vq_strides.end()));
  w.add_bool("snac.depthwise", hp.depthwise);
  w.add_bool("snac.noise", hp.noise);
  w.add_u32("snac.attn_window_size", 0);

  Builder b(w, type, seed);
  const int64_t D = hp.latent_dim, cd = hp.codebook_dim;
  for (size_t l = 0; l < hp.vq_strides.size(); ++l) {
    const std::string p = "vq." + std::to_string(l);
    b.normal(p + ".codebook", {hp.codebook_size, cd}, 1.0f);
    b.normal(p + ".out_proj.weight", {D, cd}, 1.0f / std::sqrt(float(cd)));
    b.normal(p + ".out_proj.bias", {D}, 0.01f);
  }
  b.normal("dec.in_dw.weight", {D, 7}, 0.4f);
  b.normal("dec.in_dw.bias", {D}, 0.01f);
  b.matrix("dec.in_pw.weight", {hp.decoder_dim, D});
  b.normal("dec.in_pw.bias", {hp.decoder_dim}, 0.01f);
  int64_t c = hp.decoder_dim;
  for (size_t bi = 0; bi < hp.decoder_rates.size(); ++bi) {
    const std::string p = "dec.blk." + std::to_string(bi);
    const int64_t o = c / 2, s = hp.decoder_rates[bi];
    b.ones(p + ".snake.alpha", c);
    b.matrix(p + ".up.weight", {2 * s, o, c});
    b.normal(p + ".up.bias", {o}, 0.01f);
    b.matrix(p + ".noise.weight", {o, o}, 0.1f);
    for (int r = 0; r < 3; ++r) {
      const std::string q = p + ".res." + std::to_string(r);
      b.ones(q + ".snake1.alpha", o);
      b.normal(q + ".dw.weight", {o, 7}, 0.4f);
      b.normal(q + ".dw.bias", {o}, 0.01f);
      b.ones(q + ".snake2.alpha", o);
      b.matrix(q + ".pw.weight", {o, o}, 0.5f);
      b.normal(q + ".pw.bias", {o}, 0.01f);
    }
    c = o;
  }
  b.ones("dec.out_snake.alpha", c);
  b.normal("dec.out.weight", {1, c, 7}, 0.3f / std::sqrt(float(7 * c)));
  b.normal("dec.out.bias", {1}, 0.01f);
  return b.status();
}

Status create_synthetic_snac(const std::string& preset, DType type, uint64_t seed, const std::string& path) {
  gguf::GgufWriter w;
  w.add_string("general.architecture", "snac");
  w.add_string("general.name", preset);
  w.add_bool("omnirt.synthetic", true);  // random weights: decodes to noise
  OMNI_RETURN_IF_ERROR(add_synthetic_snac(w, preset, type, seed));
  return w.write(path);
}

}  // namespace omni
