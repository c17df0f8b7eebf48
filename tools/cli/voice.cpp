// `omnirt voice --model M (--prompt TEXT | --input FILE | --mic) (--output FILE | --speaker)`: one spoken answer
// from an omni model file (backbone + audio-out heads + SNAC codec, `omnirt model create
// --preset omni-tiny|mini-omni-0.5b|orpheus-3b`): the prompt is prefilled, text and codec frames
// come out of the decode loop, every frame goes straight into the streaming SNAC decoder, and
// the audio is written with FFmpeg (format from the extension). Prints the text and the latency
// breakdown from the end of the input (--json for machines).
// The user's turn is text (--prompt, or an --input .txt file) or audio (--input FILE, any format
// FFmpeg reads, resampled to 16 kHz): audio is fed at real-time pace (--no-pace: as fast as
// possible) in 20 ms blocks through the streaming audio encoder into the context while it
// "arrives" (Mini-Omni's A1A2 layout); the clock starts at the end of the input. The encoder's
// last rows are held back at the end and evaluated with the end/answer rows in one batch.
// --turns N (after --warmup W uncounted ones) repeats the same turn on the rewound context and
// prints median / p95 / min of every stage on the wall clock and on the process CPU clock (all
// threads: meaningful on a loaded machine), the real-time factor and the load average.
// The clock starts when the user's last sample was spoken (paced file input) or captured (--mic:
// the capture ring's backlog tells how long ago), not when the stream has taken it: a stream
// still busy with a chunk then counts its lag in every stage (printed, and "input_lag_ms").
// --end-spread (audio input, --turns N): measured turn k drops the last k/N of an encoder chunk
// from the input, so the mel frames left to encode when the input ends run over a whole chunk
// (what a user's turn does: it ends anywhere inside its last chunk) instead of one fixed value.
// --gpu runs the backbone, the audio-out heads and the SNAC decoder on CUDA device 0, and for
// audio input the Whisper encoder too (CudaWhisperEncoder behind the stream's frame encoder;
// log-mel and the small adapter stay on the CPU, the adapter on --threads threads).
// --mic captures the user's turn live (16 kHz mono, PortAudio --device, or --device file:PATH, a
// stand-in microphone playing PATH at --speed) into the same stream, in the blocks the device
// delivers; the input ends when the capture ends, after --listen-s, or after --end-silence-ms of
// quiet once speech was heard. --speaker plays the answer as it is produced (each run of stable
// samples goes into the playback ring at the codec's rate; --speaker-device file:PATH records
// it to PATH instead), waits for the ring to drain and reports underruns.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "audio/adapter/audio_stream.h"
#include "audio/codec/snac.h"
#include "audio/io/decode.h"
#include "audio/io/device.h"
#include "audio/io/wav_pcm16.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/audio_out.h"
#include "runtime/model/context.h"
#include "runtime/model/cuda_context.h"
#include "runtime/model/cuda_snac.h"
#include "runtime/model/cuda_whisper.h"
#include "runtime/model/model.h"
#include "runtime/model/snac_loader.h"
#include "runtime/model/voice_turn.h"
#include "tools/cli/cli.h"

namespace omni::cli {

void add_voice_command(CLI::App& root, std::vector<Command>& out);

namespace {

struct VoiceOptions {
  std::string model, prompt, input, output;
  bool no_pace = false, json = false;
  int threads = 2;
  int turns = 1, warmup = 0;
  int64_t chunk_ms = 0;  // audio encoder chunk; 0: the stream's default
  int64_t max_steps = 400;
  uint64_t seed = 0;
  float temperature = 0.8f;
  int32_t top_k = 40;
  int64_t max_text = -1;  // text tokens at most (-1: until the model ends its text)
  bool codec_thread = false, keep_text_head = false;
  bool end_spread = false;  // audio input: the turns end at points spread over one encoder chunk
  bool gpu = false;
  // Live audio (one turn): --mic instead of --prompt/--input, --speaker beside/instead of --output.
  bool mic = false, speaker = false;
  std::string device, speaker_device;  // "" default, index, name part, or file:PATH
  double speed = 1.0;                  // file: stand-ins, 1 = real time, 0 = as fast as possible
  double listen_s = 10.0;              // --mic: the turn ends after this much audio at most
  int end_silence_ms = 0;              // --mic: quiet this long after speech ends the turn (0: off)
  double silence_dbfs = -40.0;         // --mic: RMS of a block below this is quiet
};

using Clock = std::chrono::steady_clock;

bool is_file_device(const std::string& d) { return d.rfind("file:", 0) == 0; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Why a .wav must be 16 kHz PCM16 (audio::read_wav_pcm16's messages).
constexpr const char* kNoFfmpeg = "omnirt was built without FFmpeg";

// --mic: the capture stream; file:PATH decodes PATH itself (a 16 kHz PCM16 WAV also without
// FFmpeg) and plays it through the PCM stand-in.
StatusOr<std::unique_ptr<audio::CaptureStream>> open_mic(const VoiceOptions& o) {
  audio::StreamConfig cfg;
  cfg.sample_rate = 16000;
  cfg.ring_seconds = std::clamp(o.listen_s + 1.0, 2.0, 600.0);  // the encoder may lag behind a chunk
  if (!is_file_device(o.device)) {
    cfg.device = o.device;
    return audio::open_capture(cfg);
  }
  const std::string path = o.device.substr(5);
  auto pcm = audio::decode_file(path, 16000);
  if (!pcm.ok() && pcm.status().code() == StatusCode::kUnsupported && ends_with(path, ".wav"))
    pcm = audio::read_wav_pcm16(path, kNoFfmpeg);
  if (!pcm.ok()) return pcm.status();
  audio::FileDeviceOptions fo;
  fo.speed = o.speed;
  return audio::open_pcm_capture(std::move(*pcm), cfg, fo);
}

// --speaker: the answer's samples go into the playback ring as the codec produces them, never
// blocking the codec (what does not fit waits in `backlog` for the next run or finish()). The
// sink is called by one thread at a time (speak()'s contract).
class Player {
 public:
  explicit Player(audio::PlaybackStream& s) : s_(s) {}
  void push(const float* x, size_t n) {
    if (!err_.ok() || n == 0) return;
    if (!seen_) {
      seen_ = true;
      first_ = Clock::now();
      underruns_before_ = s_.counters().underrun_samples;  // the silence before the answer is no underrun
    }
    backlog_.insert(backlog_.end(), x, x + n);
    write(0);
  }
  // Queues what is left and waits until the device took it all.
  Status finish(int64_t timeout_ms) {
    const Clock::time_point end = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (err_.ok() && off_ < backlog_.size() && Clock::now() < end) write(100);
    if (!err_.ok()) return err_;
    if (off_ < backlog_.size()) return out_of_range(fmt("the speaker took no room for %lld ms", (long long)timeout_ms));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    return s_.drain(static_cast<int>(std::max<int64_t>(left, 100)));
  }
  size_t handed() const { return handed_; }
  Clock::time_point first() const { return first_; }
  uint64_t underruns() const { return s_.counters().underrun_samples - underruns_before_; }

 private:
  void write(int timeout_ms) {
    auto w = s_.write(backlog_.data() + off_, backlog_.size() - off_, timeout_ms);
    if (!w.ok()) {
      err_ = w.status();
      return;
    }
    off_ += *w;
    handed_ += *w;
    if (off_ == backlog_.size()) backlog_.clear(), off_ = 0;
  }
  audio::PlaybackStream& s_;
  std::vector<float> backlog_;  // samples not yet in the ring from off_ on
  size_t off_ = 0, handed_ = 0;
  Clock::time_point first_{};
  bool seen_ = false;
  uint64_t underruns_before_ = 0;
  Status err_ = Status::Ok();
};

// The 1-minute load average (and 5, 15) from /proc/loadavg; -1 where unreadable.
std::array<double, 3> load_average() {
  std::array<double, 3> l{-1, -1, -1};
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) != 3) l = {-1, -1, -1};
    std::fclose(f);
  }
  return l;
}

// A JSON string body: quotes, backslashes and control bytes escaped; valid UTF-8 kept, every
// byte of an invalid sequence (random weights emit any token) as U+FFFD.
std::string json_text(const std::string& t) {
  std::string out;
  for (size_t i = 0; i < t.size();) {
    const auto c = static_cast<unsigned char>(t[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
      else if (c < 0x20) out += fmt("\\u%04x", c);
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    const size_t len = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    bool ok = len > 0 && i + len <= t.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(t[i + k]) & 0xC0) == 0x80;
    if (ok && len > 2) {  // no overlong forms, surrogates or code points past U+10FFFF
      const auto c1 = static_cast<unsigned char>(t[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 > 0x9F) && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 > 0x8F);
    }
    if (ok) {
      out.append(t, i, len);
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  return out;
}

struct TurnRecord {
  VoiceTurnTimings t;
  double audio_s = 0, rtf = 0;
  int64_t steps = 0;
  int64_t tail_frames = -1;  // audio input: mel frames left to encode at the end of the input
};

// One row of the breakdown over turns: wall and CPU seconds of an event (or a duration).
struct StageRow {
  const char* name;  // JSON key without the unit
  const char* label;
  std::vector<double> wall, cpu;
};

std::vector<StageRow> stage_rows(const std::vector<TurnRecord>& turns) {
  std::vector<StageRow> rows = {
      {"input_encoded", "last encoder chunk", {}, {}}, {"prefill", "prefill done", {}, {}},
      {"first_text", "first text token", {}, {}},      {"first_frame", "first codec frame", {}, {}},
      {"first_pcm", "first PCM sample", {}, {}},       {"total", "answer done", {}, {}},
      {"codec", "codec (all pushes)", {}, {}},         {"step_forward", "per step: forward", {}, {}},
      {"step_heads", "per step: audio heads", {}, {}}, {"step_sample", "per step: sampling", {}, {}}};
  for (const TurnRecord& r : turns) {
    const VoiceTurnTimings& t = r.t;
    const double per = r.steps > 0 ? 1.0 / static_cast<double>(r.steps) : 0.0;
    const double wall[] = {t.input_encoded, t.prefill_done, t.first_text, t.first_frame, t.first_pcm, t.done,
                           t.codec_busy, t.step_forward * per, t.step_heads * per, t.step_sample * per};
    const double cpu[] = {t.cpu_input_encoded, t.cpu_prefill_done, t.cpu_first_text, t.cpu_first_frame,
                          t.cpu_first_pcm, t.cpu_done, t.cpu_codec, -1, -1, -1};
    for (size_t i = 0; i < rows.size(); ++i) {
      rows[i].wall.push_back(wall[i]);
      rows[i].cpu.push_back(cpu[i]);
    }
  }
  return rows;
}

// The spread over the measured turns: a table on stderr, and one JSON line on stdout with --json.
// `head`: the last turn's JSON fields ("text": ..., without braces), opening the line.
void print_turn_stats(const VoiceOptions& o, bool audio_in, const std::string& head, const std::vector<TurnRecord>& records,
                      const std::array<double, 3>& before, const std::array<double, 3>& after) {
  const std::vector<StageRow> rows = stage_rows(records);
  std::vector<double> rtf;
  for (const TurnRecord& r : records) rtf.push_back(r.rtf);
  const LatencySpread rs = latency_spread(rtf);
  int64_t tail_min = -1, tail_max = -1;
  for (const TurnRecord& r : records) {
    if (r.tail_frames < 0) continue;
    tail_min = tail_min < 0 ? r.tail_frames : std::min(tail_min, r.tail_frames);
    tail_max = std::max(tail_max, r.tail_frames);
  }
  auto ms = [](double s) { return s < 0 ? -1.0 : s * 1e3; };
  if (o.json) {
    std::printf("{%s, \"turns\": %zu, \"warmup\": %d, \"paced\": %s, \"end_spread\": %s, \"tail_frames_min\": %lld, "
                "\"tail_frames_max\": %lld, \"loadavg_before\": [%.2f, %.2f, %.2f], "
                "\"loadavg_after\": [%.2f, %.2f, %.2f], \"stats\": {\"rtf\": {\"p50\": %.4f, \"p95\": %.4f, \"min\": %.4f}",
                head.c_str(), records.size(), o.warmup, audio_in && !o.no_pace ? "true" : "false",
                o.end_spread ? "true" : "false", (long long)tail_min, (long long)tail_max, before[0], before[1], before[2],
                after[0], after[1], after[2], rs.p50, rs.p95, rs.min);
    for (const StageRow& row : rows) {
      const LatencySpread w = latency_spread(row.wall), c = latency_spread(row.cpu);
      std::printf(", \"%s_ms\": {\"p50\": %.2f, \"p95\": %.2f, \"min\": %.2f, \"cpu_p50\": %.2f, \"cpu_p95\": %.2f, "
                  "\"cpu_min\": %.2f}",
                  row.name, ms(w.p50), ms(w.p95), ms(w.min), ms(c.p50), ms(c.p95), ms(c.min));
    }
    std::printf("}}\n");
  }
  auto cell = [](double s) { return s < 0 ? std::string("      n/a") : fmt("%9.1f", s * 1e3); };
  const std::string tails = tail_min < 0 ? std::string()
                            : tail_min == tail_max ? fmt(", %lld mel frames left at its end", (long long)tail_min)
                                                   : fmt(", %lld-%lld mel frames left at its end (--end-spread)",
                                                         (long long)tail_min, (long long)tail_max);
  std::fprintf(stderr,
               "%zu turns (after %d warm-up), input: %s%s; load average %.2f before, %.2f after (1 min)\n"
               "ms from the end of the input     wall p50  wall p95  wall min   CPU p50   CPU p95   CPU min\n",
               records.size(), o.warmup, !audio_in ? "text" : o.no_pace ? "audio, not paced" : "audio paced in real time",
               tails.c_str(), before[0], after[0]);
  for (const StageRow& row : rows) {
    const LatencySpread w = latency_spread(row.wall), c = latency_spread(row.cpu);
    std::fprintf(stderr, "  %-28s %s %s %s %s %s %s\n", row.label, cell(w.p50).c_str(), cell(w.p95).c_str(),
                 cell(w.min).c_str(), cell(c.p50).c_str(), cell(c.p95).c_str(), cell(c.min).c_str());
  }
  std::fprintf(stderr, "  %-28s %9.3f %9.3f %9.3f   (wall time / audio length)\n", "real-time factor", rs.p50, rs.p95,
               rs.min);
}

int run_voice(const VoiceOptions& o) {
  if (o.turns < 1 || o.warmup < 0) return fail(fmt("--turns %d must be >= 1 and --warmup %d >= 0", o.turns, o.warmup));
  if (int(!o.prompt.empty()) + int(!o.input.empty()) + int(o.mic) != 1)
    return fail("give exactly one of --prompt TEXT, --input FILE or --mic");
  if (o.output.empty() && !o.speaker) return fail("give --output FILE, --speaker, or both");
  if ((o.mic || o.speaker) && (o.turns != 1 || o.warmup != 0))
    return fail(fmt("--mic and --speaker are one live turn: --turns %d and --warmup %d are not for them", o.turns, o.warmup));
  if (!o.device.empty() && !o.mic) return fail("--device '" + o.device + "' is the microphone: give --mic");
  if (o.end_spread && (o.mic || o.input.empty() || ends_with(o.input, ".txt")))
    return fail("--end-spread is for an audio --input file (it shortens the input turn by turn)");
  if (!o.speaker_device.empty() && !o.speaker) return fail("--speaker-device '" + o.speaker_device + "' needs --speaker");
  if (!(o.listen_s > 0 && o.listen_s <= 600)) return fail(fmt("--listen-s %g is outside (0, 600]", o.listen_s));
  std::string text = o.prompt;
  std::vector<float> speech;  // 16 kHz, when the input is an audio file
  const bool audio_in = o.mic || (!o.input.empty() && !ends_with(o.input, ".txt"));
  std::unique_ptr<audio::CaptureStream> mic;
  if (o.mic) {  // opened before the model loads: a wrong device fails fast
    auto cap = open_mic(o);
    if (!cap.ok()) return fail("--mic: " + cap.status().to_string());
    mic = std::move(*cap);
  } else if (audio_in) {
    auto pcm = audio::decode_file(o.input, 16000);
    if (!pcm.ok() && pcm.status().code() == StatusCode::kUnsupported && ends_with(o.input, ".wav"))
      pcm = audio::read_wav_pcm16(o.input, kNoFfmpeg);  // a build without FFmpeg
    if (!pcm.ok()) return fail("cannot read --input '" + o.input + "': " + pcm.status().to_string());
    speech = std::move(*pcm);
    if (speech.size() < 201) return fail("the input '" + o.input + "' holds no audio (under 13 ms)");
    float peak = 0.0f;
    for (float x : speech) peak = std::max(peak, std::fabs(x));
    if (peak < 1e-4f) return fail("the input '" + o.input + "' is silence (peak below -80 dBFS)");
  } else {
    if (!o.input.empty()) {
      std::ifstream f(o.input, std::ios::binary);
      if (!f) return fail("cannot read --input '" + o.input + "'");
      std::stringstream ss;
      ss << f.rdbuf();
      text = ss.str();
    }
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) return fail("the input is empty");
  }
  std::vector<std::string> outputs;  // files to write: --output, the file speaker's PATH
  if (!o.output.empty()) outputs.push_back(o.output);
  if (o.speaker && is_file_device(o.speaker_device)) outputs.push_back(o.speaker_device.substr(5));
  for (const std::string& out : outputs) {
    if (!ends_with(out, ".wav") && !ends_with(out, ".flac") && !ends_with(out, ".opus") && !ends_with(out, ".ogg"))
      return fail("output '" + out + "': the extension must be .wav, .flac, .opus or .ogg");
    // fail before the work when the output cannot be written (and leave no empty file)
    const bool existed = static_cast<bool>(std::ifstream(out));
    std::FILE* f = std::fopen(out.c_str(), "ab");
    if (!f) return fail("cannot write output '" + out + "'");
    std::fclose(f);
    if (!existed) std::remove(out.c_str());
  }

  auto model = Model::load(o.model);
  if (!model.ok()) return fail("cannot load '" + o.model + "': " + model.status().to_string());
  const bool synthetic = (*model)->is_synthetic();
  if (synthetic) note_synthetic(o.model);
  auto heads = load_audio_out(**model);
  if (!heads.ok()) return fail("'" + o.model + "' cannot speak: " + heads.status().to_string());
  auto snac = load_snac((*model)->file());
  if (!snac.ok()) return fail("'" + o.model + "' carries no usable codec: " + snac.status().to_string());
  if (Status st = check_codec_matches(heads->spec, (*snac)->weights.hp); !st.ok())
    return fail("the codec does not match the audio-out heads: " + st.to_string());
  // --speaker: a device at the codec's rate (no resampling here: PortAudio's host API converts
  // where the hardware cannot), or file:PATH, a stand-in that records what it plays.
  std::unique_ptr<audio::PlaybackStream> speaker;
  audio::FilePlaybackStream* file_speaker = nullptr;
  const int out_rate = static_cast<int>((*snac)->weights.hp.sampling_rate);
  if (o.speaker) {
    audio::StreamConfig cfg;
    cfg.sample_rate = out_rate;
    cfg.ring_seconds = 20.0;  // more waits in the player's backlog, never blocking the codec
    StatusOr<std::unique_ptr<audio::PlaybackStream>> sp = unsupported("no speaker");
    if (is_file_device(o.speaker_device)) {
      audio::FileDeviceOptions fo;
      fo.speed = o.speed;
      auto fs = audio::open_file_playback("", cfg, fo);  // written below (also without FFmpeg)
      if (fs.ok()) file_speaker = fs->get(), sp = std::unique_ptr<audio::PlaybackStream>(std::move(*fs));
      else sp = fs.status();
    } else {
      cfg.device = o.speaker_device;
      sp = audio::open_playback(cfg);
    }
    if (!sp.ok()) return fail("--speaker: " + sp.status().to_string());
    speaker = std::move(*sp);
  }
  auto prompt = (*model)->tokenizer().encode(audio_in ? std::string() : text, !audio_in, false);
  if (!prompt.ok()) return fail("cannot tokenize the input: " + prompt.status().to_string());
  std::unique_ptr<AudioEncoderModel> encoder;
  if (audio_in) {
    if (heads->spec.kind != AudioOutKind::kParallel)
      return fail("'" + o.model + "' speaks with codec tokens in its vocabulary (a TTS model): give it text");
    auto enc = load_audio_encoder((*model)->file());
    if (!enc.ok()) return fail("'" + o.model + "' cannot listen: " + enc.status().to_string());
    encoder = std::move(*enc);
  }

  ContextParams cp;
  cp.n_threads = o.threads;
  // Audio: about 12.5 rows per second of speech (Whisper 50 Hz, adapter stacking), and margin.
  const int64_t input_seconds = o.mic ? static_cast<int64_t>(std::ceil(o.listen_s)) : static_cast<int64_t>(speech.size() / 16000);
  const int64_t input_positions = audio_in ? (input_seconds + 1) * 50 + 16 : static_cast<int64_t>(prompt->size());
  cp.n_ctx = std::min<int64_t>((*model)->hparams().n_ctx_train, input_positions + o.max_steps + 16);
  // --gpu: backbone, heads and codec on the device; else a CPU context and codec.
  std::unique_ptr<Context> cpu_ctx;
  std::unique_ptr<CudaContext> gpu_ctx;
  std::unique_ptr<Backbone> backbone;
  std::unique_ptr<audio::SnacDecoder> cpu_codec;
  std::unique_ptr<CudaSnacDecoder> gpu_codec;
  std::unique_ptr<CodecStream> codec_stream;
  if (o.gpu) {
    auto ctx = CudaContext::create(**model, cp);
    if (!ctx.ok()) return fail("cannot create a CUDA context: " + ctx.status().to_string());
    gpu_ctx = std::move(*ctx);
    backbone = std::make_unique<CudaBackbone>(*gpu_ctx);
    auto dec = CudaSnacDecoder::create((*snac)->weights);
    if (!dec.ok()) return fail("cannot create the CUDA SNAC decoder: " + dec.status().to_string());
    gpu_codec = std::move(*dec);
    codec_stream = std::make_unique<CudaCodecStream>(*gpu_codec);
  } else {
    auto ctx = Context::create(**model, cp);
    if (!ctx.ok()) return fail("cannot create a context: " + ctx.status().to_string());
    cpu_ctx = std::move(*ctx);
    backbone = std::make_unique<CpuBackbone>(*cpu_ctx);
    cpu_codec = std::make_unique<audio::SnacDecoder>((*snac)->weights, cpu_ctx->thread_pool());
    codec_stream = std::make_unique<CpuCodecStream>(*cpu_codec);
  }
  const int n_threads = cpu_ctx ? cpu_ctx->n_threads() : 0;

  VoiceTurnParams p;
  p.decode.max_steps = o.max_steps;
  p.decode.max_text_tokens = o.max_text;
  p.decode.skip_text_head = !o.keep_text_head;
  p.codec_thread = o.codec_thread;
  for (SamplerParams* s : {&p.decode.text_sampling, &p.decode.audio_sampling}) {
    s->temperature = o.temperature;
    s->top_k = o.top_k;
    s->seed = o.seed;
  }
  p.noise_seed = o.seed;
  // Audio input: one stream for all turns (reset between them); its rows go to the turn's
  // decoder while the user speaks, and are held back at the end of the input so that the last
  // chunk's rows and the end/answer rows are evaluated in one batch.
  AudioOutDecoder* cur = nullptr;
  bool at_end = false;
  std::vector<float> tail_rows;
  std::unique_ptr<CudaWhisperEncoder> gpu_encoder;
  std::unique_ptr<ThreadPool> adapter_pool;  // --gpu: the adapter's threads (there is no CPU context)
  std::unique_ptr<audio::AudioStream> stream;  // after what it uses: destroyed first
  if (audio_in) {
    audio::AudioStreamOptions so;
    if (o.chunk_ms > 0) so.chunk_frames = audio::chunk_frames_for_ms(encoder->weights, o.chunk_ms);
    if (o.gpu) {
      auto enc = CudaWhisperEncoder::create(encoder->weights.whisper);
      if (!enc.ok()) return fail("cannot create the CUDA Whisper encoder: " + enc.status().to_string());
      gpu_encoder = std::move(*enc);
      adapter_pool = std::make_unique<ThreadPool>(std::max(1, o.threads));
      so.frame_encoder = [&gpu_encoder](const float* mel, int64_t n, bool final_norm, std::vector<float>* frames) {
        return final_norm ? gpu_encoder->encode(mel, n, frames) : gpu_encoder->encode_before_final_norm(mel, n, frames);
      };
    }
    auto st = audio::AudioStream::create(
        encoder->weights, o.gpu ? *adapter_pool : cpu_ctx->thread_pool(),
        [&](const float* rows, int64_t n) -> Status {
          if (!at_end) return cur->audio_input_rows(rows, n);
          tail_rows.insert(tail_rows.end(), rows, rows + n * (*model)->hparams().n_embd);
          return Status::Ok();
        },
        so);
    if (!st.ok()) return fail("audio stream: " + st.status().to_string());
    stream = std::move(*st);
    // --end-spread: the last measured turn drops (N - 1)/N of a chunk; refused before any turn runs.
    const int64_t chunk_samples = stream->chunk_frames() * 160;
    if (o.end_spread && static_cast<size_t>((o.turns - 1) * chunk_samples / o.turns) + 201 > speech.size())
      return fail(fmt("--end-spread: the input (%zu samples) is shorter than an encoder chunk (%lld samples)",
                      speech.size(), (long long)chunk_samples));
  }
  StatusOr<VoiceTurnResult> r = internal_error("no turn");
  int64_t input_rows = 0, tail_frames = -1;  // mel frames left to encode at the end of the input
  std::vector<TurnRecord> records;
  std::array<double, 3> load_before{}, load_after{};
  std::unique_ptr<Player> player;
  PcmSink sink;
  if (speaker) {
    player = std::make_unique<Player>(*speaker);
    sink = [&player](const float* x, size_t n) { player->push(x, n); };
    if (Status st = speaker->start(); !st.ok()) return fail("--speaker: " + st.to_string());
  }
  Clock::time_point turn_start{};  // the end of the user's input (text: just before the turn)
  double captured_s = -1;
  double input_lag_s = 0;  // audio input: how far the stream was behind when the input ended
  std::string mic_end;  // why the capture ended
  for (int turn = 0; turn < o.warmup + o.turns; ++turn) {
    if (turn == o.warmup) load_before = load_average();
    if (Status st = backbone->rewind(0); !st.ok()) return fail("voice turn: " + st.to_string());
    if (!audio_in) {
      turn_start = Clock::now();
      r = run_voice_turn(*backbone, *heads, *codec_stream, *prompt, p, sink);
    } else {
      auto dec = AudioOutDecoder::create(*heads, *backbone, p.decode);
      if (!dec.ok()) return fail("voice turn: " + dec.status().to_string());
      if (Status st = (*dec)->begin_audio_input(); !st.ok()) return fail("voice turn: " + st.to_string());
      cur = dec->get();
      at_end = false;
      tail_rows.clear();
      stream->reset();
      const int64_t rows_before = stream->stats().rows;
      const Clock::time_point t0 = Clock::now();
      Clock::time_point mic_last{};  // --mic: when the last sample read was captured
      constexpr size_t kBlock = 320;  // 20 ms at 16 kHz, a capture device's period
      if (mic) {
        // The blocks the device delivers go into the stream as they come. Quiet: a read's RMS
        // below --silence-dbfs; N ms of it after a loud read ends the turn (--end-silence-ms N).
        if (Status st = mic->start(); !st.ok()) return fail("--mic: " + st.to_string());
        std::fprintf(stderr, "omnirt: listening on %s (%.1f s at most)\n",
                     is_file_device(o.device) ? o.device.c_str() : mic->device_name().c_str(), o.listen_s);
        const size_t max_samples = static_cast<size_t>(o.listen_s * 16000);
        const float quiet = std::pow(10.0f, static_cast<float>(o.silence_dbfs) / 20.0f);
        const size_t end_quiet = static_cast<size_t>(o.end_silence_ms) * 16;
        std::array<float, kBlock> buf{};
        size_t got = 0, quiet_run = 0;
        bool heard = false;
        mic_end = fmt("--listen-s %g reached", o.listen_s);
        while (got < max_samples) {
          auto n = mic->read(buf.data(), std::min(kBlock, max_samples - got), 200);
          if (!n.ok()) return fail("--mic: " + n.status().to_string());
          if (*n == 0) {
            if (mic->at_end()) {
              mic_end = "the capture ended";
              break;
            }
            continue;
          }
          if (Status st = stream->push(buf.data(), *n); !st.ok()) return fail("audio input: " + st.to_string());
          got += *n;
          double sq = 0;
          for (size_t k = 0; k < *n; ++k) sq += double(buf[k]) * buf[k];
          if (std::sqrt(sq / double(*n)) >= quiet) heard = true, quiet_run = 0;
          else if (heard) quiet_run += *n;
          if (end_quiet > 0 && heard && quiet_run >= end_quiet) {
            mic_end = fmt("end of speech (%d ms below %g dBFS)", o.end_silence_ms, o.silence_dbfs);
            break;
          }
        }
        // The ring still holds what was captured after the last sample read: a stream that fell
        // behind read that sample this long after it was spoken (a stand-in moves --speed times
        // real time; at --speed 0 it has no clock).
        const audio::DeviceCounters dc = mic->counters();
        const uint64_t consumed = got + dc.overrun_samples;
        const double rate = is_file_device(o.device) ? o.speed : 1.0;
        const double behind_s = rate > 0 && dc.frames > consumed ? double(dc.frames - consumed) / (16000.0 * rate) : 0.0;
        mic_last = Clock::now() - std::chrono::microseconds(static_cast<int64_t>(behind_s * 1e6));
        (void)mic->stop();
        captured_s = static_cast<double>(got) / 16000.0;
        if (mic->counters().overrun_samples > 0)
          std::fprintf(stderr, "omnirt: %llu captured samples were dropped (the encoder fell behind)\n",
                       (unsigned long long)mic->counters().overrun_samples);
        if (got < 201) return fail("--mic: no audio was captured (under 13 ms) from " + o.device);
      }
      size_t n_speech = speech.size();
      if (o.end_spread && turn >= o.warmup)  // measured turn k drops k/N of a chunk (160 samples a frame)
        n_speech -= static_cast<size_t>((turn - o.warmup) * stream->chunk_frames() * 160 / o.turns);
      if (Status st = audio::push_paced(*stream, speech.data(), n_speech, kBlock, t0, !o.no_pace); !st.ok())
        return fail("audio input: " + st.to_string());
      // The end of the user's input. Paced, it is when the last sample was spoken, not when its
      // push returned: a stream that fell behind (a chunk's encoder and prefill still running
      // when the input ended) counts that lag in every stage, the time to first audio included.
      // Live, it is when the last sample read was captured.
      const Clock::time_point pushed = Clock::now();
      const Clock::time_point start = mic ? std::min(mic_last, pushed) : !o.no_pace ? audio::spoken_at(t0, n_speech) : pushed;
      input_lag_s = std::max(0.0, std::chrono::duration<double>(pushed - start).count());
      turn_start = start;
      const double cpu_start = process_cpu_seconds();
      auto since = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
      VoiceTurnTimings t;
      at_end = true;
      if (Status st = stream->finish(); !st.ok()) return fail("audio input: " + st.to_string());
      t.input_encoded = since();
      t.cpu_input_encoded = process_cpu_seconds() - cpu_start;
      const int64_t n_tail = static_cast<int64_t>(tail_rows.size()) / (*model)->hparams().n_embd;
      if (Status st = (*dec)->end_audio_input(tail_rows.data(), n_tail); !st.ok())
        return fail("voice turn: " + st.to_string());
      t.prefill_done = since();
      t.cpu_prefill_done = process_cpu_seconds() - cpu_start;
      input_rows = stream->stats().rows - rows_before;
      tail_frames = stream->stats().finish_frames;
      r = speak(**dec, heads->spec, *codec_stream, start, t, p.noise_seed, sink, cpu_start, p.codec_thread);
    }
    if (!r.ok()) return fail("voice turn: " + r.status().to_string());
    if (turn >= o.warmup) {
      TurnRecord rec;
      rec.t = r->t;
      rec.audio_s = static_cast<double>(r->pcm.size()) / static_cast<double>(r->sample_rate);
      rec.rtf = rec.audio_s > 0 ? r->t.done / rec.audio_s : -1;
      rec.steps = r->n_steps;
      rec.tail_frames = tail_frames;
      records.push_back(rec);
    }
  }
  load_after = load_average();
  // --speaker: everything queued, then the ring drained (the answer's length and 5 s of margin).
  double first_out = -1;  // s from the end of the input until the first sample went to the speaker
  uint64_t underruns = 0;
  if (player) {
    const double speed = is_file_device(o.speaker_device) && o.speed > 0 ? o.speed : 1.0;
    const double answer_s = static_cast<double>(r->pcm.size()) / static_cast<double>(r->sample_rate);
    if (Status st = player->finish(static_cast<int64_t>((answer_s / speed + 5.0) * 1e3)); !st.ok())
      return fail("--speaker: " + st.to_string());
    if (player->handed() > 0) first_out = std::chrono::duration<double>(player->first() - turn_start).count();
    underruns = player->underruns();
    if (Status st = speaker->stop(); !st.ok()) return fail("--speaker: " + st.to_string());
  }
  if (r->pcm.empty()) return fail("the model produced no speech (no codec frame before its end of speech)");
  auto write_pcm = [&](const std::string& path, const std::vector<float>& pcm) {
    Status written = audio::encode_file(path, pcm.data(), pcm.size(), static_cast<int>(r->sample_rate));
    if (written.code() == StatusCode::kUnsupported && ends_with(path, ".wav"))  // a build without FFmpeg
      written = audio::write_wav_pcm16(path, pcm.data(), pcm.size(), static_cast<int>(r->sample_rate));
    return written;
  };
  if (!o.output.empty())
    if (Status st = write_pcm(o.output, r->pcm); !st.ok()) return fail("cannot write '" + o.output + "': " + st.to_string());
  if (file_speaker) {
    const std::string path = o.speaker_device.substr(5);
    if (Status st = write_pcm(path, file_speaker->played()); !st.ok())
      return fail("--speaker-device: cannot write '" + path + "': " + st.to_string());
  }
  const std::string dest = !o.output.empty() ? o.output : file_speaker ? o.speaker_device : speaker->device_name();

  auto decoded = (*model)->tokenizer().decode(r->text_tokens);
  const std::string answer_bytes = decoded.ok() ? *decoded : std::string();
  const std::string answer = o.json ? json_text(answer_bytes) : escape_text(answer_bytes);
  const double audio_s = static_cast<double>(r->pcm.size()) / static_cast<double>(r->sample_rate);
  const double rtf = audio_s > 0 ? r->t.done / audio_s : 0.0;
  auto ms = [](double s) { return s < 0 ? -1.0 : s * 1e3; };  // JSON: -1 = did not happen
  auto stage = [](double s) { return s < 0 ? std::string("     n/a   ") : fmt("%8.1f ms", s * 1e3); };
  if (o.json) {
    const std::string head = fmt(
        "\"text\": \"%s\", \"synthetic\": %s, \"frames\": %lld, \"steps\": %lld, \"speech_ended\": %s, "
        "\"audio_s\": %.3f, \"input_encoded_ms\": %.2f, \"prefill_ms\": %.2f, \"first_text_ms\": %.2f, \"first_frame_ms\": %.2f, "
        "\"first_pcm_ms\": %.2f, \"total_ms\": %.2f, \"codec_ms\": %.2f, \"rtf\": %.4f, \"prompt_tokens\": %zu, \"input_rows\": %lld, \"tail_frames\": %lld, \"chunk_frames\": %lld, \"threads\": %d, "
        "\"codec_thread\": %s, \"skip_text_head\": %s, \"max_text\": %lld, \"backend\": \"%s\"",
        answer.c_str(), synthetic ? "true" : "false", (long long)r->n_frames, (long long)r->n_steps,
        r->speech_ended ? "true" : "false", audio_s, ms(r->t.input_encoded), ms(r->t.prefill_done), ms(r->t.first_text),
        ms(r->t.first_frame), ms(r->t.first_pcm), ms(r->t.done), ms(r->t.codec_busy), rtf, prompt->size(), (long long)input_rows, (long long)tail_frames,
        (long long)(stream ? stream->chunk_frames() : -1), n_threads, p.codec_thread ? "true" : "false",
        p.decode.skip_text_head ? "true" : "false", (long long)o.max_text, backbone->backend_name()) +
        fmt(", \"input\": \"%s\", \"captured_s\": %.3f, \"first_audio_out_ms\": %.2f, \"underrun_samples\": %llu, \"input_end\": \"%s\", "
            "\"input_lag_ms\": %.2f",
            o.mic ? "mic" : audio_in ? "audio file" : "text", captured_s, ms(first_out), (unsigned long long)underruns,
            json_text(mic_end).c_str(), input_lag_s * 1e3);
    if (o.turns == 1) std::printf("{%s}\n", head.c_str());
    else print_turn_stats(o, audio_in, head, records, load_before, load_after);
  } else {
    std::printf("text: %s\n", answer.c_str());
    std::fprintf(stderr,
                 "wrote %s: %.2f s of audio at %lld Hz, %lld frames in %lld steps (%s)\n"
                 "from the end of the input (%zu prompt tokens, %lld audio rows, %lld of %lld mel frames of the last encoder "
                 "chunk left, %d threads):\n"
                 "  last encoder chunk %s\n"
                 "  prefill done       %s\n"
                 "  first text token   %s\n"
                 "  first codec frame  %s\n"
                 "  first PCM sample   %s   <- time to first audio\n"
                 "  answer done        %s   real-time factor %.3f (codec %.1f ms of it)\n",
                 dest.c_str(), audio_s, (long long)r->sample_rate, (long long)r->n_frames, (long long)r->n_steps,
                 r->speech_ended ? "the model ended its speech" : "step limit", prompt->size(), (long long)input_rows,
                 (long long)tail_frames, (long long)(stream ? stream->chunk_frames() : -1), n_threads, stage(r->t.input_encoded).c_str(), stage(r->t.prefill_done).c_str(),
                 stage(r->t.first_text).c_str(), stage(r->t.first_frame).c_str(), stage(r->t.first_pcm).c_str(),
                 stage(r->t.done).c_str(), rtf, ms(r->t.codec_busy));
    if (audio_in)
      std::fprintf(stderr, "  (the stream was %.1f ms behind when the input ended: counted in every stage above)\n",
                   input_lag_s * 1e3);
    if (o.mic) std::fprintf(stderr, "  captured %.2f s from the microphone, until %s\n", captured_s, mic_end.c_str());
    if (player)
      std::fprintf(stderr, "  first audio to the speaker %s   (%s; %llu samples of underrun)\n", stage(first_out).c_str(),
                   file_speaker ? o.speaker_device.c_str() : speaker->device_name().c_str(), (unsigned long long)underruns);
    if (synthetic) std::fprintf(stderr, "note: random weights: the text and the voice are noise\n");
  }
  if (o.turns > 1 && !o.json) print_turn_stats(o, audio_in, {}, records, load_before, load_after);
  return 0;
}

}  // namespace

void add_voice_command(CLI::App& root, std::vector<Command>& out) {
  auto o = std::make_shared<VoiceOptions>();
  CLI::App* c = root.add_subcommand("voice", "One spoken answer from an omni model (text or audio in, audio out)");
  c->add_option("--model,-m", o->model, "Omni model file (backbone + audio-out heads + codec)")->required();
  c->add_option("--prompt,-p", o->prompt, "The user's turn as text");
  c->add_option("--input,-i", o->input, "The user's turn from a file: audio (any FFmpeg format) or .txt");
  c->add_option("--output,-o", o->output, "Audio file to write (.wav, .flac, .opus, .ogg); optional with --speaker");
  c->add_flag("--mic", o->mic, "The user's turn from a microphone (16 kHz mono), live");
  c->add_option("--device", o->device, "--mic: a PortAudio device (index or name part), or file:PATH for a "
                                        "stand-in microphone playing PATH");
  c->add_option("--speed", o->speed, "file: stand-in devices: speed (1 = real time, 0 = as fast as possible)")
      ->check(CLI::Range(0.0, 1000.0))->capture_default_str();
  c->add_option("--listen-s", o->listen_s, "--mic: seconds of audio at most in the user's turn")->capture_default_str();
  c->add_option("--end-silence-ms", o->end_silence_ms,
                "--mic: the turn ends after this many ms below --silence-dbfs once speech was heard (0: off)")
      ->check(CLI::Range(0, 600000))->capture_default_str();
  c->add_option("--silence-dbfs", o->silence_dbfs, "--mic: RMS level below which a block is quiet")
      ->check(CLI::Range(-120.0, 0.0))->capture_default_str();
  c->add_flag("--speaker", o->speaker, "Play the answer as it is produced");
  c->add_option("--speaker-device", o->speaker_device, "--speaker: a PortAudio device (index or name part), or "
                                                        "file:PATH for a stand-in speaker recording to PATH");
  c->add_flag("--no-pace", o->no_pace, "Feed audio input as fast as possible, not in real time");
  c->add_option("--max-steps", o->max_steps, "Decode steps at most")->capture_default_str();
  c->add_option("--temp", o->temperature, "Sampling temperature (text and every codebook)")->capture_default_str();
  c->add_option("--top-k", o->top_k, "Top-k (0: off)")->capture_default_str();
  c->add_option("--seed", o->seed, "Sampling and codec-noise seed")->capture_default_str();
  c->add_option("--threads,-t", o->threads, "Threads")->capture_default_str();
  c->add_option("--max-text", o->max_text,
                "Text tokens at most, then the text ends as if the model ended it (-1: no limit; random "
                "weights never end their text)")
      ->capture_default_str();
  c->add_flag("--codec-thread,!--no-codec-thread", o->codec_thread,
              "After the first audio, decode frames on a core of their own beside the decode loop (default: "
              "in series with it, on all threads)");
  c->add_flag("--keep-text-head", o->keep_text_head,
              "Compute the text logits even after the text has ended (default: skipped, same tokens)");
  c->add_flag("--json", o->json, "One JSON line with the text and the breakdown");
  c->add_flag("--gpu", o->gpu,
              "Run the backbone, the audio-out heads, the SNAC decoder and the audio input's Whisper encoder on CUDA device 0");
  c->add_option("--turns", o->turns, "Measured turns (same input, context rewound each time); > 1 prints p50/p95/min")
      ->capture_default_str();
  c->add_option("--warmup", o->warmup, "Turns run first and not counted")->capture_default_str();
  c->add_flag("--end-spread", o->end_spread,
              "Audio --input with --turns N: turn k drops the last k/N of an encoder chunk, so the turns end at "
              "points spread over one chunk");
  c->add_option("--chunk-ms", o->chunk_ms,
                "Audio encoder chunk in ms (0: the model's omni.audio_in.chunk_ms, else 2000)")
      ->capture_default_str();
  out.push_back({c, [o] { return run_voice(*o); }});
}

}  // namespace omni::cli
