// Prefill GEMM fusion (CudaContextOptions::prefill_fused): q|k|v as one GEMM and gate|up as one
// must give the logits of the separate GEMMs. Models: a golden bf16 llama and a golden Q5_K
// qwen2 (dequantized fused weights), synthetic tiny qwen2 (q/k/v biases) and gemma3 (q/k
// norms, GELU) in bf16 and Q8_0. Prompts of 120 tokens in chunks of 17, 64 and 100 tokens, so
// GEMM chunks and a short matvec remainder (decode kernels over the weight views) both run.
// The independent reference (transformers, the CPU Context) is checked on the default (fused)
// path by tests/cuda_model_test.cpp; here the unfused path is the oracle.
// Bound: 1e-3 relative L2 per logit row, not bit equality: cuBLASLt may pick another algorithm
// (tile shape, split-K) for the wider GEMM, so f32 sums can differ in the last bit and then
// round to a different bf16/f16 operand in the next layer (one such flip moves a row by ~1e-4).
// The worst error is printed; wrong offsets or strides give errors of order 1.
#if OMNIRT_HAVE_CUDA

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/ref/ops_ref.h"
#include "runtime/model/cuda_context.h"
#include "runtime/model/model.h"
#include "runtime/model/synthetic.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace omni {
namespace {

constexpr double kFusedBound = 1e-3;
constexpr int64_t kPrompt = 120;

std::unique_ptr<Model> load(const std::string& path) {
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << path << ": " << m.status().to_string();
  return m.ok() ? std::move(m).value() : nullptr;
}

std::string synthetic(const std::string& arch, DType type) {
  const std::string path = test::temp_path("cuda_fused_" + arch + "_" + dtype_name(type) + ".gguf");
  if (!test::file_exists(path)) {
    SyntheticSpec spec;
    spec.arch = arch;
    spec.preset = "tiny";
    spec.type = type;
    spec.seed = 11;
    const Status st = create_synthetic_model(spec, path);
    EXPECT_TRUE(st.ok()) << st.to_string();
  }
  return path;
}

std::unique_ptr<CudaContext> make(const Model& m, int64_t n_batch, bool fused) {
  ContextParams cp;
  cp.n_ctx = 128;
  cp.n_batch = n_batch;
  CudaContextOptions opt;
  opt.prefill_fused = fused;
  auto c = CudaContext::create(m, cp, opt);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Evaluates the same prompt with and without fusion for each chunk size; every logit of every
// row is compared (the fused context's all_logits rows, NaN-checked).
void expect_fused_equals_unfused(const Model& m, const std::string& name, bool expect_fusion) {
  const int64_t n_vocab = m.hparams().n_vocab;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> tokens(kPrompt);
  for (auto& t : tokens) t = dist(rng);
  for (int64_t chunk : {17, 64, 100}) {
    auto fused = make(m, chunk, true);
    auto plain = make(m, chunk, false);
    ASSERT_TRUE(fused && plain) << name;
    if (!fused->has_gemm()) GTEST_SKIP() << "no cuBLAS: prefill takes the matvec kernels, nothing is fused";
    EXPECT_FALSE(plain->prefill_fused()) << name;
    if (expect_fusion) {
      EXPECT_TRUE(fused->prefill_fused()) << name << ": no layer was fused";
    }
    ASSERT_TRUE(fused->eval(tokens, true).ok()) << name;
    ASSERT_TRUE(plain->eval(tokens, true).ok()) << name;
    ASSERT_EQ(fused->n_logit_rows(), kPrompt);
    double worst = 0;
    int64_t worst_row = 0;
    for (int64_t r = 0; r < kPrompt; ++r) {
      const float* a = fused->logits() + r * n_vocab;
      const float* b = plain->logits() + r * n_vocab;
      for (int64_t i = 0; i < n_vocab; ++i) ASSERT_TRUE(std::isfinite(a[i])) << name << " row " << r << " logit " << i;
      const double e = test::rel_l2(a, b, static_cast<size_t>(n_vocab));
      if (e > worst) worst = e, worst_row = r;
    }
    EXPECT_LE(worst, kFusedBound) << name << " chunk " << chunk << ": worst row " << worst_row;
    std::printf("[ info ] fused %-14s chunk %3lld: fused=%d worst rel L2 %.2e (row %lld)\n", name.c_str(),
                (long long)chunk, fused->prefill_fused() ? 1 : 0, worst, (long long)worst_row);
  }
}

// ---- the two kernels the fused path adds ---------------------------------------------------
// split_cols: exact copies (every output element poisoned first, every one compared).
TEST(CudaPrefillFused, SplitColsCopiesEachColumnRange) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  // {96, 33, 33}: one float per thread; {128, 32, 32}: float4 (widths multiples of 4).
  for (const auto& w : {std::array<int64_t, 3>{96, 33, 33}, std::array<int64_t, 3>{128, 32, 32}}) {
    const std::string widths = std::to_string(w[0]) + "," + std::to_string(w[1]) + "," + std::to_string(w[2]);
    const int64_t rows = 37, total = w[0] + w[1] + w[2];
    const std::vector<float> src = test::random_floats(size_t(rows * total), 3);
    test::DeviceArray<float> dsrc(src);
    std::vector<std::unique_ptr<test::DeviceArray<float>>> dst;
    cuda::SplitColsParams p;
    p.src = dsrc.get();
    p.rows = rows;
    for (int j = 0; j < 3; ++j) {
      dst.push_back(std::make_unique<test::DeviceArray<float>>(size_t(rows * w[j])));
      dst.back()->poison();
      p.dst[j] = dst.back()->get();
      p.width[j] = w[j];
    }
    OMNI_CUDA_OK(cuda::launch_split_cols(p, nullptr));
    int64_t off = 0;
    for (int j = 0; j < 3; ++j) {
      const std::vector<float> got = dst[size_t(j)]->download();
      int64_t differ = 0;
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t i = 0; i < w[j]; ++i)
          differ += std::memcmp(&got[size_t(t * w[j] + i)], &src[size_t(t * total + off + i)], 4) != 0;
      EXPECT_EQ(differ, 0) << "part " << j << " of widths " << widths;
      off += w[j];
    }
    cuda::SplitColsParams overlap = p;
    overlap.dst[1] = dsrc.get() + 5;
    EXPECT_FALSE(cuda::check_params(overlap).ok());
    EXPECT_EQ(cuda::launch_split_cols(overlap, nullptr), cudaErrorInvalidValue);
    cuda::SplitColsParams missing = p;
    missing.dst[2] = nullptr;
    EXPECT_FALSE(cuda::check_params(missing).ok());
  }
}

// glu_rows over [rows, ld] with ld >= 2n: against ref::silu/gelu_tanh times up (1e-5, as
// CudaGlu), and bit for bit launch_glu on the same halves copied out contiguously.
TEST(CudaPrefillFused, GluRowsMatchesReferenceAndGlu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t rows = 19, n = 200;
  for (int64_t ld : {2 * n, 2 * n + 3}) {
    for (cuda::GluAct act : {cuda::GluAct::kSilu, cuda::GluAct::kGeluTanh}) {
      const std::vector<float> gu = test::random_floats(size_t(rows * ld), 9, -4.0f, 4.0f);
      std::vector<float> gate(size_t(rows * n)), up(size_t(rows * n));
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t i = 0; i < n; ++i) {
          gate[size_t(t * n + i)] = gu[size_t(t * ld + i)];
          up[size_t(t * n + i)] = gu[size_t(t * ld + n + i)];
        }
      std::vector<float> want = gate;
      if (act == cuda::GluAct::kSilu)
        ref::silu(want.data(), rows * n);
      else
        ref::gelu_tanh(want.data(), rows * n);
      for (size_t i = 0; i < want.size(); ++i) want[i] *= up[i];
      test::DeviceArray<float> dgu(gu), dout(size_t(rows * n)), dg(gate), du(up), dsep(size_t(rows * n));
      dout.poison();
      dsep.poison();
      OMNI_CUDA_OK(cuda::launch_glu_rows(cuda::GluRowsParams{dgu.get(), dout.get(), rows, n, ld, act}, nullptr));
      OMNI_CUDA_OK(cuda::launch_glu(cuda::GluParams{dg.get(), du.get(), dsep.get(), rows * n, act}, nullptr));
      const std::vector<float> got = dout.download(), sep = dsep.download();
      const std::string what = std::string(act == cuda::GluAct::kSilu ? "silu" : "gelu") + " ld " + std::to_string(ld);
      EXPECT_TRUE(test::close_rel(got, want, 1e-5, what));
      EXPECT_EQ(std::memcmp(got.data(), sep.data(), got.size() * 4), 0) << what << ": differs from launch_glu";
    }
  }
  test::DeviceArray<float> buf(size_t(rows * 2 * n));
  EXPECT_FALSE(cuda::check_params(cuda::GluRowsParams{buf.get(), buf.get() + 10, rows, n, 2 * n}).ok());  // overlap
  EXPECT_FALSE(cuda::check_params(cuda::GluRowsParams{buf.get(), nullptr, rows, n, 2 * n}).ok());
  test::DeviceArray<float> out(size_t(rows * n));
  EXPECT_FALSE(cuda::check_params(cuda::GluRowsParams{buf.get(), out.get(), rows, n, 2 * n - 1}).ok());  // ld < 2n
  EXPECT_EQ(cuda::launch_glu_rows(cuda::GluRowsParams{buf.get(), out.get(), rows, n, 2 * n - 1}, nullptr),
            cudaErrorInvalidValue);
}

// ---- whole models --------------------------------------------------------------------------
TEST(CudaPrefillFused, GoldenModelsMatchUnfused) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (const char* name : {"llama_bf16", "qwen2_q5_k"}) {
    const std::string path = test::source_path(std::string("tests/data/golden/") + name + ".gguf");
    if (!test::file_exists(path)) GTEST_SKIP() << "no golden fixture " << path;
    auto model = load(path);
    ASSERT_TRUE(model);
    expect_fused_equals_unfused(*model, name, /*expect_fusion=*/true);  // 64/256-wide: parts fuse
  }
}

TEST(CudaPrefillFused, SyntheticQwenAndGemmaMatchUnfused) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (const char* arch : {"qwen2", "gemma3"}) {
    for (DType type : {DType::kBF16, DType::kQ8_0}) {
      auto model = load(synthetic(arch, type));
      ASSERT_TRUE(model);
      // tiny: n_embd 256, so every part of every type is whole 16-byte units: all layers fuse.
      expect_fused_equals_unfused(*model, std::string(arch) + "_" + dtype_name(type), /*expect_fusion=*/true);
    }
  }
}

TEST(CudaPrefillFused, SmallBatchContextsDoNotFuse) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto model = load(synthetic("qwen2", DType::kBF16));
  ASSERT_TRUE(model);
  auto ctx = make(*model, 16, true);  // chunks of <= 16 tokens: matvec kernels only
  ASSERT_TRUE(ctx);
  EXPECT_FALSE(ctx->prefill_fused());
}

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
