// The audio encoder + adapter (audio/adapter/audio_adapter.h) and its loader
// (runtime/model/audio_loader.h) against independent references made by
// tools/make_audio_adapter_fixtures.py: transformers' WhisperEncoder + Ultravox's projector
// (torch, from Ultravox's published model code) and transformers' Qwen2AudioEncoder +
// Qwen2AudioMultiModalProjector, random weights stored by gguf-py in llama.cpp's mmproj
// layout, float64 reference compute. Broken files made by the same script give their messages.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "audio/adapter/audio_adapter.h"
#include "runtime/model/audio_loader.h"
#include "tests/test_util.h"

namespace omni {
namespace {

std::string data(const std::string& name) { return test::source_path("tests/data/audio_adapter/" + name); }

void expect_matches_reference(const std::string& family, int n_frames, audio::AudioProjector type, int64_t rows) {
  SCOPED_TRACE(family + " " + std::to_string(n_frames) + " frames");
  auto m = load_audio_encoder(data(family + ".gguf"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const audio::AudioEncoderWeights& w = (*m)->weights;
  EXPECT_EQ(w.adapter.type, type);
  EXPECT_EQ(w.adapter.n_embd_out, 48);
  EXPECT_EQ(w.whisper.hp.n_audio_state, 32);
  EXPECT_EQ(w.whisper.hp.n_audio_ctx, 32);
  const std::vector<float> mel = test::read_f32(data("mel_" + std::to_string(n_frames) + ".f32"));
  const std::vector<float> ref = test::read_f32(data(family + "_out_" + std::to_string(n_frames) + ".f32"));
  ASSERT_EQ(mel.size(), size_t(n_frames * 80));
  ASSERT_EQ(ref.size(), size_t(rows * 48));
  ThreadPool pool(2);
  audio::AudioEncoder enc(w, pool);
  EXPECT_EQ(enc.rows_for_mel_frames(n_frames), rows);
  std::vector<float> out;
  ASSERT_TRUE(enc.encode(mel.data(), n_frames, &out).ok());
  ASSERT_EQ(out.size(), ref.size());
  double worst = 0, max_ref = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    worst = std::max(worst, double(std::fabs(out[i] - ref[i])));
    max_ref = std::max(max_ref, double(std::fabs(ref[i])));
  }
  std::printf("  %s, %d frames: %lld rows, max |diff| %.3g (max |ref| %.3g)\n", family.c_str(), n_frames,
              static_cast<long long>(rows), worst, max_ref);
  // f32 compute against a float64 reference on the same (f16-stored) weights.
  EXPECT_LE(worst, 1e-4 * max_ref);
}

TEST(AudioAdapterTest, UltravoxMatchesTransformersWhisperAndUltravoxProjector) {
  expect_matches_reference("ultravox", 64, audio::AudioProjector::kUltravox, 4);
  expect_matches_reference("ultravox", 40, audio::AudioProjector::kUltravox, 3);  // last group padded
}

TEST(AudioAdapterTest, Qwen2AudioMatchesTransformersEncoderAndProjector) {
  expect_matches_reference("qwen2a", 64, audio::AudioProjector::kQwen2Audio, 16);
  expect_matches_reference("qwen2a", 40, audio::AudioProjector::kQwen2Audio, 10);
}

TEST(AudioAdapterTest, BorrowedFileLoadsTheSameWeights) {
  auto file = gguf::GgufFile::open(data("ultravox.gguf"));
  ASSERT_TRUE(file.ok());
  auto m = load_audio_encoder(**file);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ((*m)->file, nullptr);
  EXPECT_EQ((*m)->weights.adapter.stack, 8);
  EXPECT_EQ((*m)->weights.adapter.fc1.n_out, 64);
  EXPECT_EQ((*m)->weights.whisper.enc_blocks.size(), 2u);
}

TEST(AudioAdapterTest, BrokenFilesSayWhatIsWrong) {
  struct Case { const char* file; StatusCode code; const char* needle; };
  const Case cases[] = {
      {"broken_no_audio.gguf", StatusCode::kUnsupported, "has no audio encoder"},
      {"broken_bad_projector.gguf", StatusCode::kUnsupported, "projector type 'mlp'"},
      {"broken_missing_key.gguf", StatusCode::kNotFound, "clip.audio.block_count"},
      {"broken_ff_not_4d.gguf", StatusCode::kUnsupported, "feed_forward_length 100"},
      {"broken_missing_tensor.gguf", StatusCode::kCorruptFile, "'a.blk.1.ffn_down.weight' is missing"},
      {"broken_bad_shape.gguf", StatusCode::kCorruptFile, "'mm.a.fc.weight' has shape [33, 48], expected [32, 48]"},
      {"broken_no_stack_factor.gguf", StatusCode::kNotFound, "clip.audio.projector.stack_factor"},
  };
  for (const Case& c : cases) {
    auto m = load_audio_encoder(data(c.file));
    ASSERT_FALSE(m.ok()) << c.file;
    EXPECT_EQ(m.status().code(), c.code) << c.file << ": " << m.status().to_string();
    EXPECT_NE(m.status().message().find(c.needle), std::string::npos) << c.file << ": " << m.status().to_string();
  }
  EXPECT_EQ(load_audio_encoder(test::temp_path("no_such_audio.gguf")).status().code(), StatusCode::kNotFound);
}

TEST(AudioAdapterTest, EncoderRejectsBadInput) {
  auto m = load_audio_encoder(data("qwen2a.gguf"));
  ASSERT_TRUE(m.ok());
  ThreadPool pool(1);
  audio::AudioEncoder enc((*m)->weights, pool);
  std::vector<float> mel(66 * 80, 0.5f), out;
  EXPECT_EQ(enc.encode(mel.data(), 66, &out).code(), StatusCode::kInvalidArgument);  // > 2 * n_ctx
  EXPECT_EQ(enc.encode(mel.data(), 3, &out).code(), StatusCode::kInvalidArgument);   // odd
  mel[7] = std::nanf("");
  Status st = enc.encode(mel.data(), 4, &out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("not finite"), std::string::npos) << st.to_string();
  // Two mel frames make one encoder frame: no Qwen2-Audio row (pooling drops it).
  std::vector<float> two(2 * 80, 0.1f);
  EXPECT_EQ(enc.encode(two.data(), 2, &out).code(), StatusCode::kInvalidArgument);
}

TEST(AudioAdapterTest, SyntheticEncoderLoadsAndRuns) {
  gguf::GgufWriter w;
  w.add_string("general.architecture", "clip");
  ASSERT_TRUE(add_synthetic_audio_encoder(w, "whisper-tiny-enc", 96, DType::kF16, 7).ok());
  const std::string path = test::temp_path("synthetic_audio_enc.gguf");
  ASSERT_TRUE(w.write(path).ok());
  auto m = load_audio_encoder(path);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const audio::AudioEncoderWeights& ew = (*m)->weights;
  EXPECT_EQ(ew.whisper.hp.n_audio_state, 64);
  EXPECT_EQ(ew.whisper.hp.n_audio_ctx, 128);
  EXPECT_EQ(ew.adapter.n_embd_out, 96);
  ThreadPool pool(2);
  audio::AudioEncoder enc(ew, pool);
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.5f);
  std::vector<float> mel(160 * 80), out;
  for (float& x : mel) x = u(gen);
  ASSERT_TRUE(enc.encode(mel.data(), 160, &out).ok());
  ASSERT_EQ(out.size(), size_t(10 * 96));
  double ss = 0;
  for (float x : out) {
    ASSERT_TRUE(std::isfinite(x));
    ss += double(x) * x;
  }
  EXPECT_GT(ss / double(out.size()), 1e-3);  // activations keep their scale
  std::remove(path.c_str());

  gguf::GgufWriter w2;
  EXPECT_EQ(add_synthetic_audio_encoder(w2, "whisper-huge", 96, DType::kF16, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(add_synthetic_audio_encoder(w2, "whisper-tiny-enc", 0, DType::kF16, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(add_synthetic_audio_encoder(w2, "whisper-tiny-enc", 96, DType::kQ6_K, 0).code(), StatusCode::kUnsupported);
  EXPECT_EQ(synthetic_audio_presets().size(), 2u);
}

}  // namespace
}  // namespace omni
