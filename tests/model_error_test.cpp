// Model loading failures: each committed file (tools/make_model_error_fixtures.py) has one defect
// and must be rejected with the expected status and a message naming the culprit. Also checks that
// a Context leaves its state untouched when eval() is refused.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using json = nlohmann::json;

StatusCode code_from_name(const std::string& s) {
  if (s == "ok") return StatusCode::kOk;
  if (s == "kCorruptFile") return StatusCode::kCorruptFile;
  if (s == "kNotFound") return StatusCode::kNotFound;
  if (s == "kUnsupported") return StatusCode::kUnsupported;
  if (s == "kInvalidArgument") return StatusCode::kInvalidArgument;
  ADD_FAILURE() << "unknown code name " << s;
  return StatusCode::kInternal;
}

TEST(ModelErrors, EachBrokenModelIsRejectedPrecisely) {
  std::ifstream f(test::source_path("tests/data/model_bad/expected.json"));
  ASSERT_TRUE(f.good());
  json expected = json::parse(f);
  ASSERT_GE(expected.size(), 6u);
  for (const auto& [name, want] : expected.items()) {
    auto m = Model::load(test::source_path("tests/data/model_bad/" + name + ".gguf"));
    const StatusCode code = code_from_name(want["code"].get<std::string>());
    if (code == StatusCode::kOk) {
      EXPECT_TRUE(m.ok()) << name << ": " << m.status().to_string();
      continue;
    }
    ASSERT_FALSE(m.ok()) << name << " loaded but should fail";
    EXPECT_EQ(m.status().code(), code) << name << ": " << m.status().to_string();
    EXPECT_NE(m.status().message().find(want["message"].get<std::string>()), std::string::npos)
        << name << ": message '" << m.status().message() << "' lacks '" << want["message"] << "'";
  }
}

TEST(ModelErrors, MissingFileIsNotFound) {
  auto m = Model::load("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound) << m.status().to_string();
}

TEST(ModelErrors, EveryTruncationOfAModelIsRejected) {
  const std::string src = test::source_path("tests/data/model_bad/valid_llama.gguf");
  std::vector<uint8_t> bytes = test::read_file(src);
  ASSERT_GT(bytes.size(), 1000u);
  const std::string path = test::temp_path("truncated.gguf");
  for (size_t len : {size_t(0), size_t(3), size_t(24), size_t(100), size_t(4000), bytes.size() / 2, bytes.size() - 1}) {
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(len));
    }
    auto m = Model::load(path);
    EXPECT_FALSE(m.ok()) << "prefix of " << len << " bytes loaded";
  }
  std::remove(path.c_str());
}

class ContextState : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = Model::load(test::source_path("tests/data/model_bad/valid_llama.gguf"));
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    model_ = std::move(m).value();
    ContextParams cp;
    cp.n_ctx = 16;
    cp.n_threads = 2;
    cp.kv_type = DType::kF32;
    auto c = Context::create(*model_, cp);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    ctx_ = std::move(c).value();
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<Context> ctx_;
};

TEST_F(ContextState, RefusedEvalLeavesStateIntact) {
  std::vector<int32_t> a = {1, 2, 3};
  ASSERT_TRUE(ctx_->eval(a, false).ok());
  std::vector<float> before(ctx_->last_logits(), ctx_->last_logits() + model_->hparams().n_vocab);

  std::vector<int32_t> bad_id = {4, 100000};
  Status s = ctx_->eval(bad_id, false);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("100000"), std::string::npos) << s.message();
  std::vector<int32_t> negative = {-1};
  EXPECT_EQ(ctx_->eval(negative, false).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(ctx_->eval({}, false).code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> too_long(14, 5);
  s = ctx_->eval(too_long, false);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << s.to_string();
  EXPECT_EQ(ctx_->n_past(), 3);
  EXPECT_EQ(0, std::memcmp(before.data(), ctx_->last_logits(), before.size() * sizeof(float)));

  // The next valid eval gives exactly what a fresh context gives.
  std::vector<int32_t> b = {7};
  ASSERT_TRUE(ctx_->eval(b, false).ok());
  ContextParams cp = ctx_->params();
  auto fresh = Context::create(*model_, cp);
  ASSERT_TRUE(fresh.ok());
  // Same chunking as above: batched and one-token evals may round differently.
  std::vector<int32_t> first3 = {1, 2, 3}, seven = {7};
  ASSERT_TRUE((*fresh)->eval(first3, false).ok());
  ASSERT_TRUE((*fresh)->eval(seven, false).ok());
  EXPECT_EQ(0, std::memcmp((*fresh)->last_logits(), ctx_->last_logits(), before.size() * sizeof(float)));
}

TEST_F(ContextState, RewindThenReplayIsExact) {
  std::vector<int32_t> a = {10, 11, 12, 13, 14};
  ASSERT_TRUE(ctx_->eval(a, false).ok());
  std::vector<float> first(ctx_->last_logits(), ctx_->last_logits() + model_->hparams().n_vocab);
  ASSERT_TRUE(ctx_->rewind(2).ok());
  EXPECT_EQ(ctx_->n_past(), 2);
  std::vector<int32_t> rest = {12, 13, 14};
  ASSERT_TRUE(ctx_->eval(rest, false).ok());
  EXPECT_EQ(0, std::memcmp(first.data(), ctx_->last_logits(), first.size() * sizeof(float)));
  EXPECT_EQ(ctx_->rewind(6).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(ctx_->rewind(-1).code(), StatusCode::kOutOfRange);
}

TEST_F(ContextState, BadParamsAreRejected) {
  ContextParams cp;
  cp.n_ctx = -5;
  EXPECT_EQ(Context::create(*model_, cp).status().code(), StatusCode::kInvalidArgument);
  cp = ContextParams();
  cp.n_batch = 0;
  EXPECT_EQ(Context::create(*model_, cp).status().code(), StatusCode::kInvalidArgument);
  cp = ContextParams();
  cp.kv_type = DType::kQ4_0;
  EXPECT_EQ(Context::create(*model_, cp).status().code(), StatusCode::kInvalidArgument);
  cp = ContextParams();
  cp.n_threads = -1;
  EXPECT_EQ(Context::create(*model_, cp).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace omni
