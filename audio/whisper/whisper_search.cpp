#include "audio/whisper/whisper_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/cpu/ops_cpu.h"

namespace omni::audio {
namespace {

constexpr float kMasked = -std::numeric_limits<float>::infinity();
constexpr double kTimePrecision = 0.02;  // seconds per timestamp token (2 mel frames)

// In place: x - max - log(sum exp(x - max)); -inf stays -inf.
void log_softmax(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  const float lse = mx + static_cast<float>(std::log(sum));
  for (int64_t i = 0; i < n; ++i) x[i] -= lse;
}

// The k largest of x[0, n) as (value, index), best first; ties keep the lower index first.
void top_k(const float* x, int64_t n, size_t k, std::vector<std::pair<float, int32_t>>* out) {
  out->clear();
  for (int64_t i = 0; i < n; ++i) {
    if (out->size() == k && !(x[i] > out->back().first)) continue;
    auto at = std::upper_bound(out->begin(), out->end(), x[i],
                               [](float v, const std::pair<float, int32_t>& e) { return v > e.first; });
    out->insert(at, {x[i], static_cast<int32_t>(i)});
    if (out->size() > k) out->pop_back();
  }
}

struct Hypothesis {
  std::vector<int32_t> tokens;  // generated so far (no prompt)
  float score = 0;              // sum of log-probabilities
  int cache = 0;                // index of its decoder cache
};

}  // namespace

StatusOr<std::vector<int32_t>> whisper_prompt(const WhisperVocab& vocab, const WhisperPromptOptions& opt) {
  std::vector<int32_t> p{vocab.sot};
  if (vocab.multilingual) {
    const std::string lang = opt.language.empty() ? "en" : opt.language;
    const std::string symbol = "<|" + lang + "|>";
    // Language tokens sit between <|startoftranscript|> and <|translate|>.
    int32_t id = -1;
    for (int32_t t = vocab.sot + 1; t < vocab.translate && t < static_cast<int32_t>(vocab.tokens.size()); ++t) {
      if (vocab.tokens[static_cast<size_t>(t)] == symbol) {
        id = t;
        break;
      }
    }
    if (id < 0) return invalid_argument(fmt("whisper: unknown language '%s' (no %s token)", lang.c_str(), symbol.c_str()));
    p.push_back(id);
    p.push_back(opt.translate ? vocab.translate : vocab.transcribe);
  } else {
    if (!opt.language.empty() && opt.language != "en")
      return invalid_argument(fmt("whisper: language '%s' asked of an English-only model", opt.language.c_str()));
    if (opt.translate) return invalid_argument("whisper: translation asked of an English-only model");
  }
  if (!opt.timestamps) p.push_back(vocab.no_timestamps);
  return p;
}

void whisper_process_logits(const WhisperVocab& vocab, int64_t n_vocab, const WhisperSearchOptions& opt,
                            const std::vector<int32_t>& seq, float* logits) {
  for (int32_t id : vocab.suppress_tokens)
    if (id >= 0 && id < n_vocab) logits[id] = kMasked;
  if (seq.empty() && opt.suppress_blank)
    for (int32_t id : vocab.suppress_tokens_begin)
      if (id >= 0 && id < n_vocab) logits[id] = kMasked;
  if (!opt.timestamps) return;
  // CTranslate2's ApplyTimestampRules (timestamp tokens: [timestamp_begin, n_vocab)).
  const int64_t ts_begin = vocab.timestamp_begin, eot = vocab.eot;
  logits[vocab.no_timestamps] = kMasked;
  const size_t step = seq.size();
  bool check_prob = false;
  if (step == 0) {
    std::fill(logits, logits + ts_begin, kMasked);  // start with a timestamp
    const int64_t last_allowed = ts_begin + opt.max_initial_timestamp_index;
    if (last_allowed + 1 < n_vocab) std::fill(logits + last_allowed + 1, logits + n_vocab, kMasked);
  } else {
    const int32_t last = seq[step - 1];
    if (last >= ts_begin) {
      const int32_t penultimate = step >= 2 ? seq[step - 2] : last;
      if (penultimate >= ts_begin) {
        std::fill(logits + ts_begin, logits + n_vocab, kMasked);  // a pair: text next
      } else {
        std::fill(logits, logits + eot, kMasked);  // an opening timestamp: no text next
        check_prob = true;
      }
    } else {
      check_prob = true;
    }
    // Timestamps do not decrease.
    for (size_t t = step; t-- > 0;) {
      if (seq[t] >= ts_begin) {
        std::fill(logits + ts_begin, logits + seq[t], kMasked);
        break;
      }
    }
  }
  if (!check_prob) return;
  // If the timestamps together are likelier than any single text token, take a timestamp.
  std::vector<float> lp(logits, logits + n_vocab);
  log_softmax(lp.data(), n_vocab);
  const float max_text = *std::max_element(lp.begin(), lp.begin() + ts_begin);
  const float mx = *std::max_element(lp.begin() + ts_begin, lp.end());
  double sum = 0;
  if (mx != kMasked)
    for (int64_t i = ts_begin; i < n_vocab; ++i) sum += std::exp(static_cast<double>(lp[i] - mx));
  const float ts_lse = mx == kMasked ? kMasked : mx + static_cast<float>(std::log(sum));
  if (ts_lse > max_text) std::fill(logits, logits + ts_begin, kMasked);
}

StatusOr<std::vector<int32_t>> whisper_search(WhisperTextDecoder& decoder, const WhisperWeights& w,
                                              const std::vector<int32_t>& prompt,
                                              const WhisperSearchOptions& opt) {
  if (opt.beam_size < 1 || opt.beam_size > 16)
    return invalid_argument(fmt("whisper: beam size %d (need 1..16)", opt.beam_size));
  if (prompt.empty()) return invalid_argument("whisper: empty prompt");
  if (!(opt.patience > 0)) return invalid_argument(fmt("whisper: patience %g (need > 0)", opt.patience));
  const int64_t n_vocab = w.hp.n_vocab;
  const int64_t max_steps = std::min<int64_t>(opt.max_new_tokens, w.hp.n_text_ctx - static_cast<int64_t>(prompt.size()) + 1);
  if (max_steps < 1) return invalid_argument(fmt("whisper: a %zu-token prompt leaves no room", prompt.size()));
  const int32_t eot = w.vocab.eot;
  // Slots [0, beam): alive hypotheses; [beam, 2 beam): the next step's (greedy: slot 0 only).
  OMNI_RETURN_IF_ERROR(decoder.reset_slots(opt.beam_size == 1 ? 1 : 2 * opt.beam_size));
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  OMNI_RETURN_IF_ERROR(decoder.decode_slot(0, prompt.data(), static_cast<int64_t>(prompt.size()), logits.data()));

  if (opt.beam_size == 1) {  // CTranslate2's GreedySearch: argmax until eot or the last step
    std::vector<int32_t> out;
    for (int64_t step = 0; step < max_steps; ++step) {
      whisper_process_logits(w.vocab, n_vocab, opt, out, logits.data());
      const auto next = static_cast<int32_t>(cpu::argmax(logits.data(), n_vocab));  // max_element's pick
      if (next == eot) break;
      out.push_back(next);
      if (step + 1 == max_steps) break;
      OMNI_RETURN_IF_ERROR(decoder.decode_slot(0, &next, 1, logits.data()));
    }
    return out;
  }

  // CTranslate2's BeamSearch: the first step expands the single prompt hypothesis; every step
  // takes the 2 * beam best (hypothesis, token) candidates by total log-probability; among the
  // first `beam`, those ending in eot are finished and replaced by the next candidates that do
  // not; stop when round(beam * patience) hypotheses are finished (or at the last step), then
  // rank them by score / length^length_penalty.
  const int beam = opt.beam_size;
  const auto max_finished = static_cast<size_t>(std::lround(static_cast<float>(beam) * opt.patience));
  const size_t n_cand = static_cast<size_t>(2 * beam);
  std::vector<Hypothesis> alive{{{}, 0.0f, 0}};
  std::vector<std::pair<std::vector<int32_t>, float>> finished;
  std::vector<float> all_logits;
  std::vector<std::pair<float, int64_t>> cand;  // (score, hypothesis * n_vocab + token)
  std::vector<std::vector<std::pair<float, int32_t>>> top;
  for (int64_t step = 0; step < max_steps; ++step) {
    const bool last_step = step + 1 == max_steps;
    const size_t n_alive = alive.size();
    float* lg = step == 0 ? logits.data() : all_logits.data();
    // Candidates: per hypothesis its top 2 beam tokens suffice for the global top 2 beam.
    top.assign(n_alive, {});
    decoder.pool().parallel_for(static_cast<int64_t>(n_alive), 1, [&](int64_t b, int64_t e, int) {
      for (int64_t h = b; h < e; ++h) {
        float* l = lg + h * n_vocab;
        whisper_process_logits(w.vocab, n_vocab, opt, alive[static_cast<size_t>(h)].tokens, l);
        log_softmax(l, n_vocab);
        top_k(l, n_vocab, n_cand, &top[static_cast<size_t>(h)]);
      }
    });
    cand.clear();
    for (size_t h = 0; h < n_alive; ++h)
      for (const auto& [lp, id] : top[h]) cand.emplace_back(alive[h].score + lp, static_cast<int64_t>(h) * n_vocab + id);
    std::stable_sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    cand.resize(n_cand);
    std::vector<size_t> chosen(static_cast<size_t>(beam));
    size_t secondary = static_cast<size_t>(beam);
    for (size_t k = 0; k < static_cast<size_t>(beam); ++k) {
      const int32_t token = static_cast<int32_t>(cand[k].second % n_vocab);
      const size_t origin = static_cast<size_t>(cand[k].second / n_vocab);
      chosen[k] = k;
      if (token == eot || last_step) {
        std::vector<int32_t> hyp = alive[origin].tokens;
        if (token != eot) hyp.push_back(token);
        finished.emplace_back(std::move(hyp), cand[k].first);
        for (size_t j = secondary; j < n_cand; ++j) {
          if (cand[j].second % n_vocab != eot) {
            chosen[k] = j;
            secondary = j + 1;
            break;
          }
        }
      }
    }
    if (last_step || finished.size() >= max_finished) break;
    // The next hypotheses, their caches copied into the spare half, then the halves swapped.
    std::vector<Hypothesis> next(static_cast<size_t>(beam));
    std::vector<int32_t> tokens(static_cast<size_t>(beam));
    std::vector<int> slots(static_cast<size_t>(beam));
    const int spare = alive[0].cache < beam ? beam : 0;
    for (size_t k = 0; k < static_cast<size_t>(beam); ++k) {
      const auto& c = cand[chosen[k]];
      const Hypothesis& from = alive[static_cast<size_t>(c.second / n_vocab)];
      next[k].tokens = from.tokens;
      tokens[k] = static_cast<int32_t>(c.second % n_vocab);
      next[k].tokens.push_back(tokens[k]);
      next[k].score = c.first;
      next[k].cache = spare + static_cast<int>(k);
      OMNI_RETURN_IF_ERROR(decoder.copy_slot(next[k].cache, from.cache));
      slots[k] = next[k].cache;
    }
    alive = std::move(next);
    all_logits.resize(static_cast<size_t>(beam * n_vocab));
    OMNI_RETURN_IF_ERROR(decoder.decode_slots(slots.data(), tokens.data(), beam, all_logits.data()));
  }
  size_t best = 0;
  float best_score = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < finished.size(); ++i) {
    const float len = static_cast<float>(finished[i].first.size());
    const float s = finished[i].second / std::pow(len, opt.length_penalty);
    if (i == 0 || s > best_score) {
      best = i;
      best_score = s;
    }
  }
  return finished.empty() ? std::vector<int32_t>{} : finished[best].first;
}

std::vector<WhisperSegment> whisper_split_segments(const WhisperVocab& vocab, const std::vector<int32_t>& tokens,
                                                   double time_offset, int64_t segment_frames,
                                                   int64_t* seek_advance) {
  const int32_t ts = vocab.timestamp_begin;
  const size_t n = tokens.size();
  std::vector<WhisperSegment> out;
  const bool single_ending = n >= 2 && tokens[n - 2] < ts && tokens[n - 1] >= ts;
  std::vector<size_t> slices;
  for (size_t i = 1; i < n; ++i)
    if (tokens[i] >= ts && tokens[i - 1] >= ts) slices.push_back(i);
  if (!slices.empty()) {
    if (single_ending) slices.push_back(n);
    size_t last = 0;
    for (size_t cut : slices) {
      WhisperSegment s;
      s.tokens.assign(tokens.begin() + static_cast<int64_t>(last), tokens.begin() + static_cast<int64_t>(cut));
      s.start = time_offset + (s.tokens.front() - ts) * kTimePrecision;
      s.end = time_offset + (s.tokens.back() - ts) * kTimePrecision;
      out.push_back(std::move(s));
      last = cut;
    }
    // 2 mel frames per timestamp step (Whisper's input stride).
    *seek_advance = single_ending ? segment_frames : 2 * static_cast<int64_t>(tokens[last - 1] - ts);
  } else {
    double duration = static_cast<double>(segment_frames) * 0.01;
    int32_t last_ts = -1;
    for (int32_t t : tokens)
      if (t >= ts) last_ts = t;
    if (last_ts > ts) duration = (last_ts - ts) * kTimePrecision;
    WhisperSegment s;
    s.start = time_offset;
    s.end = time_offset + duration;
    s.tokens = tokens;
    out.push_back(std::move(s));
    *seek_advance = segment_frames;
  }
  return out;
}

}  // namespace omni::audio
