#include "runtime/model/voice_turn.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace omni {

LatencySpread latency_spread(std::vector<double> v) {
  std::erase_if(v, [](double x) { return !(x >= 0); });
  LatencySpread s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.p50 = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.p95 = v[static_cast<size_t>(std::ceil(0.95 * static_cast<double>(n))) - 1];
  s.min = v.front();
  return s;
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

Status check_codec_matches(const AudioOutSpec& spec, const audio::SnacHParams& hp) {
  if (spec.codebook_size != hp.codebook_size)
    return invalid_argument(fmt("the heads emit codes in [0, %d) but the codec's codebooks hold %lld",
                                spec.codebook_size, (long long)hp.codebook_size));
  const std::vector<int> per_level = spec.codes_per_level();
  if (per_level.size() != hp.vq_strides.size())
    return invalid_argument(fmt("the heads feed %zu codec levels but the codec has %zu", per_level.size(),
                                hp.vq_strides.size()));
  for (size_t l = 0; l < per_level.size(); ++l)
    if (per_level[l] != hp.codes_per_group(l))
      return invalid_argument(fmt("a frame of the heads carries %d codes for level %zu, the codec takes %lld",
                                  per_level[l], l, (long long)hp.codes_per_group(l)));
  return Status::Ok();
}

StatusOr<VoiceTurnResult> speak(AudioOutDecoder& dec, const AudioOutSpec& spec, audio::SnacDecoder& codec,
                                std::chrono::steady_clock::time_point start, const VoiceTurnTimings& timings,
                                uint64_t noise_seed, const PcmSink& on_pcm, double cpu_start) {
  using Clock = std::chrono::steady_clock;
  if (cpu_start < 0) cpu_start = process_cpu_seconds();
  auto since = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  auto cpu_since = [&] { return process_cpu_seconds() - cpu_start; };
  OMNI_RETURN_IF_ERROR(check_codec_matches(spec, codec.hparams()));
  codec.set_noise(true, noise_seed);
  audio::SnacStreamDecoder stream(codec);
  VoiceTurnResult r;
  r.t = timings;
  r.sample_rate = codec.hparams().sampling_rate;
  const std::vector<int> per_level = spec.codes_per_level();
  audio::SnacCodes codes(per_level.size());
  auto take_pcm = [&](size_t before) {
    if (r.pcm.size() == before) return;
    if (r.t.first_pcm < 0) {
      r.t.first_pcm = since();
      r.t.cpu_first_pcm = cpu_since();
    }
    if (on_pcm) on_pcm(r.pcm.data() + before, r.pcm.size() - before);
  };
  while (!dec.done()) {
    OMNI_ASSIGN_OR_RETURN(AudioOutStep st, dec.step());
    if (st.text_token >= 0) {
      if (r.t.first_text < 0) {
        r.t.first_text = since();
        r.t.cpu_first_text = cpu_since();
      }
      r.text_tokens.push_back(st.text_token);
    }
    if (!st.has_frame) continue;
    if (r.t.first_frame < 0) {
      r.t.first_frame = since();
      r.t.cpu_first_frame = cpu_since();
    }
    // Level-major frame -> one frame group per level ({l0}, {l1a, l1b}, {l2a..l2d}).
    int32_t slot = 0;
    for (size_t l = 0; l < per_level.size(); ++l) {
      codes[l].assign(st.frame.codes + slot, st.frame.codes + slot + per_level[l]);
      slot += per_level[l];
    }
    const size_t before = r.pcm.size();
    const double c0 = since(), cc0 = cpu_since();
    OMNI_RETURN_IF_ERROR(stream.push(codes, &r.pcm));
    r.t.codec_busy += since() - c0;
    r.t.cpu_codec += cpu_since() - cc0;
    take_pcm(before);
    ++r.n_frames;
  }
  const size_t before = r.pcm.size();
  const double c0 = since(), cc0 = cpu_since();
  OMNI_RETURN_IF_ERROR(stream.flush(&r.pcm));
  r.t.codec_busy += since() - c0;
  r.t.cpu_codec += cpu_since() - cc0;
  take_pcm(before);
  r.n_steps = dec.n_steps();
  r.speech_ended = dec.speech_ended();
  r.t.done = since();
  r.t.cpu_done = cpu_since();
  r.t.step_forward = dec.step_times().forward;
  r.t.step_heads = dec.step_times().heads;
  r.t.step_sample = dec.step_times().sample;
  return r;
}

StatusOr<VoiceTurnResult> run_voice_turn(Context& ctx, const AudioOutHeads& heads, audio::SnacDecoder& codec,
                                         std::span<const int32_t> prompt_tokens, const VoiceTurnParams& params,
                                         const PcmSink& on_pcm) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  OMNI_RETURN_IF_ERROR(check_codec_matches(heads.spec, codec.hparams()));
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<AudioOutDecoder> dec, AudioOutDecoder::create(heads, ctx, params.decode));
  OMNI_RETURN_IF_ERROR(dec->prefill_text(prompt_tokens));
  VoiceTurnTimings t;
  t.prefill_done = std::chrono::duration<double>(Clock::now() - start).count();
  t.cpu_prefill_done = process_cpu_seconds() - cpu_start;
  return speak(*dec, heads.spec, codec, start, t, params.noise_seed, on_pcm, cpu_start);
}

}  // namespace omni
