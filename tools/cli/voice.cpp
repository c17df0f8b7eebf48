// `omnirt voice --model M (--prompt TEXT | --input FILE.txt) --output FILE`: one spoken answer
// from an omni model file (backbone + audio-out heads + SNAC codec, `omnirt model create
// --preset omni-tiny|mini-omni-0.5b|orpheus-3b`): the prompt is prefilled, text and codec frames
// come out of the decode loop, every frame goes straight into the streaming SNAC decoder, and
// the audio is written with FFmpeg (format from the extension). Prints the text and the latency
// breakdown from the end of the input (--json for machines).
// The user's turn is text (--prompt, or an --input .txt file) or audio (--input FILE, any format
// FFmpeg reads, resampled to 16 kHz): audio is fed at real-time pace (--no-pace: as fast as
// possible) in 20 ms blocks through the streaming audio encoder into the context while it
// "arrives" (Mini-Omni's A1A2 layout); the clock starts at the end of the input.
#include <algorithm>
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
#include "runtime/model/audio_loader.h"
#include "runtime/model/audio_out.h"
#include "runtime/model/context.h"
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
  int64_t max_steps = 400;
  uint64_t seed = 0;
  float temperature = 0.8f;
  int32_t top_k = 40;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Mono 16-bit PCM WAV (samples clipped to [-1, 1]), for builds without FFmpeg.
Status write_wav16(const std::string& path, const std::vector<float>& pcm, int rate) {
  std::vector<uint8_t> b;
  auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); };
  auto u16 = [&](uint16_t v) { b.push_back(static_cast<uint8_t>(v)); b.push_back(static_cast<uint8_t>(v >> 8)); };
  const uint32_t data_bytes = static_cast<uint32_t>(pcm.size() * 2);
  b.insert(b.end(), {'R', 'I', 'F', 'F'});
  u32(36 + data_bytes);
  b.insert(b.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  u32(16);
  u16(1);  // PCM
  u16(1);  // mono
  u32(static_cast<uint32_t>(rate));
  u32(static_cast<uint32_t>(rate) * 2);
  u16(2);
  u16(16);
  b.insert(b.end(), {'d', 'a', 't', 'a'});
  u32(data_bytes);
  for (float x : pcm) {
    const float c = std::clamp(x, -1.0f, 1.0f);
    u16(static_cast<uint16_t>(static_cast<int16_t>(std::lrint(c * 32767.0f))));
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return io_error("cannot create '" + path + "'");
  const bool ok = std::fwrite(b.data(), 1, b.size(), f) == b.size();
  if (std::fclose(f) != 0 || !ok) return io_error("writing '" + path + "' failed");
  return Status::Ok();
}

int run_voice(const VoiceOptions& o) {
  if (o.prompt.empty() == o.input.empty()) return fail("give exactly one of --prompt TEXT or --input FILE");
  std::string text = o.prompt;
  std::vector<float> speech;  // 16 kHz, when the input is audio
  const bool audio_in = !o.input.empty() && !ends_with(o.input, ".txt");
  if (audio_in) {
    auto pcm = audio::decode_file(o.input, 16000);
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
  if (!ends_with(o.output, ".wav") && !ends_with(o.output, ".flac") && !ends_with(o.output, ".opus") &&
      !ends_with(o.output, ".ogg"))
    return fail("--output '" + o.output + "': the extension must be .wav, .flac, .opus or .ogg");
  {  // fail before the work when the output cannot be written (and leave no empty file)
    const bool existed = static_cast<bool>(std::ifstream(o.output));
    std::FILE* f = std::fopen(o.output.c_str(), "ab");
    if (!f) return fail("cannot write --output '" + o.output + "'");
    std::fclose(f);
    if (!existed) std::remove(o.output.c_str());
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
  const int64_t input_positions =
      audio_in ? static_cast<int64_t>(speech.size() / 16000 + 1) * 50 + 16 : static_cast<int64_t>(prompt->size());
  cp.n_ctx = std::min<int64_t>((*model)->hparams().n_ctx_train, input_positions + o.max_steps + 16);
  auto ctx = Context::create(**model, cp);
  if (!ctx.ok()) return fail("cannot create a context: " + ctx.status().to_string());
  audio::SnacDecoder codec((*snac)->weights, (*ctx)->thread_pool());

  VoiceTurnParams p;
  p.decode.max_steps = o.max_steps;
  for (SamplerParams* s : {&p.decode.text_sampling, &p.decode.audio_sampling}) {
    s->temperature = o.temperature;
    s->top_k = o.top_k;
    s->seed = o.seed;
  }
  p.noise_seed = o.seed;
  StatusOr<VoiceTurnResult> r = internal_error("no turn");
  int64_t input_rows = 0;
  if (!audio_in) {
    r = run_voice_turn(**ctx, *heads, codec, *prompt, p);
  } else {
    auto dec = AudioOutDecoder::create(*heads, **ctx, p.decode);
    if (!dec.ok()) return fail("voice turn: " + dec.status().to_string());
    if (Status st = (*dec)->begin_audio_input(); !st.ok()) return fail("voice turn: " + st.to_string());
    auto stream = audio::AudioStream::create(encoder->weights, (*ctx)->thread_pool(),
                                             [&](const float* rows, int64_t n) { return (*dec)->audio_input_rows(rows, n); });
    if (!stream.ok()) return fail("audio stream: " + stream.status().to_string());
    using Clock = std::chrono::steady_clock;
    const Clock::time_point t0 = Clock::now();
    constexpr size_t kBlock = 320;  // 20 ms at 16 kHz, a capture device's period
    for (size_t i = 0; i < speech.size(); i += kBlock) {
      if (!o.no_pace)  // the block exists once its last sample has been spoken
        std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<int64_t>((i + kBlock) * 1e6 / 16000)));
      if (Status st = (*stream)->push(speech.data() + i, std::min(kBlock, speech.size() - i)); !st.ok())
        return fail("audio input: " + st.to_string());
    }
    const Clock::time_point start = Clock::now();  // the end of the user's input
    auto since = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    VoiceTurnTimings t;
    if (Status st = (*stream)->finish(); !st.ok()) return fail("audio input: " + st.to_string());
    t.input_encoded = since();
    if (Status st = (*dec)->end_audio_input(); !st.ok()) return fail("voice turn: " + st.to_string());
    t.prefill_done = since();
    input_rows = (*stream)->stats().rows;
    r = speak(**dec, heads->spec, codec, start, t, p.noise_seed);
  }
  if (!r.ok()) return fail("voice turn: " + r.status().to_string());
  if (r->pcm.empty()) return fail("the model produced no speech (no codec frame before its end of speech)");
  Status written = audio::encode_file(o.output, r->pcm.data(), r->pcm.size(), static_cast<int>(r->sample_rate));
  if (written.code() == StatusCode::kUnsupported && ends_with(o.output, ".wav"))  // a build without FFmpeg
    written = write_wav16(o.output, r->pcm, static_cast<int>(r->sample_rate));
  if (!written.ok()) return fail("cannot write '" + o.output + "': " + written.to_string());

  auto decoded = (*model)->tokenizer().decode(r->text_tokens);
  const std::string answer = escape_text(decoded.ok() ? *decoded : std::string());
  const double audio_s = static_cast<double>(r->pcm.size()) / static_cast<double>(r->sample_rate);
  const double rtf = audio_s > 0 ? r->t.done / audio_s : 0.0;
  auto ms = [](double s) { return s < 0 ? -1.0 : s * 1e3; };  // JSON: -1 = did not happen
  auto stage = [](double s) { return s < 0 ? std::string("     n/a   ") : fmt("%8.1f ms", s * 1e3); };
  if (o.json) {
    std::printf(
        "{\"text\": \"%s\", \"synthetic\": %s, \"frames\": %lld, \"steps\": %lld, \"speech_ended\": %s, "
        "\"audio_s\": %.3f, \"input_encoded_ms\": %.2f, \"prefill_ms\": %.2f, \"first_text_ms\": %.2f, \"first_frame_ms\": %.2f, "
        "\"first_pcm_ms\": %.2f, \"total_ms\": %.2f, \"codec_ms\": %.2f, \"rtf\": %.4f, \"prompt_tokens\": %zu, \"input_rows\": %lld, \"threads\": %d}\n",
        answer.c_str(), synthetic ? "true" : "false", (long long)r->n_frames, (long long)r->n_steps,
        r->speech_ended ? "true" : "false", audio_s, ms(r->t.input_encoded), ms(r->t.prefill_done), ms(r->t.first_text),
        ms(r->t.first_frame), ms(r->t.first_pcm), ms(r->t.done), ms(r->t.codec_busy), rtf, prompt->size(), (long long)input_rows, (*ctx)->n_threads());
  } else {
    std::printf("text: %s\n", answer.c_str());
    std::fprintf(stderr,
                 "wrote %s: %.2f s of audio at %lld Hz, %lld frames in %lld steps (%s)\n"
                 "from the end of the input (%zu prompt tokens, %lld audio rows, %d threads):\n"
                 "  last encoder chunk %s\n"
                 "  prefill done       %s\n"
                 "  first text token   %s\n"
                 "  first codec frame  %s\n"
                 "  first PCM sample   %s   <- time to first audio\n"
                 "  answer done        %s   real-time factor %.3f (codec %.1f ms of it)\n",
                 o.output.c_str(), audio_s, (long long)r->sample_rate, (long long)r->n_frames, (long long)r->n_steps,
                 r->speech_ended ? "the model ended its speech" : "step limit", prompt->size(), (long long)input_rows,
                 (*ctx)->n_threads(), stage(r->t.input_encoded).c_str(), stage(r->t.prefill_done).c_str(),
                 stage(r->t.first_text).c_str(), stage(r->t.first_frame).c_str(), stage(r->t.first_pcm).c_str(),
                 stage(r->t.done).c_str(), rtf, ms(r->t.codec_busy));
    if (synthetic) std::fprintf(stderr, "note: random weights: the text and the voice are noise\n");
  }
  return 0;
}

}  // namespace

void add_voice_command(CLI::App& root, std::vector<Command>& out) {
  auto o = std::make_shared<VoiceOptions>();
  CLI::App* c = root.add_subcommand("voice", "One spoken answer from an omni model (text or audio in, audio out)");
  c->add_option("--model,-m", o->model, "Omni model file (backbone + audio-out heads + codec)")->required();
  c->add_option("--prompt,-p", o->prompt, "The user's turn as text");
  c->add_option("--input,-i", o->input, "The user's turn from a file: audio (any FFmpeg format) or .txt");
  c->add_option("--output,-o", o->output, "Audio file to write (.wav, .flac, .opus, .ogg)")->required();
  c->add_flag("--no-pace", o->no_pace, "Feed audio input as fast as possible, not in real time");
  c->add_option("--max-steps", o->max_steps, "Decode steps at most")->capture_default_str();
  c->add_option("--temp", o->temperature, "Sampling temperature (text and every codebook)")->capture_default_str();
  c->add_option("--top-k", o->top_k, "Top-k (0: off)")->capture_default_str();
  c->add_option("--seed", o->seed, "Sampling and codec-noise seed")->capture_default_str();
  c->add_option("--threads,-t", o->threads, "Threads")->capture_default_str();
  c->add_flag("--json", o->json, "One JSON line with the text and the breakdown");
  out.push_back({c, [o] { return run_voice(*o); }});
}

}  // namespace omni::cli
