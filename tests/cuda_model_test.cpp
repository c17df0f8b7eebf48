// Whole models on the GPU: CudaContext logits against the golden fixtures (transformers on the
// same weights, tests/data/golden) and against the CPU Context on synthetic tiny models; greedy
// tokens; batched decode against single-sequence decode; graphs on against graphs off.
// Bound: 1e-2 relative L2 per logit row (f16 KV cache, bf16 GEMM operands in prefill).
#if OMNIRT_HAVE_CUDA

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>

#include "runtime/model/context.h"
#include "runtime/model/cuda_context.h"
#include "runtime/model/model.h"
#include "runtime/model/synthetic.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace omni {
namespace {

constexpr double kBound = 1e-2;

double row_error(const float* got, const float* want, int64_t n) { return test::rel_l2(got, want, static_cast<size_t>(n)); }

std::unique_ptr<Model> load_model(const std::string& path) {
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << path << ": " << m.status().to_string();
  return m.ok() ? std::move(m).value() : nullptr;
}

std::unique_ptr<CudaContext> make_gpu(const Model& m, int64_t n_ctx, CudaContextOptions opt = {}, int64_t n_batch = 256) {
  ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_batch = n_batch;
  auto c = CudaContext::create(m, cp, opt);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? std::move(c).value() : nullptr;
}

std::unique_ptr<Context> make_cpu(const Model& m, int64_t n_ctx) {
  ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_threads = 2;
  cp.kv_type = DType::kF16;
  auto c = Context::create(m, cp);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? std::move(c).value() : nullptr;
}

std::vector<int32_t> random_tokens(size_t n, int64_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> t(n);
  for (auto& x : t) x = dist(rng);
  return t;
}

// A synthetic tiny model written once per (arch, type) for this test binary run.
std::string tiny_model(const std::string& arch, DType type) {
  const std::string path = test::temp_path("cuda_tiny_" + arch + "_" + dtype_name(type) + ".gguf");
  if (!test::file_exists(path)) {
    SyntheticSpec spec;
    spec.arch = arch;
    spec.preset = "tiny";
    spec.type = type;
    spec.seed = 7;
    const Status st = create_synthetic_model(spec, path);
    EXPECT_TRUE(st.ok()) << st.to_string();
  }
  return path;
}

int32_t argmax(const float* x, int64_t n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

// ---- golden fixtures ---------------------------------------------------------------------

std::vector<std::string> golden_names() {
  std::ifstream f(test::source_path("tests/data/golden/index.json"));
  if (!f) return {};
  const auto index = nlohmann::json::parse(f);
  std::vector<std::string> names;
  for (const auto& n : index["fixtures"]) names.push_back(n.get<std::string>());
  return names;
}

TEST(CudaModel, GoldenLogitsWithinBf16Bound) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const auto names = golden_names();
  if (names.empty()) GTEST_SKIP() << "no golden fixtures (tests/data/golden/index.json)";
  for (const std::string& name : names) {
    std::ifstream f(test::source_path("tests/data/golden/" + name + ".json"));
    const auto meta = nlohmann::json::parse(f);
    const auto tokens = meta["tokens"].get<std::vector<int32_t>>();
    const int64_t n_vocab = meta["n_vocab"].get<int64_t>();
    const std::vector<float> want =
        test::read_f32(test::source_path("tests/data/golden/" + meta["logits"].get<std::string>()));
    auto model = load_model(test::source_path("tests/data/golden/" + meta["gguf"].get<std::string>()));
    ASSERT_TRUE(model);
    // Prefill of every token at once (GEMM path when there are more than 16).
    auto ctx = make_gpu(*model, 64);
    ASSERT_TRUE(ctx);
    ASSERT_TRUE(ctx->eval(tokens, true).ok());
    double worst = 0;
    size_t worst_row = 0;
    for (size_t r = 0; r < tokens.size(); ++r) {
      const double e = row_error(ctx->logits() + r * n_vocab, want.data() + r * n_vocab, n_vocab);
      if (e > worst) worst = e, worst_row = r;
    }
    EXPECT_LE(worst, kBound) << name << " prefill: worst row " << worst_row;
    // Token by token (the graph-captured decode step).
    auto dec = make_gpu(*model, 64);
    ASSERT_TRUE(dec);
    worst = 0;
    for (size_t r = 0; r < tokens.size(); ++r) {
      ASSERT_TRUE(dec->eval(std::span<const int32_t>(&tokens[r], 1), false).ok());
      const double e = row_error(dec->last_logits(), want.data() + r * n_vocab, n_vocab);
      if (e > worst) worst = e, worst_row = r;
    }
    EXPECT_LE(worst, kBound) << name << " decode: worst row " << worst_row;
    EXPECT_EQ(dec->graph_error(), "") << name;
    std::printf("[ info ] golden %-12s ok (prefill and decode within %.0e)\n", name.c_str(), kBound);
  }
}

// ---- against the CPU Context -------------------------------------------------------------

TEST(CudaModel, SyntheticTinyMatchesCpuContext) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (const char* arch : {"llama", "qwen2", "gemma3"}) {
    for (DType type : {DType::kF16, DType::kQ8_0, DType::kQ4_K}) {
      auto model = load_model(tiny_model(arch, type));
      ASSERT_TRUE(model);
      const int64_t n_vocab = model->hparams().n_vocab;
      auto cpu = make_cpu(*model, 128);
      auto gpu = make_gpu(*model, 128);
      ASSERT_TRUE(cpu && gpu);
      const std::vector<int32_t> prompt = random_tokens(70, n_vocab, 1);  // longer than gemma3's 64 window
      ASSERT_TRUE(cpu->eval(prompt, true).ok());
      ASSERT_TRUE(gpu->eval(prompt, true).ok());
      double worst = 0;
      for (size_t r = 0; r < prompt.size(); ++r)
        worst = std::max(worst, row_error(gpu->logits() + r * n_vocab, cpu->logits() + r * n_vocab, n_vocab));
      EXPECT_LE(worst, kBound) << arch << " " << dtype_name(type) << " prefill";
      const std::vector<int32_t> next = random_tokens(6, n_vocab, 2);
      for (size_t i = 0; i < next.size(); ++i) {
        ASSERT_TRUE(cpu->eval(std::span<const int32_t>(&next[i], 1), false).ok());
        ASSERT_TRUE(gpu->eval(std::span<const int32_t>(&next[i], 1), false).ok());
        EXPECT_LE(row_error(gpu->last_logits(), cpu->last_logits(), n_vocab), kBound)
            << arch << " " << dtype_name(type) << " decode step " << i;
      }
      EXPECT_EQ(gpu->n_past(), cpu->n_past());
      std::printf("[ info ] tiny %-6s %-5s prefill worst row error %.2e, has_gemm %d, graph_error '%s'\n", arch,
                  dtype_name(type), worst, int(gpu->has_gemm()), gpu->graph_error().c_str());
    }
  }
}

// Embedding-row input on the device equals the CPU Context's for the same rows.
TEST(CudaModel, EmbeddingInputMatchesCpuContext) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (const char* arch : {"llama", "gemma3"}) {
    auto model = load_model(tiny_model(arch, DType::kF16));
    ASSERT_TRUE(model);
    const int64_t n_vocab = model->hparams().n_vocab, d = model->hparams().n_embd;
    auto cpu = make_cpu(*model, 128);
    auto gpu = make_gpu(*model, 128);
    ASSERT_TRUE(cpu && gpu);
    std::vector<float> rows(size_t(9 * d));
    uint32_t state = 7;
    for (float& v : rows) {
      state = state * 1664525u + 1013904223u;
      v = float(int32_t(state >> 8) % 2001 - 1000) * 1e-3f;
    }
    ASSERT_TRUE(cpu->eval_embeddings(rows.data(), 9, true).ok());
    ASSERT_TRUE(gpu->eval_embeddings(rows.data(), 9, true).ok());
    double worst = 0;
    for (int64_t r = 0; r < 9; ++r)
      worst = std::max(worst, row_error(gpu->logits() + r * n_vocab, cpu->logits() + r * n_vocab, n_vocab));
    EXPECT_LE(worst, kBound) << arch;
    const std::vector<int32_t> next = random_tokens(3, n_vocab, 5);
    ASSERT_TRUE(cpu->eval(next, false).ok());
    ASSERT_TRUE(gpu->eval(next, false).ok());
    EXPECT_LE(row_error(gpu->last_logits(), cpu->last_logits(), n_vocab), kBound) << arch << " tokens after rows";
  }
}

// Greedy decoding on the device agrees with argmax of the CPU's logits for 32 steps. Random
// weights can produce near-ties; a disagreement is accepted only where the CPU's two
// candidates are within 1e-3 of the logit range, and the run stops there (it has diverged).
TEST(CudaModel, GreedyTokensAgreeWithCpuFor32Steps) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (const char* arch : {"llama", "qwen2", "gemma3"}) {
    auto model = load_model(tiny_model(arch, DType::kF16));
    ASSERT_TRUE(model);
    const int64_t n_vocab = model->hparams().n_vocab;
    auto cpu = make_cpu(*model, 128);
    auto gpu = make_gpu(*model, 128);
    ASSERT_TRUE(cpu && gpu);
    const std::vector<int32_t> prompt = random_tokens(8, n_vocab, 3);
    ASSERT_TRUE(cpu->eval(prompt, false).ok());
    ASSERT_TRUE(gpu->eval(prompt, false).ok());
    int32_t cpu_tok = argmax(cpu->last_logits(), n_vocab);
    ASSERT_EQ(argmax(gpu->last_logits(), n_vocab), cpu_tok) << arch << " after the prompt";
    int agreed = 0;
    for (int step = 0; step < 32; ++step) {
      auto g = gpu->decode_greedy(cpu_tok);
      ASSERT_TRUE(g.ok()) << g.status().to_string();
      ASSERT_TRUE(cpu->eval(std::span<const int32_t>(&cpu_tok, 1), false).ok());
      const float* cl = cpu->last_logits();
      const int32_t next = argmax(cl, n_vocab);
      if (*g != next) {
        const float range = *std::max_element(cl, cl + n_vocab) - *std::min_element(cl, cl + n_vocab);
        EXPECT_LE(cl[next] - cl[*g], 1e-3f * range)
            << arch << " step " << step << ": GPU picked " << *g << ", CPU " << next << " (logits " << cl[*g] << " vs "
            << cl[next] << ")";
        std::printf("[ info ] %s: near-tie at step %d, stopping the comparison\n", arch, step);
        break;
      }
      ++agreed;
      cpu_tok = next;
    }
    std::printf("[ info ] greedy %-6s: %d of 32 steps agree\n", arch, agreed);
  }
}

TEST(CudaModel, BatchedDecodeEqualsEachSequenceAlone) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto model = load_model(tiny_model("qwen2", DType::kQ8_0));
  ASSERT_TRUE(model);
  const int64_t n_vocab = model->hparams().n_vocab;
  const int n_seq = 5, steps = 6;
  std::vector<std::vector<int32_t>> streams;
  for (int s = 0; s < n_seq; ++s) streams.push_back(random_tokens(steps, n_vocab, 10 + s));
  CudaContextOptions opt;
  opt.n_seq = n_seq;
  auto batch = make_gpu(*model, 32, opt);
  ASSERT_TRUE(batch);
  std::vector<std::vector<float>> batch_logits(static_cast<size_t>(steps));
  for (int j = 0; j < steps; ++j) {
    std::vector<int32_t> toks(static_cast<size_t>(n_seq)), next(static_cast<size_t>(n_seq));
    for (int s = 0; s < n_seq; ++s) toks[s] = streams[s][j];
    ASSERT_TRUE(batch->decode_batch(toks, next, true).ok());
    ASSERT_EQ(batch->n_logit_rows(), n_seq);
    batch_logits[j].assign(batch->logits(), batch->logits() + n_seq * n_vocab);
    for (int s = 0; s < n_seq; ++s) EXPECT_EQ(next[s], argmax(batch->logits() + s * n_vocab, n_vocab));
  }
  // 1e-3: batched matvecs run on tensor cores with split bf16 operands (~1e-6 per matvec against
  // the one-token CUDA-core kernel), and the f16 KV cache turns such differences into whole f16
  // ulps (4.9e-4 relative) wherever a K/V value sits near a rounding boundary: measured on an H200
  // 1.0e-4..2.0e-4 from the third step on. The GPU-vs-CPU bound is 1e-2.
  auto single = make_gpu(*model, 32);
  ASSERT_TRUE(single);
  double worst = 0;
  for (int s = 0; s < n_seq; ++s) {
    ASSERT_TRUE(single->rewind(0).ok());
    for (int j = 0; j < steps; ++j) {
      ASSERT_TRUE(single->eval(std::span<const int32_t>(&streams[s][j], 1), false).ok());
      const double e = row_error(batch_logits[j].data() + s * n_vocab, single->last_logits(), n_vocab);
      worst = std::max(worst, e);
      EXPECT_LE(e, 1e-3) << "sequence " << s << " step " << j;
    }
  }
  std::printf("[ info ] batched vs alone: worst logits row error %.3g\n", worst);
}

TEST(CudaModel, GraphsOnAndOffAgreeAndErrorsLeaveStateUnchanged) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto model = load_model(tiny_model("llama", DType::kQ4_K));
  ASSERT_TRUE(model);
  const int64_t n_vocab = model->hparams().n_vocab;
  auto on = make_gpu(*model, 64);
  CudaContextOptions off_opt;
  off_opt.use_graphs = false;
  auto off = make_gpu(*model, 64, off_opt);
  ASSERT_TRUE(on && off);
  const std::vector<int32_t> toks = random_tokens(10, n_vocab, 20);
  for (int32_t t : toks) {
    ASSERT_TRUE(on->eval(std::span<const int32_t>(&t, 1), false).ok());
    ASSERT_TRUE(off->eval(std::span<const int32_t>(&t, 1), false).ok());
    EXPECT_LE(row_error(on->last_logits(), off->last_logits(), n_vocab), 1e-6);
  }
  EXPECT_EQ(on->graph_error(), "");
  // Errors: nothing changes.
  const int32_t bad = static_cast<int32_t>(n_vocab);
  EXPECT_EQ(on->eval(std::span<const int32_t>(&bad, 1), false).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(on->n_past(), 10);
  EXPECT_EQ(on->rewind(11).code(), StatusCode::kOutOfRange);
  ASSERT_TRUE(on->rewind(4).ok());
  EXPECT_EQ(on->n_past(), 4);
  // Rewound: replaying the same tokens gives the same logits as before.
  for (size_t i = 4; i < toks.size(); ++i) ASSERT_TRUE(on->eval(std::span<const int32_t>(&toks[i], 1), false).ok());
  EXPECT_LE(row_error(on->last_logits(), off->last_logits(), n_vocab), 1e-6);
  ContextParams f32kv;
  f32kv.kv_type = DType::kF32;
  EXPECT_EQ(CudaContext::create(*model, f32kv).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
