// Golden tests: logits of tiny random models against transformers (PyTorch) on the same weights.
// Fixtures come from tools/make_golden.py (see docs/GOLDEN.md); nothing here is produced by omnirt.
#include <cmath>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kernels/ref/ops_ref.h"
#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "runtime/model/sampler.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using json = nlohmann::json;

struct Golden {
  std::string name;
  json meta;
  std::vector<float> logits;  // [n_tokens, n_vocab]
};

std::vector<std::string> golden_names() {
  std::ifstream f(test::source_path("tests/data/golden/index.json"));
  if (!f) return {};
  json index = json::parse(f);
  std::vector<std::string> names;
  for (const auto& n : index["fixtures"]) names.push_back(n.get<std::string>());
  return names;
}

Golden load_golden(const std::string& name) {
  Golden g;
  g.name = name;
  std::ifstream f(test::source_path("tests/data/golden/" + name + ".json"));
  g.meta = json::parse(f);
  g.logits = test::read_f32(test::source_path("tests/data/golden/" + g.meta["logits"].get<std::string>()));
  return g;
}

class GoldenModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    g_ = load_golden(GetParam());
    auto m = Model::load(test::source_path("tests/data/golden/" + g_.meta["gguf"].get<std::string>()));
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    model_ = std::move(m).value();
    tokens_ = g_.meta["tokens"].get<std::vector<int32_t>>();
    n_vocab_ = g_.meta["n_vocab"].get<int64_t>();
    ASSERT_EQ(model_->hparams().n_vocab, n_vocab_);
    ASSERT_EQ(g_.logits.size(), tokens_.size() * static_cast<size_t>(n_vocab_));
  }
  std::unique_ptr<Context> make_context(DType kv, int64_t n_batch = 256, int threads = 2) {
    ContextParams cp;
    cp.n_ctx = 64;
    cp.n_batch = n_batch;
    cp.n_threads = threads;
    cp.kv_type = kv;
    auto c = Context::create(*model_, cp);
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  // Largest per-row relative L2 error of rows [0, n) against the reference.
  double max_row_error(const float* ours, size_t first_row, size_t n_rows) const {
    double worst = 0;
    for (size_t r = 0; r < n_rows; ++r)
      worst = std::max(worst, test::rel_l2(ours + r * n_vocab_, g_.logits.data() + (first_row + r) * n_vocab_, n_vocab_));
    return worst;
  }

  Golden g_;
  std::unique_ptr<Model> model_;
  std::vector<int32_t> tokens_;
  int64_t n_vocab_ = 0;
};

// The weights in every fixture are exactly representable in the file's type (quantized fixtures
// are random valid blocks, dequantized by gguf-py for the reference), so with an f32 KV cache the
// only differences are f32 summation order: 1e-4 relative holds for every weight type.
constexpr double kF32KvBound = 1e-4;
// An f16 KV cache rounds K and V to 11 significant bits (rel. 2^-11 ≈ 5e-4 per element).
constexpr double kF16KvBound = 1e-2;

TEST_P(GoldenModel, BatchedPrefillLogitsMatchReference) {
  auto ctx = make_context(DType::kF32);
  ASSERT_TRUE(ctx);
  ASSERT_TRUE(ctx->eval(tokens_, /*all_logits=*/true).ok());
  ASSERT_EQ(ctx->n_logit_rows(), static_cast<int64_t>(tokens_.size()));
  EXPECT_LE(max_row_error(ctx->logits(), 0, tokens_.size()), kF32KvBound) << g_.name;
}

TEST_P(GoldenModel, TokenByTokenDecodeMatchesReference) {
  auto ctx = make_context(DType::kF32, 256, 1);
  ASSERT_TRUE(ctx);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    ASSERT_TRUE(ctx->eval(std::span<const int32_t>(&tokens_[i], 1), false).ok());
    EXPECT_LE(max_row_error(ctx->last_logits(), i, 1), kF32KvBound) << g_.name << " position " << i;
  }
}

TEST_P(GoldenModel, ChunkedPrefillMatchesReference) {
  auto ctx = make_context(DType::kF32, /*n_batch=*/5, 2);
  ASSERT_TRUE(ctx);
  ASSERT_TRUE(ctx->eval(tokens_, true).ok());
  EXPECT_LE(max_row_error(ctx->logits(), 0, tokens_.size()), kF32KvBound) << g_.name;
}

TEST_P(GoldenModel, F16KvCacheWithinBound) {
  auto ctx = make_context(DType::kF16);
  ASSERT_TRUE(ctx);
  ASSERT_TRUE(ctx->eval(tokens_, true).ok());
  EXPECT_LE(max_row_error(ctx->logits(), 0, tokens_.size()), kF16KvBound) << g_.name;
}

TEST_P(GoldenModel, GreedyContinuationMatchesReference) {
  if (!g_.meta.contains("greedy_tokens")) GTEST_SKIP() << "fixture has no greedy continuation";
  auto prompt = g_.meta["greedy_prompt"].get<std::vector<int32_t>>();
  auto expected = g_.meta["greedy_tokens"].get<std::vector<int32_t>>();
  auto ctx = make_context(DType::kF32);
  ASSERT_TRUE(ctx);
  SamplerParams sp;
  sp.temperature = 0;
  auto sampler = Sampler::create(sp, n_vocab_);
  ASSERT_TRUE(sampler.ok());
  std::vector<int32_t> history = prompt;
  ASSERT_TRUE(ctx->eval(prompt, false).ok());
  std::vector<int32_t> got;
  for (size_t i = 0; i < expected.size(); ++i) {
    int32_t t = sampler->sample(ctx->last_logits(), history);
    got.push_back(t);
    history.push_back(t);
    ASSERT_TRUE(ctx->eval(std::span<const int32_t>(&t, 1), false).ok());
  }
  EXPECT_EQ(got, expected) << g_.name;
}

// Embedding rows fed through eval_embeddings (the multimodal input path) are the tokens'
// own embedding rows, dequantized by the scalar reference and scaled as the architecture
// scales token embeddings: the logits must equal the reference's for the token input.
TEST_P(GoldenModel, EmbeddingInputEqualsTokenInput) {
  auto ctx = make_context(DType::kF32, /*n_batch=*/4, 2);
  ASSERT_TRUE(ctx);
  const HParams& hp = model_->hparams();
  const Weight& emb = model_->token_embd();
  const size_t half = tokens_.size() / 2 + 1;
  std::vector<float> rows(half * size_t(hp.n_embd));
  for (size_t t = 0; t < half; ++t) {
    const auto* src = static_cast<const uint8_t*>(emb.data) + size_t(tokens_[t]) * dtype_row_bytes(emb.type, hp.n_embd);
    ref::dequantize_row(emb.type, src, rows.data() + t * hp.n_embd, hp.n_embd);
    for (int64_t i = 0; i < hp.n_embd; ++i) rows[t * hp.n_embd + i] *= hp.embd_scale;
  }
  ASSERT_TRUE(ctx->eval_embeddings(rows.data(), int64_t(half), true).ok());
  EXPECT_LE(max_row_error(ctx->logits(), 0, half), kF32KvBound) << g_.name << " embedding rows";
  const std::vector<int32_t> rest(tokens_.begin() + half, tokens_.end());
  if (!rest.empty()) {
    ASSERT_TRUE(ctx->eval(rest, true).ok());
    EXPECT_LE(max_row_error(ctx->logits(), half, rest.size()), kF32KvBound) << g_.name << " tokens after rows";
  }
  // Bad rows are refused with the state unchanged.
  const int64_t past = ctx->n_past();
  rows[3] = std::nanf("");
  Status st = ctx->eval_embeddings(rows.data(), 1, false);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("not finite"), std::string::npos) << st.to_string();
  EXPECT_EQ(ctx->eval_embeddings(nullptr, 1, false).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ctx->eval_embeddings(rows.data(), 0, false).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ctx->eval_embeddings(rows.data(), ctx->n_ctx(), false).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(ctx->n_past(), past);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenModel, ::testing::ValuesIn(golden_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenModel);

TEST(GoldenFixtures, IndexIsPresent) {
  // The golden suite must not silently vanish: the committed index lists at least one model per arch.
  auto names = golden_names();
  ASSERT_FALSE(names.empty()) << "tests/data/golden/index.json missing or empty";
  for (const char* arch : {"llama", "qwen2", "gemma3"}) {
    bool found = false;
    for (const auto& n : names) found |= n.rfind(arch, 0) == 0;
    EXPECT_TRUE(found) << "no golden fixture for " << arch;
  }
}

}  // namespace
}  // namespace omni
