#include "runtime/model/voice_turn.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "runtime/model/cuda_snac.h"

namespace omni {

CudaCodecStream::CudaCodecStream(CudaSnacDecoder& dec)
    : dec_(dec), stream_(std::make_unique<CudaSnacStreamDecoder>(dec)) {}
CudaCodecStream::~CudaCodecStream() = default;
const audio::SnacHParams& CudaCodecStream::hparams() const { return dec_.hparams(); }
void CudaCodecStream::set_noise(bool on, uint64_t seed) { dec_.set_noise(on, seed); }
Status CudaCodecStream::push(const audio::SnacCodes& codes, std::vector<float>* pcm) { return stream_->push(codes, pcm); }
Status CudaCodecStream::flush(std::vector<float>* pcm) { return stream_->flush(pcm); }
void CudaCodecStream::reset() { stream_->reset(); }

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

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The codec's own thread after the first audio: frames queue up here and are pushed in order.
// Destruction closes the queue and joins, so every exit path of speak() waits for the thread.
class CodecThread {
 public:
  using Push = std::function<Status(const audio::SnacCodes&)>;
  explicit CodecThread(Push push) : push_(std::move(push)), thread_([this] { loop(); }) {}
  ~CodecThread() { (void)finish(); }
  void add(const audio::SnacCodes& codes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(codes);
    }
    cv_.notify_one();
  }
  // Waits for every queued frame; the first push error, if any.
  Status finish() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    return status_;
  }

 private:
  void loop() {
    for (;;) {
      audio::SnacCodes codes;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
        if (queue_.empty()) return;
        codes = std::move(queue_.front());
        queue_.pop_front();
      }
      if (status_.ok()) status_ = push_(codes);  // after an error the rest is dropped
    }
  }

  Push push_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<audio::SnacCodes> queue_;
  bool closed_ = false;
  Status status_;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace

StatusOr<VoiceTurnResult> speak(AudioOutDecoder& dec, const AudioOutSpec& spec, audio::SnacDecoder& codec,
                                std::chrono::steady_clock::time_point start, const VoiceTurnTimings& timings,
                                uint64_t noise_seed, const PcmSink& on_pcm, double cpu_start, bool codec_thread) {
  CpuCodecStream stream(codec);
  return speak(dec, spec, static_cast<CodecStream&>(stream), start, timings, noise_seed, on_pcm, cpu_start,
               codec_thread);
}

StatusOr<VoiceTurnResult> speak(AudioOutDecoder& dec, const AudioOutSpec& spec, CodecStream& stream,
                                std::chrono::steady_clock::time_point start, const VoiceTurnTimings& timings,
                                uint64_t noise_seed, const PcmSink& on_pcm, double cpu_start, bool codec_thread) {
  using Clock = std::chrono::steady_clock;
  if (cpu_start < 0) cpu_start = process_cpu_seconds();
  auto since = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  auto cpu_since = [&] { return process_cpu_seconds() - cpu_start; };
  OMNI_RETURN_IF_ERROR(check_codec_matches(spec, stream.hparams()));
  stream.set_noise(true, noise_seed);
  stream.reset();
  VoiceTurnResult r;
  r.t = timings;
  r.sample_rate = stream.hparams().sampling_rate;
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
  // In series (on the caller's thread and all the codec pool's threads).
  auto push_here = [&](const audio::SnacCodes& c) -> Status {
    const size_t before = r.pcm.size();
    const double c0 = since(), cc0 = cpu_since();
    OMNI_RETURN_IF_ERROR(stream.push(c, &r.pcm));
    r.t.codec_busy += since() - c0;
    r.t.cpu_codec += cpu_since() - cc0;
    take_pcm(before);
    return Status::Ok();
  };
  // After the first audio, with a codec thread (a CPU backbone and a CPU codec): the codec on
  // one core (its own inline pool), the decode steps on the context's other threads. The codec
  // thread alone touches the stream, r.pcm, codec_busy and cpu_codec until finish().
  Context* ctx = dec.backbone().cpu_context();
  audio::SnacDecoder* codec = stream.cpu_decoder();
  ThreadPool* codec_pool = codec ? &codec->thread_pool() : nullptr;
  const int step_threads = ctx ? ctx->step_pool().n_threads() : 1;
  const bool overlap = codec_thread && ctx && codec && ctx->n_threads() >= 2;
  std::unique_ptr<ThreadPool> solo;
  std::unique_ptr<CodecThread> worker;
  auto restore = [&]() -> Status {
    Status st = worker ? worker->finish() : Status::Ok();
    worker.reset();
    if (codec) codec->set_thread_pool(*codec_pool);
    Status st2 = ctx ? ctx->set_step_threads(step_threads) : Status::Ok();
    return st.ok() ? st2 : st;
  };
  auto run = [&]() -> Status {
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
      ++r.n_frames;
      if (worker) {
        worker->add(codes);
        continue;
      }
      OMNI_RETURN_IF_ERROR(push_here(codes));
      if (overlap && r.t.first_pcm >= 0 && !dec.done()) {
        solo = std::make_unique<ThreadPool>(1);
        codec->set_thread_pool(*solo);
        OMNI_RETURN_IF_ERROR(ctx->set_step_threads(std::max(1, ctx->n_threads() - 1)));
        worker = std::make_unique<CodecThread>([&](const audio::SnacCodes& c) -> Status {
          const size_t before = r.pcm.size();
          const double c0 = since(), cc0 = thread_cpu_seconds();
          OMNI_RETURN_IF_ERROR(stream.push(c, &r.pcm));
          r.t.codec_busy += since() - c0;
          r.t.cpu_codec += thread_cpu_seconds() - cc0;
          take_pcm(before);
          return Status::Ok();
        });
      }
    }
    return Status::Ok();
  };
  Status st = run();
  Status restored = restore();
  OMNI_RETURN_IF_ERROR(st);
  OMNI_RETURN_IF_ERROR(restored);
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
  CpuBackbone backbone(ctx);
  CpuCodecStream stream(codec);
  return run_voice_turn(backbone, heads, stream, prompt_tokens, params, on_pcm);
}

StatusOr<VoiceTurnResult> run_voice_turn(Backbone& backbone, const AudioOutHeads& heads, CodecStream& codec,
                                         std::span<const int32_t> prompt_tokens, const VoiceTurnParams& params,
                                         const PcmSink& on_pcm) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  OMNI_RETURN_IF_ERROR(check_codec_matches(heads.spec, codec.hparams()));
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<AudioOutDecoder> dec, AudioOutDecoder::create(heads, backbone, params.decode));
  OMNI_RETURN_IF_ERROR(dec->prefill_text(prompt_tokens));
  VoiceTurnTimings t;
  t.prefill_done = std::chrono::duration<double>(Clock::now() - start).count();
  t.cpu_prefill_done = process_cpu_seconds() - cpu_start;
  return speak(*dec, heads.spec, codec, start, t, params.noise_seed, on_pcm, cpu_start, params.codec_thread);
}

}  // namespace omni
