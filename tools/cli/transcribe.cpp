// `omnirt transcribe FILE`: speech to text with a Whisper GGUF (tools/convert_whisper_ct2.py),
// printing each 30-second window's text as soon as it is decoded. Files are decoded by FFmpeg
// (any format, resampled to 16 kHz); a build without FFmpeg reads 16 kHz PCM16 WAV itself.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "audio/features/log_mel.h"
#include "audio/io/decode.h"
#include "audio/whisper/whisper_transcriber.h"
#include "kernels/core/thread_pool.h"
#include "runtime/model/whisper_loader.h"
#include "tools/cli/cli.h"

namespace omni::cli {
namespace {

struct TranscribeOptions {
  std::string file;
  std::string model = "models/whisper-tiny.en.gguf";
  int threads = 2;
  bool timing = false;
};

// 16 kHz PCM16 WAV (any channel count, averaged) for builds without FFmpeg.
StatusOr<std::vector<float>> read_wav_16k(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found(fmt("cannot open '%s'", path.c_str()));
  const std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (b.size() < 12 || std::memcmp(b.data(), "RIFF", 4) != 0 || std::memcmp(b.data() + 8, "WAVE", 4) != 0)
    return unsupported(fmt("'%s' is not a WAV file, and omnirt was built without FFmpeg", path.c_str()));
  uint16_t tag = 0, channels = 0, bits = 0;
  uint32_t rate = 0;
  for (size_t o = 12; o + 8 <= b.size();) {
    uint32_t len;
    std::memcpy(&len, b.data() + o + 4, 4);
    if (len > b.size() - o - 8) return corrupt_file(fmt("'%s': chunk at byte %zu runs past the end", path.c_str(), o));
    const char* body = b.data() + o + 8;
    if (std::memcmp(b.data() + o, "fmt ", 4) == 0 && len >= 16) {
      std::memcpy(&tag, body, 2);
      std::memcpy(&channels, body + 2, 2);
      std::memcpy(&rate, body + 4, 4);
      std::memcpy(&bits, body + 14, 2);
    } else if (std::memcmp(b.data() + o, "data", 4) == 0) {
      if (tag != 1 || bits != 16 || channels == 0 || rate != audio::kWhisperSampleRate)
        return unsupported(fmt("'%s': only 16 kHz 16-bit PCM WAV without FFmpeg (format %u, %u bits, "
                               "%u channels, %u Hz)", path.c_str(), tag, bits, channels, rate));
      const size_t frames = len / (2u * channels);
      std::vector<float> out(frames);
      for (size_t i = 0; i < frames; ++i) {
        float sum = 0;
        for (size_t c = 0; c < channels; ++c) {
          int16_t s;
          std::memcpy(&s, body + 2 * (i * channels + c), 2);
          sum += static_cast<float>(s) / 32768.0f;
        }
        out[i] = sum / channels;
      }
      return out;
    }
    o += 8 + len + (len & 1);
  }
  return corrupt_file(fmt("'%s' has no data chunk", path.c_str()));
}

int run_transcribe(const TranscribeOptions& o) {
  const double t0 = now_seconds();
  auto model = load_whisper(o.model);
  if (!model.ok()) return fail(model.status().to_string());
  auto samples = audio::decode_file(o.file, audio::kWhisperSampleRate);
  if (!samples.ok() && samples.status().code() == StatusCode::kUnsupported) samples = read_wav_16k(o.file);
  if (!samples.ok()) return fail(samples.status().to_string());
  const double t1 = now_seconds();
  ThreadPool pool(o.threads);
  audio::WhisperTranscriber tr((*model)->weights, pool);
  bool first = true;
  auto text = tr.transcribe(samples->data(), samples->size(), {}, [&first](const std::string& piece) {
    // Whisper's text starts with a space (its words carry the space before them).
    const size_t skip = first ? std::min(piece.find_first_not_of(' '), piece.size()) : 0;
    first = false;
    std::fputs(piece.c_str() + skip, stdout);
    std::fflush(stdout);
  });
  if (!text.ok()) return fail(text.status().to_string());
  std::printf("\n");
  if (o.timing) {
    const double audio_s = static_cast<double>(samples->size()) / audio::kWhisperSampleRate, t2 = now_seconds();
    std::fprintf(stderr, "omnirt: %.2f s of audio transcribed in %.2f s (%.1fx real time; load %.2f s)\n",
                 audio_s, t2 - t1, audio_s / (t2 - t1), t1 - t0);
  }
  return 0;
}

}  // namespace

void add_transcribe_command(CLI::App& root, std::vector<Command>& out) {
  auto o = std::make_shared<TranscribeOptions>();
  CLI::App* c = root.add_subcommand("transcribe", "Print the speech in an audio file as text (Whisper)");
  c->add_option("file", o->file, "Audio file (any FFmpeg format; 16 kHz PCM WAV without FFmpeg)")->required();
  c->add_option("--model,-m", o->model, "Whisper GGUF (tools/convert_whisper_ct2.py)")->capture_default_str();
  c->add_option("--threads,-t", o->threads, "CPU threads")->check(CLI::Range(1, 256))->capture_default_str();
  c->add_flag("--timing", o->timing, "Print the real-time factor on stderr");
  out.push_back({c, [o] { return run_transcribe(*o); }});
}

}  // namespace omni::cli
