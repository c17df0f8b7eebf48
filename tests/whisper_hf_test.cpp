// Whisper checkpoints from Hugging Face and OpenAI (tools/convert_whisper.py) against
// transformers. tools/make_whisper_hf_fixtures.py made a tiny random WhisperForConditionalGeneration
// (d_model 32, 2 + 2 layers, 4 heads, 80 mels, tiny.en's 51864-token vocabulary; every parameter
// rounded to f16, so the committed f16 GGUF holds the model exactly), checked that its HF and
// OpenAI (.pt) conversions hold identical tensors, and stored transformers' float32 outputs:
//  * encoder output [1500, 32] for whisper's log-mel of librivox_0880 zero-padded to 3000 frames:
//    max |diff| <= 1e-5 * max |ref| here (f32 accumulation-order noise only);
//  * decoder logits, 8 prompt tokens teacher-forced, every position, 644 ids: max |diff| <= 1e-4.
// Plus a python-free check that a converted file with a tensor missing or misshapen is refused
// with a status naming it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "audio/whisper/whisper_decoder.h"
#include "audio/whisper/whisper_encoder.h"
#include "runtime/model/gguf.h"
#include "runtime/model/whisper_loader.h"
#include "tests/test_util.h"

namespace omni {
namespace {

constexpr int64_t kD = 32;

std::string hf_path(const std::string& name) { return test::source_path("tests/data/whisper_hf/" + name); }

// The encoder input both sides saw: whisper's log-mel [299, 80] zero-padded to 3000 frames.
std::vector<float> padded_mel() {
  std::vector<float> mel = test::read_f32(test::source_path("tests/data/whisper/librivox_0880_mel80.f32"));
  EXPECT_EQ(mel.size(), 299u * 80);
  mel.resize(3000 * 80, 0.0f);
  return mel;
}

std::unique_ptr<WhisperModel> load_tiny() {
  auto m = load_whisper(hf_path("tiny_random_f16.gguf"));
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return m.ok() ? std::move(m).value() : nullptr;
}

TEST(WhisperHfTest, ConvertedFileHasTinyEnVocabularyAndShapes) {
  auto m = load_tiny();
  ASSERT_TRUE(m);
  const audio::WhisperWeights& w = m->weights;
  EXPECT_EQ(w.hp.n_audio_state, kD);
  EXPECT_EQ(w.hp.n_audio_layer, 2);
  EXPECT_EQ(w.hp.n_text_layer, 2);
  EXPECT_EQ(w.hp.n_audio_head, 4);
  EXPECT_EQ(w.hp.n_audio_ctx, 1500);
  EXPECT_EQ(w.hp.n_vocab, 51864);
  EXPECT_EQ(w.token_embedding.type, DType::kF16);
  // tiny.en's special ids (openai-whisper's English tokenizer) and the timestamp tokens the
  // converter adds after <|notimestamps|> (the HF tokenizer file stops there).
  EXPECT_EQ(w.vocab.eot, 50256);
  EXPECT_EQ(w.vocab.sot, 50257);
  EXPECT_EQ(w.vocab.no_timestamps, 50362);
  EXPECT_EQ(w.vocab.timestamp_begin, 50363);
  EXPECT_EQ(w.vocab.no_speech, 50361);
  EXPECT_FALSE(w.vocab.multilingual);
  EXPECT_EQ(w.vocab.tokens[50363], "<|0.00|>");
  EXPECT_EQ(w.vocab.tokens[51863], "<|30.00|>");
  EXPECT_EQ(w.vocab.tokens[383], "\xC4\xA0The");  // GPT-2 byte-level "Ġ" + "The"
  EXPECT_EQ(w.vocab.suppress_tokens_begin, (std::vector<int32_t>{220, 50256}));
  EXPECT_GT(w.vocab.suppress_tokens.size(), 80u);  // generation_config.json's suppress_tokens
  // Key projections have no bias (HF's k_proj has none); the others do.
  EXPECT_TRUE(w.enc_blocks[0].attn.key.b.empty());
  EXPECT_EQ(w.enc_blocks[0].attn.query.b.size(), static_cast<size_t>(kD));
  EXPECT_TRUE(w.dec_blocks[1].cross_attn.key.b.empty());
}

TEST(WhisperHfTest, EncoderMatchesTransformers) {
  auto m = load_tiny();
  ASSERT_TRUE(m);
  const std::vector<float> ref = test::read_f32(hf_path("encoder.f32"));
  ASSERT_EQ(ref.size(), 1500u * kD);
  const std::vector<float> mel = padded_mel();
  ThreadPool pool(2);
  audio::WhisperEncoder enc(m->weights, pool);
  std::vector<float> out;
  ASSERT_TRUE(enc.encode(mel.data(), 3000, &out).ok());
  ASSERT_EQ(out.size(), ref.size());
  double worst = 0, peak = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_TRUE(std::isfinite(out[i])) << i;
    worst = std::max(worst, std::fabs(double(out[i]) - ref[i]));
    peak = std::max(peak, std::fabs(double(ref[i])));
  }
  std::printf("  encoder: max |diff| %.3g, max |ref| %.3g\n", worst, peak);
  EXPECT_LE(worst, 1e-5 * peak) << "max |diff| " << worst << ", max |ref| " << peak;
}

TEST(WhisperHfTest, DecoderLogitsMatchTransformers) {
  auto m = load_tiny();
  ASSERT_TRUE(m);
  const nlohmann::json ref = test::load_json(hf_path("decoder.json"));
  const std::vector<int32_t> tokens = ref["tokens"].get<std::vector<int32_t>>();
  const std::vector<int> ids = ref["ids"].get<std::vector<int>>();
  const auto want = ref["logits"].get<std::vector<std::vector<float>>>();
  ASSERT_EQ(want.size(), tokens.size());
  const std::vector<float> mel = padded_mel();
  ThreadPool pool(2);
  audio::WhisperEncoder enc(m->weights, pool);
  std::vector<float> encoded;
  ASSERT_TRUE(enc.encode(mel.data(), 3000, &encoded).ok());
  audio::WhisperDecoder dec(m->weights, pool);
  ASSERT_TRUE(dec.set_audio(encoded.data(), 1500).ok());
  const int64_t n_vocab = m->weights.hp.n_vocab;
  // The first two tokens at once (all logits), then one at a time through the KV cache.
  audio::WhisperTextCache cache = dec.new_cache();
  std::vector<float> logits(tokens.size() * static_cast<size_t>(n_vocab));
  ASSERT_TRUE(dec.decode(cache, tokens.data(), 2, logits.data(), true).ok());
  for (size_t t = 2; t < tokens.size(); ++t)
    ASSERT_TRUE(dec.decode(cache, &tokens[t], 1, logits.data() + t * n_vocab).ok());
  double worst = 0, lo = 1e30, hi = -1e30;
  for (size_t s = 0; s < want.size(); ++s) {
    ASSERT_EQ(want[s].size(), ids.size());
    for (size_t j = 0; j < ids.size(); ++j) {
      const double got = logits[s * n_vocab + ids[j]];
      worst = std::max(worst, std::fabs(got - want[s][j]));
      lo = std::min(lo, double(want[s][j]));
      hi = std::max(hi, double(want[s][j]));
    }
  }
  std::printf("  logits: max |diff| %.3g over [%.3g, %.3g]\n", worst, lo, hi);
  EXPECT_LE(worst, 1e-4) << "max |diff| " << worst << " over logits in [" << lo << ", " << hi << "]";
}

// The committed file rewritten without one tensor (or with one reshaped): keys copied by type.
std::vector<uint8_t> rewrite(const gguf::GgufFile& f, const std::string& drop, const std::string& reshape) {
  gguf::GgufWriter w;
  for (const gguf::KeyValue& kv : f.metadata()) {
    const gguf::Value& v = kv.value;
    switch (v.type) {
      case gguf::ValueType::kU32: w.add_u32(kv.key, static_cast<uint32_t>(v.scalar.u)); break;
      case gguf::ValueType::kBool: w.add_bool(kv.key, v.scalar.u != 0); break;
      case gguf::ValueType::kString: w.add_string(kv.key, std::string(v.str)); break;
      case gguf::ValueType::kArray:
        if (v.elem_type == gguf::ValueType::kString) {
          std::vector<std::string> s;
          for (std::string_view e : v.strings) s.emplace_back(e);
          w.add_string_array(kv.key, s);
        } else {
          std::vector<int32_t> a;
          for (uint64_t i = 0; i < v.n_elems; ++i) a.push_back(static_cast<int32_t>(v.array_i64(i)));
          w.add_i32_array(kv.key, a);
        }
        break;
      default: ADD_FAILURE() << kv.key << " has an unexpected type"; break;
    }
  }
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (t.name == drop) continue;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    size_t n_bytes = t.n_bytes;
    if (t.name == reshape) {  // one row fewer
      ne.back() -= 1;
      n_bytes -= t.n_bytes / static_cast<size_t>(t.ne[t.n_dims - 1]);
    }
    EXPECT_TRUE(w.add_tensor(t.name, t.type, ne, t.data, n_bytes).ok()) << t.name;
  }
  return w.to_bytes();
}

TEST(WhisperHfTest, BrokenFilesAreRefusedNamingTheTensor) {
  auto file = gguf::GgufFile::open(hf_path("tiny_random_f16.gguf"));
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  // Unchanged, the rewrite loads (the copier is faithful).
  std::vector<uint8_t> same = rewrite(**file, "", "");
  ASSERT_FALSE(same.empty());
  auto g = gguf::GgufFile::from_memory(same.data(), same.size());
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_TRUE(load_whisper(std::move(g).value()).ok());

  std::vector<uint8_t> missing = rewrite(**file, "decoder.blocks.1.cross_attn.value.weight", "");
  g = gguf::GgufFile::from_memory(missing.data(), missing.size());
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  auto m = load_whisper(std::move(g).value());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(m.status().message().find("decoder.blocks.1.cross_attn.value.weight"), std::string::npos)
      << m.status().to_string();

  std::vector<uint8_t> shaped = rewrite(**file, "", "encoder.positional_embedding");
  g = gguf::GgufFile::from_memory(shaped.data(), shaped.size());
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  m = load_whisper(std::move(g).value());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(m.status().message().find("encoder.positional_embedding"), std::string::npos)
      << m.status().to_string();
  EXPECT_NE(m.status().message().find("[32, 1499]"), std::string::npos) << m.status().to_string();
}

}  // namespace
}  // namespace omni
