// One spoken answer: a prompt is prefilled, the audio-out decode loop produces text and codec
// frames, and each frame goes straight into the streaming SNAC decoder, whose stable samples
// are handed out as they appear (time to first audio = the first of them). The clock starts
// when run_voice_turn() is called: the end of the user's input.
// Thread-safety: one turn at a time per Context; Model, heads and codec weights are shared.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "audio/codec/snac.h"
#include "kernels/core/status.h"
#include "runtime/model/audio_out.h"
#include "runtime/model/backbone.h"
#include "runtime/model/context.h"

namespace omni {

class CudaSnacDecoder;
class CudaSnacStreamDecoder;

// The codec side of a turn: a streaming SNAC decoder with SnacStreamDecoder's contract (push
// frame groups, get the samples no later code can change; flush() at the end), wherever it runs.
class CodecStream {
 public:
  virtual ~CodecStream() = default;
  virtual const audio::SnacHParams& hparams() const = 0;
  // As SnacDecoder::set_noise (the same noise on every backend for the same seed).
  virtual void set_noise(bool on, uint64_t seed) = 0;
  virtual Status push(const audio::SnacCodes& codes, std::vector<float>* pcm) = 0;
  virtual Status flush(std::vector<float>* pcm) = 0;
  // Starts a new stream (the next turn).
  virtual void reset() = 0;
  // The CPU decoder underneath, whose pool the codec thread takes over (speak()); null when the
  // codec runs elsewhere (the GPU: a push is then a few launches and one copy, in series).
  virtual audio::SnacDecoder* cpu_decoder() { return nullptr; }
};

// SnacStreamDecoder over a CPU SnacDecoder (which must outlive it).
class CpuCodecStream final : public CodecStream {
 public:
  explicit CpuCodecStream(audio::SnacDecoder& dec) : dec_(dec), stream_(dec) {}
  const audio::SnacHParams& hparams() const override { return dec_.hparams(); }
  void set_noise(bool on, uint64_t seed) override { dec_.set_noise(on, seed); }
  Status push(const audio::SnacCodes& codes, std::vector<float>* pcm) override { return stream_.push(codes, pcm); }
  Status flush(std::vector<float>* pcm) override { return stream_.flush(pcm); }
  void reset() override { stream_.reset(); }
  audio::SnacDecoder* cpu_decoder() override { return &dec_; }

 private:
  audio::SnacDecoder& dec_;
  audio::SnacStreamDecoder stream_;
};

// CudaSnacStreamDecoder over a CudaSnacDecoder (which must outlive it). Built without CUDA it
// exists, and the decoder it needs cannot be created.
class CudaCodecStream final : public CodecStream {
 public:
  explicit CudaCodecStream(CudaSnacDecoder& dec);
  ~CudaCodecStream() override;
  const audio::SnacHParams& hparams() const override;
  void set_noise(bool on, uint64_t seed) override;
  Status push(const audio::SnacCodes& codes, std::vector<float>* pcm) override;
  Status flush(std::vector<float>* pcm) override;
  void reset() override;

 private:
  CudaSnacDecoder& dec_;
  std::unique_ptr<CudaSnacStreamDecoder> stream_;
};

// kInvalidArgument naming the mismatch when the heads' codes cannot feed this codec: codebook
// size, number of levels, or codes per level per frame (SNAC 24 kHz: 1, 2, 4).
Status check_codec_matches(const AudioOutSpec& spec, const audio::SnacHParams& hp);

struct VoiceTurnParams {
  AudioOutParams decode;
  uint64_t noise_seed = 0;  // SNAC noise blocks (on, as the model was trained)
  // On: once the first audio is out, the codec decodes each frame on its own thread (one core)
  // while the decode loop computes the next steps on the context's other threads
  // (Context::set_step_threads(n - 1)); before it, every push runs in series on all threads.
  // Off (default), or a context with one thread: every push in series on all threads. Same
  // samples either way. Since the codec's bf16 kernels (a push of one frame group: ~5 ms on two
  // cores), in series is faster on two cores: the thread's core is taken from the
  // bandwidth-bound decode steps (docs/AUDIO_OUT.md, section 3).
  bool codec_thread = false;
};

// CPU seconds used so far by this process, all its threads (the caller and the pool's workers,
// their spinning included): what a turn costs whatever else runs on a shared machine.
double process_cpu_seconds();

// Seconds from the start of the turn (the end of the user's input); -1 when the event never
// happened. input_encoded: the audio encoder's last chunk is in (audio input only).
struct VoiceTurnTimings {
  double input_encoded = -1, prefill_done = -1, first_text = -1, first_frame = -1, first_pcm = -1, done = -1;
  // Wall seconds the SNAC decoder worked (pushes and flush); with the codec thread part of it
  // overlaps the decode loop.
  double codec_busy = 0;
  // The same events on process_cpu_seconds(), from the start of the turn.
  double cpu_input_encoded = -1, cpu_prefill_done = -1, cpu_first_text = -1, cpu_first_frame = -1, cpu_first_pcm = -1,
         cpu_done = -1;
  double cpu_codec = 0;  // the codec's CPU seconds (its thread's clock while it has one)
  // Wall seconds of the decode loop's parts, all steps (AudioOutDecoder::StepTimes).
  double step_forward = 0, step_heads = 0, step_sample = 0;
};

// Spread of a stage over repeated turns: median (the mean of the two middle values for an even
// count), 95th percentile by nearest rank (the ceil(0.95 n)-th smallest) and minimum of the
// values >= 0; values < 0 (the event did not happen) are left out; all -1 when none is left.
struct LatencySpread {
  double p50 = -1, p95 = -1, min = -1;
  int n = 0;
};
LatencySpread latency_spread(std::vector<double> values);

struct VoiceTurnResult {
  std::vector<int32_t> text_tokens;
  std::vector<float> pcm;  // mono, sample_rate, [-1, 1]
  int64_t sample_rate = 0;
  int64_t n_frames = 0, n_steps = 0;
  bool speech_ended = false;  // the model ended its speech (else max_steps)
  VoiceTurnTimings t;
};

using PcmSink = std::function<void(const float*, size_t)>;

// A text turn: prefills the prompt (AudioOutDecoder::prefill_text) and speaks. on_pcm
// (optional) sees each new run of stable samples as soon as it exists (a player or a file
// writer); the result also keeps them all. Errors of the decode loop and the codec.
StatusOr<VoiceTurnResult> run_voice_turn(Context& ctx, const AudioOutHeads& heads, audio::SnacDecoder& codec,
                                         std::span<const int32_t> prompt_tokens, const VoiceTurnParams& params,
                                         const PcmSink& on_pcm = {});
// The same on any backbone and codec (the GPU: a CudaBackbone and a CudaCodecStream). The
// stream is reset() first. params.codec_thread applies when the backbone is a CPU context and
// the codec a CPU decoder.
StatusOr<VoiceTurnResult> run_voice_turn(Backbone& backbone, const AudioOutHeads& heads, CodecStream& codec,
                                         std::span<const int32_t> prompt_tokens, const VoiceTurnParams& params,
                                         const PcmSink& on_pcm = {});

// The answer half of a turn whose input the caller already fed to `dec` (audio input: the
// rows while the user spoke, then end_audio_input()). `start` is the end of the user's input,
// `cpu_start` process_cpu_seconds() then (< 0: taken when speak() starts); `timings` carries
// what the caller measured before (input_encoded, prefill_done and their cpu_ twins).
// codec_thread: VoiceTurnParams::codec_thread; on_pcm is then called from the codec's thread
// after the first audio (one call at a time, in order). The codec and the context's step
// threads are restored before it returns.
StatusOr<VoiceTurnResult> speak(AudioOutDecoder& dec, const AudioOutSpec& spec, audio::SnacDecoder& codec,
                                std::chrono::steady_clock::time_point start, const VoiceTurnTimings& timings,
                                uint64_t noise_seed, const PcmSink& on_pcm = {}, double cpu_start = -1,
                                bool codec_thread = false);
// The same with any codec stream (reset() first). The codec thread needs a CPU backbone and a
// CPU codec (CodecStream::cpu_decoder()); otherwise every push runs in series.
StatusOr<VoiceTurnResult> speak(AudioOutDecoder& dec, const AudioOutSpec& spec, CodecStream& codec,
                                std::chrono::steady_clock::time_point start, const VoiceTurnTimings& timings,
                                uint64_t noise_seed, const PcmSink& on_pcm = {}, double cpu_start = -1,
                                bool codec_thread = false);

}  // namespace omni
