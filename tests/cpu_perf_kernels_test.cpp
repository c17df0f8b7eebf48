// The performance paths of the CPU kernels (docs/PERFORMANCE.md) against the scalar ref::
// oracle, on every ISA this machine has, at sizes that exercise every remainder:
//  * prefill GEMM: the R x T register tile (4 x 6 with AVX-512, 2 x 2 with AVX2) with row and
//    token counts that are not multiples of R, T or the 16-row dequantization tile, and n_in
//    with a tail past the last multiple of 16;
//  * decode dots of the d-factored, prefetching Q8_0 / Q4_0 / Q5_0 path (Q5_0's high bits come
//    from an AVX-512 byte mask), with odd block counts;
//  * the machine probes: results independent of the thread count, FLOP count as documented.
// Bound, as in kernels_test.cpp: |y - ref| <= 2e-6 * sqrt(n_in) * sum_i |w_i x_i| (ref sums
// in double; f32 FMA accumulation error grows ~sqrt(n)).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/probe_cpu.h"
#include "kernels/ref/ops_ref.h"
#include "tests/test_util.h"

namespace omni {
namespace {

void check_matmul(DType t, int64_t n_out, int64_t n_in, int64_t n_tok, uint32_t seed) {
  const auto wsrc = test::randn(n_out * n_in, seed);
  const int64_t rb = dtype_row_bytes(t, n_in);
  std::vector<uint8_t> w(static_cast<size_t>(rb * n_out));
  for (int64_t o = 0; o < n_out; ++o) ref::quantize_row(t, wsrc.data() + o * n_in, w.data() + o * rb, n_in);
  std::vector<float> wf(static_cast<size_t>(n_out * n_in));
  for (int64_t o = 0; o < n_out; ++o) ref::dequantize_row(t, w.data() + o * rb, wf.data() + o * n_in, n_in);
  const auto x = test::randn(n_tok * n_in, seed + 1);
  std::vector<float> want(static_cast<size_t>(n_tok * n_out));
  ref::matmul(t, w.data(), n_out, n_in, x.data(), n_tok, want.data());
  for (CpuIsa isa : test::cpu_isas()) {
    ASSERT_TRUE(cpu::set_isa(isa));
    for (int nt : {1, 2, 3}) {
      ThreadPool pool(nt);
      std::vector<float> scratch(static_cast<size_t>(cpu::matmul_scratch_floats(n_in, nt)), std::nanf(""));
      std::vector<float> got(static_cast<size_t>(n_tok * n_out), std::nanf(""));
      cpu::matmul(pool, t, w.data(), n_out, n_in, x.data(), n_tok, got.data(), scratch.data());
      int bad = 0;
      for (int64_t tk = 0; tk < n_tok; ++tk)
        for (int64_t o = 0; o < n_out; ++o) {
          double sum_abs = 0;
          for (int64_t i = 0; i < n_in; ++i) sum_abs += std::fabs(wf[o * n_in + i] * x[tk * n_in + i]);
          const double tol = 2e-6 * std::sqrt(static_cast<double>(n_in)) * sum_abs + 1e-30;
          const float g = got[tk * n_out + o], r = want[tk * n_out + o];
          if (!(std::fabs(static_cast<double>(g) - r) <= tol) && ++bad <= 3)
            ADD_FAILURE() << dtype_name(t) << " " << cpu_isa_name(isa) << " threads " << nt << " " << n_out
                          << "x" << n_in << " n_tok " << n_tok << " y[" << tk << "," << o << "] = " << g
                          << " want " << r;
        }
      ASSERT_EQ(bad, 0);
    }
  }
  cpu::set_isa(test::cpu_isas().back());
}

TEST(CpuPerfKernelsTest, PrefillGemmTileRemainders) {
  // 45 rows: 2 full 16-row tiles + 13 (3 x 4 + 1); tokens 13 = 2 x 6 + 1, 64 = 10 x 6 + 4;
  // n_in 1037 = 64 x 16 + 13 for the plain types, whole blocks for the quantized ones.
  for (int64_t n_tok : {5, 6, 13, 64}) {
    check_matmul(DType::kF32, 45, 1037, n_tok, 21);
    check_matmul(DType::kF16, 45, 1037, n_tok, 22);
    check_matmul(DType::kBF16, 45, 1037, n_tok, 23);
    check_matmul(DType::kQ8_0, 45, 32 * 33, n_tok, 24);
    check_matmul(DType::kQ6_K, 45, 256 * 3, n_tok, 25);
  }
}

TEST(CpuPerfKernelsTest, DecodeDotsOddBlockCounts) {
  for (int64_t blocks : {1, 2, 3, 21}) {
    for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0}) check_matmul(t, 67, 32 * blocks, 1, 31);
  }
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) check_matmul(t, 67, 256 * 3, 1, 32);
}

TEST(CpuPerfKernelsTest, StreamReadIndependentOfThreadsAndSizes) {
  // Chunks are split per thread at page multiples and folded with the widest loads; sizes
  // with every kind of tail must give a deterministic result and stay in bounds (the ASan
  // preset checks the latter).
  std::vector<uint8_t> buf(3 * 4096 + 77, 0x5A);
  for (CpuIsa isa : test::cpu_isas()) {
    ASSERT_TRUE(cpu::set_isa(isa));
    for (int nt : {1, 2, 3}) {
      ThreadPool pool(nt);
      for (size_t n : {size_t{0}, size_t{1}, size_t{255}, buf.size()}) {
        const uint64_t a = cpu::stream_read(pool, buf.data(), n);
        EXPECT_EQ(a, cpu::stream_read(pool, buf.data(), n)) << cpu_isa_name(isa) << " " << nt << " " << n;
      }
    }
  }
  cpu::set_isa(test::cpu_isas().back());
}

TEST(CpuPerfKernelsTest, FmaBurstCountsFlops) {
  for (CpuIsa isa : test::cpu_isas()) {
    ASSERT_TRUE(cpu::set_isa(isa));
    ThreadPool pool(2);
    const double lanes = isa == CpuIsa::kAvx512 ? 16 * 12 : isa == CpuIsa::kAvx2 ? 8 * 12 : 8;
    EXPECT_EQ(cpu::fma_burst(pool, 1000), 2.0 * lanes * 1000 * 2) << cpu_isa_name(isa);
  }
  cpu::set_isa(test::cpu_isas().back());
}

}  // namespace
}  // namespace omni
