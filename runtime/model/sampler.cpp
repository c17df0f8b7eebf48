#include "runtime/model/sampler.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/ops_cpu.h"

namespace omni {

namespace {
// Larger logit first, then smaller id: a strict total order on non-NaN pairs.
bool better(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}
}  // namespace

bool top_k_candidates(const float* logits, int64_t n, size_t k, std::vector<std::pair<float, int32_t>>* out) {
  out->clear();
  if (n <= 0) return true;
  k = std::min(k, static_cast<size_t>(n));
  if (k == 0) return true;
  // A heap whose top is the worst of the k kept so far. Ids only grow along the scan, so a later
  // logit displaces the top only when strictly larger.
  for (int64_t i = 0; i < static_cast<int64_t>(k); ++i) {
    if (std::isnan(logits[i])) return false;
    out->emplace_back(logits[i], static_cast<int32_t>(i));
    std::push_heap(out->begin(), out->end(), better);
  }
  float worst = out->front().first;
  for (int64_t i = static_cast<int64_t>(k); i < n; ++i) {
    const float v = logits[i];
    if (v <= worst) continue;  // the common case: one compare
    if (std::isnan(v)) return false;
    std::pop_heap(out->begin(), out->end(), better);
    out->back() = {v, static_cast<int32_t>(i)};
    std::push_heap(out->begin(), out->end(), better);
    worst = out->front().first;
  }
  std::sort_heap(out->begin(), out->end(), better);
  return true;
}

StatusOr<Sampler> Sampler::create(const SamplerParams& p, int64_t n_vocab) {
  if (n_vocab <= 0) return invalid_argument(fmt("n_vocab = %lld must be > 0", (long long)n_vocab));
  if (!std::isfinite(p.temperature)) return invalid_argument("temperature must be finite");
  if (!(p.top_p > 0.0f) || !std::isfinite(p.top_p)) return invalid_argument(fmt("top_p = %g must be in (0, 1]", p.top_p));
  if (std::isnan(p.min_p) || p.min_p > 1.0f) return invalid_argument(fmt("min_p = %g must be <= 1", p.min_p));
  if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty))
    return invalid_argument(fmt("repeat_penalty = %g must be > 0", p.repeat_penalty));
  if (p.repeat_last_n < 0) return invalid_argument(fmt("repeat_last_n = %d must be >= 0", p.repeat_last_n));
  Sampler s;
  s.params_ = p;
  s.n_vocab_ = n_vocab;
  s.rng_.seed(p.seed);
  s.candidates_.reserve(static_cast<size_t>(n_vocab));
  s.probs_.reserve(static_cast<size_t>(n_vocab));
  return s;
}

int32_t Sampler::sample(const float* logits, std::span<const int32_t> history) {
  const SamplerParams& p = params_;
  // Greedy with no penalty to apply: the first largest logit, without building the candidates
  // (the same pick as the min_element below; 2% of a Gemma 3 decode step at 262144 entries).
  const bool penalty = p.repeat_penalty != 1.0f && p.repeat_last_n > 0 && !history.empty();
  if (p.temperature <= 0.0f && !penalty) return static_cast<int32_t>(cpu::argmax(logits, n_vocab_));
  // Top-k sampling with nothing to change the logits first: select the k in one pass.
  if (p.temperature > 0.0f && p.top_k > 0 && !penalty &&
      top_k_candidates(logits, n_vocab_, static_cast<size_t>(p.top_k), &candidates_))
    return sample_sorted();
  candidates_.clear();
  for (int64_t i = 0; i < n_vocab_; ++i) candidates_.emplace_back(logits[i], static_cast<int32_t>(i));

  // Repetition penalty (CTRL-style, as llama.cpp): positive logits divided, negative multiplied,
  // once per distinct token among the last repeat_last_n.
  if (p.repeat_penalty != 1.0f && p.repeat_last_n > 0) {
    const size_t n = std::min(history.size(), static_cast<size_t>(p.repeat_last_n));
    for (size_t i = history.size() - n; i < history.size(); ++i) {
      const int32_t id = history[i];
      if (id < 0 || id >= n_vocab_) continue;
      bool seen = false;
      for (size_t j = history.size() - n; j < i; ++j) seen |= history[j] == id;
      if (seen) continue;
      float& l = candidates_[static_cast<size_t>(id)].first;
      l = l > 0 ? l / p.repeat_penalty : l * p.repeat_penalty;
    }
  }

  if (p.temperature <= 0.0f) {
    return std::min_element(candidates_.begin(), candidates_.end(), better)->second;
  }

  // Top-k: keep the k largest, sorted descending.
  size_t k = candidates_.size();
  if (p.top_k > 0) k = std::min(k, static_cast<size_t>(p.top_k));
  std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(k), candidates_.end(), better);
  candidates_.resize(k);
  return sample_sorted();
}

// Top-p, min-p, then a draw at the temperature, over candidates_ (sorted best first).
int32_t Sampler::sample_sorted() {
  const SamplerParams& p = params_;

  // Probabilities of the survivors (softmax at temperature 1 for the top-p / min-p cuts, as llama.cpp).
  auto softmax_sorted = [&](float temp, std::vector<double>& probs) {
    probs.resize(candidates_.size());
    const double mx = candidates_[0].first;
    double sum = 0;
    for (size_t i = 0; i < candidates_.size(); ++i) sum += probs[i] = std::exp((candidates_[i].first - mx) / temp);
    for (double& x : probs) x /= sum;
  };
  std::vector<double>& probs = probs_;
  softmax_sorted(1.0f, probs);
  if (p.top_p < 1.0f) {
    double cum = 0;
    size_t keep = candidates_.size();
    for (size_t i = 0; i < candidates_.size(); ++i) {
      cum += probs[i];
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    candidates_.resize(keep);
    probs.resize(keep);
  }
  if (p.min_p > 0.0f) {
    const double cut = probs[0] * p.min_p;
    size_t keep = 1;
    while (keep < candidates_.size() && probs[keep] >= cut) ++keep;
    candidates_.resize(keep);
  }
  softmax_sorted(p.temperature, probs);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  double r = uni(rng_), cum = 0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    cum += probs[i];
    if (r < cum) return candidates_[i].second;
  }
  return candidates_.back().second;
}

}  // namespace omni
