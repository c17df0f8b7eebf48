// `omnirt transcribe FILE|--mic`: speech to text with a Whisper GGUF (tools/convert_whisper*.py),
// printing each window's text (or timestamped segment) as soon as it is decoded. Files are decoded
// by FFmpeg (any format, resampled to 16 kHz); a build without FFmpeg reads 16 kHz PCM16 WAV
// itself. --mic captures through PortAudio (--device NAME|INDEX) or, with --device file:PATH, a
// file-backed stand-in microphone that plays PATH in real time (--speed to change that).
// --follow reads a file that is still being written (StreamDecoder::open_follow), transcribing
// each --window (default 30 s) as soon as it has arrived, until --idle-ms pass without growth.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "audio/features/log_mel.h"
#include "audio/io/decode.h"
#include "audio/io/device.h"
#include "audio/io/wav_pcm16.h"
#include "audio/whisper/whisper_transcriber.h"
#include "kernels/core/thread_pool.h"
#include "runtime/model/cuda_whisper.h"
#include "runtime/model/whisper_loader.h"
#include "tools/cli/cli.h"

namespace omni::cli {
namespace {

struct TranscribeOptions {
  std::string file;
  std::string model = "models/whisper-tiny.en.gguf";
  int threads = 2;
  bool timing = false;
  bool json = false;
  bool mic = false;
  std::string device;
  double window = 5.0;   // --mic: seconds per transcribed window
  double speed = 1.0;    // --device file:PATH pacing
  bool window_given = false;
  bool follow = false;
  bool gpu = false;      // encoder and decoder on CUDA device 0
  int idle_ms = 2000;    // --follow: no growth for this long ends the file
  audio::WhisperDecodeOptions decode;
};

std::string json_escape(const std::string& t) {
  std::string out;
  for (char c : t) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) out += fmt("\\u%04x", c);
    else out += c;
  }
  return out;
}

// Prints a segment as it arrives: plain text, or "[start --> end] text" lines with timestamps.
struct Printer {
  bool timestamps = false, quiet = false, first = true;
  void operator()(const audio::WhisperSegment& s) {
    if (quiet) return;
    // Whisper's text starts with a space (its words carry the space before them).
    const size_t lead = std::min(s.text.find_first_not_of(' '), s.text.size());
    if (timestamps) std::printf("[%7.2f --> %7.2f] %s\n", s.start, s.end, s.text.c_str() + lead);
    else std::fputs(s.text.c_str() + (first ? lead : 0), stdout);
    first = false;
    std::fflush(stdout);
  }
};

// A followed file as a capture stream, so transcribe_capture handles it as it does a
// microphone: each window is transcribed as soon as its samples have arrived. read() blocks in
// the decoder until samples come or the file has been idle for --idle-ms.
class FollowCapture : public audio::CaptureStream {
 public:
  FollowCapture(std::unique_ptr<audio::StreamDecoder> d, std::string name)
      : d_(std::move(d)), name_(std::move(name)) {}
  Status start() override { return Status::Ok(); }
  Status stop() override { return Status::Ok(); }
  StatusOr<size_t> read(float* out, size_t max_samples, int /*timeout_ms*/) override {
    if (end_) return size_t{0};
    OMNI_ASSIGN_OR_RETURN(size_t n, d_->read(out, max_samples));
    if (n == 0) end_ = true;
    frames_ += n;
    return n;
  }
  bool at_end() const override { return end_; }
  audio::DeviceCounters counters() const override {
    audio::DeviceCounters c;
    c.frames = frames_;
    return c;
  }
  int sample_rate() const override { return d_->sample_rate(); }
  const std::string& device_name() const override { return name_; }

 private:
  std::unique_ptr<audio::StreamDecoder> d_;
  std::string name_;
  bool end_ = false;
  uint64_t frames_ = 0;
};

int run_mic(const TranscribeOptions& o, audio::WhisperTranscriber& tr) {
  audio::StreamConfig cfg;
  cfg.sample_rate = audio::kWhisperSampleRate;
  cfg.ring_seconds = std::max(2.0, 2 * o.window);
  StatusOr<std::unique_ptr<audio::CaptureStream>> cap = unsupported("no capture");
  if (o.device.rfind("file:", 0) == 0) {
    audio::FileDeviceOptions fo;
    fo.speed = o.speed;
    cap = audio::open_file_capture(o.device.substr(5), cfg, fo);
  } else {
    cfg.device = o.device;
    cap = audio::open_capture(cfg);
  }
  if (!cap.ok()) return fail(cap.status().to_string());
  if (Status st = (*cap)->start(); !st.ok()) return fail(st.to_string());
  std::fprintf(stderr, "omnirt: listening on %s (%.1f s windows)\n", (*cap)->device_name().c_str(), o.window);
  Printer print{o.decode.timestamps, false, true};
  auto segs = tr.transcribe_capture(**cap, o.window, o.decode, [&](const audio::WhisperSegment& s) {
    print.first = true;  // one line per window
    print(s);
    if (!o.decode.timestamps) std::printf("\n");
    std::fflush(stdout);
  });
  const audio::DeviceCounters c = (*cap)->counters();
  if (o.timing)
    std::fprintf(stderr, "omnirt: %.2f s captured, %llu samples dropped (transcription slower than speech)\n",
                 static_cast<double>(c.frames) / audio::kWhisperSampleRate,
                 static_cast<unsigned long long>(c.overrun_samples));
  if (!segs.ok()) return fail(segs.status().to_string());
  return 0;
}

int run_transcribe(const TranscribeOptions& o) {
  const double t0 = now_seconds();
  auto model = load_whisper(o.model);
  if (!model.ok()) return fail(model.status().to_string());
  ThreadPool pool(o.threads);
  // --gpu: the encoder and the decoder on the device; log-mel, search and text on the host.
  audio::WhisperBackend backend;
  std::unique_ptr<CudaWhisperEncoder> gpu_encoder;
  std::unique_ptr<CudaWhisperDecoder> gpu_decoder;
  if (o.gpu) {
    auto enc = CudaWhisperEncoder::create((*model)->weights);
    if (!enc.ok()) return fail("--gpu: " + enc.status().to_string());
    auto dec = CudaWhisperDecoder::create((*model)->weights, pool);
    if (!dec.ok()) return fail("--gpu: " + dec.status().to_string());
    gpu_encoder = std::move(enc).value();
    gpu_decoder = std::move(dec).value();
    backend.encode = [&gpu_encoder](const float* mel, int64_t n_frames, std::vector<float>* out) {
      return gpu_encoder->encode(mel, n_frames, out);
    };
    backend.decoder = gpu_decoder.get();
  }
  audio::WhisperTranscriber tr((*model)->weights, pool, std::move(backend));
  if (o.mic) return run_mic(o, tr);
  if (o.file.empty()) return fail("transcribe: give an audio FILE or --mic");
  Printer print{o.decode.timestamps, o.json, true};
  double t1 = 0, audio_s = 0;
  StatusOr<std::vector<audio::WhisperSegment>> segs = std::vector<audio::WhisperSegment>{};
  if (o.follow) {
    audio::FollowOptions fo;
    fo.idle_ms = o.idle_ms;
    auto d = audio::StreamDecoder::open_follow(o.file, audio::kWhisperSampleRate, fo);
    if (!d.ok()) return fail(d.status().to_string());
    FollowCapture cap(std::move(d).value(), o.file);
    t1 = now_seconds();
    segs = tr.transcribe_capture(cap, o.window_given ? o.window : 30.0, o.decode, std::ref(print));
    audio_s = static_cast<double>(cap.counters().frames) / audio::kWhisperSampleRate;
  } else {
    auto samples = audio::decode_file(o.file, audio::kWhisperSampleRate);
    if (!samples.ok() && samples.status().code() == StatusCode::kUnsupported)  // a build without FFmpeg
      samples = audio::read_wav_pcm16(o.file, "omnirt was built without FFmpeg");
    if (!samples.ok()) return fail(samples.status().to_string());
    t1 = now_seconds();
    segs = tr.transcribe_segments(samples->data(), samples->size(), o.decode, std::ref(print));
    audio_s = static_cast<double>(samples->size()) / audio::kWhisperSampleRate;
  }
  if (!segs.ok()) return fail(segs.status().to_string());
  const double t2 = now_seconds();
  if (o.json) {
    const audio::WhisperStats& st = tr.stats();
    std::string text;
    for (const auto& s : *segs) text += s.text;
    std::printf("{\"file\": \"%s\", \"audio_s\": %.3f, \"load_s\": %.3f, \"transcribe_s\": %.4f, "
                "\"x_real_time\": %.2f, \"mel_s\": %.4f, \"mel_x_real_time\": %.1f, \"encode_s\": %.4f, "
                "\"windows\": %lld, \"decode_s\": %.4f, \"threads\": %d, \"beam_size\": %d, \"gpu\": %s, "
                "\"text\": \"%s\"}\n",
                json_escape(o.file).c_str(), audio_s, t1 - t0, t2 - t1, audio_s / (t2 - t1), st.mel_s,
                static_cast<double>(st.mel_samples) / audio::kWhisperSampleRate / st.mel_s, st.encode_s,
                static_cast<long long>(st.windows), st.decode_s, o.threads, o.decode.beam_size,
                o.gpu ? "true" : "false", json_escape(text).c_str());
    return 0;
  }
  if (!o.decode.timestamps) std::printf("\n");
  if (o.timing)
    std::fprintf(stderr, "omnirt: %.2f s of audio transcribed in %.2f s (%.1fx real time; load %.2f s)\n",
                 audio_s, t2 - t1, audio_s / (t2 - t1), t1 - t0);
  return 0;
}

}  // namespace

void add_transcribe_command(CLI::App& root, std::vector<Command>& out) {
  auto o = std::make_shared<TranscribeOptions>();
  CLI::App* c = root.add_subcommand("transcribe", "Print the speech in an audio file as text (Whisper)");
  c->add_option("file", o->file, "Audio file (any FFmpeg format; 16 kHz PCM WAV without FFmpeg)");
  c->add_flag("--mic", o->mic, "Transcribe live audio from a microphone, window by window");
  c->add_option("--device", o->device, "--mic: a PortAudio device (index or name part), or file:PATH for a "
                                        "stand-in microphone playing PATH");
  c->add_option("--window", o->window, "--mic, --follow: seconds of audio per transcribed window "
                                        "(default 5 for --mic, 30 for --follow)")
      ->check(CLI::Range(0.1, 30.0))->each([o](const std::string&) { o->window_given = true; });
  c->add_flag("--gpu", o->gpu, "Run the Whisper encoder and decoder on CUDA device 0 (log-mel and search "
                               "stay on the CPU)");
  c->add_flag("--follow", o->follow, "FILE is still being written: transcribe each window as it arrives, "
                                     "until the file stops growing for --idle-ms");
  c->add_option("--idle-ms", o->idle_ms, "--follow: milliseconds without growth that end the file")
      ->check(CLI::Range(0, 86'400'000))->capture_default_str();
  c->add_option("--speed", o->speed, "--device file:PATH: playback speed (1 = real time, 0 = as fast as possible)")
      ->check(CLI::Range(0.0, 1000.0))->capture_default_str();
  c->add_option("--beam", o->decode.beam_size, "Beam size (1 = greedy)")->check(CLI::Range(1, 16))->capture_default_str();
  c->add_option("--patience", o->decode.patience, "Beam search patience")->capture_default_str();
  c->add_flag("--timestamps", o->decode.timestamps, "Print segments with their start and end times");
  c->add_option("--language", o->decode.language, "Multilingual models: language code (default en)");
  c->add_flag("--translate", o->decode.translate, "Multilingual models: translate to English");
  c->add_option("--chunk", o->decode.chunk_seconds, "Decode fixed chunks of this many seconds independently (0 = off)")
      ->check(CLI::Range(0.0, 30.0));
  c->add_flag("--chunk-no-pad", o->decode.encode_chunk_only,
              "With --chunk: encode only the chunk's frames instead of a zero-padded 30 s window");
  c->add_flag("--json", o->json, "Print one JSON line (text, timings) instead of the text");
  c->add_option("--model,-m", o->model, "Whisper GGUF (tools/convert_whisper_ct2.py, tools/convert_whisper.py)")
      ->capture_default_str();
  c->add_option("--threads,-t", o->threads, "CPU threads")->check(CLI::Range(1, 256))->capture_default_str();
  c->add_flag("--timing", o->timing, "Print the real-time factor on stderr");
  out.push_back({c, [o] { return run_transcribe(*o); }});
}

}  // namespace omni::cli
