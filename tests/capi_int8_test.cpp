// omni_session_params.int8_activations: a session with it decodes as a Context created with
// ContextParams::int8_activations (the int8 path's own tests check that against the scalar
// reference: cpu_int8_test), and without it as the f32 path; both bit for bit.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "include/omnirt.h"
#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "runtime/model/synthetic.h"
#include "tests/test_util.h"

namespace omni {
namespace {

// Logits after `tokens` then one decode step (where int8 activations apply) of `next`.
std::vector<float> context_logits(const Model& m, bool int8, const std::vector<int32_t>& tokens,
                                  int32_t next) {
  ContextParams cp;
  cp.n_ctx = 64;
  cp.n_threads = 1;
  cp.int8_activations = int8;
  auto ctx = Context::create(m, cp);
  EXPECT_TRUE(ctx.ok()) << ctx.status().to_string();
  if (!ctx.ok()) return {};
  EXPECT_TRUE((*ctx)->eval(tokens, false).ok());
  EXPECT_TRUE((*ctx)->eval(std::vector<int32_t>{next}, false).ok());
  const float* l = (*ctx)->last_logits();
  if (!l) return {};
  return std::vector<float>(l, l + m.hparams().n_vocab);
}

std::vector<float> session_logits(const char* path, int32_t int8,
                                  const std::vector<int32_t>& tokens, int32_t next) {
  omni_model* m = nullptr;
  omni_engine* e = nullptr;
  omni_session* s = nullptr;
  std::vector<float> out;
  omni_engine_params ep = omni_engine_default_params();
  ep.n_threads = 1;
  omni_session_params sp = omni_session_default_params();
  sp.n_ctx = 64;
  sp.int8_activations = int8;
  if (omni_model_load(path, nullptr, &m) == OMNI_OK && omni_engine_create(&ep, &e) == OMNI_OK &&
      omni_session_create(e, m, &sp, &s) == OMNI_OK &&
      omni_session_append_tokens(s, tokens.data(), tokens.size()) == OMNI_OK &&
      omni_session_append_tokens(s, &next, 1) == OMNI_OK) {
    const float* l = nullptr;
    int32_t n = 0;
    if (omni_session_logits(s, &l, &n) == OMNI_OK) out.assign(l, l + n);
  }
  EXPECT_FALSE(out.empty()) << omni_last_error();
  omni_session_destroy(s);
  omni_engine_destroy(e);
  omni_model_destroy(m);
  return out;
}

TEST(CApiInt8, SessionParamEqualsTheContextParam) {
  if (std::getenv("OMNIRT_INT8_DOT")) GTEST_SKIP() << "OMNIRT_INT8_DOT is set: every session is int8";
  const std::string path = test::temp_path("capi_int8_q8.gguf");
  ASSERT_TRUE(create_synthetic_model({"llama", "tiny", DType::kQ8_0, 21, 1}, path).ok());
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const std::vector<int32_t> tokens = {1, 40, 41, 42, 43};
  const std::vector<float> f32 = context_logits(**model, false, tokens, 44);
  const std::vector<float> int8 = context_logits(**model, true, tokens, 44);
  ASSERT_FALSE(f32.empty());
  EXPECT_NE(f32, int8);  // the flag takes effect on a Q8_0 model
  EXPECT_EQ(session_logits(path.c_str(), 1, tokens, 44), int8);
  EXPECT_EQ(session_logits(path.c_str(), 0, tokens, 44), f32);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace omni
