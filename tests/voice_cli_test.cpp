// `omnirt voice --mic` and `--speaker` run as a user would (OMNIRT_CLI_PATH) on a synthetic
// omni-tiny file, with the file stand-ins for the devices. The references are independent of
// the live paths: the same clip through `--input FILE --no-pace` (the paced-file path, same seed),
// the answer's own `--output` file, and sample counts known from how a test clip was built.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/cli_test_util.h"

namespace {

namespace fs = std::filesystem;

using Result = omni::test::CliResult;
using omni::test::read_text;

// The samples of a 16-bit PCM WAV (what the CLI writes for .wav, with and without FFmpeg).
std::vector<int16_t> wav_samples(const fs::path& p) {
  const std::string b = read_text(p);
  for (size_t at = 12; at + 8 <= b.size();) {
    uint32_t len;
    std::memcpy(&len, b.data() + at + 4, 4);
    if (b.compare(at, 4, "data") == 0) {
      std::vector<int16_t> s(std::min<size_t>(len, b.size() - at - 8) / 2);
      std::memcpy(s.data(), b.data() + at + 8, s.size() * 2);
      return s;
    }
    at += 8 + size_t(len) + (len & 1);
  }
  return {};
}

// A 16 kHz mono PCM16 WAV.
void write_wav(const fs::path& p, const std::vector<int16_t>& s) {
  std::string b = "RIFF";
  auto u32 = [&](uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&](uint16_t v) { b.append(reinterpret_cast<const char*>(&v), 2); };
  u32(static_cast<uint32_t>(36 + 2 * s.size()));
  b += "WAVEfmt ";
  u32(16), u16(1), u16(1), u32(16000), u32(32000), u16(2), u16(16);
  b += "data";
  u32(static_cast<uint32_t>(2 * s.size()));
  b.append(reinterpret_cast<const char*>(s.data()), 2 * s.size());
  std::ofstream(p, std::ios::binary) << b;
}

const std::string kClip = std::string(OMNIRT_SOURCE_DIR) + "/tests/data/whisper/librivox_0880.wav";  // 47840 samples
// seed 2: the synthetic answer speaks for 45 frames (3.84 s) and then ends its speech.
const std::string kTurn = " --seed 2 --max-steps 60 --max-text 8 --threads 2 --json";

class VoiceCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("omnirt_voice_cli_test_" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    model_ = new std::string((*dir_ / "omni_tiny.gguf").string());
    Result r = run("model create --preset omni-tiny --out " + *model_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete model_;
  }
  // Runs the CLI with `args` (shell syntax), capturing both streams.
  static Result run(const std::string& args) { return omni::test::run_cli(args, *dir_); }
  static std::string voice(const std::string& args) { return "voice --model " + *model_ + " " + args; }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }

  static fs::path* dir_;
  static std::string* model_;
};

fs::path* VoiceCli::dir_ = nullptr;
std::string* VoiceCli::model_ = nullptr;

TEST_F(VoiceCli, MicFromTheFileStandInAnswersAsTheSameFileAsInput) {
  Result a = run(voice("--input " + kClip + " --no-pace --output " + path("in.wav") + kTurn));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  Result b = run(voice("--mic --device file:" + kClip + " --speed 0 --output " + path("mic.wav") + kTurn));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(jb["input"], "mic");
  EXPECT_DOUBLE_EQ(jb["captured_s"].get<double>(), std::round(47840.0 / 16000.0 * 1000) / 1000);  // "%.3f"
  for (const char* k : {"text", "frames", "steps", "speech_ended", "input_rows", "tail_frames"}) EXPECT_EQ(ja[k], jb[k]) << k;
  EXPECT_EQ(ja["frames"], 45);
  const std::vector<int16_t> in = wav_samples(path("in.wav")), mic = wav_samples(path("mic.wav"));
  ASSERT_EQ(in.size(), 45u * 2048u);  // SNAC 24 kHz: 4 hops of 512 per Mini-Omni frame
  EXPECT_EQ(in, mic);
  EXPECT_EQ(jb["input_end"], "the capture ended");
  EXPECT_EQ(ja["input_end"], "");
  // The stream's lag at the end of the input is reported for file and microphone input.
  EXPECT_TRUE(ja["input_lag_ms"].is_number());
  EXPECT_TRUE(jb["input_lag_ms"].is_number());
}

TEST_F(VoiceCli, MicEndsAtListenSecondsAndAtTheEndOfSpeech) {
  Result r = run(voice("--mic --device file:" + kClip + " --speed 0 --listen-s 1 --output " + path("l.wav") + kTurn));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r.out)["captured_s"].get<double>(), 1.0);
  EXPECT_EQ(nlohmann::json::parse(r.out)["input_end"], "--listen-s 1 reached");

  // 0.5 s of a -6 dBFS tone, then 2 s of silence: with --end-silence-ms 300 the turn ends 300 ms
  // into the silence (reads are at most 20 ms: the one across the edge counts as loud, the last
  // may overshoot, so at most two blocks later).
  std::vector<int16_t> clip(40000, 0);
  for (size_t i = 0; i < 8000; ++i) clip[i] = static_cast<int16_t>(16000 * std::sin(2 * 3.14159265358979 * 440 * i / 16000.0));
  write_wav(path("tone.wav"), clip);
  r = run(voice("--mic --device file:" + path("tone.wav") + " --speed 0 --end-silence-ms 300 --output " + path("t.wav") +
                kTurn));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const double got = j["captured_s"].get<double>();
  EXPECT_GE(got, 0.8);
  EXPECT_LE(got, 0.8 + 0.04 + 1e-9);
  EXPECT_EQ(j["input_end"], "end of speech (300 ms below -40 dBFS)");
}

TEST_F(VoiceCli, SpeakerFileStandInPlaysExactlyTheAnswer) {
  Result a = run(voice("--input " + kClip + " --no-pace --output " + path("out.wav") + " --speaker --speaker-device file:" +
                       path("played.wav") + " --speed 0" + kTurn));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const std::vector<int16_t> out = wav_samples(path("out.wav")), played = wav_samples(path("played.wav"));
  ASSERT_EQ(out.size(), 45u * 2048u);
  EXPECT_EQ(played, out);
  const auto j = nlohmann::json::parse(a.out);
  EXPECT_GE(j["first_audio_out_ms"].get<double>(), j["first_pcm_ms"].get<double>());
  EXPECT_EQ(j["underrun_samples"], 0);  // --speed 0: the stand-in never plays silence

  // --speaker alone (no --output), paced in real time: the same samples as a run without it.
  Result b = run(voice("--input " + kClip + " --no-pace --speaker --speaker-device file:" + path("rt.wav") + kTurn));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(wav_samples(path("rt.wav")), out);
  Result c = run(voice("--input " + kClip + " --no-pace --output " + path("plain.wav") + kTurn));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(wav_samples(path("plain.wav")), out);
}

// --end-spread: measured turn k of N drops k/N of an encoder chunk from the input, so the mel
// frames left at the end of the input differ turn to turn and stay within one chunk.
TEST_F(VoiceCli, EndSpreadEndsTheTurnsAcrossOneChunk) {
  Result r = run(voice("--input " + kClip + " --no-pace --chunk-ms 1000 --turns 4 --end-spread --output " +
                       path("spread.wav") + " --seed 2 --max-steps 10 --max-text 2 --threads 2 --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["end_spread"], true);
  EXPECT_EQ(j["turns"], 4);
  const int64_t lo = j["tail_frames_min"], hi = j["tail_frames_max"], chunk = j["chunk_frames"];
  EXPECT_EQ(chunk, 96);  // 1 s to the nearest 16-frame Ultravox group
  EXPECT_GT(lo, 0);
  EXPECT_LE(hi, chunk);
  EXPECT_GE(hi - lo, chunk / 2);  // four ends a quarter chunk apart: three quarters of a chunk
  Result bad = run(voice("--prompt hi --end-spread --output " + path("x.wav")));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--end-spread is for an audio --input file"), std::string::npos) << bad.err;
  // An input shorter than the chunk it would be shortened by: refused before any turn runs.
  std::vector<int16_t> short_clip(8000);  // 0.5 s of a tone against 1 s chunks
  for (size_t i = 0; i < short_clip.size(); ++i)
    short_clip[i] = static_cast<int16_t>(8000 * std::sin(2 * 3.14159265358979 * 300 * i / 16000.0));
  write_wav(path("short.wav"), short_clip);
  bad = run(voice("--input " + path("short.wav") + " --no-pace --chunk-ms 1000 --turns 4 --end-spread --output " +
                  path("x.wav")));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--end-spread: the input (8000 samples) is shorter than an encoder chunk (15360 samples)"),
            std::string::npos)
      << bad.err;
  EXPECT_EQ(bad.out, "");  // no turn ran
}

TEST_F(VoiceCli, BadLiveCombinationsFailWithAClearMessage) {
  struct Case {
    std::string args, message;
  } cases[] = {
      {"--mic --prompt hi --output x.wav", "give exactly one of --prompt TEXT, --input FILE or --mic"},
      {"--mic --input " + kClip + " --output " + path("x.wav"), "give exactly one of --prompt TEXT, --input FILE or --mic"},
      {"--mic --device file:" + kClip, "give --output FILE, --speaker, or both"},
      {"--prompt hi", "give --output FILE, --speaker, or both"},
      {"--mic --device file:/nonexistent/clip.wav --output x.wav", "/nonexistent/clip.wav"},
      {"--prompt hi --device file:" + kClip + " --output " + path("x.wav"), "give --mic"},
      {"--prompt hi --speaker-device file:y.wav --output x.wav", "needs --speaker"},
      {"--mic --device file:" + kClip + " --listen-s 0 --output x.wav", "--listen-s 0 is outside (0, 600]"},
      {"--mic --device file:" + kClip + " --turns 2 --output x.wav", "--turns 2"},
      {"--prompt hi --speaker --speaker-device file:y.mp9", "the extension must be"},
  };
  for (const Case& c : cases) {
    Result r = run(voice(c.args));
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\n" << r.err;
  }
  // A real device: without PortAudio the build says so; with it, device 9999 does not exist.
  Result r = run(voice("--mic --device 9999 --output x.wav"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.err.find("built without PortAudio") != std::string::npos ||
              r.err.find("device index 9999") != std::string::npos)
      << r.err;
  r = run(voice("--prompt hi --speaker --speaker-device 9999"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.err.find("built without PortAudio") != std::string::npos ||
              r.err.find("device index 9999") != std::string::npos)
      << r.err;
}

}  // namespace
