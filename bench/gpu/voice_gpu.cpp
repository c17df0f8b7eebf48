// omnirt_gpu_bench voice [--preset mini-omni-0.5b|orpheus-3b|all] [--turns 10] [--steps 40] [--model PATH]
//                        [--audio-turns 5] [--clip tests/data/whisper/librivox_0880.wav] [--chunk-ms 1000]
// A text-prompt voice turn on the GPU (issue #6): CudaContext backbone, audio-out heads on the
// device (CudaBackbone), streaming SNAC on the device (CudaCodecStream), sampling on the host.
// Per preset: the synthetic BF16 model is written to a temp dir (tmpfs when it has room) unless
// --model is given, then 1 warm-up + --turns turns of --steps decode steps on the same context
// (rewound). Prints RESULT lines for bench/gpu/check.sh: time to first audio p50 (the target
// row) and p95, the breakdown (prefill done, first text token, first frame, first PCM; p50),
// the real-time factor and the per-step forward time. Random weights never end their text:
// Mini-Omni's text is cut after 8 tokens (AudioOutParams::max_text_tokens, as the CPU bench's
// --max-text 8 run), after which steps skip the text head; Orpheus's prompt ends with its
// speech marker, so every step is a codec token.
// Audio input (Mini-Omni, --audio-turns > 0, after the text turns on the same context): the
// clip (16 kHz PCM16 WAV; relative to the working directory, check.sh's is the checkout) is
// pushed at real-time pace in 20 ms blocks through an AudioStream whose frame encoder is a
// CudaWhisperEncoder (1 s chunks; log-mel and adapter on the CPU), rows into the context as they
// come, the last chunk's rows batched with the end/answer rows (as `omnirt voice --gpu --input`);
// the clock starts at the end of the input. 1 warm-up + --audio-turns turns: TTFA p50 and the
// breakdown (last encoder chunk / prefill done / first frame / first PCM).
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "audio/adapter/audio_stream.h"
#include "audio/io/wav_pcm16.h"
#include "bench/gpu/gpu_bench.h"
#include "kernels/core/thread_pool.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/audio_out.h"
#include "runtime/model/cuda_context.h"
#include "runtime/model/cuda_snac.h"
#include "runtime/model/cuda_whisper.h"
#include "runtime/model/model.h"
#include "runtime/model/snac_loader.h"
#include "runtime/model/synthetic_omni.h"
#include "runtime/model/voice_turn.h"

namespace omni {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int fail(const Status& st, const std::string& what) {
  std::printf("ERROR voice %s: %s\n", what.c_str(), st.to_string().c_str());
  std::fflush(stdout);
  return 1;
}

// A directory for a model of `bytes`: $TMPDIR, else /dev/shm when it has room (no disk write),
// else /tmp.
std::string temp_dir(double bytes) {
  if (const char* t = std::getenv("TMPDIR")) return t;
  struct statvfs vs {};
  if (statvfs("/dev/shm", &vs) == 0 && double(vs.f_bavail) * double(vs.f_frsize) > bytes * 1.5) return "/dev/shm";
  return "/tmp";
}

std::string tag_of(const std::string& preset) {
  std::string t;
  for (char c : preset) t += (c == '-' || c == '.') ? '_' : c;
  return t;
}

// The clip: 16 kHz 16-bit PCM WAV (channels averaged) -> f32 (s16 / 32768); the gpu-check build
// has no FFmpeg. The path is relative to the working directory.
StatusOr<std::vector<float>> read_clip(const std::string& path) {
  auto pcm = audio::read_wav_pcm16(path);
  if (!pcm.ok() && pcm.status().code() == StatusCode::kNotFound)
    return Status(StatusCode::kNotFound, pcm.status().message() + " (run from the checkout)");
  return pcm;
}

struct AudioInput {
  std::string clip;
  int turns = 5;
  int64_t chunk_ms = 1000;
};

// Audio-input turns on the loaded Mini-Omni model (see the file comment). 0 or 1 (an ERROR line).
int run_audio_turns(const std::string& tag, const std::string& preset, const Model& model, const AudioOutHeads& heads,
                    Backbone& backbone, CodecStream& codec, VoiceTurnParams p, const std::vector<float>& speech,
                    const AudioInput& ai) {
  auto enc = load_audio_encoder(model.file());
  if (!enc.ok()) return fail(enc.status(), "audio encoder of " + preset);
  const auto t_enc = Clock::now();
  auto cuda_enc = CudaWhisperEncoder::create((*enc)->weights.whisper);
  if (!cuda_enc.ok()) return fail(cuda_enc.status(), "CUDA Whisper encoder");
  const double enc_create_s = since(t_enc);
  ThreadPool adapter_pool(4);  // the adapter's MLP on the host
  const int64_t n_embd = model.hparams().n_embd;
  audio::AudioStreamOptions so;
  so.chunk_frames = audio::chunk_frames_for_ms((*enc)->weights, ai.chunk_ms);
  so.frame_encoder = [&cuda_enc](const float* mel, int64_t n, bool final_norm, std::vector<float>* frames) {
    return final_norm ? (*cuda_enc)->encode(mel, n, frames) : (*cuda_enc)->encode_before_final_norm(mel, n, frames);
  };
  AudioOutDecoder* cur = nullptr;
  bool at_end = false;
  std::vector<float> tail_rows;
  auto stream = audio::AudioStream::create(
      (*enc)->weights, adapter_pool,
      [&](const float* rows, int64_t n) -> Status {
        if (!at_end) return cur->audio_input_rows(rows, n);
        tail_rows.insert(tail_rows.end(), rows, rows + n * n_embd);
        return Status::Ok();
      },
      so);
  if (!stream.ok()) return fail(stream.status(), "audio stream");
  std::vector<double> encoded, prefill, frame, pcm;
  int64_t tail_frames = 0, rows = 0;
  for (int t = 0; t < 1 + ai.turns; ++t) {
    if (Status st = backbone.rewind(0); !st.ok()) return fail(st, "rewind");
    auto dec = AudioOutDecoder::create(heads, backbone, p.decode);
    if (!dec.ok()) return fail(dec.status(), "audio turn decoder");
    if (Status st = (*dec)->begin_audio_input(); !st.ok()) return fail(st, "begin_audio_input");
    cur = dec->get();
    at_end = false;
    tail_rows.clear();
    (*stream)->reset();
    const int64_t rows_before = (*stream)->stats().rows;
    const Clock::time_point t0 = Clock::now();
    constexpr size_t kBlock = 320;  // 20 ms at 16 kHz
    if (Status st = audio::push_paced(**stream, speech.data(), speech.size(), kBlock, t0, true); !st.ok())
      return fail(st, "audio push");
    // The end of the user's input: when its last sample was spoken (a stream still busy with a
    // chunk then counts that lag), as `omnirt voice` measures it.
    const Clock::time_point start = audio::spoken_at(t0, speech.size());
    const double cpu_start = process_cpu_seconds();
    VoiceTurnTimings tm;
    at_end = true;
    if (Status st = (*stream)->finish(); !st.ok()) return fail(st, "audio finish");
    tm.input_encoded = since(start);
    tm.cpu_input_encoded = process_cpu_seconds() - cpu_start;
    if (Status st = (*dec)->end_audio_input(tail_rows.data(), int64_t(tail_rows.size()) / n_embd); !st.ok())
      return fail(st, "end_audio_input");
    tm.prefill_done = since(start);
    tm.cpu_prefill_done = process_cpu_seconds() - cpu_start;
    auto r = speak(**dec, heads.spec, codec, start, tm, p.noise_seed, {}, cpu_start, p.codec_thread);
    if (!r.ok()) return fail(r.status(), "audio turn " + std::to_string(t));
    if (t == 0) continue;  // warm-up
    if (r->t.first_pcm < 0) continue;
    encoded.push_back(r->t.input_encoded);
    prefill.push_back(r->t.prefill_done);
    frame.push_back(r->t.first_frame);
    pcm.push_back(r->t.first_pcm);
    tail_frames = (*stream)->stats().finish_frames;
    rows = (*stream)->stats().rows - rows_before;
  }
  const LatencySpread a = latency_spread(pcm), en = latency_spread(encoded), pf = latency_spread(prefill),
                      fr = latency_spread(frame);
  if (a.n == 0) {
    std::printf("ERROR voice audio %s: no audio-input turn produced audio\n", preset.c_str());
    return 1;
  }
  std::printf("RESULT name=voice_gpu_audio_ttfa_p50_%s value=%.1f unit=ms table=\"voice turn on GPU, audio input "
              "paced in real time: time to first audio p50, %s bf16\" probe=\"%d turns, %.2f s clip, %lld-frame chunks, "
              "min %.1f ms, p95 %.1f ms\" target=\"p50 <= 60 ms\"\n",
              tag.c_str(), a.p50 * 1e3, preset.c_str(), a.n, double(speech.size()) / 16000.0,
              (long long)(*stream)->chunk_frames(), a.min * 1e3, a.p95 * 1e3);
  std::printf("RESULT name=voice_gpu_audio_breakdown_%s value=%.1f unit=ms table=\"voice turn on GPU, audio input: "
              "breakdown p50, %s\" probe=\"last encoder chunk %.1f / prefill done %.1f / first frame %.1f / first pcm "
              "%.1f ms; %lld rows, %lld mel frames left at the end; encoder upload %.2f s\" target=\"(info)\"\n",
              tag.c_str(), a.p50 * 1e3, preset.c_str(), en.p50 * 1e3, pf.p50 * 1e3, fr.p50 * 1e3, a.p50 * 1e3,
              (long long)rows, (long long)tail_frames, enc_create_s);
  std::fflush(stdout);
  return 0;
}

int run_preset(const std::string& preset, const std::string& model_path, int turns, int64_t steps,
               const AudioInput& ai) {
  const std::string tag = tag_of(preset);
  std::string path = model_path;
  bool made = false;
  if (path.empty()) {
    const double approx = preset == "orpheus-3b" ? 7.0e9 : 1.5e9;
    path = temp_dir(approx) + "/omnirt_voice_gpu_" + tag + "_" + std::to_string(::getpid()) + ".gguf";
    const auto t0 = Clock::now();
    if (Status st = create_synthetic_omni({preset, DType::kBF16, 1, 0}, path); !st.ok()) {
      std::remove(path.c_str());
      return fail(st, "create " + preset);
    }
    made = true;
    std::printf("RESULT name=voice_gpu_create_%s value=%.1f unit=s path=\"%s\"\n", tag.c_str(), since(t0), path.c_str());
    std::fflush(stdout);
  }
  const auto t_load = Clock::now();
  auto model = Model::load(path);
  if (made) std::remove(path.c_str());  // the mapping stays valid
  if (!model.ok()) return fail(model.status(), "load " + path);
  auto heads = load_audio_out(**model);
  if (!heads.ok()) return fail(heads.status(), "audio-out heads");
  auto snac = load_snac((*model)->file());
  if (!snac.ok()) return fail(snac.status(), "codec");
  auto prompt = (*model)->tokenizer().encode("Tell me a short story about a robot who learns to sing.", true, false);
  if (!prompt.ok()) return fail(prompt.status(), "tokenize");
  // Audio input (parallel heads only): the clip, and room for its rows (about 12.5 a second).
  std::vector<float> speech;
  const bool audio_in = ai.turns > 0 && heads->spec.kind == AudioOutKind::kParallel;
  if (audio_in) {
    auto clip = read_clip(ai.clip);
    if (!clip.ok()) return fail(clip.status(), "audio clip");
    speech = std::move(*clip);
    if (speech.size() < 16000) return fail(invalid_argument(fmt("%zu samples", speech.size())), "audio clip under 1 s");
  }
  ContextParams cp;
  cp.n_ctx = std::max<int64_t>(static_cast<int64_t>(prompt->size()),
                               audio_in ? static_cast<int64_t>(speech.size() / 16000 + 1) * 50 + 16 : 0) +
             steps + 64;
  auto ctx = CudaContext::create(**model, cp);
  if (!ctx.ok()) return fail(ctx.status(), "CUDA context");
  CudaBackbone backbone(**ctx);
  auto codec = CudaSnacDecoder::create((*snac)->weights);
  if (!codec.ok()) return fail(codec.status(), "CUDA SNAC decoder");
  CudaCodecStream stream(**codec);
  std::printf("RESULT name=voice_gpu_load_%s value=%.1f unit=s card=\"%s\" weights_gb=%.2f prompt_tokens=%zu\n",
              tag.c_str(), since(t_load), (*ctx)->device_name().c_str(), double((*ctx)->device_weight_bytes()) / 1e9,
              prompt->size());
  std::fflush(stdout);

  VoiceTurnParams p;
  p.decode.max_steps = steps;
  p.decode.max_text_tokens = heads->spec.kind == AudioOutKind::kParallel ? 8 : -1;
  for (SamplerParams* s : {&p.decode.text_sampling, &p.decode.audio_sampling}) {
    s->temperature = 0.8f;
    s->top_k = 40;
    s->seed = 1;
  }
  p.noise_seed = 1;
  std::vector<double> prefill, text, frame, pcm, rtf, fwd;
  int64_t frames = 0, n_steps = 0;
  for (int t = 0; t < 1 + turns; ++t) {
    if (Status st = backbone.rewind(0); !st.ok()) return fail(st, "rewind");
    auto r = run_voice_turn(backbone, *heads, stream, *prompt, p);
    if (!r.ok()) return fail(r.status(), "turn " + std::to_string(t));
    if (t == 0) continue;  // warm-up: graphs captured, scratch sized
    const double audio_s = double(r->pcm.size()) / double(r->sample_rate);
    prefill.push_back(r->t.prefill_done);
    text.push_back(r->t.first_text);
    frame.push_back(r->t.first_frame);
    pcm.push_back(r->t.first_pcm);
    rtf.push_back(audio_s > 0 ? r->t.done / audio_s : -1);
    fwd.push_back(r->n_steps > 0 ? r->t.step_forward / double(r->n_steps) : -1);
    frames = r->n_frames;
    n_steps = r->n_steps;
  }
  const LatencySpread a = latency_spread(pcm), pf = latency_spread(prefill), tx = latency_spread(text),
                      fr = latency_spread(frame), rt = latency_spread(rtf), fw = latency_spread(fwd);
  if (a.n == 0) {
    std::printf("ERROR voice %s: no turn produced audio (%lld frames in %lld steps)\n", preset.c_str(),
                (long long)frames, (long long)n_steps);
    return 1;
  }
  const char* target = preset == "orpheus-3b" ? "p50 <= 120 ms" : "p50 <= 60 ms";
  std::printf("RESULT name=voice_gpu_ttfa_p50_%s value=%.1f unit=ms table=\"voice turn on GPU: time to first audio "
              "p50, %s bf16\" probe=\"%d turns, min %.1f ms\" target=\"%s\"\n",
              tag.c_str(), a.p50 * 1e3, preset.c_str(), a.n, a.min * 1e3, target);
  std::printf("RESULT name=voice_gpu_ttfa_p95_%s value=%.1f unit=ms table=\"voice turn on GPU: time to first audio "
              "p95, %s bf16\" target=\"(info)\"\n",
              tag.c_str(), a.p95 * 1e3, preset.c_str());
  std::printf("RESULT name=voice_gpu_breakdown_%s value=%.1f unit=ms table=\"voice turn on GPU: breakdown p50, %s\" "
              "probe=\"prefill %.1f / first text %.1f / first frame %.1f / first pcm %.1f ms\" target=\"(info)\"\n",
              tag.c_str(), a.p50 * 1e3, preset.c_str(), pf.p50 * 1e3, tx.p50 * 1e3, fr.p50 * 1e3, a.p50 * 1e3);
  std::printf("RESULT name=voice_gpu_rtf_%s value=%.3f unit=x table=\"voice turn on GPU: real-time factor p50, %s\" "
              "probe=\"%lld frames in %lld steps, forward %.2f ms/step\" target=\"< 1\"\n",
              tag.c_str(), rt.p50, preset.c_str(), (long long)frames, (long long)n_steps, fw.p50 * 1e3);
  std::fflush(stdout);
  if (audio_in) return run_audio_turns(tag, preset, **model, *heads, backbone, stream, p, speech, ai);
  return 0;
}

int run_voice(int argc, char** argv) {
  std::string preset = "all", model;
  int turns = 10;
  int64_t steps = 40;
  AudioInput ai;
  ai.clip = "tests/data/whisper/librivox_0880.wav";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--turns") turns = std::atoi(v.c_str());
    else if (k == "--steps") steps = std::atoll(v.c_str());
    else if (k == "--model") model = v;
    else if (k == "--audio-turns") ai.turns = std::atoi(v.c_str());
    else if (k == "--clip") ai.clip = v;
    else if (k == "--chunk-ms") ai.chunk_ms = std::atoll(v.c_str());
    else {
      std::fprintf(stderr, "voice: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (turns < 1 || steps < 8 || ai.turns < 0 || ai.chunk_ms < 10 || (preset != "all" && preset != "mini-omni-0.5b" && preset != "orpheus-3b") ||
      (!model.empty() && preset == "all")) {
    std::fprintf(stderr, "voice: --preset mini-omni-0.5b|orpheus-3b|all (--model needs one preset), --turns >= 1, "
                         "--steps >= 8, --audio-turns >= 0, --chunk-ms >= 10\n");
    return 2;
  }
  int rc = 0;
  for (const char* p : {"mini-omni-0.5b", "orpheus-3b"})
    if (preset == "all" || preset == p) rc |= run_preset(p, model, turns, steps, ai);
  return rc;
}

const bool kRegistered = gpu_bench::add(
    "voice",
    "voice [--preset mini-omni-0.5b|orpheus-3b|all] [--turns 10] [--steps 40] [--model PATH] [--audio-turns 5] "
    "[--clip tests/data/whisper/librivox_0880.wav] [--chunk-ms 1000]",
    run_voice);

}  // namespace
}  // namespace omni
