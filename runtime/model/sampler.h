// Token sampling: greedy, temperature, top-k, top-p, min-p and repetition penalty, in the
// order llama.cpp applies them (penalties, top-k, top-p, min-p, temperature). A fixed seed
// reproduces the same tokens. Thread-safety: one Sampler per sequence.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "kernels/core/status.h"

namespace omni {

struct SamplerParams {
  float temperature = 0.8f;   // <= 0: greedy (argmax)
  int32_t top_k = 40;         // <= 0: off
  float top_p = 0.95f;        // >= 1: off
  float min_p = 0.05f;        // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; applied to the last repeat_last_n tokens
  int32_t repeat_last_n = 64;
  uint64_t seed = 0;
};

// The k best (logit, id) pairs of logits[0, n): larger logit first, then smaller id; k is
// clamped to n. One pass with a k-entry heap: the same pairs in the same order as a
// partial_sort of all n pairs, without writing them. Returns false when a logit is NaN (no
// order to keep then): `out` is unspecified and the caller takes the full path.
bool top_k_candidates(const float* logits, int64_t n, size_t k, std::vector<std::pair<float, int32_t>>* out);

class Sampler {
 public:
  // kInvalidArgument for out-of-range params (negative temperature is fine: greedy).
  static StatusOr<Sampler> create(const SamplerParams& params, int64_t n_vocab);
  // Picks a token from logits [n_vocab]; `history` is the sequence so far (for penalties).
  int32_t sample(const float* logits, std::span<const int32_t> history);
  const SamplerParams& params() const { return params_; }

 private:
  int32_t sample_sorted();

  SamplerParams params_;
  int64_t n_vocab_ = 0;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // reused: no allocation per token
  std::vector<double> probs_;
};

}  // namespace omni
