// Sampler properties checked against directly computed distributions (no stored outputs).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "runtime/model/sampler.h"

namespace omni {
namespace {

std::vector<float> test_logits() { return {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f, -4.0f, 1.5f}; }

TEST(Sampler, GreedyIsArgmax) {
  SamplerParams p;
  p.temperature = 0;
  auto s = Sampler::create(p, 8);
  ASSERT_TRUE(s.ok());
  auto l = test_logits();
  EXPECT_EQ(s->sample(l.data(), {}), 1);
}

// A penalty over a history holding only an out-of-range id sends sample() down the full path
// (every candidate built, penalised, partial_sort) without changing any logit.
const std::vector<int32_t> kFullPathHistory = {-1};

// Greedy without a penalty to apply skips building the candidates; it must pick what the full
// path picks (top_k = 1 at temperature 1 there), ties to the lower id.
TEST(Sampler, GreedyShortcutPicksWhatTheFullPathPicks) {
  SamplerParams greedy;
  greedy.temperature = 0;
  SamplerParams full;
  full.temperature = 1.0f;
  full.top_k = 1;
  full.repeat_penalty = 1.1f;
  const int64_t n = 1000;
  auto g = Sampler::create(greedy, n), f = Sampler::create(full, n);
  ASSERT_TRUE(g.ok() && f.ok());
  std::vector<float> l(n);
  for (int trial = 0; trial < 20; ++trial) {
    for (int64_t i = 0; i < n; ++i) l[static_cast<size_t>(i)] = static_cast<float>((i * 7919 + trial * 104729) % 97) * 0.25f;
    EXPECT_EQ(g->sample(l.data(), {}), f->sample(l.data(), kFullPathHistory)) << trial;
  }
}

// The one-pass top-k selection against a partial_sort of all pairs (larger logit first, then
// smaller id), with many ties, k below, at and above n, and -0.0 beside 0.0.
TEST(Sampler, TopKCandidatesAreWhatPartialSortKeeps) {
  auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  std::vector<std::pair<float, int32_t>> got, want;
  for (int64_t n : {1, 2, 7, 40, 41, 1000, 4160}) {
    for (size_t k : {1, 2, 3, 39, 40, 41, 4160, 5000}) {
      for (int trial = 0; trial < 4; ++trial) {
        std::vector<float> l(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i)
          l[static_cast<size_t>(i)] = static_cast<float>((i * 7919 + trial * 104729) % (trial == 3 ? 5 : 97)) * 0.5f - 2.0f;
        if (n > 3) l[static_cast<size_t>(n / 2)] = -0.0f, l[static_cast<size_t>(n / 3)] = 0.0f;
        ASSERT_TRUE(top_k_candidates(l.data(), n, k, &got));
        want.clear();
        for (int64_t i = 0; i < n; ++i) want.emplace_back(l[static_cast<size_t>(i)], static_cast<int32_t>(i));
        const size_t kk = std::min(k, want.size());
        std::partial_sort(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(kk), want.end(), better);
        want.resize(kk);
        ASSERT_EQ(got.size(), want.size()) << n << " " << k;
        for (size_t i = 0; i < kk; ++i) {
          ASSERT_EQ(got[i].second, want[i].second) << "n " << n << " k " << k << " trial " << trial << " at " << i;
          ASSERT_EQ(got[i].first, want[i].first);
        }
      }
    }
  }
  std::vector<float> with_nan = {1.0f, 2.0f, std::nanf(""), 3.0f};
  EXPECT_FALSE(top_k_candidates(with_nan.data(), 4, 2, &got));
  EXPECT_FALSE(top_k_candidates(with_nan.data(), 4, 4, &got));
  EXPECT_TRUE(top_k_candidates(with_nan.data(), 0, 2, &got));
  EXPECT_TRUE(got.empty());
  std::vector<float> plain = {1.0f, 2.0f, 3.0f};
  EXPECT_TRUE(top_k_candidates(plain.data(), 3, 0, &got));  // k = 0 keeps nothing
  EXPECT_TRUE(got.empty());
}

// The top-k shortcut draws exactly the tokens the full path draws, seed for seed, with top-p
// and min-p on (the defaults) and off, at two temperatures, and falls back on NaN logits.
TEST(Sampler, TopKShortcutDrawsWhatTheFullPathDraws) {
  const int64_t n = 4160;
  std::vector<float> l(static_cast<size_t>(n));
  for (float temp : {0.8f, 1.5f}) {
    for (bool cuts : {true, false}) {
      SamplerParams fast;
      fast.temperature = temp;
      fast.top_k = 40;
      if (!cuts) fast.top_p = 1.0f, fast.min_p = 0.0f;
      fast.seed = 7;
      SamplerParams full = fast;
      full.repeat_penalty = 1.3f;
      auto a = Sampler::create(fast, n), b = Sampler::create(full, n);
      ASSERT_TRUE(a.ok() && b.ok());
      for (int step = 0; step < 200; ++step) {
        for (int64_t i = 0; i < n; ++i)
          l[static_cast<size_t>(i)] = static_cast<float>((i * 7919 + step * 104729) % 1009) * 0.004f;
        ASSERT_EQ(a->sample(l.data(), {}), b->sample(l.data(), kFullPathHistory)) << temp << " " << cuts << " " << step;
      }
    }
  }
  SamplerParams p;
  p.top_k = 40;
  auto s = Sampler::create(p, 8);
  ASSERT_TRUE(s.ok());
  std::vector<float> with_nan = {1.0f, std::nanf(""), 3.0f, 0.0f, 2.0f, -1.0f, 0.5f, 0.25f};
  const int32_t t = s->sample(with_nan.data(), {});
  EXPECT_GE(t, 0);
  EXPECT_LT(t, 8);
}

TEST(Sampler, TopKOneIsArgmaxAtAnyTemperature) {
  SamplerParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  auto s = Sampler::create(p, 8);
  ASSERT_TRUE(s.ok());
  auto l = test_logits();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s->sample(l.data(), {}), 1);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDiffers) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0;
  auto l = test_logits();
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    auto s = Sampler::create(p, 8);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s->sample(l.data(), {}));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampler, FrequenciesFollowSoftmaxAtTemperature) {
  SamplerParams p;
  p.temperature = 0.7f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0;
  p.seed = 7;
  auto l = test_logits();
  auto s = Sampler::create(p, 8);
  std::vector<double> expect(8);
  double z = 0;
  for (int i = 0; i < 8; ++i) z += expect[i] = std::exp(l[i] / p.temperature);
  const int n = 40000;
  std::vector<int> count(8);
  for (int i = 0; i < n; ++i) ++count[s->sample(l.data(), {})];
  for (int i = 0; i < 8; ++i) {
    const double pi = expect[i] / z;
    const double sigma = std::sqrt(n * pi * (1 - pi)) + 1;
    EXPECT_NEAR(count[i], n * pi, 5 * sigma) << "token " << i;
  }
}

TEST(Sampler, TopPAndMinPNeverPickOutsideTheNucleus) {
  auto l = test_logits();
  // Softmax at T=1 over the logits; sorted: 1 (3.0), 5 (2.9), 2 (2.5), 7 (1.5), 0 (1.0) ...
  SamplerParams p;
  p.temperature = 1.5f;
  p.top_k = 0;
  p.top_p = 0.7f;
  p.min_p = 0;
  auto s = Sampler::create(p, 8);
  std::vector<double> prob(8);
  double z = 0;
  for (int i = 0; i < 8; ++i) z += prob[i] = std::exp(l[i]);
  for (double& x : prob) x /= z;
  // Nucleus: smallest prefix of the sorted list whose mass reaches 0.7.
  ASSERT_LT(prob[1] + prob[5], 0.7);
  ASSERT_GE(prob[1] + prob[5] + prob[2], 0.7);
  std::map<int, int> seen;
  for (int i = 0; i < 5000; ++i) ++seen[s->sample(l.data(), {})];
  for (const auto& [tok, c] : seen) EXPECT_TRUE(tok == 1 || tok == 5 || tok == 2) << "token " << tok;
  EXPECT_EQ(seen.size(), 3u);

  p.top_p = 1.0f;
  p.min_p = 0.5f;  // keep tokens with prob >= 0.5 * p(top) at T=1: e^(x-3) >= 0.5 → x >= 2.307
  auto s2 = Sampler::create(p, 8);
  seen.clear();
  for (int i = 0; i < 5000; ++i) ++seen[s2->sample(l.data(), {})];
  for (const auto& [tok, c] : seen) EXPECT_TRUE(tok == 1 || tok == 5 || tok == 2) << "token " << tok;
}

TEST(Sampler, RepetitionPenaltyDemotesRecentTokens) {
  SamplerParams p;
  p.temperature = 0;
  p.repeat_penalty = 1.5f;  // 3.0 / 1.5 = 2.0 < 2.9
  p.repeat_last_n = 4;
  auto s = Sampler::create(p, 8);
  auto l = test_logits();
  std::vector<int32_t> history = {1, 1, 1};
  EXPECT_EQ(s->sample(l.data(), history), 5);
  // Outside the window the penalty no longer applies.
  history = {1, 0, 0, 0, 0};
  EXPECT_EQ(s->sample(l.data(), history), 1);
}

TEST(Sampler, BadParamsAreRejected) {
  SamplerParams p;
  p.top_p = 0;
  EXPECT_EQ(Sampler::create(p, 8).status().code(), StatusCode::kInvalidArgument);
  p = SamplerParams();
  p.repeat_penalty = 0;
  EXPECT_EQ(Sampler::create(p, 8).status().code(), StatusCode::kInvalidArgument);
  p = SamplerParams();
  p.temperature = NAN;
  EXPECT_EQ(Sampler::create(p, 8).status().code(), StatusCode::kInvalidArgument);
  p = SamplerParams();
  EXPECT_EQ(Sampler::create(p, 0).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace omni
