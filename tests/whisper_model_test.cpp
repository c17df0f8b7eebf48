// Whisper tiny.en in omnirt (models/whisper-tiny.en.gguf, converted by tools/setup.sh from the
// CTranslate2 model) against CTranslate2 itself on the original model.bin and faster-whisper
// (fixtures by tools/make_whisper_fixtures.py --parts model,wer; compute_type float32):
//  * encoder output on a LibriVox clip: our log-mel (within 1e-4 of whisper's, mel_test) ->
//    our encoder vs CTranslate2's encoder on whisper's mel (stored as f16): max |diff| beyond
//    the fixture's f16 rounding <= 1e-4 * max |ref| (seen: 7.5e-6 with max |ref| 12.2);
//  * decoder logits, teacher-forced on CTranslate2's greedy tokens: max |diff| <= 1e-3 (seen
//    4.6e-5 over logits in [-13, 35]), and the same greedy tokens;
//  * transcripts of the five pocketsphinx-testdata LibriVox clips: WER within 1 point of
//    faster-whisper's (greedy, no timestamps).
// Without the model these skip, unless OMNIRT_REQUIRE_MODELS=1 (tools/test.sh) makes it a failure.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "audio/features/log_mel.h"
#include "audio/whisper/whisper_decoder.h"
#include "audio/whisper/whisper_encoder.h"
#include "audio/whisper/whisper_transcriber.h"
#include "runtime/model/whisper_loader.h"
#include "tests/audio_test_util.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using test::read_wav_pcm16;
using test::word_errors;
using test::words_of;

const char* kModelPath = "models/whisper-tiny.en.gguf";

std::string data_path(const std::string& name) { return test::source_path("tests/data/whisper/" + name); }




class WhisperModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = test::source_path(kModelPath);
    if (!test::file_exists(path)) return;
    auto m = load_whisper(path);
    if (!m.ok()) {
      load_error_ = m.status().to_string();
      return;
    }
    model_ = std::move(m).value().release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (load_error_) FAIL() << "the installed model does not load: " << *load_error_;
    if (!model_) {
      const char* req = std::getenv("OMNIRT_REQUIRE_MODELS");
      if (req && std::string(req) == "1") FAIL() << kModelPath << " is missing (run tools/setup.sh)";
      GTEST_SKIP() << kModelPath << " is not installed (tools/setup.sh installs it)";
    }
  }
  // Our log-mel of the clip, as transcribe() feeds the encoder: the first 3000 frames.
  static std::vector<float> window_mel(const std::vector<float>& audio) {
    auto mel = audio::whisper_log_mel(audio.data(), audio.size(), 80, 480000);
    EXPECT_TRUE(mel.ok()) << mel.status().to_string();
    std::vector<float> m = std::move(mel).value();
    m.resize(3000 * 80);
    return m;
  }
  static inline WhisperModel* model_ = nullptr;
  static inline std::optional<std::string> load_error_;
};

TEST_F(WhisperModelTest, EncoderMatchesCTranslate2) {
  const nlohmann::json ref = nlohmann::json::parse(test::read_file(data_path("librivox_0880_decoder.json")));
  const std::vector<int> rows = ref["encoder_rows"].get<std::vector<int>>();
  const std::vector<uint8_t> raw = test::read_file(data_path("librivox_0880_encoder.f16"));
  ASSERT_EQ(raw.size(), rows.size() * 384 * 2);
  const std::vector<float> mel = window_mel(read_wav_pcm16(data_path("librivox_0880.wav")));
  ThreadPool pool(2);
  audio::WhisperEncoder enc(model_->weights, pool);
  std::vector<float> out;
  ASSERT_TRUE(enc.encode(mel.data(), 3000, &out).ok());
  ASSERT_EQ(out.size(), 1500u * 384);
  double worst = 0, peak = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    for (int i = 0; i < 384; ++i) {
      uint16_t h;
      std::memcpy(&h, raw.data() + (r * 384 + i) * 2, 2);
      const double want = f16_to_f32(h), got = out[static_cast<size_t>(rows[r]) * 384 + i];
      // The fixture is f16: allow its rounding (half an ulp, 2^-11 relative) on top.
      worst = std::max(worst, std::fabs(got - want) - std::fabs(want) * 0x1p-11);
      peak = std::max(peak, std::fabs(want));
    }
  }
  std::printf("  encoder: max |diff| beyond f16 rounding %.3g, max |ref| %.3g\n", worst, peak);
  EXPECT_LE(worst, 1e-4 * peak) << "max |diff| " << worst << ", max |ref| " << peak;
}

TEST_F(WhisperModelTest, DecoderLogitsMatchCTranslate2) {
  const nlohmann::json ref = nlohmann::json::parse(test::read_file(data_path("librivox_0880_decoder.json")));
  std::vector<int32_t> seq = ref["prompt"].get<std::vector<int32_t>>();
  const std::vector<int32_t> gen = ref["tokens"].get<std::vector<int32_t>>();
  seq.insert(seq.end(), gen.begin(), gen.end());
  const std::vector<int> ids = ref["ids"].get<std::vector<int>>();
  const auto want = ref["logits"].get<std::vector<std::vector<float>>>();
  ASSERT_EQ(want.size(), gen.size() + 1);
  const std::vector<float> mel = window_mel(read_wav_pcm16(data_path("librivox_0880.wav")));
  ThreadPool pool(2);
  audio::WhisperEncoder enc(model_->weights, pool);
  std::vector<float> encoded;
  ASSERT_TRUE(enc.encode(mel.data(), 3000, &encoded).ok());
  audio::WhisperDecoder dec(model_->weights, pool);
  ASSERT_TRUE(dec.set_audio(encoded.data(), 1500).ok());
  const int64_t n_vocab = model_->weights.hp.n_vocab;
  // Prompt at once (all logits), then one token at a time, as a decoder runs.
  audio::WhisperTextCache cache = dec.new_cache();
  const int64_t n_prompt = 2;
  std::vector<float> logits(static_cast<size_t>(seq.size()) * n_vocab);
  ASSERT_TRUE(dec.decode(cache, seq.data(), n_prompt, logits.data(), true).ok());
  for (size_t t = n_prompt; t < seq.size(); ++t)
    ASSERT_TRUE(dec.decode(cache, &seq[t], 1, logits.data() + t * n_vocab).ok());
  double worst = 0, lo = 1e30, hi = -1e30;
  for (size_t s = 0; s < want.size(); ++s) {
    const float* got = logits.data() + (n_prompt - 1 + s) * n_vocab;
    for (size_t j = 0; j < ids.size(); ++j) {
      worst = std::max(worst, std::fabs(double(got[ids[j]]) - want[s][j]));
      lo = std::min(lo, double(want[s][j]));
      hi = std::max(hi, double(want[s][j]));
    }
  }
  std::printf("  logits: max |diff| %.3g over [%.3g, %.3g]\n", worst, lo, hi);
  EXPECT_LE(worst, 1e-3) << "max |diff| " << worst << " over logits in [" << lo << ", " << hi << "]";
  // Greedy on our own logits picks CTranslate2's tokens.
  audio::WhisperTranscriber tr(model_->weights, pool);
  audio::WhisperDecodeOptions greedy;
  greedy.beam_size = 1;
  auto tokens = tr.decode_window(mel.data(), 3000, greedy);
  ASSERT_TRUE(tokens.ok()) << tokens.status().to_string();
  EXPECT_EQ(*tokens, gen);
  EXPECT_EQ(tr.detokenize(gen), " He was not an old-sposed young man.");
}

TEST_F(WhisperModelTest, LibriVoxWerWithinOnePointOfFasterWhisper) {
  const nlohmann::json ref = nlohmann::json::parse(test::read_file(data_path("librivox_transcripts.json")));
  const std::string dir = ref["librivox_dir"].get<std::string>();
  if (!test::file_exists(dir + "/" + ref["clips"][0]["wav"].get<std::string>())) {
    const char* req = std::getenv("OMNIRT_REQUIRE_MODELS");
    if (req && std::string(req) == "1") FAIL() << dir << " is missing (tools/setup.sh installs pocketsphinx-testdata)";
    GTEST_SKIP() << dir << " is missing (Debian pocketsphinx-testdata)";
  }
  ThreadPool pool(2);
  audio::WhisperTranscriber tr(model_->weights, pool);
  size_t errors = 0, words = 0;
  for (const auto& clip : ref["clips"]) {
    const std::vector<float> audio = read_wav_pcm16(dir + "/" + clip["wav"].get<std::string>());
    ASSERT_FALSE(audio.empty()) << clip["wav"];
    audio::WhisperDecodeOptions greedy;  // the fixture's settings: beam 1
    greedy.beam_size = 1;
    auto text = tr.transcribe(audio.data(), audio.size(), greedy);
    ASSERT_TRUE(text.ok()) << text.status().to_string();
    const auto r = words_of(clip["reference"].get<std::string>());
    const size_t e = word_errors(r, words_of(*text));
    errors += e;
    words += r.size();
    std::printf("  %s: \"%s\" (%zu errors; faster-whisper \"%s\")\n", clip["wav"].get<std::string>().c_str(),
                text->c_str(), e, clip["faster_whisper"].get<std::string>().c_str());
  }
  const double wer = double(errors) / double(words), fw = ref["faster_whisper_wer"].get<double>();
  std::printf("  WER %.2f%% (faster-whisper %.2f%%) over %zu words\n", 100 * wer, 100 * fw, words);
  EXPECT_LE(wer, fw + 0.01);
}

TEST(WhisperLoaderTest, RejectsOtherArchitecturesAndMissingParts) {
  gguf::GgufWriter w;
  w.add_string("general.architecture", "llama");
  const std::string path = test::temp_path("not_whisper.gguf");
  ASSERT_TRUE(w.write(path).ok());
  auto m = load_whisper(path);
  EXPECT_EQ(m.status().code(), StatusCode::kUnsupported);
  gguf::GgufWriter w2;
  w2.add_string("general.architecture", "whisper");
  w2.add_u32("whisper.n_mels", 80);
  ASSERT_TRUE(w2.write(path).ok());
  m = load_whisper(path);
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound) << m.status().to_string();
  EXPECT_NE(m.status().message().find("whisper.n_audio_ctx"), std::string::npos) << m.status().to_string();
  std::remove(path.c_str());
  EXPECT_EQ(load_whisper(test::temp_path("absent.gguf")).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace omni
