#include "runtime/model/voice_turn.h"

#include <chrono>

namespace omni {

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
                                uint64_t noise_seed, const PcmSink& on_pcm) {
  using Clock = std::chrono::steady_clock;
  auto since = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
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
    if (r.t.first_pcm < 0) r.t.first_pcm = since();
    if (on_pcm) on_pcm(r.pcm.data() + before, r.pcm.size() - before);
  };
  while (!dec.done()) {
    OMNI_ASSIGN_OR_RETURN(AudioOutStep st, dec.step());
    if (st.text_token >= 0) {
      if (r.t.first_text < 0) r.t.first_text = since();
      r.text_tokens.push_back(st.text_token);
    }
    if (!st.has_frame) continue;
    if (r.t.first_frame < 0) r.t.first_frame = since();
    // Level-major frame -> one frame group per level ({l0}, {l1a, l1b}, {l2a..l2d}).
    int32_t slot = 0;
    for (size_t l = 0; l < per_level.size(); ++l) {
      codes[l].assign(st.frame.codes + slot, st.frame.codes + slot + per_level[l]);
      slot += per_level[l];
    }
    const size_t before = r.pcm.size();
    const double c0 = since();
    OMNI_RETURN_IF_ERROR(stream.push(codes, &r.pcm));
    r.t.codec_busy += since() - c0;
    take_pcm(before);
    ++r.n_frames;
  }
  const size_t before = r.pcm.size();
  const double c0 = since();
  OMNI_RETURN_IF_ERROR(stream.flush(&r.pcm));
  r.t.codec_busy += since() - c0;
  take_pcm(before);
  r.n_steps = dec.n_steps();
  r.speech_ended = dec.speech_ended();
  r.t.done = since();
  return r;
}

StatusOr<VoiceTurnResult> run_voice_turn(Context& ctx, const AudioOutHeads& heads, audio::SnacDecoder& codec,
                                         std::span<const int32_t> prompt_tokens, const VoiceTurnParams& params,
                                         const PcmSink& on_pcm) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  OMNI_RETURN_IF_ERROR(check_codec_matches(heads.spec, codec.hparams()));
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<AudioOutDecoder> dec, AudioOutDecoder::create(heads, ctx, params.decode));
  OMNI_RETURN_IF_ERROR(dec->prefill_text(prompt_tokens));
  VoiceTurnTimings t;
  t.prefill_done = std::chrono::duration<double>(Clock::now() - start).count();
  return speak(*dec, heads.spec, codec, start, t, params.noise_seed, on_pcm);
}

}  // namespace omni
