// SNAC codec decoder: whole decode vs the `snac` package's own PyTorch code (fixtures from
// tools/make_snac_fixtures.py: noise off, and noise fed our counter-based values), streaming vs
// whole decode, the loader's checks on broken files, the decoder's checks on bad codes.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "audio/codec/snac.h"
#include "audio/codec/snac_gemm.h"
#include "audio/codec/snac_ops.h"
#include "kernels/core/thread_pool.h"
#include "runtime/model/snac_loader.h"
#include "test_util.h"

namespace omni {
namespace {

std::string data(const std::string& f) { return test::source_path("tests/data/snac/" + f); }

audio::SnacCodes read_codes(const std::string& path) {
  audio::SnacCodes codes;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    codes.emplace_back();
    int32_t v;
    while (ls >> v) codes.back().push_back(v);
  }
  return codes;
}

// max |a - b| / max |b|: the error relative to the signal's scale.
double rel_max(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den == 0 ? num : num / den;
}

class SnacFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = load_snac(data("snac_tiny.gguf"));
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    model_ = std::move(m).value();
    codes_ = read_codes(data("codes.txt"));
    ASSERT_EQ(codes_.size(), 3u);
  }
  std::unique_ptr<SnacModel> model_;
  audio::SnacCodes codes_;
};

TEST_F(SnacFixture, HParamsFromFile) {
  const audio::SnacHParams& hp = model_->weights.hp;
  EXPECT_EQ(hp.sampling_rate, 24000);
  EXPECT_EQ(hp.hop_length, 512);
  EXPECT_EQ(hp.latent_dim, 32);
  EXPECT_EQ(hp.decoder_dim, 64);
  EXPECT_EQ(hp.decoder_rates, (std::vector<int>{8, 8, 4, 2}));
  EXPECT_EQ(hp.vq_strides, (std::vector<int>{4, 2, 1}));
  EXPECT_TRUE(hp.noise);
  EXPECT_EQ(hp.samples_per_group(), 2048);
}

TEST_F(SnacFixture, WholeDecodeMatchesReferenceWithoutNoise) {
  const std::vector<float> ref = test::read_f32(data("ref_nonoise.f32"));
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    audio::SnacDecoder dec(model_->weights, pool);
    dec.set_noise(false);
    std::vector<float> pcm;
    ASSERT_TRUE(dec.decode(codes_, &pcm).ok());
    ASSERT_EQ(pcm.size(), ref.size());
    EXPECT_LE(rel_max(pcm, ref), 1e-4) << threads << " threads";
    EXPECT_LE(test::rel_l2(pcm.data(), ref.data(), ref.size()), 1e-5);
  }
}

TEST_F(SnacFixture, WholeDecodeMatchesReferenceFedOurNoise) {
  const std::vector<float> ref = test::read_f32(data("ref_noise.f32"));
  const std::vector<float> clean = test::read_f32(data("ref_nonoise.f32"));
  ThreadPool pool(2);
  audio::SnacDecoder dec(model_->weights, pool);
  dec.set_noise(true, 1234);  // meta.txt's noise_seed
  std::vector<float> pcm;
  ASSERT_TRUE(dec.decode(codes_, &pcm).ok());
  ASSERT_EQ(pcm.size(), ref.size());
  EXPECT_LE(rel_max(pcm, ref), 1e-4);
  EXPECT_GT(rel_max(clean, ref), 1e-2);  // the noise path matters at this tolerance
}

TEST(SnacNoise, ValuesAreStandardNormalAndPositional) {
  double sum = 0, sum2 = 0;
  const int n = 100000;
  for (int t = 0; t < n; ++t) {
    const double v = audio::snac::noise_value(7, 2, t);
    sum += v;
    sum2 += v * v;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.02);
  EXPECT_NEAR(sum2 / n, 1.0, 0.03);
  EXPECT_EQ(audio::snac::noise_value(7, 2, 123), audio::snac::noise_value(7, 2, 123));
  EXPECT_NE(audio::snac::noise_value(7, 2, 123), audio::snac::noise_value(7, 1, 123));
  EXPECT_NE(audio::snac::noise_value(7, 2, 123), audio::snac::noise_value(8, 2, 123));
}

// Longer random codes for the streaming checks (no reference needed: the whole decode, checked
// above against PyTorch, is the reference).
audio::SnacCodes random_codes(int64_t groups, int64_t codebook, uint32_t seed) {
  audio::SnacCodes c(3);
  uint32_t s = seed;
  for (int l = 0; l < 3; ++l)
    for (int64_t i = 0; i < groups * (int64_t(1) << l); ++i) {
      s = s * 1664525u + 1013904223u;
      c[size_t(l)].push_back(int32_t((s >> 8) % uint32_t(codebook)));
    }
  return c;
}

audio::SnacCodes slice(const audio::SnacCodes& c, int64_t g0, int64_t g1) {
  audio::SnacCodes out(3);
  for (int l = 0; l < 3; ++l) {
    const int64_t k = int64_t(1) << l;
    out[size_t(l)].assign(c[size_t(l)].begin() + g0 * k, c[size_t(l)].begin() + g1 * k);
  }
  return out;
}

TEST_F(SnacFixture, StreamingEqualsWholeDecode) {
  const int64_t groups = 13;
  const audio::SnacCodes codes = random_codes(groups, 64, 99);
  ThreadPool pool(2);
  audio::SnacDecoder dec(model_->weights, pool);
  dec.set_noise(true, 5);
  std::vector<float> whole;
  ASSERT_TRUE(dec.decode(codes, &whole).ok());
  ASSERT_EQ(whole.size(), size_t(groups * 2048));
  for (int64_t step : {1, 2, 3, 5, 13}) {
    audio::SnacStreamDecoder stream(dec);
    std::vector<float> out;
    int64_t pushed = 0;
    while (pushed < groups) {
      const int64_t n = std::min(step, groups - pushed);
      const size_t before = out.size();
      ASSERT_TRUE(stream.push(slice(codes, pushed, pushed + n), &out).ok());
      pushed += n;
      // Everything pushed is either emitted or pending; what is held back stays bounded.
      EXPECT_EQ(int64_t(out.size()) + stream.samples_pending(), pushed * 2048);
      if (pushed >= 3) {
        EXPECT_GT(out.size(), before) << "step " << step;
      }
      // Emitted as early as the receptive field allows: a sample needs latent steps up to 9
      // past its own (+ rounding), so 4757 samples stay pending (docs/CODEC.md).
      EXPECT_EQ(int64_t(out.size()), std::max<int64_t>(0, pushed * 2048 - 4757)) << "step " << step;
    }
    ASSERT_TRUE(stream.flush(&out).ok());
    ASSERT_EQ(out.size(), whole.size()) << "step " << step;
    size_t bad = 0;
    for (size_t i = 0; i < whole.size(); ++i)
      if (std::fabs(out[i] - whole[i]) > 1e-5 * std::max(1.0f, std::fabs(whole[i]))) ++bad;
    EXPECT_EQ(bad, 0u) << "step " << step;
    EXPECT_FALSE(stream.push(slice(codes, 0, 1), &out).ok());  // ended until reset()
  }
}

TEST_F(SnacFixture, BadCodesAreInvalidArgument) {
  ThreadPool pool(1);
  audio::SnacDecoder dec(model_->weights, pool);
  std::vector<float> pcm;
  audio::SnacCodes c = codes_;
  c[2][3] = 64;  // codebook_size
  Status st = dec.decode(c, &pcm);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("level 2 code 3 is 64"), std::string::npos) << st.message();
  c = codes_;
  c[1][0] = -1;
  EXPECT_EQ(dec.decode(c, &pcm).code(), StatusCode::kInvalidArgument);
  c = codes_;
  c[1].pop_back();
  st = dec.decode(c, &pcm);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("level 1 has 9 codes, expected 10"), std::string::npos) << st.message();
  c = codes_;
  c.pop_back();
  st = dec.decode(c, &pcm);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("2 code levels"), std::string::npos) << st.message();
  audio::SnacStreamDecoder stream(dec);
  c = codes_;
  c[0][0] = 1000;
  EXPECT_EQ(stream.push(c, &pcm).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(dec.decode(audio::SnacCodes(3), &pcm).ok());  // zero frame groups: empty output
  EXPECT_TRUE(pcm.empty());
}

// Copies a GGUF into a writer, skipping `drop`, replacing tensor `reshape`'s dims by `ne`, and
// setting u32 key `key` to `value` (when non-empty).
struct Edit {
  std::string drop_tensor, reshape_tensor, drop_key, key;
  std::vector<int64_t> ne;
  uint32_t value = 0;
};

StatusOr<std::unique_ptr<SnacModel>> load_edited(const gguf::GgufFile& f, const Edit& e,
                                                  std::unique_ptr<gguf::GgufFile>* keep,
                                                  std::vector<uint8_t>* bytes) {
  gguf::GgufWriter w;
  for (const gguf::KeyValue& kv : f.metadata()) {
    const gguf::Value& v = kv.value;
    if (kv.key == e.drop_key) continue;
    if (kv.key == e.key) {
      w.add_u32(kv.key, e.value);
      continue;
    }
    switch (v.type) {
      case gguf::ValueType::kString: w.add_string(kv.key, std::string(v.str)); break;
      case gguf::ValueType::kBool: w.add_bool(kv.key, v.scalar.u != 0); break;
      case gguf::ValueType::kArray: {
        std::vector<int32_t> a;
        for (uint64_t i = 0; i < v.n_elems; ++i) a.push_back(int32_t(v.array_i64(i)));
        w.add_i32_array(kv.key, a);
        break;
      }
      default: w.add_u32(kv.key, uint32_t(v.scalar.u)); break;
    }
  }
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (t.name == e.drop_tensor) continue;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    size_t n = t.n_bytes;
    std::vector<uint8_t> buf(t.data, t.data + t.n_bytes);
    if (t.name == e.reshape_tensor) {
      ne = e.ne;
      int64_t elems = 1;
      for (int64_t d : ne) elems *= d;
      n = size_t(elems) * 4;
      buf.resize(n);
    }
    Status st = w.add_tensor(t.name, t.type, ne, buf.data(), n);
    if (!st.ok()) return st;
  }
  *bytes = w.to_bytes();
  OMNI_ASSIGN_OR_RETURN(*keep, gguf::GgufFile::from_memory(bytes->data(), bytes->size()));
  return load_snac(**keep);
}

TEST(SnacLoader, BrokenFilesSayWhat) {
  auto file = gguf::GgufFile::open(data("snac_tiny.gguf"));
  ASSERT_TRUE(file.ok());
  std::unique_ptr<gguf::GgufFile> keep;
  std::vector<uint8_t> bytes;
  {  // unchanged copy loads (the copier itself is right)
    auto m = load_edited(**file, {}, &keep, &bytes);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
  }
  struct Case {
    Edit e;
    StatusCode code;
    const char* msg;
  };
  const Case cases[] = {
      {{"codec.dec.blk.2.res.1.pw.weight", "", "", "", {}, 0}, StatusCode::kCorruptFile,
       "tensor 'codec.dec.blk.2.res.1.pw.weight' is missing"},
      {{"", "codec.dec.blk.0.up.weight", "", "", {64, 32, 15}, 0}, StatusCode::kCorruptFile,
       "tensor 'codec.dec.blk.0.up.weight' has shape [64, 32, 15], expected [64, 32, 16]"},
      {{"", "codec.vq.1.codebook", "", "", {8, 63}, 0}, StatusCode::kCorruptFile,
       "'codec.vq.1.codebook' has shape [8, 63], expected [8, 64]"},
      {{"", "", "snac.decoder_dim", "", {}, 0}, StatusCode::kNotFound, "snac.decoder_dim"},
      {{"", "", "", "snac.hop_length", {}, 500}, StatusCode::kCorruptFile,
       "snac.hop_length = 500 but the decoder rates multiply to 512"},
      {{"", "", "", "snac.latent_dim", {}, 0}, StatusCode::kCorruptFile,
       "snac.latent_dim = 0 is out of range"},
      {{"", "", "", "snac.decoder_dim", {}, 100}, StatusCode::kCorruptFile,
       "snac.decoder_dim = 100 is not a multiple of 2^4"},
      {{"", "", "", "snac.attn_window_size", {}, 32}, StatusCode::kUnsupported, "local attention"},
  };
  for (const Case& c : cases) {
    auto m = load_edited(**file, c.e, &keep, &bytes);
    ASSERT_FALSE(m.ok()) << c.msg;
    EXPECT_EQ(m.status().code(), c.code) << m.status().to_string();
    EXPECT_NE(m.status().message().find(c.msg), std::string::npos) << m.status().to_string();
  }
  EXPECT_EQ(load_snac(data("no_such_file.gguf")).status().code(), StatusCode::kNotFound);
}

TEST(SnacSynthetic, TinyPresetLoadsAndDecodes) {
  for (DType t : {DType::kF32, DType::kF16}) {
    gguf::GgufWriter w;
    w.add_string("general.architecture", "snac");
    ASSERT_TRUE(add_synthetic_snac(w, "snac-tiny", t, 3).ok());
    std::vector<uint8_t> bytes = w.to_bytes();
    auto f = gguf::GgufFile::from_memory(bytes.data(), bytes.size());
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    auto m = load_snac(**f);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    EXPECT_EQ((*m)->weights.blocks[1].up.type, t);
    ThreadPool pool(2);
    audio::SnacDecoder dec((*m)->weights, pool);
    std::vector<float> pcm;
    ASSERT_TRUE(dec.decode(random_codes(2, 64, 1), &pcm).ok());
    ASSERT_EQ(pcm.size(), 4096u);
    double e = 0;
    for (float v : pcm) {
      ASSERT_TRUE(std::isfinite(v));
      e += double(v) * v;
    }
    EXPECT_GT(e, 0.0);
  }
  gguf::GgufWriter w;
  EXPECT_EQ(add_synthetic_snac(w, "snac-huge", DType::kF32, 1).code(), StatusCode::kInvalidArgument);
  auto hp = synthetic_snac_hparams("snac-24khz");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->latent_dim, 768);
  EXPECT_EQ(hp->decoder_dim, 1024);
  EXPECT_EQ(hp->codebook_size, 4096);
}

// The packed GEMM of the 1x1 / transposed convs against a double-precision sum, at shapes with
// partial panels and partial step tiles; outputs outside the panels asked for stay untouched
// (NaN poison), and every panel range gives the same values (windows of a stream).
TEST(SnacPackedMatmul, MatchesADoubleSumAndWritesOnlyItsPanels) {
  if (!audio::snac::packed_matmul_supported(DType::kF32)) GTEST_SKIP() << "needs AVX-512";
  uint32_t s = 7;
  auto rnd = [&] {
    s = s * 1664525u + 1013904223u;
    return float(int32_t(s >> 8) % 2001 - 1000) / 1000.0f;
  };
  struct Shape {
    int64_t n_out, n_in, T;
  } shapes[] = {{32, 16, 12}, {45, 5, 1}, {77, 64, 25}, {96, 33, 13}, {8, 7, 3}};
  for (const Shape& sh : shapes) {
    for (DType t : {DType::kF32, DType::kF16}) {
      std::vector<float> w(size_t(sh.n_out * sh.n_in)), x(size_t(sh.T * sh.n_in));
      std::vector<uint16_t> w16(w.size());
      for (size_t i = 0; i < w.size(); ++i) {
        w16[i] = f32_to_f16(rnd());
        w[i] = t == DType::kF16 ? f16_to_f32(w16[i]) : rnd();
      }
      for (float& v : x) v = rnd();
      const void* src = t == DType::kF16 ? static_cast<const void*>(w16.data()) : w.data();
      const audio::snac::PackedWeights pw = audio::snac::pack_weights(t, src, sh.n_out, sh.n_in);
      ASSERT_EQ(pw.n_panels(), (sh.n_out + 31) / 32);
      const int64_t ys = sh.n_out + 3;  // a wider row stride: columns past n_out stay NaN
      std::vector<float> all(size_t(sh.T * ys), NAN), part(size_t(sh.T * ys), NAN);
      audio::snac::packed_matmul(pw, 0, pw.n_panels(), x.data(), sh.T, all.data(), ys);
      for (int64_t tt = 0; tt < sh.T; ++tt)
        for (int64_t o = 0; o < ys; ++o) {
          const float g = all[size_t(tt * ys + o)];
          if (o >= sh.n_out) {
            ASSERT_TRUE(std::isnan(g)) << "wrote column " << o;
            continue;
          }
          double ref = 0, mag = 0;
          for (int64_t i = 0; i < sh.n_in; ++i) {
            ref += double(w[size_t(o * sh.n_in + i)]) * x[size_t(tt * sh.n_in + i)];
            mag += std::fabs(double(w[size_t(o * sh.n_in + i)]) * x[size_t(tt * sh.n_in + i)]);
          }
          ASSERT_NEAR(g, ref, 1e-6 * mag + 1e-7) << sh.n_out << "x" << sh.n_in << " y[" << tt << "," << o << "]";
        }
      // The last panel alone writes only its rows, with the same values.
      const int64_t last = pw.n_panels() - 1;
      audio::snac::packed_matmul(pw, last, last + 1, x.data(), sh.T, part.data(), ys);
      for (int64_t tt = 0; tt < sh.T; ++tt)
        for (int64_t o = 0; o < ys; ++o) {
          const float g = part[size_t(tt * ys + o)];
          if (o >= last * 32 && o < sh.n_out) {
            ASSERT_EQ(g, all[size_t(tt * ys + o)]);
          } else {
            ASSERT_TRUE(std::isnan(g)) << "panel " << last << " wrote row " << o;
          }
        }
    }
  }
}

}  // namespace
}  // namespace omni
