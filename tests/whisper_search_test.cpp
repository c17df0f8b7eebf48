// Whisper decoding rules against their references (fixtures by tools/make_whisper_fixtures.py):
//  * the prompt's token layout for multilingual models (99 and 100 languages) against
//    openai-whisper's tokenizer sot_sequence (no model needed);
//  * beam search (beam 5, patience 1, length penalty 1), with and without timestamps: the tokens
//    of every window of 5 LibriVox and 8 alsa-utils clips equal CTranslate2's, and the segment
//    split of CTranslate2's tokens equals faster-whisper's _split_segments_by_timestamps;
//  * transcripts (beam 5) of the same clips: WER within 1 point of faster-whisper's (matched
//    settings), and with timestamps the same segment times and text;
//  * live capture through the file-backed stand-in microphone gives faster-whisper's text.
// The model tests skip without models/whisper-tiny.en.gguf, FFmpeg or the clips (Debian
// pocketsphinx-testdata, alsa-utils), unless OMNIRT_REQUIRE_MODELS=1.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "audio/features/log_mel.h"
#include "audio/io/decode.h"
#include "audio/io/device.h"
#include "audio/whisper/whisper_search.h"
#include "audio/whisper/whisper_transcriber.h"
#include "runtime/model/whisper_loader.h"
#include "tests/audio_test_util.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using test::read_wav_pcm16;
using test::word_errors;
using test::words_of;

using nlohmann::json;

json load_json(const std::string& name) {
  return test::load_json(test::source_path("tests/data/whisper/" + name));
}

bool require_models() {
  const char* r = std::getenv("OMNIRT_REQUIRE_MODELS");
  return r && std::string(r) == "1";
}

TEST(WhisperPromptTest, MultilingualLayoutMatchesOpenAIWhisper) {
  const json ref = load_json("multilingual_prompt.json");
  for (const auto& [n_vocab_str, layout] : ref.items()) {
    audio::WhisperVocab v;
    v.tokens.assign(static_cast<size_t>(std::stoi(n_vocab_str)), "x");
    v.multilingual = true;
    const json& sp = layout["special"];
    v.eot = sp["eot"];
    v.sot = sp["sot"];
    v.translate = sp["translate"];
    v.transcribe = sp["transcribe"];
    v.sot_lm = sp["sot_lm"];
    v.sot_prev = sp["sot_prev"];
    v.no_speech = sp["no_speech"];
    v.no_timestamps = sp["no_timestamps"];
    v.timestamp_begin = sp["timestamp_begin"];
    for (const auto& [code, id] : layout["languages"].items())
      v.tokens[id.get<size_t>()] = "<|" + code + "|>";
    int checked = 0;
    for (const json& c : layout["cases"]) {
      audio::WhisperPromptOptions o;
      o.language = c["language"];
      o.translate = c["task"] == "translate";
      std::vector<int32_t> want = c["sot_sequence"].get<std::vector<int32_t>>();
      o.timestamps = true;
      auto p = audio::whisper_prompt(v, o);
      ASSERT_TRUE(p.ok()) << p.status().to_string();
      EXPECT_EQ(*p, want) << n_vocab_str << " " << o.language << " " << c["task"];
      o.timestamps = false;
      want.push_back(c["no_timestamps"].get<int32_t>());
      p = audio::whisper_prompt(v, o);
      ASSERT_TRUE(p.ok());
      EXPECT_EQ(*p, want) << n_vocab_str << " " << o.language << " " << c["task"];
      ++checked;
    }
    EXPECT_GE(checked, 6);
    audio::WhisperPromptOptions bad;
    bad.language = "xx";
    auto p = audio::whisper_prompt(v, bad);
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find("'xx'"), std::string::npos) << p.status().to_string();
  }
  // English-only (tiny.en ids): sot [notimestamps]; no language or task choice.
  audio::WhisperVocab en;
  en.tokens.assign(51864, "x");
  auto p = audio::whisper_prompt(en, {});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, (std::vector<int32_t>{50257, 50362}));
  audio::WhisperPromptOptions o;
  o.timestamps = true;
  EXPECT_EQ(*audio::whisper_prompt(en, o), std::vector<int32_t>{50257});
  o.language = "de";
  EXPECT_EQ(audio::whisper_prompt(en, o).status().code(), StatusCode::kInvalidArgument);
  o.language = "";
  o.translate = true;
  EXPECT_EQ(audio::whisper_prompt(en, o).status().code(), StatusCode::kInvalidArgument);
}

TEST(WhisperSegmentsTest, SplitAtTimestampPairs) {
  audio::WhisperVocab v;  // tiny.en: timestamps from 50363 (0.00 s) in 20 ms steps
  const int32_t t0 = v.timestamp_begin;
  int64_t adv = 0;
  // <0.00> a b <1.00><1.00> c <2.50>  (single timestamp ending: the whole window is consumed)
  auto s = audio::whisper_split_segments(v, {t0, 1, 2, t0 + 50, t0 + 50, 3, t0 + 125}, 10.0, 2000, &adv);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_DOUBLE_EQ(s[0].start, 10.0);
  EXPECT_DOUBLE_EQ(s[0].end, 11.0);
  EXPECT_DOUBLE_EQ(s[1].start, 11.0);
  EXPECT_DOUBLE_EQ(s[1].end, 12.5);
  EXPECT_EQ(adv, 2000);
  // <0.00> a <1.00><1.00> b  (unfinished: seek to the last pair, 1 s = 100 frames)
  s = audio::whisper_split_segments(v, {t0, 1, t0 + 50, t0 + 50, 2}, 0.0, 3000, &adv);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(adv, 100);
}

class WhisperSearchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = test::source_path("models/whisper-tiny.en.gguf");
    if (!test::file_exists(path)) return;
    auto m = load_whisper(path);
    if (m.ok()) model_ = std::move(m).value().release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (!model_) {
      if (require_models()) FAIL() << "models/whisper-tiny.en.gguf is missing or does not load";
      GTEST_SKIP() << "models/whisper-tiny.en.gguf is not installed (tools/setup.sh)";
    }
  }
  // 16 kHz mono f32 through FFmpeg (what the fixtures got from `ffmpeg -f f32le`); empty = skip.
  static std::vector<float> load(const std::string& path) {
    auto pcm = audio::decode_file(path, 16000);
    if (!pcm.ok()) {
      if (require_models()) ADD_FAILURE() << path << ": " << pcm.status().to_string();
      return {};
    }
    return std::move(pcm).value();
  }
  static inline WhisperModel* model_ = nullptr;
};

TEST_F(WhisperSearchTest, BeamTokensMatchCTranslate2) {
  const json ref = load_json("beam_reference.json");
  ThreadPool pool(2);
  audio::WhisperTranscriber tr(model_->weights, pool);
  int windows = 0;
  for (const json& clip : ref["clips"]) {
    const std::vector<float> pcm = load(clip["path"]);
    if (pcm.empty()) GTEST_SKIP() << clip["path"] << " cannot be read (FFmpeg build and the clip needed)";
    auto mel = audio::whisper_log_mel(pcm.data(), pcm.size(), 80, 480000);
    ASSERT_TRUE(mel.ok());
    for (const bool ts : {false, true}) {
      for (const json& w : clip[ts ? "timestamps" : "no_timestamps"]) {
        const int64_t seek = w["seek"], frames = w["frames"];
        std::vector<float> win(3000 * 80, 0.0f);
        std::copy(mel->begin() + seek * 80, mel->begin() + (seek + frames) * 80, win.begin());
        audio::WhisperDecodeOptions o;  // beam 5, patience 1, length penalty 1
        o.timestamps = ts;
        auto tokens = tr.decode_window(win.data(), 3000, o);
        ASSERT_TRUE(tokens.ok()) << tokens.status().to_string();
        const std::vector<int32_t> want = w["tokens"].get<std::vector<int32_t>>();
        EXPECT_EQ(*tokens, want) << clip["name"] << (ts ? " with" : " without") << " timestamps, seek " << seek;
        ++windows;
        if (!ts) continue;
        int64_t adv = 0;
        const auto segs = audio::whisper_split_segments(model_->weights.vocab, want, seek * 0.01, frames, &adv);
        ASSERT_EQ(segs.size(), w["segments"].size()) << clip["name"];
        for (size_t i = 0; i < segs.size(); ++i) {
          EXPECT_NEAR(segs[i].start, w["segments"][i]["start"].get<double>(), 1e-9);
          EXPECT_NEAR(segs[i].end, w["segments"][i]["end"].get<double>(), 1e-9);
          EXPECT_EQ(segs[i].tokens, w["segments"][i]["tokens"].get<std::vector<int32_t>>());
        }
        EXPECT_EQ(seek + adv, w["next_seek"].get<int64_t>()) << clip["name"];
      }
    }
  }
  std::printf("  %d windows, tokens equal to CTranslate2's\n", windows);
}



TEST_F(WhisperSearchTest, Beam5WerWithinOnePointOfFasterWhisper) {
  const json ref = load_json("wer_beam5.json");
  ThreadPool pool(2);
  audio::WhisperTranscriber tr(model_->weights, pool);
  struct Group { size_t ours = 0, theirs = 0, words = 0; } lib, alsa;
  for (const json& clip : ref["clips"]) {
    const std::string path = clip["path"];
    const std::vector<float> pcm = load(path);
    if (pcm.empty()) GTEST_SKIP() << path << " cannot be read (FFmpeg build and the clip needed)";
    audio::WhisperDecodeOptions o;
    auto text = tr.transcribe(pcm.data(), pcm.size(), o);
    ASSERT_TRUE(text.ok()) << text.status().to_string();
    const auto r = words_of(clip["reference"]);
    Group& g = path.find("/sounds/alsa/") != std::string::npos ? alsa : lib;
    g.ours += word_errors(r, words_of(*text));
    g.theirs += clip["errors"].get<size_t>();
    g.words += r.size();
    std::printf("  %s: \"%s\" (faster-whisper \"%s\")\n", clip["name"].get<std::string>().c_str(), text->c_str(),
                clip["faster_whisper"].get<std::string>().c_str());
    // With timestamps: the same segments, times and text.
    o.timestamps = true;
    auto segs = tr.transcribe_segments(pcm.data(), pcm.size(), o);
    ASSERT_TRUE(segs.ok()) << segs.status().to_string();
    ASSERT_EQ(segs->size(), clip["segments"].size()) << clip["name"];
    for (size_t i = 0; i < segs->size(); ++i) {
      const json& s = clip["segments"][i];
      EXPECT_NEAR((*segs)[i].start, s["start"].get<double>(), 1e-6) << clip["name"];
      EXPECT_NEAR((*segs)[i].end, s["end"].get<double>(), 1e-6) << clip["name"];
      EXPECT_EQ((*segs)[i].text, s["text"].get<std::string>()) << clip["name"];
    }
  }
  for (const auto& [name, g] : {std::pair<const char*, Group>{"LibriVox", lib}, {"alsa-utils", alsa}}) {
    const double ours = double(g.ours) / double(g.words), theirs = double(g.theirs) / double(g.words);
    std::printf("  %s: WER %.2f%% (faster-whisper %.2f%%) over %zu words\n", name, 100 * ours, 100 * theirs, g.words);
    EXPECT_LE(ours, theirs + 0.01) << name;
  }
}

TEST_F(WhisperSearchTest, StandInMicrophoneGivesFasterWhispersText) {
  const json ref = load_json("wer_beam5.json");
  const json& clip = ref["clips"][0];  // a 7 s LibriVox clip: one 30 s window
  audio::StreamConfig cfg;
  cfg.sample_rate = 16000;
  audio::FileDeviceOptions fast;
  fast.speed = 0;  // lossless, as fast as the ring allows
  auto cap = audio::open_file_capture(clip["path"], cfg, fast);
  if (!cap.ok()) {
    if (require_models()) FAIL() << cap.status().to_string();
    GTEST_SKIP() << cap.status().to_string();
  }
  ASSERT_TRUE((*cap)->start().ok());
  ThreadPool pool(2);
  audio::WhisperTranscriber tr(model_->weights, pool);
  std::string text;
  auto segs = tr.transcribe_capture(**cap, 30.0, {}, [&](const audio::WhisperSegment& s) { text += s.text; });
  ASSERT_TRUE(segs.ok()) << segs.status().to_string();
  EXPECT_EQ(text.substr(text.find_first_not_of(' ')), clip["faster_whisper"].get<std::string>());
  EXPECT_EQ((*cap)->counters().overrun_samples, 0u);
  // A microphone that disappears: what was heard is transcribed, then kIoError.
  fast.disconnect_after_samples = 16000;
  cap = audio::open_file_capture(clip["path"], cfg, fast);
  ASSERT_TRUE(cap.ok() && (*cap)->start().ok());
  size_t heard = 0;
  segs = tr.transcribe_capture(**cap, 30.0, {}, [&](const audio::WhisperSegment&) { ++heard; });
  EXPECT_EQ(segs.status().code(), StatusCode::kIoError) << segs.status().to_string();
  EXPECT_EQ(heard, 1u);
}

}  // namespace
}  // namespace omni
