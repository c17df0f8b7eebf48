// Audio input through the C API (omni_session_audio_begin / _append_audio / _end) on the
// omni-tiny preset, whose file holds a whisper-tiny-enc encoder (128 positions: chunks of at
// most 256 mel frames) with an Ultravox adapter (k = 8) into the backbone's width:
//  * a tone streamed in 20 ms blocks grows n_tokens by the rows the construction gives (100 mel
//    frames per second, conv stride 2, 8 encoder frames per row; the default 2 s chunk rounded
//    to the adapter's 16-frame group: 208 frames, 13 rows), chunk by chunk while "speaking";
//  * the session's logits equal the C++ path's (AudioStream + Context::eval_embeddings) on the
//    same PCM and the same context settings;
//  * order, NULL and value errors, a context that fills mid-utterance, mmproj audio encoders
//    (attached, refused when the width is wrong or one is there) and the RAII wrapper. (That
//    libomnirt exports the audio entry points: cli_test.cpp's LibraryExports.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "audio/adapter/audio_stream.h"
#include "audio/whisper/whisper_encoder.h"
#include "audio/whisper/whisper_ops.h"
#include "include/omnirt.h"
#include "include/omnirt.hpp"
#include "runtime/model/audio_loader.h"
#include "runtime/model/context.h"
#include "runtime/model/gguf.h"
#include "runtime/model/model.h"
#include "runtime/model/synthetic.h"
#include "runtime/model/synthetic_omni.h"
#include "tests/test_util.h"

namespace omni {
namespace {

constexpr size_t kBlock = 320;  // 20 ms at 16 kHz
constexpr int32_t kCtx = 256;

std::vector<float> tone(double seconds) {
  std::vector<float> pcm(static_cast<size_t>(seconds * 16000));
  for (size_t i = 0; i < pcm.size(); ++i)
    pcm[i] = 0.3f * std::sin(2.0f * 3.14159265f * 440.0f * float(i) / 16000.0f) +
             0.1f * std::sin(2.0f * 3.14159265f * 1250.0f * float(i) / 16000.0f);
  return pcm;
}

// Rows for n mel frames cut in chunks of 208: 13 rows per full chunk (104 encoder frames / 8);
// a partial chunk of r frames is padded to even, halved by the stride-2 conv, and stacked by 8
// with the last group padded.
int64_t expected_rows(int64_t n_frames) {
  const int64_t rem = n_frames % 208;
  return n_frames / 208 * 13 + (rem ? ((rem + 1) / 2 + 7) / 8 : 0);
}

class CapiAudio : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = new std::string(test::temp_path("capi_audio_omni_tiny.gguf"));
    const Status st = create_synthetic_omni({"omni-tiny", DType::kF32, 31, 2}, *path_);
    ASSERT_TRUE(st.ok()) << st.to_string();
  }
  static void TearDownTestSuite() {
    std::remove(path_->c_str());
    delete path_;
    path_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(omni_model_load(path_->c_str(), nullptr, &model_), OMNI_OK) << omni_last_error();
    omni_engine_params ep = omni_engine_default_params();
    ep.n_threads = 2;
    ASSERT_EQ(omni_engine_create(&ep, &engine_), OMNI_OK);
  }
  void TearDown() override {
    omni_engine_destroy(engine_);
    omni_model_destroy(model_);
  }
  omni_session* session(int32_t n_ctx = kCtx) {
    omni_session_params sp = omni_session_default_params();
    sp.n_ctx = n_ctx;
    sp.kv_type = OMNI_KV_F32;
    sp.temperature = 0;
    omni_session* s = nullptr;
    EXPECT_EQ(omni_session_create(engine_, model_, &sp, &s), OMNI_OK) << omni_last_error();
    return s;
  }

  static std::string* path_;
  omni_model* model_ = nullptr;
  omni_engine* engine_ = nullptr;
};
std::string* CapiAudio::path_ = nullptr;

const int32_t kPrompt[] = {1, 17, 42};

TEST_F(CapiAudio, ToneGrowsTheSessionByTheExpectedRowsAndEqualsTheCppPath) {
  ASSERT_EQ(omni_model_has_audio(model_), 1);
  omni_session* s = session();
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(omni_session_append_tokens(s, kPrompt, 3), OMNI_OK);
  const std::vector<float> pcm = tone(3.0);  // 300 mel frames: a chunk of 208 + 92
  ASSERT_EQ(omni_session_audio_begin(s, nullptr), OMNI_OK) << omni_last_error();
  std::vector<int32_t> n_after_block;
  for (size_t i = 0; i < pcm.size(); i += kBlock) {
    ASSERT_EQ(omni_session_append_audio(s, pcm.data() + i, std::min(kBlock, pcm.size() - i), 16000), OMNI_OK)
        << omni_last_error();
    n_after_block.push_back(omni_session_n_tokens(s));
  }
  const int64_t n_frames = int64_t(pcm.size()) / 160;
  const int64_t rows = expected_rows(n_frames);
  ASSERT_EQ(rows, 13 + 6);  // 92 frames -> 46 encoder frames -> 6 rows (the last padded)
  // While speaking: the full chunk is in once its 2.08 s (and the mel window's lookahead) are.
  EXPECT_EQ(n_after_block.back(), 3 + 13);
  EXPECT_EQ(n_after_block[102], 3);       // 2.06 s: the chunk still waits for audio
  EXPECT_EQ(n_after_block[105], 3 + 13);  // 2.12 s
  int64_t n_rows = -1;
  ASSERT_EQ(omni_session_audio_end(s, &n_rows), OMNI_OK) << omni_last_error();
  EXPECT_EQ(n_rows, rows);
  EXPECT_EQ(omni_session_n_tokens(s), 3 + rows);
  const float* logits = nullptr;
  int32_t n_vocab = 0;
  ASSERT_EQ(omni_session_logits(s, &logits, &n_vocab), OMNI_OK);
  const std::vector<float> capi(logits, logits + n_vocab);
  // The session can go on: text after the audio, and generation.
  EXPECT_EQ(omni_session_append_tokens(s, kPrompt, 3), OMNI_OK);
  EXPECT_EQ(omni_session_generate(s, 2, nullptr, nullptr), OMNI_OK) << omni_last_error();
  omni_session_destroy(s);

  // The C++ path on the same file, PCM and context settings.
  auto model = Model::load(*path_);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  auto enc = load_audio_encoder((*model)->file());
  ASSERT_TRUE(enc.ok()) << enc.status().to_string();
  ContextParams cp;
  cp.n_ctx = kCtx;
  cp.n_threads = 2;
  cp.kv_type = DType::kF32;
  auto ctx = Context::create(**model, cp);
  ASSERT_TRUE(ctx.ok());
  ASSERT_TRUE((*ctx)->eval(kPrompt, false).ok());
  auto stream = audio::AudioStream::create(enc.value()->weights, (*ctx)->thread_pool(),
                                           [&](const float* r, int64_t n) { return (*ctx)->eval_embeddings(r, n, false); });
  ASSERT_TRUE(stream.ok());
  for (size_t i = 0; i < pcm.size(); i += kBlock)
    ASSERT_TRUE((*stream)->push(pcm.data() + i, std::min(kBlock, pcm.size() - i)).ok());
  ASSERT_TRUE((*stream)->finish().ok());
  ASSERT_EQ((*ctx)->n_past(), 3 + rows);
  const std::vector<float> cpp((*ctx)->last_logits(), (*ctx)->last_logits() + n_vocab);
  EXPECT_EQ(capi, cpp);  // the same rows through the same kernels: bit for bit
}

TEST_F(CapiAudio, OrderNullsAndBadValuesAreRefusedWithAMessage) {
  omni_session* s = session();
  ASSERT_NE(s, nullptr);
  const std::vector<float> pcm = tone(0.5);
  int64_t n_rows = -1;
  // Wrong order.
  EXPECT_EQ(omni_session_append_audio(s, pcm.data(), pcm.size(), 16000), OMNI_ERR_WRONG_STATE);
  EXPECT_NE(std::string(omni_last_error()).find("omni_session_audio_begin first"), std::string::npos);
  EXPECT_EQ(omni_session_audio_end(s, &n_rows), OMNI_ERR_WRONG_STATE);
  // NULLs.
  EXPECT_EQ(omni_session_audio_begin(nullptr, nullptr), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_append_audio(nullptr, pcm.data(), 1, 16000), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_audio_end(nullptr, nullptr), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_model_has_audio(nullptr), 0);
  // Params.
  omni_audio_params ap = omni_audio_default_params();
  EXPECT_EQ(ap.struct_size, sizeof(omni_audio_params));
  EXPECT_EQ(ap.chunk_ms, 0);
  ap.chunk_ms = -5;
  EXPECT_EQ(omni_session_audio_begin(s, &ap), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(omni_last_error()).find("chunk_ms -5"), std::string::npos);
  ap.chunk_ms = 3000;  // beyond this encoder's 128 positions (2.56 s)
  EXPECT_EQ(omni_session_audio_begin(s, &ap), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(omni_last_error()).find("chunk_ms 3000"), std::string::npos) << omni_last_error();
  ap.struct_size = 0;
  EXPECT_EQ(omni_session_audio_begin(s, &ap), OMNI_ERR_INVALID_ARGUMENT);

  ap = omni_audio_default_params();
  ap.chunk_ms = 320;
  ASSERT_EQ(omni_session_audio_begin(s, &ap), OMNI_OK) << omni_last_error();
  EXPECT_EQ(omni_session_audio_begin(s, &ap), OMNI_ERR_WRONG_STATE);
  EXPECT_EQ(omni_session_append_audio(s, pcm.data(), pcm.size(), 44100), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(omni_last_error()).find("sample_rate 44100"), std::string::npos);
  EXPECT_EQ(omni_session_append_audio(s, nullptr, 10, 16000), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_append_audio(s, nullptr, 0, 16000), OMNI_OK);
  std::vector<float> bad = pcm;
  bad[100] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(omni_session_append_audio(s, bad.data(), bad.size(), 16000), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_n_tokens(s), 0);  // nothing of that call was consumed
  // Other input waits for the end of the utterance.
  EXPECT_EQ(omni_session_append_tokens(s, kPrompt, 3), OMNI_ERR_WRONG_STATE);
  EXPECT_NE(std::string(omni_last_error()).find("omni_session_audio_end"), std::string::npos);
  EXPECT_EQ(omni_session_append_text(s, "hi", 0), OMNI_ERR_WRONG_STATE);
  EXPECT_EQ(omni_session_generate(s, 1, nullptr, nullptr), OMNI_ERR_WRONG_STATE);
  // The utterance is still open and takes the good samples: 0.5 s = 50 frames, chunks of 32.
  ASSERT_EQ(omni_session_append_audio(s, pcm.data(), pcm.size(), 16000), OMNI_OK) << omni_last_error();
  EXPECT_EQ(omni_session_n_tokens(s), 2);  // one chunk of 32 frames: 16 encoder frames, 2 rows
  ASSERT_EQ(omni_session_audio_end(s, &n_rows), OMNI_OK) << omni_last_error();
  EXPECT_EQ(n_rows, 2 + 2);  // + 18 frames -> 9 encoder frames -> 2 rows (the last padded)
  EXPECT_EQ(omni_session_n_tokens(s), 4);
  EXPECT_EQ(omni_session_append_tokens(s, kPrompt, 3), OMNI_OK);

  // Nothing spoken: nothing added. Fewer than 201 samples: no frame.
  ASSERT_EQ(omni_session_audio_begin(s, nullptr), OMNI_OK);
  EXPECT_EQ(omni_session_audio_end(s, &n_rows), OMNI_OK);
  EXPECT_EQ(n_rows, 0);
  ASSERT_EQ(omni_session_audio_begin(s, nullptr), OMNI_OK);
  ASSERT_EQ(omni_session_append_audio(s, pcm.data(), 100, 16000), OMNI_OK);
  EXPECT_EQ(omni_session_audio_end(s, &n_rows), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_audio_end(s, &n_rows), OMNI_ERR_WRONG_STATE);  // closed all the same
  // Reset drops an open utterance.
  ASSERT_EQ(omni_session_audio_begin(s, nullptr), OMNI_OK);
  ASSERT_EQ(omni_session_reset(s), OMNI_OK);
  EXPECT_EQ(omni_session_append_audio(s, pcm.data(), pcm.size(), 16000), OMNI_ERR_WRONG_STATE);
  // A system message waiting for its user message (omni-tiny's ChatML template).
  if (std::string(omni_model_chat_template(model_)) != "none") {
    ASSERT_EQ(omni_session_append_chat(s, "system", "be brief"), OMNI_OK);
    EXPECT_EQ(omni_session_audio_begin(s, nullptr), OMNI_ERR_WRONG_STATE);
  }
  omni_session_destroy(s);
}

TEST_F(CapiAudio, AContextThatFillsClosesTheUtteranceAndKeepsTheRowsBefore) {
  omni_session* s = session(3 + 20);  // room for one chunk of 13 rows, not two
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(omni_session_append_tokens(s, kPrompt, 3), OMNI_OK);
  ASSERT_EQ(omni_session_audio_begin(s, nullptr), OMNI_OK);
  const std::vector<float> pcm = tone(5.0);  // two full chunks while speaking
  omni_status st = OMNI_OK;
  size_t i = 0;
  for (; i < pcm.size() && st == OMNI_OK; i += kBlock)
    st = omni_session_append_audio(s, pcm.data() + i, std::min(kBlock, pcm.size() - i), 16000);
  EXPECT_EQ(st, OMNI_ERR_OUT_OF_RANGE);
  EXPECT_NE(std::string(omni_last_error()).find("audio input is closed"), std::string::npos) << omni_last_error();
  EXPECT_EQ(omni_session_n_tokens(s), 3 + 13);
  EXPECT_EQ(omni_session_append_audio(s, pcm.data(), kBlock, 16000), OMNI_ERR_WRONG_STATE);
  const float* logits = nullptr;
  EXPECT_EQ(omni_session_logits(s, &logits, nullptr), OMNI_OK);  // of the last row in
  EXPECT_EQ(omni_session_append_tokens(s, kPrompt, 2), OMNI_OK);  // other input works again
  omni_session_destroy(s);
}

TEST_F(CapiAudio, RaiiUtteranceEndsItselfAndReportsRows) {
  omni_session* s = session();
  ASSERT_NE(s, nullptr);
  const std::vector<float> pcm = tone(0.5);
  {
    omnirt::Error err;
    auto a = omnirt::AudioInput::begin(s, nullptr, &err);
    ASSERT_FALSE(err) << err.message;
    ASSERT_TRUE(a);
    EXPECT_FALSE(a.append(pcm));
    EXPECT_TRUE(a.append(pcm, 8000));
    omnirt::AudioInput moved = std::move(a);
    EXPECT_FALSE(a);
    EXPECT_TRUE(moved);
  }  // ended by the destructor: 50 frames -> 25 encoder frames -> 4 rows
  EXPECT_EQ(omni_session_n_tokens(s), 4);
  omnirt::Error err;
  auto b = omnirt::AudioInput::begin(s, nullptr, &err);
  ASSERT_FALSE(err);
  EXPECT_FALSE(b.append(pcm));
  int64_t rows = 0;
  EXPECT_FALSE(b.end(&rows));
  EXPECT_EQ(rows, 4);
  EXPECT_FALSE(b);
  omni_session_destroy(s);
}

// mmproj files with an audio encoder: attached to a text model of the right width, refused for
// another width or when the model has one; a text model without any audio encoder says so.
TEST(CapiAudioMmproj, AudioProjectorsAttachOrAreRefused) {
  const std::string model_path = test::temp_path("capi_audio_llama_tiny.gguf");
  ASSERT_TRUE(create_synthetic_model({"llama", "tiny", DType::kF16, 3}, model_path).ok());
  auto mmproj = [](int64_t n_out, const std::string& name) {
    gguf::GgufWriter w;
    w.add_string("general.architecture", "clip");
    EXPECT_TRUE(add_synthetic_audio_encoder(w, "whisper-tiny-enc", n_out, DType::kF16, 5).ok());
    const std::string p = test::temp_path(name);
    EXPECT_TRUE(w.write(p).ok());
    return p;
  };
  const std::string good = mmproj(256, "capi_audio_mmproj_256.gguf"), bad = mmproj(64, "capi_audio_mmproj_64.gguf");
  omni_model* m = nullptr;
  ASSERT_EQ(omni_model_load(model_path.c_str(), nullptr, &m), OMNI_OK) << omni_last_error();
  ASSERT_EQ(omni_model_n_embd(m), 256);
  EXPECT_EQ(omni_model_has_audio(m), 0);
  omni_engine* e = nullptr;
  ASSERT_EQ(omni_engine_create(nullptr, &e), OMNI_OK);
  omni_session* s = nullptr;
  ASSERT_EQ(omni_session_create(e, m, nullptr, &s), OMNI_OK);
  EXPECT_EQ(omni_session_audio_begin(s, nullptr), OMNI_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(omni_last_error()).find("no audio encoder"), std::string::npos);

  EXPECT_EQ(omni_model_load_mmproj(m, bad.c_str()), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(omni_last_error()).find("output width 64 is not the model's n_embd 256"), std::string::npos)
      << omni_last_error();
  EXPECT_EQ(omni_model_has_audio(m), 0);
  ASSERT_EQ(omni_model_load_mmproj(m, good.c_str()), OMNI_OK) << omni_last_error();
  EXPECT_EQ(omni_model_has_audio(m), 1);
  EXPECT_EQ(omni_model_has_vision(m), 0);
  EXPECT_EQ(omni_model_load_mmproj(m, good.c_str()), OMNI_ERR_WRONG_STATE);
  EXPECT_NE(std::string(omni_last_error()).find("already has an audio encoder"), std::string::npos);
  // The session made before the attach sees it.
  ASSERT_EQ(omni_session_audio_begin(s, nullptr), OMNI_OK) << omni_last_error();
  const std::vector<float> pcm = tone(0.5);
  ASSERT_EQ(omni_session_append_audio(s, pcm.data(), pcm.size(), 16000), OMNI_OK);
  int64_t rows = 0;
  ASSERT_EQ(omni_session_audio_end(s, &rows), OMNI_OK) << omni_last_error();
  EXPECT_EQ(rows, 4);
  omni_session_destroy(s);
  omni_model_destroy(m);

  // At load, through omni_model_params.mmproj_path (the encoder owns its file: delete it after).
  omni_model_params mp = omni_model_default_params();
  mp.mmproj_path = good.c_str();
  ASSERT_EQ(omni_model_load(model_path.c_str(), &mp, &m), OMNI_OK) << omni_last_error();
  EXPECT_EQ(omni_model_has_audio(m), 1);
  omni_model_destroy(m);
  mp.mmproj_path = bad.c_str();
  EXPECT_EQ(omni_model_load(model_path.c_str(), &mp, &m), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  omni_engine_destroy(e);
  std::remove(model_path.c_str());
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

// The one Whisper encoder loop: encode() is encode_before_final_norm() followed by ln_post, bit
// for bit (the Qwen2-Audio adapter pools between the two), on the omni-tiny file's encoder.
TEST_F(CapiAudio, WhisperEncoderStopsBeforeTheFinalNormOnTheSameNumbers) {
  auto model = Model::load(*path_);
  ASSERT_TRUE(model.ok());
  auto enc = load_audio_encoder((*model)->file());
  ASSERT_TRUE(enc.ok());
  const audio::WhisperWeights& w = enc.value()->weights.whisper;
  const int64_t n_frames = 64, n_mels = w.hp.n_mels, d = w.hp.n_audio_state;
  std::vector<float> mel(static_cast<size_t>(n_frames * n_mels));
  for (size_t i = 0; i < mel.size(); ++i) mel[i] = 0.5f * std::sin(0.37f * float(i)) - 0.2f;
  ThreadPool pool(2);
  audio::WhisperEncoder e(w, pool);
  std::vector<float> full, before;
  ASSERT_TRUE(e.encode(mel.data(), n_frames, &full).ok());
  ASSERT_TRUE(e.encode_before_final_norm(mel.data(), n_frames, &before).ok());
  ASSERT_EQ(full.size(), size_t(n_frames / 2 * d));
  ASSERT_EQ(before.size(), full.size());
  EXPECT_NE(before, full);
  audio::whisper::layer_norm(pool, before.data(), w.enc_ln_post, before.data(), n_frames / 2, d);
  EXPECT_EQ(before, full);
  EXPECT_EQ(e.encode_before_final_norm(mel.data(), 3, &before).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace omni
