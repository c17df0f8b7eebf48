// CUDA Whisper front end, encoder and decoder (runtime/model/cuda_whisper.h, kernels/cuda/ops_audio.h).
// Oracles: openai-whisper's log-mel of a real clip (tests/data/whisper, made by
// tools/make_whisper_fixtures.py) and the CPU audio::LogMel (itself checked against it); host
// references of each kernel; the CPU audio::WhisperEncoder on the same weights. Outputs are
// poisoned (NaN) first and every element is checked. Bounds (docs/AUDIO.md): log-mel 1e-4
// absolute (the issue's); encoder relative L2 1e-2 (f16/bf16 GEMM operands, docs/CUDA.md);
// decoder logits relative L2 1e-4 against the CPU decoder (f32 attention; matvec in f32, or
// for 2..16 rows tensor cores on split bf16 operands, ~2^-16 per element: docs/CUDA.md), and
// the same tokens from whisper_search, greedy and beam.
// Without a device the GPU tests skip with the driver's reason; CudaWhisperParams.* run everywhere.
#if OMNIRT_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "audio/features/log_mel.h"
#include "audio/whisper/whisper_decoder.h"
#include "audio/whisper/whisper_encoder.h"
#include "audio/whisper/whisper_search.h"
#include "audio/whisper/whisper_transcriber.h"
#include "kernels/core/dtype.h"
#include "kernels/core/thread_pool.h"
#include "kernels/cuda/fft_loader.h"
#include "kernels/cuda/ops_audio.h"
#include "kernels/ref/ops_ref.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/cuda_whisper.h"
#include "runtime/model/gguf.h"
#include "runtime/model/whisper_loader.h"
#include "tests/audio_test_util.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"
#include "tests/whisper_test_util.h"

namespace omni {
namespace {

using test::close_rel;
using test::DeviceArray;
using test::random_floats;

// The log-mel needs cuFFT as the GEMMs need cuBLAS: a machine without it skips with the reason.
#define SKIP_WITHOUT_CUFFT()                                               \
  do {                                                                     \
    auto fft_ = ::omni::cuda::fft_api();                                   \
    if (!fft_.ok()) GTEST_SKIP() << fft_.status().message();               \
  } while (0)

std::string data_path(const std::string& name) { return test::source_path("tests/data/whisper/" + name); }

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b, size_t* at = nullptr) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = std::isfinite(a[i]) && std::isfinite(b[i]) ? std::fabs(double(a[i]) - b[i]) : INFINITY;
    if (d > worst) {
      worst = d;
      if (at) *at = i;
    }
  }
  return worst;
}

// ---- parameter checks: no device needed --------------------------------------------------

TEST(CudaWhisperParams, LaunchersRejectBadShapesWithoutTouchingTheDevice) {
  float f[8] = {};
  double dd[8] = {};
  cuda::MelWindowParams w{f, dd, dd, 0};
  Status st = cuda::check_params(w);
  EXPECT_NE(st.message().find("n_frames = 0"), std::string::npos) << st.message();
  EXPECT_EQ(cuda::launch_mel_window(w, nullptr), cudaErrorInvalidValue);
  cuda::MelFilterParams fp{dd, f, f, 3, 2000};
  st = cuda::check_params(fp);
  EXPECT_NE(st.message().find("n_mels = 2000"), std::string::npos) << st.message();
  EXPECT_EQ(cuda::launch_mel_filter(fp, nullptr), cudaErrorInvalidValue);
  cuda::MaxParams mp{f, f, 0};
  EXPECT_NE(cuda::check_params(mp).message().find("n = 0"), std::string::npos);
  EXPECT_EQ(cuda::launch_max(mp, nullptr), cudaErrorInvalidValue);
  cuda::MelNormalizeParams np{f, nullptr, 4};
  EXPECT_FALSE(cuda::check_params(np).ok());
  EXPECT_EQ(cuda::launch_mel_normalize(np, nullptr), cudaErrorInvalidValue);
  cuda::Im2colParams ip{f, f + 4, 2, 1, 3, 3};
  st = cuda::check_params(ip);
  EXPECT_NE(st.message().find("stride = 3"), std::string::npos) << st.message();
  EXPECT_EQ(cuda::launch_im2col(ip, nullptr), cudaErrorInvalidValue);
  ip.stride = 2;
  ip.kernel = 4;
  EXPECT_NE(cuda::check_params(ip).message().find("kernel = 4"), std::string::npos);
}

TEST(CudaWhisperParams, BadArgumentsAreStatusesWithOrWithoutADevice) {
  auto mel = CudaLogMel::create(81);
  ASSERT_FALSE(mel.ok());
  // Arguments are checked before the device is looked for: the same code with or without one.
  EXPECT_EQ(mel.status().code(), StatusCode::kInvalidArgument) << mel.status().to_string();
  EXPECT_NE(mel.status().message().find("81"), std::string::npos);
  audio::WhisperWeights w;
  w.hp.n_audio_state = 100;
  w.hp.n_audio_head = 3;
  auto enc = CudaWhisperEncoder::create(w);
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), StatusCode::kInvalidArgument) << enc.status().to_string();
}

// cuFFT is dlopen'ed: either every entry point binds, or the status says what was tried.
TEST(CudaWhisperParams, CufftLoadsOrSaysWhy) {
  auto api = cuda::fft_api();
  if (!api.ok()) {
    EXPECT_EQ(api.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(api.status().message().find("libcufft"), std::string::npos) << api.status().message();
    GTEST_SKIP() << api.status().message();
  }
  int version = 0;
  EXPECT_EQ((*api)->get_version(&version), CUFFT_SUCCESS);
  std::printf("  %s: cuFFT %d\n", (*api)->library, version);
  EXPECT_GE(version, 10000);
}

// ---- kernels vs host references -----------------------------------------------------------

TEST(CudaWhisperKernels, MelWindowIsExact) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t nf = 7;
  const std::vector<float> padded = random_floats(size_t((nf - 1) * 160 + 400), 1);
  std::vector<double> window(400);
  for (int i = 0; i < 400; ++i) window[i] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / 400);
  DeviceArray<float> d_pad(padded);
  DeviceArray<double> d_win(window), d_frames(size_t(nf * 400));
  d_frames.poison();
  OMNI_CUDA_OK(cuda::launch_mel_window({d_pad.get(), d_win.get(), d_frames.get(), nf}, nullptr));
  const std::vector<double> got = d_frames.download();
  for (int64_t t = 0; t < nf; ++t)
    for (int i = 0; i < 400; ++i)
      ASSERT_EQ(got[size_t(t * 400 + i)], double(padded[size_t(t * 160 + i)]) * window[size_t(i)]) << t << "," << i;
}

TEST(CudaWhisperKernels, MelFilterMatchesHostSum) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (int n_mels : {80, 128}) {
    const int64_t nf = 9;
    const std::vector<float> filters = audio::slaney_mel_filters(16000, 400, n_mels);
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> u(-30.0, 30.0);
    std::vector<double> spec(size_t(nf * 201 * 2));
    for (double& v : spec) v = u(rng);
    for (int k = 0; k < 201 * 2; ++k) spec[size_t(k)] = 0.0;         // frame 0 silent: the 1e-10 floor
    for (int k = 0; k < 201 * 2; ++k) spec[size_t(402 + k)] *= 1e-7;  // frame 1 quiet
    std::vector<float> want(size_t(nf * n_mels));
    for (int64_t t = 0; t < nf; ++t) {
      float power[201];
      for (int k = 0; k < 201; ++k) {
        const double re = spec[size_t((t * 201 + k) * 2)], im = spec[size_t((t * 201 + k) * 2 + 1)];
        power[k] = static_cast<float>(re * re + im * im);
      }
      for (int m = 0; m < n_mels; ++m) {
        double acc = 0;
        for (int k = 0; k < 201; ++k) acc += double(filters[size_t(m * 201 + k)]) * power[k];
        want[size_t(t * n_mels + m)] = static_cast<float>(std::log10(std::max(acc, 1e-10)));
      }
    }
    DeviceArray<double> d_spec(spec);
    DeviceArray<float> d_f(filters), d_out(want.size());
    d_out.poison();
    OMNI_CUDA_OK(cuda::launch_mel_filter({d_spec.get(), d_f.get(), d_out.get(), nf, n_mels}, nullptr));
    const std::vector<float> got = d_out.download();
    size_t at = 0;
    const double worst = max_abs_diff(got, want, &at);
    EXPECT_LE(worst, 1e-6) << "n_mels " << n_mels << " at " << at << " got " << got[at] << " want " << want[at];
    EXPECT_EQ(got[0], -10.0f);
  }
}

TEST(CudaWhisperKernels, MaxAndNormalizeMatchHost) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (int64_t n : {1, 80, 100003}) {
    std::vector<float> x = random_floats(size_t(n), uint32_t(n), -9.0f, 1.0f);
    x[size_t(n / 2)] = 1.75f;  // the maximum, somewhere in the middle
    DeviceArray<float> d_x(x), d_max(1);
    d_max.poison();
    OMNI_CUDA_OK(cuda::launch_max({d_x.get(), d_max.get(), n}, nullptr));
    EXPECT_EQ(d_max.download()[0], 1.75f) << "n " << n;
    OMNI_CUDA_OK(cuda::launch_mel_normalize({d_x.get(), d_max.get(), n}, nullptr));
    std::vector<float> want = x;
    audio::whisper_normalize(want.data(), want.size(), 1.75f);
    EXPECT_EQ(max_abs_diff(d_x.download(), want), 0.0) << "n " << n;
  }
}

TEST(CudaWhisperKernels, Im2colMatchesHost) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (int stride : {1, 2}) {
    for (int64_t n_in_t : {1, 2, 7, 30}) {
      const int64_t c_in = 13;
      const std::vector<float> x = random_floats(size_t(n_in_t * c_in), uint32_t(n_in_t));
      cuda::Im2colParams p{nullptr, nullptr, n_in_t, c_in, 3, stride};
      const int64_t n_out_t = cuda::im2col_out_rows(p);
      std::vector<float> want(size_t(n_out_t * 3 * c_in), 0.0f);
      for (int64_t t = 0; t < n_out_t; ++t)
        for (int64_t j = 0; j < 3; ++j) {
          const int64_t src = stride * t + j - 1;
          if (src >= 0 && src < n_in_t)
            std::memcpy(&want[size_t(t * 3 * c_in + j * c_in)], &x[size_t(src * c_in)], size_t(c_in) * 4);
        }
      DeviceArray<float> d_x(x), d_col(want.size());
      d_col.poison();
      p.x = d_x.get();
      p.col = d_col.get();
      OMNI_CUDA_OK(cuda::launch_im2col(p, nullptr));
      const std::vector<float> got = d_col.download();
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * 4), 0) << "stride " << stride << " n " << n_in_t;
    }
  }
}

// ---- log-mel on a real clip ---------------------------------------------------------------

TEST(CudaWhisperMel, MatchesWhisperAndCpuOnLibriVoxClip) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  SKIP_WITHOUT_CUFFT();
  const std::vector<float> audio = test::read_wav_pcm16(data_path("librivox_0880.wav"));
  ASSERT_EQ(audio.size(), 47840u);
  for (int n_mels : {80, 128}) {
    auto got = cuda_whisper_log_mel(audio.data(), audio.size(), n_mels, 0);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    const std::vector<float> whisper = test::read_f32(data_path("librivox_0880_mel" + std::to_string(n_mels) + ".f32"));
    ASSERT_EQ(got->size(), whisper.size());
    auto cpu = audio::whisper_log_mel(audio.data(), audio.size(), n_mels, 0);
    ASSERT_TRUE(cpu.ok());
    size_t at = 0;
    const double vs_whisper = max_abs_diff(*got, whisper, &at);
    const double vs_cpu = max_abs_diff(*got, *cpu);
    std::printf("  log-mel %d: max |diff| vs whisper %.3g, vs CPU %.3g\n", n_mels, vs_whisper, vs_cpu);
    EXPECT_LE(vs_whisper, 1e-4) << "n_mels " << n_mels << " frame " << at / n_mels << " bin " << at % n_mels;
    EXPECT_LE(vs_cpu, 1e-4) << "n_mels " << n_mels;
  }
  // Whisper's 30 s window: the clip plus 480000 zeros, first 3000 frames, vs the CPU.
  auto got = cuda_whisper_log_mel(audio.data(), audio.size(), 80, 480000);
  auto cpu = audio::whisper_log_mel(audio.data(), audio.size(), 80, 480000);
  ASSERT_TRUE(got.ok() && cpu.ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), cpu->size());
  const double d = max_abs_diff(*got, *cpu);
  std::printf("  log-mel 30 s window (+ padding): max |diff| vs CPU %.3g\n", d);
  EXPECT_LE(d, 1e-4);
}

TEST(CudaWhisperMel, IncrementalEqualsWholeAndCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  SKIP_WITHOUT_CUFFT();
  const std::vector<float> audio = test::read_wav_pcm16(data_path("librivox_0880.wav"));
  ASSERT_FALSE(audio.empty());
  auto whole_mel = CudaLogMel::create(80, 400);
  ASSERT_TRUE(whole_mel.ok()) << whole_mel.status().to_string();
  std::vector<float> whole;
  ASSERT_TRUE((*whole_mel)->push(audio.data(), audio.size(), &whole).ok());
  ASSERT_TRUE((*whole_mel)->finish(&whole).ok());
  ASSERT_EQ(whole.size(), audio.size() / 160 * 80);
  auto cpu_mel = audio::LogMel::create(80);
  std::vector<float> cpu;
  ASSERT_TRUE((*cpu_mel)->push(audio.data(), audio.size(), &cpu).ok());
  ASSERT_TRUE((*cpu_mel)->finish(&cpu).ok());
  const double vs_cpu = max_abs_diff(whole, cpu);
  std::printf("  unnormalized log10 mel: max |diff| vs CPU %.3g\n", vs_cpu);
  EXPECT_LE(vs_cpu, 1e-4);

  auto mel = CudaLogMel::create(80, 400);
  ASSERT_TRUE(mel.ok());
  std::mt19937 rng(11);
  for (int trial = 0; trial < 2; ++trial) {
    (*mel)->reset();
    std::vector<float> chunked;
    size_t at = 0;
    while (at < audio.size()) {
      const size_t n = std::min(audio.size() - at, size_t(1) + rng() % (trial == 0 ? 500 : 6000));
      ASSERT_TRUE((*mel)->push(audio.data() + at, n, &chunked).ok());
      at += n;
      const int64_t received = static_cast<int64_t>(at);
      ASSERT_EQ((*mel)->frames_emitted(), received > 200 ? (received - 200) / 160 + 1 : 0);
    }
    ASSERT_TRUE((*mel)->finish(&chunked).ok());
    ASSERT_EQ(chunked.size(), whole.size());
    // Every frame goes through the same kernels and the same cuFFT plan, wherever it sits in
    // a batch: equal to the whole-clip run (expected bit for bit; the bound is 1e-6 in case
    // cuFFT's batch position ever changes a last bit, and the measured value is printed).
    const double d = max_abs_diff(chunked, whole);
    std::printf("  incremental (trial %d) vs whole: max |diff| %.3g\n", trial, d);
    EXPECT_LE(d, 1e-6) << "trial " << trial;
    // The kept device rows are the same frames.
    EXPECT_EQ((*mel)->device_frames(), int64_t(whole.size() / 80));
    auto dev = (*mel)->download();
    ASSERT_TRUE(dev.ok());
    EXPECT_EQ(*dev, chunked);
  }
  // Normalization on the device equals whisper_normalize with the host maximum.
  auto mx = (*mel)->normalize();
  ASSERT_TRUE(mx.ok()) << mx.status().to_string();
  EXPECT_EQ(*mx, *std::max_element(whole.begin(), whole.end()));
  std::vector<float> want = whole;
  audio::whisper_normalize(want.data(), want.size(), *mx);
  EXPECT_EQ(max_abs_diff(*(*mel)->download(), want), 0.0);
}

TEST(CudaWhisperMel, BadInputAndFullBufferAreStatuses) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  SKIP_WITHOUT_CUFFT();
  auto mel = CudaLogMel::create(80, 10);
  ASSERT_TRUE(mel.ok()) << mel.status().to_string();
  std::vector<float> out;
  std::vector<float> x = random_floats(3000, 2);
  x[17] = NAN;
  Status st = (*mel)->push(x.data(), x.size(), &out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("sample 17"), std::string::npos) << st.message();
  EXPECT_EQ((*mel)->samples_received(), 0);
  x[17] = 0.0f;
  // 3000 samples complete 18 frames: more than the 10 kept rows. Nothing changes.
  st = (*mel)->push(x.data(), x.size(), &out);
  EXPECT_EQ(st.code(), StatusCode::kOutOfRange) << st.to_string();
  EXPECT_EQ((*mel)->samples_received(), 0);
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE((*mel)->push(x.data(), 1000, &out).ok());
  EXPECT_EQ(out.size(), 6u * 80);
  (*mel)->clear_frames();
  EXPECT_EQ((*mel)->device_frames(), 0);
  EXPECT_EQ((*mel)->normalize().status().code(), StatusCode::kWrongState);
  ASSERT_TRUE((*mel)->push(x.data() + 1000, 1000, &out).ok());
  EXPECT_EQ((*mel)->device_frames(), 6);
  ASSERT_TRUE((*mel)->finish(&out).ok());
  EXPECT_EQ((*mel)->push(x.data(), 1, &out).code(), StatusCode::kWrongState);
  EXPECT_EQ((*mel)->finish(&out).code(), StatusCode::kWrongState);
  (*mel)->reset();
  ASSERT_TRUE((*mel)->push(x.data(), 100, &out).ok());
  EXPECT_EQ((*mel)->finish(&out).code(), StatusCode::kInvalidArgument);
}

// ---- the encoder ----------------------------------------------------------------------------

// Whisper encoder weights built in memory: d, heads, layers, mels, positions; matrices in `type`
// (tests/whisper_test_util.h), conv kernels f32 (std 1/sqrt(3 n_in)), Whisper's sinusoids.
using HostWeights = test::WhisperTestWeights;

std::unique_ptr<HostWeights> make_weights(int64_t d, int64_t n_head, int64_t n_layer, int64_t n_mels, int64_t ctx,
                                          DType type, uint32_t seed) {
  auto hw = std::make_unique<HostWeights>();
  audio::WhisperWeights& w = hw->w;
  w.hp.n_audio_state = d;
  w.hp.n_audio_head = n_head;
  w.hp.n_audio_layer = n_layer;
  w.hp.n_mels = n_mels;
  w.hp.n_audio_ctx = ctx;
  test::WhisperRandom r(*hw, type, seed);
  auto conv = [&](int64_t n_in) {
    audio::WhisperConv c;
    c.n_in = n_in;
    c.n_out = d;
    c.w = r.normal(size_t(d * 3 * n_in), 0.0f, 1.0f / std::sqrt(float(3 * n_in)));
    c.b = r.normal(size_t(d), 0.0f, 0.05f);
    return c;
  };
  w.conv1 = conv(n_mels);
  w.conv2 = conv(d);
  w.enc_pos.resize(size_t(ctx * d));
  for (int64_t t = 0; t < ctx; ++t)  // Whisper's sinusoids
    for (int64_t i = 0; i < d / 2; ++i) {
      const double inc = std::log(10000.0) / double(d / 2 - 1);
      const double a = double(t) * std::exp(-inc * double(i));
      w.enc_pos[size_t(t * d + i)] = float(std::sin(a));
      w.enc_pos[size_t(t * d + d / 2 + i)] = float(std::cos(a));
    }
  for (int64_t l = 0; l < n_layer; ++l) w.enc_blocks.push_back(r.block(d));
  w.enc_ln_post = r.norm(d);
  return hw;
}

// The real whisper-tiny.en (models/, installed by tools/setup.sh) into `var`; the test skips
// when it is not installed (the GPU machine has none unless it travels with the build).
#define LOAD_TINY_EN_OR_SKIP(var)                                                                   \
  const std::string var##_path = test::source_path("models/whisper-tiny.en.gguf");                \
  if (!test::file_exists(var##_path)) GTEST_SKIP() << var##_path << " is not installed (tools/setup.sh)"; \
  auto var = load_whisper(var##_path);                                                             \
  ASSERT_TRUE(var.ok()) << var.status().to_string()

// A normalized-log-mel-like input: values in [-0.5, 1.5].
std::vector<float> random_mel(int64_t n_frames, int64_t n_mels, uint32_t seed) {
  return random_floats(size_t(n_frames * n_mels), seed, -0.5f, 1.5f);
}

void expect_encoder_matches_cpu(const audio::WhisperWeights& w, const std::vector<int64_t>& frame_counts,
                                const std::string& what) {
  auto enc = CudaWhisperEncoder::create(w);
  ASSERT_TRUE(enc.ok()) << what << ": " << enc.status().to_string();
  ThreadPool pool(2);
  audio::WhisperEncoder cpu(w, pool);
  for (int64_t nf : frame_counts) {
    const std::vector<float> mel = random_mel(nf, w.hp.n_mels, uint32_t(nf));
    std::vector<float> want, got, want_pre, got_pre;
    ASSERT_TRUE(cpu.encode(mel.data(), nf, &want).ok());
    ASSERT_TRUE(cpu.encode_before_final_norm(mel.data(), nf, &want_pre).ok());
    got.assign(want.size() + 5, NAN);  // resized by encode: every element must be written
    ASSERT_TRUE((*enc)->encode(mel.data(), nf, &got).ok());
    ASSERT_EQ(got.size(), size_t(nf / 2 * w.hp.n_audio_state));
    EXPECT_TRUE(close_rel(got, want, 1e-2, what + fmt(" frames=%lld", (long long)nf)));
    ASSERT_TRUE((*enc)->encode_before_final_norm(mel.data(), nf, &got_pre).ok());
    EXPECT_TRUE(close_rel(got_pre, want_pre, 1e-2, what + fmt(" before ln_post, frames=%lld", (long long)nf)));
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); ++i) num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
    std::printf("  %s frames=%lld: relative L2 %.3g\n", what.c_str(), (long long)nf, std::sqrt(num / den));
    // Device in, device out: the same numbers.
    DeviceArray<float> d_mel(mel), d_out(got.size());
    d_out.poison();
    OMNI_CUDA_OK(cudaDeviceSynchronize());  // the encoder's stream does not wait for the legacy one
    ASSERT_TRUE((*enc)->encode_device(d_mel.get(), nf, d_out.get()).ok());
    EXPECT_TRUE(close_rel(d_out.download(), got, 1e-6, what + " encode_device vs encode"));
  }
}

TEST(CudaWhisperEncoder, SyntheticTinyMatchesCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (DType t : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    gguf::GgufWriter gw;
    gw.add_string("general.architecture", "clip");
    ASSERT_TRUE(add_synthetic_audio_encoder(gw, "whisper-tiny-enc", 64, t, 9).ok());
    const std::string path = test::temp_path(std::string("cuda_whisper_enc_") + dtype_name(t) + ".gguf");
    ASSERT_TRUE(gw.write(path).ok());
    auto m = load_audio_encoder(path);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    // 2 frames (one position), an odd position count, the whole 256-frame window.
    expect_encoder_matches_cpu((*m)->weights.whisper, {2, 98, 256}, std::string("whisper-tiny-enc ") + dtype_name(t));
  }
}

TEST(CudaWhisperEncoder, HeadDim64AndMixedTypesMatchCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  // Whisper's head size (64), 128 mels (large-v3's), f16 and bf16 matrices.
  for (DType t : {DType::kF16, DType::kBF16}) {
    auto hw = make_weights(128, 2, 2, 128, 96, t, 4);
    expect_encoder_matches_cpu(hw->w, {192, 34}, std::string("d128 h2 ") + dtype_name(t));
  }
  // q/k/v of different types: fused as f16.
  auto hw = make_weights(128, 2, 1, 80, 32, DType::kF16, 6);
  auto q8 = make_weights(128, 2, 1, 80, 32, DType::kQ8_0, 7);
  hw->w.enc_blocks[0].attn.key = q8->w.enc_blocks[0].attn.key;
  expect_encoder_matches_cpu(hw->w, {64}, "mixed q/k/v types");
}

TEST(CudaWhisperEncoder, BadInputIsAStatus) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto hw = make_weights(64, 2, 1, 80, 16, DType::kF16, 8);
  auto enc = CudaWhisperEncoder::create(hw->w);
  ASSERT_TRUE(enc.ok()) << enc.status().to_string();
  std::vector<float> mel = random_mel(34, 80, 1), out;
  EXPECT_EQ((*enc)->encode(mel.data(), 3, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*enc)->encode(mel.data(), 34, &out).code(), StatusCode::kInvalidArgument);  // > 2 * n_audio_ctx
  mel[77] = INFINITY;
  Status st = (*enc)->encode(mel.data(), 32, &out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("77"), std::string::npos) << st.message();
  auto bad = make_weights(64, 2, 1, 80, 16, DType::kF16, 8);
  bad->w.enc_blocks[0].mlp0.w.n_out = 100;
  EXPECT_EQ(CudaWhisperEncoder::create(bad->w).status().code(), StatusCode::kInvalidArgument);
  bad = make_weights(64, 2, 1, 80, 16, DType::kF16, 8);
  bad->w.enc_blocks[0].mlp2.w.type = DType::kQ2_K;  // no CUDA kernel (checked before the data is read)
  EXPECT_EQ(CudaWhisperEncoder::create(bad->w).status().code(), StatusCode::kUnsupported);
}

// The real whisper-tiny.en (models/, installed by tools/setup.sh; skipped when absent): the
// CUDA encoder on our CUDA log-mel of the LibriVox clip vs the CPU encoder on the CPU log-mel,
// and vs CTranslate2's encoder rows (the fixture the CPU test uses; f16-rounded).
TEST(CudaWhisperEncoder, TinyEnMatchesCpuOnLibriVoxClip) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  SKIP_WITHOUT_CUFFT();
  LOAD_TINY_EN_OR_SKIP(model);
  const audio::WhisperWeights& w = (*model)->weights;
  const std::vector<float> audio = test::read_wav_pcm16(data_path("librivox_0880.wav"));
  auto cpu_mel = audio::whisper_log_mel(audio.data(), audio.size(), 80, 480000);
  auto gpu_mel = cuda_whisper_log_mel(audio.data(), audio.size(), 80, 480000);
  ASSERT_TRUE(cpu_mel.ok() && gpu_mel.ok()) << gpu_mel.status().to_string();
  cpu_mel->resize(3000 * 80);
  gpu_mel->resize(3000 * 80);
  ThreadPool pool(4);
  audio::WhisperEncoder cpu(w, pool);
  std::vector<float> want, got;
  ASSERT_TRUE(cpu.encode(cpu_mel->data(), 3000, &want).ok());
  auto enc = CudaWhisperEncoder::create(w);
  ASSERT_TRUE(enc.ok()) << enc.status().to_string();
  ASSERT_TRUE((*enc)->encode(gpu_mel->data(), 3000, &got).ok());
  EXPECT_TRUE(close_rel(got, want, 1e-2, "whisper-tiny.en, 30 s window"));
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
  std::printf("  whisper-tiny.en 30 s: relative L2 vs CPU %.3g\n", std::sqrt(num / den));
}

// ---- decoder ----------------------------------------------------------------------------

// Runs the same slot calls on the CPU decoder and the CUDA one and compares every logit row:
// a 21-token prompt (two chunks of at most 16 rows on the GPU, all rows' logits), single steps,
// hypotheses copied and stepped together (decode_slots), one of them replaced mid-way, and two
// slots at different positions in one step.
void expect_decoder_matches_cpu(const audio::WhisperWeights& w, const std::string& what) {
  ThreadPool pool(2);
  audio::WhisperDecoder cpu(w, pool);
  auto gpu = CudaWhisperDecoder::create(w, pool);
  ASSERT_TRUE(gpu.ok()) << what << ": " << gpu.status().to_string();
  CudaWhisperDecoder& g = **gpu;
  const int64_t V = w.hp.n_vocab, n_audio = w.hp.n_audio_ctx - 3;
  const std::vector<float> enc = random_floats(size_t(n_audio * w.hp.n_audio_state), 17, -1.0f, 1.0f);
  ASSERT_TRUE(cpu.set_audio(enc.data(), n_audio).ok());
  ASSERT_TRUE(g.set_audio(enc.data(), n_audio).ok());
  ASSERT_TRUE(cpu.reset_slots(4).ok());
  ASSERT_TRUE(g.reset_slots(4).ok());
  double worst = 0;
  auto compare = [&](const std::vector<float>& got, const std::vector<float>& want, const std::string& step) {
    EXPECT_TRUE(close_rel(got, want, 1e-4, what + " " + step));
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); ++i) num += double(got[i] - want[i]) * (got[i] - want[i]), den += double(want[i]) * want[i];
    worst = std::max(worst, std::sqrt(num / den));
  };
  std::vector<int32_t> prompt(21);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 37 + 5) % size_t(V - 10));
  const auto n = int64_t(prompt.size());
  {
    auto cache = cpu.new_cache();
    std::vector<float> want(size_t(n * V)), got(size_t(n * V), NAN);
    ASSERT_TRUE(cpu.decode(cache, prompt.data(), n, want.data(), true).ok());
    ASSERT_TRUE(g.decode_slot_all(0, prompt.data(), n, got.data()).ok());
    compare(got, want, "prompt, every row");
  }
  std::vector<float> want(static_cast<size_t>(V)), got(static_cast<size_t>(V), NAN);
  ASSERT_TRUE(cpu.decode_slot(0, prompt.data(), n, want.data()).ok());
  for (int s = 0; s < 3; ++s) {
    const int32_t t = int32_t((s * 11 + 3) % (V - 10));
    std::fill(got.begin(), got.end(), NAN);
    ASSERT_TRUE(cpu.decode_slot(0, &t, 1, want.data()).ok());
    ASSERT_TRUE(g.decode_slot(0, &t, 1, got.data()).ok());
    compare(got, want, fmt("step %d", s));
  }
  for (audio::WhisperTextDecoder* d : {static_cast<audio::WhisperTextDecoder*>(&cpu), static_cast<audio::WhisperTextDecoder*>(&g)}) {
    ASSERT_TRUE(d->copy_slot(1, 0).ok());
    ASSERT_TRUE(d->copy_slot(2, 0).ok());
  }
  auto step_slots = [&](const std::vector<int>& slots, const std::vector<int32_t>& toks, const std::string& step) {
    std::vector<float> w3(slots.size() * size_t(V)), g3(w3.size(), NAN);
    ASSERT_TRUE(cpu.decode_slots(slots.data(), toks.data(), int64_t(slots.size()), w3.data()).ok());
    ASSERT_TRUE(g.decode_slots(slots.data(), toks.data(), int64_t(slots.size()), g3.data()).ok());
    compare(g3, w3, step);
  };
  step_slots({2, 1, 0}, {5, 6, 7}, "three hypotheses");
  ASSERT_TRUE(cpu.copy_slot(1, 2).ok());
  ASSERT_TRUE(g.copy_slot(1, 2).ok());
  step_slots({1, 2}, {8, 9}, "a hypothesis replaced");
  step_slots({3, 0}, {10, 11}, "slots at positions 0 and 25");
  std::printf("  %s: worst relative L2 of a logit row set vs the CPU decoder %.3g\n", what.c_str(), worst);
}

TEST(CudaWhisperDecoder, SyntheticMatchesCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (DType t : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    auto hw = test::make_whisper_decoder({}, t, 21);
    expect_decoder_matches_cpu(hw->w, std::string("decoder d64 ") + dtype_name(t));
  }
  // Whisper tiny's head size (64) and an audio width unlike the text's.
  test::WhisperDecoderShape s;
  s.d = 128;
  s.d_audio = 96;
  s.n_vocab = 517;
  auto hw = test::make_whisper_decoder(s, DType::kF16, 22);
  expect_decoder_matches_cpu(hw->w, "decoder d128 f16");
}

TEST(CudaWhisperDecoder, SearchGivesTheCpuTokens) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto hw = test::make_whisper_decoder({}, DType::kF16, 23);
  const audio::WhisperWeights& w = hw->w;
  ThreadPool pool(2);
  audio::WhisperDecoder cpu(w, pool);
  auto gpu = CudaWhisperDecoder::create(w, pool);
  ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
  const std::vector<float> enc = random_floats(size_t(12 * w.hp.n_audio_state), 24, -1.0f, 1.0f);
  ASSERT_TRUE(cpu.set_audio(enc.data(), 12).ok());
  ASSERT_TRUE((*gpu)->set_audio(enc.data(), 12).ok());
  const std::vector<int32_t> prompt{w.vocab.sot, w.vocab.no_timestamps};
  for (int beam : {1, 4}) {
    audio::WhisperSearchOptions so;
    so.beam_size = beam;
    so.max_new_tokens = 20;
    auto want = audio::whisper_search(cpu, w, prompt, so);
    auto got = audio::whisper_search(**gpu, w, prompt, so);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status().to_string();
    EXPECT_EQ(*got, *want) << "beam " << beam;
  }
}

TEST(CudaWhisperDecoder, BadCallsAreStatuses) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto hw = test::make_whisper_decoder({}, DType::kF16, 25);
  ThreadPool pool(1);
  auto gpu = CudaWhisperDecoder::create(hw->w, pool);
  ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
  CudaWhisperDecoder& g = **gpu;
  const int64_t V = hw->w.hp.n_vocab;
  std::vector<float> logits(static_cast<size_t>(2 * V)), again(static_cast<size_t>(V));
  const int32_t tok = 4;
  ASSERT_TRUE(g.reset_slots(2).ok());
  EXPECT_EQ(g.decode_slot(0, &tok, 1, logits.data()).code(), StatusCode::kWrongState);  // before set_audio
  const std::vector<float> enc = random_floats(size_t(10 * hw->w.hp.n_audio_state), 26, -1.0f, 1.0f);
  EXPECT_EQ(g.set_audio(enc.data(), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.set_audio(enc.data(), hw->w.hp.n_audio_ctx + 1).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(g.set_audio(enc.data(), 10).ok());
  EXPECT_EQ(g.reset_slots(0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.decode_slot(2, &tok, 1, logits.data()).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(g.copy_slot(-1, 0).code(), StatusCode::kOutOfRange);
  const int32_t bad = int32_t(V);
  EXPECT_EQ(g.decode_slot(0, &bad, 1, logits.data()).code(), StatusCode::kInvalidArgument);
  const int dup[2] = {0, 0};
  const int32_t toks[2] = {4, 5};
  EXPECT_EQ(g.decode_slots(dup, toks, 2, logits.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.decode_slots(nullptr, toks, 2, logits.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(g.decode_slot(0, nullptr, 1, logits.data()).code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> too_long(size_t(hw->w.hp.n_text_ctx + 1), 1);
  EXPECT_EQ(g.decode_slot(0, too_long.data(), int64_t(too_long.size()), logits.data()).code(), StatusCode::kOutOfRange);
  // The refusals left slot 0 empty: its first step equals a fresh slot's.
  ASSERT_TRUE(g.decode_slot(0, &tok, 1, logits.data()).ok());
  ASSERT_TRUE(g.decode_slot(1, &tok, 1, again.data()).ok());
  EXPECT_TRUE(std::equal(again.begin(), again.end(), logits.begin()));
}

// Shapes and types are checked before the device is touched: these run without a GPU.
TEST(CudaWhisperParams, DecoderCreateRefusesBadWeights) {
  ThreadPool pool(1);
  auto hw = test::make_whisper_decoder({}, DType::kF16, 27);
  hw->w.dec_blocks[1].mlp0.w.n_out = 100;
  EXPECT_EQ(CudaWhisperDecoder::create(hw->w, pool).status().code(), StatusCode::kInvalidArgument);
  hw = test::make_whisper_decoder({}, DType::kF16, 27);
  hw->w.dec_blocks[0].cross_attn.key.w.n_in = 65;
  EXPECT_EQ(CudaWhisperDecoder::create(hw->w, pool).status().code(), StatusCode::kInvalidArgument);
  hw = test::make_whisper_decoder({}, DType::kF16, 27);
  hw->w.dec_pos.resize(10);
  EXPECT_EQ(CudaWhisperDecoder::create(hw->w, pool).status().code(), StatusCode::kInvalidArgument);
  hw = test::make_whisper_decoder({}, DType::kF16, 27);
  hw->w.dec_blocks[0].attn.out.w.type = DType::kQ2_K;  // no CUDA kernel
  EXPECT_EQ(CudaWhisperDecoder::create(hw->w, pool).status().code(), StatusCode::kUnsupported);
}

// The real whisper-tiny.en (models/, installed by tools/setup.sh; skipped when absent): the
// clip transcribed (beam 5, as faster-whisper) with the decoder on the GPU, then with the encoder
// too, gives the CPU's text.
TEST(CudaWhisperDecoder, TinyEnTranscribesLikeTheCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  LOAD_TINY_EN_OR_SKIP(model);
  const audio::WhisperWeights& w = (*model)->weights;
  const std::vector<float> audio = test::read_wav_pcm16(data_path("librivox_0880.wav"));
  ThreadPool pool(4);
  audio::WhisperTranscriber cpu(w, pool);
  auto want = cpu.transcribe(audio.data(), audio.size());
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  auto dec = CudaWhisperDecoder::create(w, pool);
  ASSERT_TRUE(dec.ok()) << dec.status().to_string();
  audio::WhisperBackend decoder_only;
  decoder_only.decoder = dec->get();
  audio::WhisperTranscriber gpu_dec(w, pool, std::move(decoder_only));
  auto got = gpu_dec.transcribe(audio.data(), audio.size());
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, *want) << "decoder on the GPU";
  auto enc = CudaWhisperEncoder::create(w);
  ASSERT_TRUE(enc.ok()) << enc.status().to_string();
  audio::WhisperBackend both;
  both.encode = [&](const float* mel, int64_t n_frames, std::vector<float>* out) {
    return (*enc)->encode(mel, n_frames, out);
  };
  both.decoder = dec->get();
  audio::WhisperTranscriber gpu(w, pool, std::move(both));
  got = gpu.transcribe(audio.data(), audio.size());
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, *want) << "encoder and decoder on the GPU";
  std::printf("  whisper-tiny.en on the GPU: \"%s\"\n", got->c_str());
}

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
