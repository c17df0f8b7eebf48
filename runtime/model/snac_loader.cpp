#include "runtime/model/snac_loader.h"

#include <string_view>

#include "runtime/model/gguf_bind.h"

namespace omni {
namespace {

using audio::SnacMatrix;
using audio::SnacSnake;

constexpr int64_t kConvK = 7;

class Filler : public gguf_bind::Binder {
 public:
  explicit Filler(const gguf::GgufFile& f) : Binder(f, "snac") {}

  StatusOr<SnacSnake> snake(const std::string& name, int64_t c) {
    OMNI_ASSIGN_OR_RETURN(std::vector<float> a, floats(name + ".alpha", {c}));
    return SnacSnake::from_alpha(std::move(a));
  }
  // Depthwise kernel [C, 7] in the file -> [7, C] tap-major.
  StatusOr<std::vector<float>> depthwise(const std::string& name, int64_t c) {
    OMNI_ASSIGN_OR_RETURN(std::vector<float> w, floats(name, {c, kConvK}));
    std::vector<float> t(w.size());
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t j = 0; j < kConvK; ++j) t[size_t(j * c + ch)] = w[size_t(ch * kConvK + j)];
    return t;
  }
  // dims given row-major; the matrix is [prod(dims[:-1]), dims.back()].
  StatusOr<SnacMatrix> matrix(const std::string& name, const std::vector<int64_t>& dims) {
    OMNI_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, tensor(name, dims));
    return SnacMatrix{t->type, t->data, t->ne[0], t->n_elements() / t->ne[0]};
  }
};

StatusOr<int64_t> hparam(const gguf::GgufFile& f, const char* key, int64_t lo, int64_t hi) {
  return gguf_bind::u32_in(f, "snac", key, lo, hi);
}

StatusOr<std::vector<int>> int_list(const gguf::GgufFile& f, const char* key, int max_n, int max_v) {
  OMNI_ASSIGN_OR_RETURN(std::vector<int32_t> v, f.get_i32_array(key));
  if (v.empty() || int(v.size()) > max_n)
    return corrupt_file(fmt("snac: %s has %zu entries, expected 1 to %d", key, v.size(), max_n));
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] < 1 || v[i] > max_v)
      return corrupt_file(fmt("snac: %s[%zu] = %d is out of range [1, %d]", key, i, v[i], max_v));
  return std::vector<int>(v.begin(), v.end());
}

Status read_hparams(const gguf::GgufFile& f, audio::SnacHParams* hp) {
  OMNI_ASSIGN_OR_RETURN(hp->sampling_rate, hparam(f, "snac.sampling_rate", 1000, 384000));
  OMNI_ASSIGN_OR_RETURN(hp->hop_length, hparam(f, "snac.hop_length", 1, 1 << 16));
  OMNI_ASSIGN_OR_RETURN(hp->latent_dim, hparam(f, "snac.latent_dim", 1, 1 << 14));
  OMNI_ASSIGN_OR_RETURN(hp->decoder_dim, hparam(f, "snac.decoder_dim", 1, 1 << 14));
  OMNI_ASSIGN_OR_RETURN(hp->decoder_rates, int_list(f, "snac.decoder_rates", 8, 64));
  OMNI_ASSIGN_OR_RETURN(hp->codebook_size, hparam(f, "snac.codebook_size", 1, 1 << 20));
  OMNI_ASSIGN_OR_RETURN(hp->codebook_dim, hparam(f, "snac.codebook_dim", 1, 1024));
  OMNI_ASSIGN_OR_RETURN(hp->vq_strides, int_list(f, "snac.vq_strides", 8, 64));
  OMNI_ASSIGN_OR_RETURN(hp->depthwise, f.get_bool("snac.depthwise"));
  OMNI_ASSIGN_OR_RETURN(hp->noise, f.get_bool("snac.noise"));
  OMNI_ASSIGN_OR_RETURN(uint32_t attn, f.get_u32_or("snac.attn_window_size", 0));
  hp->attn_window_size = attn;
  int64_t prod = 1;
  for (int r : hp->decoder_rates) prod *= r;
  if (prod != hp->hop_length)
    return corrupt_file(fmt("snac: snac.hop_length = %lld but the decoder rates multiply to %lld",
                            (long long)hp->hop_length, (long long)prod));
  const int64_t div = int64_t(1) << hp->decoder_rates.size();
  if (hp->decoder_dim % div != 0)
    return corrupt_file(fmt("snac: snac.decoder_dim = %lld is not a multiple of 2^%zu (one halving per rate)",
                            (long long)hp->decoder_dim, hp->decoder_rates.size()));
  for (size_t l = 0; l < hp->vq_strides.size(); ++l)
    if (hp->vq_strides[0] % hp->vq_strides[l] != 0)
      return corrupt_file(fmt("snac: snac.vq_strides[%zu] = %d does not divide vq_strides[0] = %d", l,
                              hp->vq_strides[l], hp->vq_strides[0]));
  if (attn != 0)
    return unsupported(fmt("snac: local attention (snac.attn_window_size = %u) is not implemented", attn));
  if (!hp->depthwise) return unsupported("snac: only depthwise decoders (snac.depthwise = true) are implemented");
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<SnacModel>> load_snac(const gguf::GgufFile& f) {
  auto m = std::make_unique<SnacModel>();
  audio::SnacWeights& w = m->weights;
  audio::SnacHParams& hp = w.hp;
  OMNI_RETURN_IF_ERROR(read_hparams(f, &hp));
  Filler fill(f);
  const int64_t D = hp.latent_dim, cd = hp.codebook_dim;
  for (size_t l = 0; l < hp.vq_strides.size(); ++l) {
    const std::string p = "codec.vq." + std::to_string(l);
    audio::SnacQuantizer q;
    OMNI_ASSIGN_OR_RETURN(q.codebook, fill.floats(p + ".codebook", {hp.codebook_size, cd}));
    OMNI_ASSIGN_OR_RETURN(q.out_w, fill.floats(p + ".out_proj.weight", {D, cd}));
    OMNI_ASSIGN_OR_RETURN(q.out_b, fill.floats(p + ".out_proj.bias", {D}));
    w.quantizers.push_back(std::move(q));
  }
  OMNI_ASSIGN_OR_RETURN(w.in_dw_w, fill.depthwise("codec.dec.in_dw.weight", D));
  OMNI_ASSIGN_OR_RETURN(w.in_dw_b, fill.floats("codec.dec.in_dw.bias", {D}));
  OMNI_ASSIGN_OR_RETURN(w.in_pw, fill.matrix("codec.dec.in_pw.weight", {hp.decoder_dim, D}));
  OMNI_ASSIGN_OR_RETURN(w.in_pw_b, fill.floats("codec.dec.in_pw.bias", {hp.decoder_dim}));
  int64_t c = hp.decoder_dim;
  const int dil[3] = {1, 3, 9};
  for (size_t bi = 0; bi < hp.decoder_rates.size(); ++bi) {
    const std::string p = "codec.dec.blk." + std::to_string(bi);
    audio::SnacBlock b;
    b.in_dim = c;
    b.out_dim = c / 2;
    b.stride = hp.decoder_rates[bi];
    const int64_t o = b.out_dim;
    OMNI_ASSIGN_OR_RETURN(b.snake, fill.snake(p + ".snake", c));
    OMNI_ASSIGN_OR_RETURN(b.up, fill.matrix(p + ".up.weight", {2 * b.stride, o, c}));
    OMNI_ASSIGN_OR_RETURN(b.up_b, fill.floats(p + ".up.bias", {o}));
    if (hp.noise) {
      OMNI_ASSIGN_OR_RETURN(b.noise, fill.matrix(p + ".noise.weight", {o, o}));
    }
    for (int r = 0; r < 3; ++r) {
      const std::string q = p + ".res." + std::to_string(r);
      audio::SnacResidualUnit& u = b.res[r];
      u.dilation = dil[r];
      OMNI_ASSIGN_OR_RETURN(u.snake1, fill.snake(q + ".snake1", o));
      OMNI_ASSIGN_OR_RETURN(u.dw_w, fill.depthwise(q + ".dw.weight", o));
      OMNI_ASSIGN_OR_RETURN(u.dw_b, fill.floats(q + ".dw.bias", {o}));
      OMNI_ASSIGN_OR_RETURN(u.snake2, fill.snake(q + ".snake2", o));
      OMNI_ASSIGN_OR_RETURN(u.pw, fill.matrix(q + ".pw.weight", {o, o}));
      OMNI_ASSIGN_OR_RETURN(u.pw_b, fill.floats(q + ".pw.bias", {o}));
    }
    w.blocks.push_back(std::move(b));
    c /= 2;
  }
  OMNI_ASSIGN_OR_RETURN(w.out_snake, fill.snake("codec.dec.out_snake", c));
  OMNI_ASSIGN_OR_RETURN(std::vector<float> ow, fill.floats("codec.dec.out.weight", {1, c, kConvK}));
  w.out_w.resize(ow.size());
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t j = 0; j < kConvK; ++j) w.out_w[size_t(j * c + ch)] = ow[size_t(ch * kConvK + j)];
  OMNI_ASSIGN_OR_RETURN(std::vector<float> ob, fill.floats("codec.dec.out.bias", {1}));
  w.out_b = ob[0];
  return m;
}

StatusOr<std::unique_ptr<SnacModel>> load_snac(const std::string& path) {
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::open(path));
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<SnacModel> m, load_snac(*file));
  m->file = std::move(file);
  return m;
}

}  // namespace omni
