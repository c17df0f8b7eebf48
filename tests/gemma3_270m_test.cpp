// The real default model, Gemma 3 270M (Q4_K_M), against transformers on the same GGUF
// dequantized to float32 (tools/make_gemma_reference.py; format in docs/GOLDEN.md):
// prompt token ids, 32 greedy tokens for three prompts, and teacher-forced logits over 64 tokens.
// The model is installed by tools/setup.sh; without it these tests skip, unless
// OMNIRT_REQUIRE_MODELS=1 (set by tools/test.sh), where its absence is a failure.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "runtime/model/sampler.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using json = nlohmann::json;

class Gemma3Real : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = test::source_path("models/gemma-3-270m-q4_k_m.gguf");
    if (!test::file_exists(path)) return;
    auto m = Model::load(path);
    if (!m.ok()) {
      load_error_ = new std::string(m.status().to_string());
      return;
    }
    model_ = std::move(m).value().release();
    std::ifstream f(test::source_path("tests/data/gemma3-270m/reference.json"));
    ref_ = new json(json::parse(f));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete ref_;
    delete load_error_;
    model_ = nullptr;
    ref_ = nullptr;
    load_error_ = nullptr;
  }
  void SetUp() override {
    if (load_error_) FAIL() << "the installed model does not load: " << *load_error_;
    if (!model_) {
      const char* req = std::getenv("OMNIRT_REQUIRE_MODELS");
      if (req && std::string(req) == "1") FAIL() << "models/gemma-3-270m-q4_k_m.gguf is missing (run tools/setup.sh)";
      GTEST_SKIP() << "models/gemma-3-270m-q4_k_m.gguf is not installed (tools/setup.sh installs it)";
    }
  }
  std::unique_ptr<Context> make_context() {
    ContextParams cp;
    cp.n_ctx = 128;
    cp.n_threads = 2;
    cp.kv_type = DType::kF32;  // the reference has no KV rounding
    auto c = Context::create(*model_, cp);
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  static Model* model_;
  static json* ref_;
  static std::string* load_error_;
};
Model* Gemma3Real::model_ = nullptr;
json* Gemma3Real::ref_ = nullptr;
std::string* Gemma3Real::load_error_ = nullptr;

TEST_F(Gemma3Real, HyperparametersFromMetadata) {
  const HParams& hp = model_->hparams();
  EXPECT_EQ(hp.arch, Arch::kGemma3);
  EXPECT_EQ(hp.n_vocab, 262144);
  EXPECT_EQ(hp.n_embd, 640);
  EXPECT_EQ(hp.n_layer, 18);
  EXPECT_EQ(hp.n_head, 4);
  EXPECT_EQ(hp.n_head_kv, 1);
  EXPECT_EQ(hp.head_dim, 256);
  EXPECT_EQ(hp.sliding_window, 512);
  EXPECT_EQ(model_->chat_template(), ChatTemplate::kGemma);
}

TEST_F(Gemma3Real, PromptIdsMatchReferenceTokenizer) {
  for (const auto& p : (*ref_)["prompts"]) {
    auto ids = model_->tokenizer().encode(p["text"].get<std::string>(), /*add_bos=*/true, /*parse_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status().to_string();
    EXPECT_EQ(*ids, p["ids"].get<std::vector<int32_t>>()) << p["text"];
  }
  auto tf = model_->tokenizer().encode((*ref_)["teacher_forced"]["text"].get<std::string>(), true, true);
  ASSERT_TRUE(tf.ok());
  EXPECT_EQ(*tf, (*ref_)["teacher_forced"]["ids"].get<std::vector<int32_t>>());
}

TEST_F(Gemma3Real, GreedyContinuationsMatchReference) {
  SamplerParams sp;
  sp.temperature = 0;
  for (const auto& p : (*ref_)["prompts"]) {
    auto ctx = make_context();
    ASSERT_TRUE(ctx);
    auto sampler = Sampler::create(sp, model_->hparams().n_vocab);
    ASSERT_TRUE(sampler.ok());
    std::vector<int32_t> history = p["ids"].get<std::vector<int32_t>>();
    const auto expected = p["greedy"].get<std::vector<int32_t>>();
    ASSERT_EQ(expected.size(), 32u);
    ASSERT_TRUE(ctx->eval(history, false).ok());
    std::vector<int32_t> got;
    for (size_t i = 0; i < expected.size(); ++i) {
      const int32_t t = sampler->sample(ctx->last_logits(), history);
      got.push_back(t);
      history.push_back(t);
      ASSERT_TRUE(ctx->eval(std::span<const int32_t>(&t, 1), false).ok());
    }
    EXPECT_EQ(got, expected) << "prompt: " << p["text"];
  }
}

TEST_F(Gemma3Real, TeacherForcedLogitsWithinOnePercent) {
  const json& tf = (*ref_)["teacher_forced"];
  const auto ids = tf["ids"].get<std::vector<int32_t>>();
  const auto cols = tf["columns"].get<std::vector<int32_t>>();
  const json& layout = tf["layout"];
  const size_t n_pos = layout["n_positions"], k_top = layout["k_top"], n_cols = layout["n_cols"];
  const size_t rec = layout["record_floats"];
  ASSERT_EQ(ids.size(), n_pos);
  ASSERT_EQ(cols.size(), n_cols);
  std::vector<float> data = test::read_f32(test::source_path("tests/data/gemma3-270m/" + tf["file"].get<std::string>()));
  ASSERT_EQ(data.size(), n_pos * rec);

  auto ctx = make_context();
  ASSERT_TRUE(ctx);
  ASSERT_TRUE(ctx->eval(ids, /*all_logits=*/true).ok());
  const int64_t n_vocab = model_->hparams().n_vocab;
  double worst = 0;
  int top1_same = 0;
  for (size_t p = 0; p < n_pos; ++p) {
    const float* r = data.data() + p * rec;
    const float* ours = ctx->logits() + p * n_vocab;
    std::vector<float> a, b;  // ours, reference, over the recorded columns
    for (size_t i = 0; i < k_top; ++i) {
      a.push_back(ours[static_cast<int32_t>(r[layout["top_ids_offset"].get<size_t>() + i])]);
      b.push_back(r[layout["top_values_offset"].get<size_t>() + i]);
    }
    for (size_t i = 0; i < n_cols; ++i) {
      a.push_back(ours[cols[i]]);
      b.push_back(r[layout["cols_offset"].get<size_t>() + i]);
    }
    const double err = test::rel_l2(a.data(), b.data(), a.size());
    worst = std::max(worst, err);
    EXPECT_LE(err, 1e-2) << "position " << p;
    const int32_t ref_top1 = static_cast<int32_t>(r[layout["top_ids_offset"].get<size_t>()]);
    const int32_t our_top1 = static_cast<int32_t>(std::max_element(ours, ours + n_vocab) - ours);
    top1_same += our_top1 == ref_top1;
    if (tf["margin"][p].get<double>() > 1e-3) {
      EXPECT_EQ(our_top1, ref_top1) << "position " << p;
    }
  }
  std::printf("[ gemma3-270m ] teacher-forced: worst relative error %.2e over %zu positions, top-1 equal at %d\n",
              worst, n_pos, top1_same);
}

}  // namespace
}  // namespace omni
