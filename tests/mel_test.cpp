// Whisper log-mel (audio/features) against openai-whisper's own log_mel_spectrogram and
// mel_filters.npz (fixtures by tools/make_whisper_fixtures.py --parts mel, on a LibriVox clip
// from pocketsphinx-testdata), and the FFT against a long-double DFT.
// Bounds: log-mel 1e-4 absolute (the bound; whisper computes in f32, we in f64 up to
// the mel matmul); filters 1e-6 relative to the largest weight (librosa's f32 rounding).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "audio/features/fft.h"
#include "audio/features/log_mel.h"
#include "tests/audio_test_util.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using test::read_wav_pcm16;

std::string data_path(const std::string& name) { return test::source_path("tests/data/whisper/" + name); }

TEST(FftTest, MatchesLongDoubleDft) {
  std::mt19937 rng(3);
  std::normal_distribution<double> g;
  for (int n : {1, 2, 5, 7, 16, 60, 400, 441}) {
    audio::FftPlan plan(n);
    std::vector<std::complex<double>> x(n), y(n), scratch(n);
    for (auto& v : x) v = {g(rng), g(rng)};
    plan.execute(x.data(), y.data(), scratch.data());
    double worst = 0;
    for (int k = 0; k < n; ++k) {
      std::complex<long double> acc = 0;
      for (int j = 0; j < n; ++j) {
        const long double a = -2.0L * 3.14159265358979323846264338327950288L * ((long long)j * k % n) / n;
        acc += std::complex<long double>(x[j].real(), x[j].imag()) *
               std::complex<long double>(std::cos(a), std::sin(a));
      }
      worst = std::max(worst, static_cast<double>(std::abs(std::complex<long double>(y[k]) - acc)));
    }
    EXPECT_LT(worst, 1e-12 * std::sqrt(n) * 4) << "n=" << n;
  }
}

TEST(LogMelTest, FiltersMatchWhisperNpz) {
  for (int n_mels : {80, 128}) {
    const std::vector<float> want = test::read_f32(data_path("mel_filters_" + std::to_string(n_mels) + ".f32"));
    ASSERT_EQ(want.size(), static_cast<size_t>(n_mels) * 201) << "fixture missing";
    const std::vector<float> got = audio::slaney_mel_filters(16000, 400, n_mels);
    ASSERT_EQ(got.size(), want.size());
    const float peak = *std::max_element(want.begin(), want.end());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-6 * peak) << "n_mels " << n_mels << " [" << i / 201 << ", " << i % 201 << "]";
  }
}

TEST(LogMelTest, MatchesWhisperOnLibriVoxClip) {
  const std::vector<float> audio = read_wav_pcm16(data_path("librivox_0880.wav"));
  ASSERT_EQ(audio.size(), 47840u);
  for (int n_mels : {80, 128}) {
    const std::vector<float> want =
        test::read_f32(data_path("librivox_0880_mel" + std::to_string(n_mels) + ".f32"));
    ASSERT_EQ(want.size(), 299u * n_mels);
    auto got = audio::whisper_log_mel(audio.data(), audio.size(), n_mels, 0);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    ASSERT_EQ(got->size(), want.size());
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const double d = std::fabs(double((*got)[i]) - want[i]);
      if (d > worst) worst = d, at = i;
    }
    EXPECT_LE(worst, 1e-4) << "n_mels " << n_mels << " frame " << at / n_mels << " bin " << at % n_mels;
  }
}

TEST(LogMelTest, ChunkedEqualsWhole) {
  const std::vector<float> audio = read_wav_pcm16(data_path("librivox_0880.wav"));
  ASSERT_FALSE(audio.empty());
  auto whole_mel = audio::LogMel::create(80);
  ASSERT_TRUE(whole_mel.ok());
  std::vector<float> whole;
  ASSERT_TRUE((*whole_mel)->push(audio.data(), audio.size(), &whole).ok());
  ASSERT_TRUE((*whole_mel)->finish(&whole).ok());
  EXPECT_EQ(whole.size(), audio.size() / 160 * 80);
  std::mt19937 rng(11);
  for (int trial = 0; trial < 3; ++trial) {
    auto mel = audio::LogMel::create(80);
    std::vector<float> chunked;
    size_t at = 0;
    int64_t frames_before_finish = 0;
    while (at < audio.size()) {
      const size_t n = std::min(audio.size() - at, size_t(1) + rng() % (trial == 0 ? 7 : 4000));
      ASSERT_TRUE((*mel)->push(audio.data() + at, n, &chunked).ok());
      at += n;
      // Frames appear as soon as their 400 samples (incl. the 200 reflected) are in.
      const int64_t received = static_cast<int64_t>(at);
      EXPECT_EQ((*mel)->frames_emitted(), received > 200 ? (received - 200) / 160 + 1 : 0);
      frames_before_finish = (*mel)->frames_emitted();
    }
    EXPECT_GT(frames_before_finish, 290);
    ASSERT_TRUE((*mel)->finish(&chunked).ok());
    ASSERT_EQ(chunked, whole) << "trial " << trial;  // bit-identical: the same per-frame math
  }
}

// Frames of exact zeros (Whisper's padding) skip the FFT; their rows must be what the FFT path
// gives for zero power: a window of 1e-30 samples (power far below the 1e-10 floor) takes the
// FFT path and must give the same bits, and the clip's own frames stay as they were.
TEST(LogMelTest, ZeroFramesEqualTheFftPathAtTheFloor) {
  const std::vector<float> clip = read_wav_pcm16(data_path("librivox_0880.wav"));
  std::vector<float> zeros = clip, tiny = clip;
  zeros.resize(clip.size() + 16000, 0.0f);
  tiny.resize(clip.size() + 16000, 1e-30f);
  zeros.insert(zeros.end(), clip.begin(), clip.end());
  tiny.insert(tiny.end(), clip.begin(), clip.end());
  auto a = audio::LogMel::create(80), b = audio::LogMel::create(80);
  std::vector<float> za, tb;
  ASSERT_TRUE((*a)->push(zeros.data(), zeros.size(), &za).ok());
  ASSERT_TRUE((*b)->push(tiny.data(), tiny.size(), &tb).ok());
  ASSERT_EQ(za, tb);  // bit-identical, silent frames included
  const float floor_row = za[size_t(clip.size() / 160 + 20) * 80];  // a frame inside the silence
  EXPECT_EQ(floor_row, static_cast<float>(std::log10(1e-10)));
}

TEST(LogMelTest, BadInputIsAStatus) {
  EXPECT_EQ(audio::LogMel::create(90).status().code(), StatusCode::kInvalidArgument);
  auto mel = audio::LogMel::create(80);
  ASSERT_TRUE(mel.ok());
  std::vector<float> out;
  const float bad[3] = {0.1f, std::nanf(""), 0.2f};
  Status s = (*mel)->push(bad, 3, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("sample 1"), std::string::npos) << s.message();
  const float inf[1] = {INFINITY};
  EXPECT_FALSE((*mel)->push(inf, 1, &out).ok());
  const std::vector<float> few(200, 0.5f);
  ASSERT_TRUE((*mel)->push(few.data(), few.size(), &out).ok());
  EXPECT_EQ((*mel)->finish(&out).code(), StatusCode::kInvalidArgument);  // 200 < 201
  (*mel)->reset();
  const std::vector<float> ok(1000, 0.25f);
  ASSERT_TRUE((*mel)->push(ok.data(), ok.size(), &out).ok());
  ASSERT_TRUE((*mel)->finish(&out).ok());
  EXPECT_EQ(out.size(), 1000u / 160 * 80);
  EXPECT_EQ((*mel)->push(ok.data(), 1, &out).code(), StatusCode::kWrongState);
  EXPECT_EQ((*mel)->finish(&out).code(), StatusCode::kWrongState);
  for (float v : out) EXPECT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace omni
