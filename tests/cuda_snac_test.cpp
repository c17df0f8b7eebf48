// SNAC decoder on CUDA: each kernel of ops_codec.h against its CPU twin in audio/codec/snac_ops.h
// (or a double-precision loop for the GEMM) on awkward sizes, outputs NaN-poisoned and every
// element checked; the whole CudaSnacDecoder against the `snac` package's PyTorch output
// (tests/data/snac fixtures) and against the CPU SnacDecoder on the snac-tiny and snac-24khz
// presets; streaming against whole decodes and the CPU stream decoder's emission counts.
// Bounds: element-wise kernels 1e-6 relative L2 (sinf / tanhf vs the CPU's polynomials), the
// GEMM 1e-6, whole decodes 1e-4 relative L2 (f32 throughout; measured values in docs/CODEC.md).
// Without a device the GPU tests skip with the driver's reason; CudaSnacParams runs everywhere.
#if OMNIRT_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "audio/codec/snac.h"
#include "audio/codec/snac_ops.h"
#include "kernels/cuda/ops_codec.h"
#include "runtime/model/cuda_snac.h"
#include "runtime/model/snac_loader.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using test::close_rel;
using test::DeviceArray;
using test::random_floats;

std::vector<float> snake_alpha(int64_t C, uint32_t seed, std::vector<float>* inv) {
  std::vector<float> a = random_floats(size_t(C), seed, 0.2f, 3.0f);
  inv->resize(a.size());
  for (size_t i = 0; i < a.size(); ++i) (*inv)[i] = 1.0f / (a[i] + 1e-9f);
  return a;
}

// ---- parameter checks: no device needed --------------------------------------------------

TEST(CudaSnacParams, LaunchersRejectBadValuesWithoutTouchingTheDevice) {
  float buf[64] = {};
  cuda::SnacMatmulParams mm{buf, buf, buf + 32, nullptr, nullptr, nullptr, 2, 4, 4};
  EXPECT_TRUE(check_params(mm).ok());
  mm.y = buf + 4;  // overlaps x [2, 4]
  EXPECT_EQ(check_params(mm).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cuda::launch_snac_matmul(mm, nullptr), cudaErrorInvalidValue);
  mm.y = buf + 32;
  mm.n_in = 0;
  Status st = check_params(mm);
  EXPECT_NE(st.message().find("n_in = 0"), std::string::npos) << st.message();

  cuda::SnacDwConvParams dw;
  dw.x = buf;
  dw.y = buf + 32;
  dw.w = buf;
  dw.T = 4;
  dw.C = 2;
  EXPECT_TRUE(check_params(dw).ok());
  dw.k = 6;
  st = check_params(dw);
  EXPECT_NE(st.message().find("k (odd) = 6"), std::string::npos) << st.message();
  dw.k = 7;
  dw.in_alpha = buf;  // without in_inv_alpha
  EXPECT_EQ(check_params(dw).code(), StatusCode::kInvalidArgument);

  cuda::SnacOverlapAddParams oa{buf, buf + 32, nullptr, 2, 2, 4, 2, 1};
  EXPECT_TRUE(check_params(oa).ok());
  oa.padding = 4;
  EXPECT_NE(check_params(oa).message().find("padding = 4"), std::string::npos);
  cuda::SnacNoiseParams np;
  np.noise = buf;
  np.n = 4;
  np.t0 = -1;
  EXPECT_NE(check_params(np).message().find("t0 = -1"), std::string::npos);
  cuda::SnacTapsTanhParams tt{buf, buf + 2, 4, 7, 0.0f};  // y overlaps z [4, 7]
  EXPECT_EQ(check_params(tt).code(), StatusCode::kInvalidArgument);
  cuda::SnacSnakeParams sn{buf, buf, buf, nullptr, 4, 2};
  EXPECT_EQ(check_params(sn).code(), StatusCode::kInvalidArgument);
}

// ---- kernels vs snac_ops -----------------------------------------------------------------

TEST(CudaSnacOps, SnakeMatchesCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  ThreadPool pool(1);
  for (auto [T, C] : {std::pair<int64_t, int64_t>{1, 1}, {37, 29}, {301, 64}}) {
    std::vector<float> inv, alpha = snake_alpha(C, 1, &inv);
    std::vector<float> x = random_floats(size_t(T * C), 2, -4.0f, 4.0f), want(x.size());
    audio::snac::snake(pool, x.data(), want.data(), T, C, alpha.data(), inv.data());
    DeviceArray<float> dx(x), dy(x.size()), da(alpha), di(inv);
    dy.poison();
    OMNI_CUDA_OK(cuda::launch_snac_snake({dx.get(), dy.get(), da.get(), di.get(), T, C}, nullptr));
    EXPECT_TRUE(close_rel(dy.download(), want, 1e-6, "snake"));
    OMNI_CUDA_OK(cuda::launch_snac_snake({dx.get(), dx.get(), da.get(), di.get(), T, C}, nullptr));  // in place
    EXPECT_TRUE(close_rel(dx.download(), want, 1e-6, "snake in place"));
  }
}

TEST(CudaSnacOps, DepthwiseConvWithSnakesMatchesCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  ThreadPool pool(1);
  for (int64_t T : {1, 5, 50}) {
    for (int dil : {1, 3, 9}) {
      for (bool snakes : {false, true}) {
        const int64_t C = 13;
        std::vector<float> inv1, a1 = snake_alpha(C, 3, &inv1), inv2, a2 = snake_alpha(C, 4, &inv2);
        std::vector<float> x = random_floats(size_t(T * C), 5), w = random_floats(size_t(7 * C), 6);
        std::vector<float> b = random_floats(size_t(C), 7);
        std::vector<float> sx = x, want(x.size());
        if (snakes) audio::snac::snake(pool, x.data(), sx.data(), T, C, a1.data(), inv1.data());
        audio::snac::depthwise_conv1d(pool, sx.data(), want.data(), T, C, w.data(), 7, dil, b.data(),
                                      snakes ? a2.data() : nullptr, snakes ? inv2.data() : nullptr);
        DeviceArray<float> dx(x), dy(x.size()), dw(w), db(b), da1(a1), di1(inv1), da2(a2), di2(inv2);
        dy.poison();
        cuda::SnacDwConvParams p;
        p.x = dx.get();
        p.y = dy.get();
        p.w = dw.get();
        p.bias = db.get();
        if (snakes) {
          p.in_alpha = da1.get();
          p.in_inv_alpha = di1.get();
          p.out_alpha = da2.get();
          p.out_inv_alpha = di2.get();
        }
        p.T = T;
        p.C = C;
        p.dilation = dil;
        OMNI_CUDA_OK(cuda::launch_snac_dwconv(p, nullptr));
        EXPECT_TRUE(close_rel(dy.download(), want, 1e-6, fmt("dwconv T=%lld dil=%d snakes=%d", (long long)T, dil, snakes)));
      }
    }
  }
}

TEST(CudaSnacOps, MatmulEpiloguesMatchDoubleLoop) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  struct Case { int64_t n_tok, n_in, n_out; };
  for (Case c : {Case{1, 8, 7}, Case{67, 33, 130}, Case{130, 64, 65}, Case{3, 1024, 8192 + 5}}) {
    const std::vector<float> x = random_floats(size_t(c.n_tok * c.n_in), 11);
    const std::vector<float> w = random_floats(size_t(c.n_out * c.n_in), 12);
    const std::vector<float> bias = random_floats(size_t(c.n_out), 13);
    const std::vector<float> add = random_floats(size_t(c.n_tok * c.n_out), 14);
    const std::vector<float> scale = random_floats(size_t(c.n_tok), 15, -2.0f, 2.0f);
    DeviceArray<float> dx(x), dw(w), db(bias), dy(add.size()), ds(scale);
    // mode 0: y = Wx + b; 1: y += Wx + b (in place, residual); 2: y = add + scale * Wx (noise)
    for (int mode = 0; mode < 3; ++mode) {
      std::vector<float> want(add.size());
      for (int64_t t = 0; t < c.n_tok; ++t)
        for (int64_t o = 0; o < c.n_out; ++o) {
          double acc = 0;
          for (int64_t i = 0; i < c.n_in; ++i) acc += double(w[size_t(o * c.n_in + i)]) * x[size_t(t * c.n_in + i)];
          const size_t at = size_t(t * c.n_out + o);
          want[at] = float(mode == 0 ? acc + bias[size_t(o)]
                           : mode == 1 ? add[at] + acc + bias[size_t(o)] : add[at] + scale[size_t(t)] * acc);
        }
      if (mode == 0) dy.poison(); else dy.upload(add);
      cuda::SnacMatmulParams p{dx.get(), dw.get(), dy.get(), mode < 2 ? db.get() : nullptr,
                               mode >= 1 ? dy.get() : nullptr, mode == 2 ? ds.get() : nullptr,
                               c.n_tok, c.n_in, c.n_out};
      OMNI_CUDA_OK(cuda::launch_snac_matmul(p, nullptr));
      EXPECT_TRUE(close_rel(dy.download(), want, 1e-6,
                            fmt("matmul mode %d n_tok=%lld n_in=%lld n_out=%lld", mode, (long long)c.n_tok,
                                (long long)c.n_in, (long long)c.n_out)));
    }
  }
}

TEST(CudaSnacOps, OverlapAddMatchesCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  ThreadPool pool(1);
  for (int s : {1, 2, 4, 8}) {
    for (int64_t T_in : {1, 5}) {
      const int64_t C = 7;
      const int k = 2 * s, pad = (s + 1) / 2;
      const std::vector<float> z = random_floats(size_t(T_in * k * C), 21), b = random_floats(size_t(C), 22);
      std::vector<float> want(size_t(T_in * s * C));
      audio::snac::overlap_add(pool, z.data(), T_in, C, k, s, pad, b.data(), want.data());
      DeviceArray<float> dz(z), db(b), dy(want.size());
      dy.poison();
      OMNI_CUDA_OK(cuda::launch_snac_overlap_add({dz.get(), dy.get(), db.get(), T_in, C, k, s, pad}, nullptr));
      EXPECT_TRUE(close_rel(dy.download(), want, 1e-6, fmt("overlap_add s=%d T_in=%lld", s, (long long)T_in)));
    }
  }
}

TEST(CudaSnacOps, NoiseEqualsHostGenerator) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t n = 100003, t0 = 123457;
  for (int block : {0, 3}) {
    DeviceArray<float> d(static_cast<size_t>(n));
    d.poison();
    cuda::SnacNoiseParams p;
    p.noise = d.get();
    p.n = n;
    p.t0 = t0;
    p.seed = 1234;
    p.block = block;
    OMNI_CUDA_OK(cuda::launch_snac_noise(p, nullptr));
    const std::vector<float> got = d.download();
    size_t differ = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float want = audio::snac::noise_value(1234, block, t0 + i);
      ASSERT_TRUE(std::isfinite(got[size_t(i)])) << i;
      if (got[size_t(i)] != want) {
        ++differ;
        worst = std::max(worst, std::fabs(double(got[size_t(i)]) - want) / std::max(1e-30, std::fabs(double(want))));
      }
    }
    // Device log/cos in double are within 1-2 ulp of glibc's; after rounding to float a value
    // differs only when the double lands within ~1e-16 of a float rounding boundary.
    std::printf("noise block %d: %zu of %lld values differ from the host (worst relative %.3g)\n", block, differ,
                (long long)n, worst);
    EXPECT_LE(differ, 2u);
    EXPECT_LE(worst, 1.2e-7);
  }
}

TEST(CudaSnacOps, TapsTanhMatchesCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  ThreadPool pool(1);
  for (int64_t T : {1, 2, 3, 1001}) {
    const std::vector<float> z = random_floats(size_t(T * 7), 31, -0.8f, 0.8f);
    std::vector<float> want(static_cast<size_t>(T));
    audio::snac::taps_to_mono_tanh(pool, z.data(), T, 7, 0.125f, want.data());
    DeviceArray<float> dz(z), dy(want.size());
    dy.poison();
    OMNI_CUDA_OK(cuda::launch_snac_taps_tanh({dz.get(), dy.get(), T, 7, 0.125f}, nullptr));
    EXPECT_TRUE(close_rel(dy.download(), want, 1e-6, fmt("taps_tanh T=%lld", (long long)T)));
  }
}

// ---- the decoder -------------------------------------------------------------------------

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

std::unique_ptr<SnacModel> synthetic(const std::string& preset, DType type) {
  const std::string path = test::temp_path(preset + "_" + dtype_name(type) + ".gguf");
  Status st = create_synthetic_snac(preset, type, 17, path);
  EXPECT_TRUE(st.ok()) << st.to_string();
  auto m = load_snac(path);
  std::remove(path.c_str());  // the model keeps its mapping
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return m.ok() ? std::move(m).value() : nullptr;
}

TEST(CudaSnacDecoder, MatchesPyTorchReferenceFixture) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto m = load_snac(test::source_path("tests/data/snac/snac_tiny.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const audio::SnacCodes codes = read_codes(test::source_path("tests/data/snac/codes.txt"));
  auto dec = CudaSnacDecoder::create((*m)->weights);
  ASSERT_TRUE(dec.ok()) << dec.status().to_string();
  for (bool noise : {false, true}) {
    const std::vector<float> ref =
        test::read_f32(test::source_path(noise ? "tests/data/snac/ref_noise.f32" : "tests/data/snac/ref_nonoise.f32"));
    (*dec)->set_noise(noise, 1234);  // meta.txt's noise_seed
    std::vector<float> pcm;
    ASSERT_TRUE((*dec)->decode(codes, &pcm).ok());
    EXPECT_TRUE(close_rel(pcm, ref, 1e-4, noise ? "vs PyTorch, our noise" : "vs PyTorch, no noise"));
    std::printf("snac-tiny fixture vs PyTorch (noise %d): relative L2 %.3g\n", noise,
                test::rel_l2(pcm.data(), ref.data(), ref.size()));
  }
}

// The CUDA decode vs the CPU decode of the same weights and codes; returns the relative L2.
double compare_with_cpu(const SnacModel& m, int64_t groups, bool noise, const char* what) {
  ThreadPool pool(2);
  audio::SnacDecoder cpu(m.weights, pool);
  cpu.set_bf16_dot(false);  // bf16 matrices: f32 math, as the CUDA decoder computes
  cpu.set_noise(noise, 77);
  auto dec = CudaSnacDecoder::create(m.weights);
  EXPECT_TRUE(dec.ok()) << dec.status().to_string();
  if (!dec.ok()) return INFINITY;
  (*dec)->set_noise(noise, 77);
  const audio::SnacCodes codes = random_codes(groups, m.weights.hp.codebook_size, 3);
  std::vector<float> want, got;
  EXPECT_TRUE(cpu.decode(codes, &want).ok());
  EXPECT_TRUE((*dec)->decode(codes, &got).ok());
  EXPECT_EQ(got.size(), size_t(groups * m.weights.hp.samples_per_group()));
  EXPECT_TRUE(close_rel(got, want, 1e-4, what));
  const double rel = got.size() == want.size() ? test::rel_l2(got.data(), want.data(), want.size()) : INFINITY;
  std::printf("%s: %lld frame groups, noise %d: relative L2 vs CPU %.3g\n", what, (long long)groups, noise, rel);
  return rel;
}

TEST(CudaSnacDecoder, TinyPresetMatchesCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (DType t : {DType::kF32, DType::kF16}) {
    auto m = synthetic("snac-tiny", t);
    ASSERT_NE(m, nullptr);
    compare_with_cpu(*m, 7, true, t == DType::kF32 ? "snac-tiny f32" : "snac-tiny f16");
    compare_with_cpu(*m, 1, false, t == DType::kF32 ? "snac-tiny f32" : "snac-tiny f16");
  }
}

TEST(CudaSnacDecoder, Snac24khzMatchesCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto m = synthetic("snac-24khz", DType::kF32);
  ASSERT_NE(m, nullptr);
  compare_with_cpu(*m, 3, true, "snac-24khz f32");
}

TEST(CudaSnacDecoder, BadCodesAreInvalidArgument) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto m = synthetic("snac-tiny", DType::kF32);
  ASSERT_NE(m, nullptr);
  auto dec = CudaSnacDecoder::create(m->weights);
  ASSERT_TRUE(dec.ok()) << dec.status().to_string();
  audio::SnacCodes c = random_codes(2, 64, 1);
  c[2][3] = 64;
  std::vector<float> pcm;
  Status st = (*dec)->decode(c, &pcm);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("level 2 code 3 is 64"), std::string::npos) << st.message();
  CudaSnacStreamDecoder stream(**dec);
  EXPECT_EQ(stream.push(c, &pcm).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*dec)->decode(audio::SnacCodes(3), &pcm).ok());
  EXPECT_TRUE(pcm.empty());
  EXPECT_EQ((*dec)->decode_latents(nullptr, 0, 0, nullptr).code(), StatusCode::kInvalidArgument);
}

// Streaming emits what the CPU stream decoder emits after every push, and the samples equal
// the CUDA whole decode.
void check_stream(const SnacModel& m, int64_t groups, std::initializer_list<int64_t> steps) {
  auto dec = CudaSnacDecoder::create(m.weights);
  ASSERT_TRUE(dec.ok()) << dec.status().to_string();
  (*dec)->set_noise(true, 5);
  ThreadPool pool(2);
  audio::SnacDecoder cpu(m.weights, pool);
  cpu.set_bf16_dot(false);
  cpu.set_noise(true, 5);
  const audio::SnacCodes codes = random_codes(groups, m.weights.hp.codebook_size, 99);
  std::vector<float> whole;
  ASSERT_TRUE((*dec)->decode(codes, &whole).ok());
  const int64_t spg = m.weights.hp.samples_per_group();
  for (int64_t step : steps) {
    CudaSnacStreamDecoder stream(**dec);
    audio::SnacStreamDecoder cpu_stream(cpu);
    std::vector<float> out, cpu_out;
    for (int64_t pushed = 0; pushed < groups;) {
      const int64_t n = std::min(step, groups - pushed);
      ASSERT_TRUE(stream.push(slice(codes, pushed, pushed + n), &out).ok());
      ASSERT_TRUE(cpu_stream.push(slice(codes, pushed, pushed + n), &cpu_out).ok());
      pushed += n;
      ASSERT_EQ(out.size(), cpu_out.size()) << "step " << step << " after " << pushed << " groups";
      EXPECT_EQ(int64_t(out.size()) + stream.samples_pending(), pushed * spg);
    }
    ASSERT_TRUE(stream.flush(&out).ok());
    ASSERT_EQ(out.size(), whole.size()) << "step " << step;
    size_t bad = 0, differ = 0;
    for (size_t i = 0; i < whole.size(); ++i) {
      if (out[i] != whole[i]) ++differ;
      if (!(std::fabs(out[i] - whole[i]) <= 1e-5f * std::max(1.0f, std::fabs(whole[i])))) ++bad;
    }
    EXPECT_EQ(bad, 0u) << "step " << step;
    std::printf("stream step %lld: %zu of %zu samples not bit-equal to the whole decode\n", (long long)step, differ,
                whole.size());
    EXPECT_EQ(stream.push(slice(codes, 0, 1), &out).code(), StatusCode::kWrongState);
    stream.reset();
    EXPECT_TRUE(stream.push(slice(codes, 0, 1), &out).ok());
  }
}

TEST(CudaSnacStream, TinyEqualsWholeDecodeAndCpuEmission) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto m = synthetic("snac-tiny", DType::kF32);
  ASSERT_NE(m, nullptr);
  check_stream(*m, 13, {1, 2, 3, 5, 13});
  check_stream(*m, 40, {40});  // 160 latent steps: several windows in one push
}

TEST(CudaSnacStream, Snac24khzHoldsBack4757Samples) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto m = synthetic("snac-24khz", DType::kF32);
  ASSERT_NE(m, nullptr);
  auto dec = CudaSnacDecoder::create(m->weights);
  ASSERT_TRUE(dec.ok()) << dec.status().to_string();
  CudaSnacStreamDecoder stream(**dec);
  EXPECT_EQ(stream.held_back(), 4757);
  check_stream(*m, 6, {1});
}

TEST(CudaSnacDecoder, LongDecodeThroughWindowsEqualsOneWindow) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto m = synthetic("snac-tiny", DType::kF32);
  ASSERT_NE(m, nullptr);
  auto dec = CudaSnacDecoder::create(m->weights);
  ASSERT_TRUE(dec.ok()) << dec.status().to_string();
  const int64_t groups = CudaSnacDecoder::kMaxWholeLatent / 4 + 3;  // over the one-window limit
  const audio::SnacCodes codes = random_codes(groups, 64, 8);
  std::vector<float> windows;
  ASSERT_TRUE((*dec)->decode(codes, &windows).ok());
  std::vector<float> z;
  (*dec)->host().latents(codes, &z);
  std::vector<float> one(size_t(groups * 2048), NAN);
  ASSERT_TRUE((*dec)->decode_latents(z.data(), groups * 4, 0, one.data()).ok());
  EXPECT_TRUE(close_rel(windows, one, 1e-6, "windows vs one window"));
}

TEST(CudaSnacDecoder, NoDeviceIsACleanError) {
  OMNI_CUDA_SKIP_WITH_DEVICE();
  auto m = synthetic("snac-tiny", DType::kF32);
  ASSERT_NE(m, nullptr);
  auto dec = CudaSnacDecoder::create(m->weights);
  EXPECT_EQ(dec.status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
