// Every cpu:: op against the scalar ref:: oracle, on every ISA this machine has, with awkward
// sizes; outputs are pre-filled with NaN so an element the kernel forgets fails the check.
// Error bounds (why they are what they are):
//  * matmul: |y - ref| <= 2e-6 * sqrt(n_in) * sum_i |w_i x_i| + 1e-30. Weights decode exactly;
//    the only difference is f32 FMA accumulation (ref sums in double), whose error grows ~sqrt(n).
//  * rms_norm, rope, softmax, silu, gelu_tanh, gelu_erf: relative 1e-5 (+ abs 1e-6 for values near 0):
//    f32 arithmetic and a polynomial exp good to a few ulp.
//  * mul, add, scale: exact (the same single f32 operation).
//  * attention: |out - ref| <= 2e-5 * max|v| (f32 dots, softmax and weighted sum).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/ops_cpu.h"
#include "kernels/ref/ops_ref.h"
#include "tests/test_util.h"

namespace omni {
namespace {

std::vector<float> nans(int64_t n) { return std::vector<float>(static_cast<size_t>(n), std::nanf("")); }

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rel,
                  double abs, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = abs + rel * std::fabs(want[i]);
    if (!(std::fabs(static_cast<double>(got[i]) - want[i]) <= tol) && ++bad <= 3)
      ADD_FAILURE() << what << " [" << i << "]: got " << got[i] << " want " << want[i];
  }
  EXPECT_EQ(bad, 0) << what;
}

// cpu::argmax picks what std::max_element picks: the first of equal maxima (also +0 / -0), never
// a NaN unless x[0] is one, at every length around the 16-lane blocks, and -1 for n <= 0.
TEST(KernelsTest, ArgmaxIsMaxElement) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> small(-3, 3);  // many ties
  const float nan = std::nanf("");
  for (int64_t n : {1, 2, 15, 16, 17, 31, 33, 100, 262144 + 7}) {
    for (int trial = 0; trial < 12; ++trial) {
      std::vector<float> x(static_cast<size_t>(n));
      for (float& v : x) v = static_cast<float>(small(rng));
      const auto at = [&](int64_t i) -> float& { return x[static_cast<size_t>(i % n)]; };
      if (trial == 1) at(n / 2) = nan;                                    // a NaN inside
      if (trial == 2) at(0) = nan;                                        // a NaN first
      if (trial == 3) std::fill(x.begin(), x.end(), -INFINITY);           // all -inf
      if (trial == 4) { std::fill(x.begin(), x.end(), -1.0f); at(n - 1) = 0.0f; at(n / 3) = -0.0f; }
      if (trial == 5) at(n - 1) = INFINITY;                               // the max in the tail
      if (trial == 6) for (float& v : x) v = nan;                         // only NaNs
      const int64_t want = std::max_element(x.begin(), x.end()) - x.begin();
      EXPECT_EQ(cpu::argmax(x.data(), n), want) << "n " << n << " trial " << trial;
    }
  }
  EXPECT_EQ(cpu::argmax(nullptr, 0), -1);
}

TEST(ThreadPoolTest, ParallelForCoversRangeExactlyOnce) {
  for (int nt : {1, 2, 3, 5}) {
    ThreadPool pool(nt);
    EXPECT_EQ(pool.n_threads(), nt);
    for (int run = 0; run < 2000; ++run) {
      const int64_t n = 1 + run % 97;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int64_t> sum{0};
      pool.parallel_for(n, 1 + run % 4, [&](int64_t b, int64_t e, int ti) {
        ASSERT_GE(ti, 0);
        ASSERT_LT(ti, nt);
        for (int64_t i = b; i < e; ++i) {
          hits[static_cast<size_t>(i)]++;
          sum += i;
        }
      });
      ASSERT_EQ(sum.load(), n * (n - 1) / 2) << "threads " << nt << " run " << run;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1);
    }
  }
}

// The balanced loop: every index exactly once, ranges chunk-aligned and within [0, n), for
// chunks that do and do not divide n, with one thread made slow so that the others take over
// its share, and inside a Spin (workers polling without sleeping) as well as outside.
TEST(ThreadPoolTest, BalancedParallelForCoversRangeExactlyOnce) {
  for (int nt : {1, 2, 3, 5}) {
    ThreadPool pool(nt);
    for (int run = 0; run < 600; ++run) {
      std::optional<ThreadPool::Spin> spin;
      if (run % 2) spin.emplace(pool);
      const int64_t n = 1 + (run * 37) % 301, chunk = 1 + run % 7;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int64_t> sum{0};
      pool.parallel_for_balanced(n, chunk, [&](int64_t b, int64_t e, int ti) {
        ASSERT_GE(ti, 0);
        ASSERT_LT(ti, nt);
        ASSERT_GE(b, 0);
        ASSERT_LT(b, e);
        ASSERT_LE(e, n);
        ASSERT_EQ(b % chunk, 0);
        ASSERT_TRUE(e - b == chunk || e == n);
        if (nt > 1 && ti == nt - 1 && run % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
        for (int64_t i = b; i < e; ++i) {
          hits[static_cast<size_t>(i)]++;
          sum += i;
        }
      });
      ASSERT_EQ(sum.load(), n * (n - 1) / 2) << "threads " << nt << " run " << run;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1);
    }
  }
}

// Degenerate arguments: an empty range calls nothing, a chunk below 1 counts as 1.
TEST(ThreadPoolTest, BalancedParallelForEmptyRangeAndZeroChunk) {
  ThreadPool pool(2);
  std::atomic<int> calls{0};
  pool.parallel_for_balanced(0, 4, [&](int64_t, int64_t, int) { calls++; });
  pool.parallel_for_balanced(-3, 4, [&](int64_t, int64_t, int) { calls++; });
  EXPECT_EQ(calls.load(), 0);
  std::atomic<int64_t> covered{0};
  pool.parallel_for_balanced(10, 0, [&](int64_t b, int64_t e, int) {
    EXPECT_EQ(e - b, 1);
    covered += e - b;
  });
  EXPECT_EQ(covered.load(), 10);
}

// A slow thread does not hold the others back: thread 1 sleeps 50 ms in each of its units,
// thread 0 needs 0.2 ms per unit; thread 0 takes what is left of thread 1's share. With
// parallel_for's fixed halves the loop would take 32 x 50 ms = 1.6 s.
TEST(ThreadPoolTest, BalancedParallelForLetsOthersTakeASlowThreadsShare) {
  ThreadPool pool(2);
  const int64_t n = 64;
  std::atomic<int> by_thread[2] = {0, 0};
  const auto t0 = std::chrono::steady_clock::now();
  pool.parallel_for_balanced(n, 1, [&](int64_t b, int64_t e, int ti) {
    std::this_thread::sleep_for(ti == 1 ? std::chrono::microseconds(50000) : std::chrono::microseconds(200));
    by_thread[ti] += static_cast<int>(e - b);
  });
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(by_thread[0].load() + by_thread[1].load(), n);
  // A few units for thread 1 only if thread 0 is descheduled for long on a loaded machine.
  EXPECT_LE(by_thread[1].load(), 6);
  EXPECT_LT(ms, 800.0);
}

TEST(ThreadPoolTest, RunCallsEveryThreadIndexOnce) {
  ThreadPool pool(4);
  for (int run = 0; run < 500; ++run) {
    std::atomic<int> mask{0};
    pool.run([](void* ctx, int ti, int nt) {
      EXPECT_EQ(nt, 4);
      static_cast<std::atomic<int>*>(ctx)->fetch_or(1 << ti);
    }, &mask);
    ASSERT_EQ(mask.load(), 0xF);
  }
}

// Weights for a test: random Gaussian rows encoded with ref::quantize_row (K types, Q*_0,
// F16, BF16), or raw f32.
std::vector<uint8_t> make_weights(DType t, int64_t n_out, int64_t n_in, uint32_t seed) {
  const auto w = test::randn(n_out * n_in, seed);
  const int64_t rb = dtype_row_bytes(t, n_in);
  std::vector<uint8_t> out(static_cast<size_t>(rb * n_out));
  for (int64_t o = 0; o < n_out; ++o) ref::quantize_row(t, w.data() + o * n_in, out.data() + o * rb, n_in);
  return out;
}

TEST(KernelsTest, MatmulMatchesRefEveryTypeIsaAndTokenCount) {
  struct Shape {
    DType t;
    int64_t n_in;
  } shapes[] = {{DType::kF32, 67},   {DType::kF16, 67},   {DType::kF16, 80},   {DType::kBF16, 83},
                {DType::kQ8_0, 96},  {DType::kQ4_0, 160}, {DType::kQ5_0, 96},
                {DType::kQ4_K, 512}, {DType::kQ5_K, 256}, {DType::kQ6_K, 768}};
  const int64_t n_out = 37;
  const auto isas = test::cpu_isas();
  for (const auto& s : shapes) {
    const auto w = make_weights(s.t, n_out, s.n_in, 11);
    const int64_t rb = dtype_row_bytes(s.t, s.n_in);
    std::vector<float> wf(static_cast<size_t>(n_out * s.n_in));
    for (int64_t o = 0; o < n_out; ++o) ref::dequantize_row(s.t, w.data() + o * rb, wf.data() + o * s.n_in, s.n_in);
    // 1: the decode dot; 2-64 Q8_0 and F16 (n_in a multiple of 16): the fused tile; 33, 130: the
    // decoded tile with whole and partial register tiles.
    for (int64_t n_tok : {1, 2, 3, 7, 33, 130}) {
      const auto x = test::randn(n_tok * s.n_in, 5 + static_cast<uint32_t>(n_tok));
      std::vector<float> want(static_cast<size_t>(n_tok * n_out));
      ref::matmul(s.t, w.data(), n_out, s.n_in, x.data(), n_tok, want.data());
      for (CpuIsa isa : isas) {
        ASSERT_TRUE(cpu::set_isa(isa));
        for (int nt : {1, 3}) {
          ThreadPool pool(nt);
          std::vector<float> scratch = nans(cpu::matmul_scratch_floats(s.n_in, nt));
          std::vector<float> got = nans(n_tok * n_out);
          cpu::matmul(pool, s.t, w.data(), n_out, s.n_in, x.data(), n_tok, got.data(), scratch.data());
          int bad = 0;
          for (int64_t t = 0; t < n_tok; ++t)
            for (int64_t o = 0; o < n_out; ++o) {
              double sum_abs = 0;
              for (int64_t i = 0; i < s.n_in; ++i) sum_abs += std::fabs(wf[o * s.n_in + i] * x[t * s.n_in + i]);
              const double tol = 2e-6 * std::sqrt(static_cast<double>(s.n_in)) * sum_abs + 1e-30;
              const float g = got[t * n_out + o], r = want[t * n_out + o];
              if (!(std::fabs(static_cast<double>(g) - r) <= tol) && ++bad <= 3)
                ADD_FAILURE() << dtype_name(s.t) << " " << cpu_isa_name(isa) << " threads " << nt
                              << " n_tok " << n_tok << " y[" << t << "," << o << "] = " << g << " want " << r;
            }
          ASSERT_EQ(bad, 0);
        }
      }
    }
  }
  cpu::set_isa(isas.back());
}

// The fused small-batch kernel (Q8_0, F16; 2..64 tokens, AVX-512) claims the bits of the
// decoded-tile path: the same decode and the same FMA order per output. Checked by running the
// same tokens as a 7-token call (fused) and inside a 130-token call (tiled).
TEST(KernelsTest, FusedSmallBatchIsBitIdenticalToTheTiledPath) {
  if (!cpu::set_isa(CpuIsa::kAvx512)) GTEST_SKIP() << "no AVX-512 here";
  for (DType t : {DType::kQ8_0, DType::kF16}) {
    const int64_t n_out = 37, n_in = 416;
    const auto w = make_weights(t, n_out, n_in, 12);
    const auto x = test::randn(130 * n_in, 13);
    ThreadPool pool(2);
    std::vector<float> scratch = nans(cpu::matmul_scratch_floats(n_in, 2));
    std::vector<float> small = nans(7 * n_out), big = nans(130 * n_out);
    cpu::matmul(pool, t, w.data(), n_out, n_in, x.data(), 7, small.data(), scratch.data());
    cpu::matmul(pool, t, w.data(), n_out, n_in, x.data(), 130, big.data(), scratch.data());
    EXPECT_EQ(std::memcmp(small.data(), big.data(), small.size() * sizeof(float)), 0) << dtype_name(t);
  }
  cpu::set_isa(test::cpu_isas().back());
}

TEST(KernelsTest, MatmulRowsWritesOnlyItsRange) {
  const DType t = DType::kQ4_K;
  const int64_t n_out = 20, n_in = 256, n_tok = 130;
  const auto w = make_weights(t, n_out, n_in, 3);
  const auto x = test::randn(n_tok * n_in, 4);
  std::vector<float> want(static_cast<size_t>(n_tok * n_out));
  ref::matmul(t, w.data(), n_out, n_in, x.data(), n_tok, want.data());
  for (CpuIsa isa : test::cpu_isas()) {
    ASSERT_TRUE(cpu::set_isa(isa));
    for (int64_t nt : {1, 3, 130}) {
      std::vector<float> scratch = nans(cpu::matmul_scratch_floats(n_in, 1));
      std::vector<float> got = nans(n_tok * n_out);
      cpu::matmul_rows(t, w.data(), 5, 17, n_in, x.data(), nt, n_out, got.data(), scratch.data());
      for (int64_t tt = 0; tt < n_tok; ++tt)
        for (int64_t o = 0; o < n_out; ++o) {
          const float g = got[tt * n_out + o];
          if (tt < nt && o >= 5 && o < 17) {
            EXPECT_NEAR(g, want[tt * n_out + o], 1e-4) << cpu_isa_name(isa) << " " << tt << "," << o;
          } else {
            EXPECT_TRUE(std::isnan(g)) << "wrote outside its range at " << tt << "," << o;
          }
        }
    }
  }
}

TEST(KernelsTest, ElementwiseOpsMatchRef) {
  for (CpuIsa isa : test::cpu_isas()) {
    ASSERT_TRUE(cpu::set_isa(isa));
    const std::string tag = cpu_isa_name(isa);
    for (int64_t n : {1, 15, 16, 17, 640, 1031}) {
      const auto x = test::randn(n, 100 + static_cast<uint32_t>(n), 3.0f);
      const auto w = test::randn(n, 200 + static_cast<uint32_t>(n));
      for (const float* wp : {w.data(), static_cast<const float*>(nullptr)}) {
        std::vector<float> want(x.size()), got = nans(n);
        ref::rms_norm(x.data(), wp, want.data(), n, 1e-6f);
        cpu::rms_norm(x.data(), wp, got.data(), n, 1e-6f);
        expect_close(got, want, 1e-5, 1e-6, tag + " rms_norm");
      }
      {
        std::vector<float> want = x, got = x;
        ref::softmax(want.data(), n);
        cpu::softmax(got.data(), n);
        expect_close(got, want, 1e-5, 1e-9, tag + " softmax");
      }
      {
        std::vector<float> want = x, got = x;
        ref::silu(want.data(), n);
        cpu::silu(got.data(), n);
        expect_close(got, want, 1e-5, 1e-6, tag + " silu");
      }
      {
        std::vector<float> want = x, got = x;
        ref::gelu_tanh(want.data(), n);
        cpu::gelu_tanh(got.data(), n);
        expect_close(got, want, 1e-5, 1e-6, tag + " gelu_tanh");
      }
      {
        std::vector<float> want = x, got = x;
        ref::gelu_erf(want.data(), n);
        cpu::gelu_erf(got.data(), n);
        expect_close(got, want, 1e-5, 1e-6, tag + " gelu_erf");
      }
      {  // the limits and the special values, in the vector body and in the scalar tail
        std::vector<float> v(static_cast<size_t>(n), 40.0f);
        const float specials[] = {INFINITY, NAN, 40.0f, -40.0f, 1e30f, -1e30f};
        for (size_t i = 0; i < v.size(); ++i) v[i] = specials[i % 6];
        cpu::gelu_erf(v.data(), n);
        for (size_t i = 0; i < v.size(); ++i) {
          const float in = specials[i % 6];
          if (std::isnan(in)) EXPECT_TRUE(std::isnan(v[i])) << tag << " gelu_erf(NaN) at " << i;
          else if (in > 0) EXPECT_EQ(v[i], in) << tag << " gelu_erf(" << in << ") at " << i;
          else EXPECT_LE(std::fabs(v[i]), 1e-30f) << tag << " gelu_erf(" << in << ") at " << i;
        }
      }
      {
        std::vector<float> want(x.size()), got = nans(n);
        ref::mul(x.data(), w.data(), want.data(), n);
        cpu::mul(x.data(), w.data(), got.data(), n);
        expect_close(got, want, 0, 0, tag + " mul");
        ref::add(x.data(), w.data(), want.data(), n);
        cpu::add(x.data(), w.data(), got.data(), n);
        expect_close(got, want, 0, 0, tag + " add");
        want = x;
        got = x;
        ref::scale(want.data(), 0.37f, n);
        cpu::scale(got.data(), 0.37f, n);
        expect_close(got, want, 0, 0, tag + " scale");
      }
    }
  }
}

TEST(KernelsTest, RopeMatchesRefBothStyles) {
  const int64_t n_heads = 3, head_dim = 72;
  for (CpuIsa isa : test::cpu_isas()) {
    ASSERT_TRUE(cpu::set_isa(isa));
    for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox})
      for (int64_t rot_dim : {head_dim, int64_t{32}})
        for (int64_t pos : {0, 1, 17, 5000, 100000}) {
          const auto x = test::randn(n_heads * head_dim, static_cast<uint32_t>(pos + rot_dim));
          std::vector<float> want = x, got = x;
          ref::rope(want.data(), n_heads, head_dim, rot_dim, pos, 10000.0f, 0.5f, style);
          cpu::rope(got.data(), n_heads, head_dim, rot_dim, pos, 10000.0f, 0.5f, style);
          expect_close(got, want, 1e-5, 1e-6,
                       std::string(cpu_isa_name(isa)) + " rope style " + std::to_string(static_cast<int>(style)));
          if (rot_dim < head_dim) {  // dims past rot_dim are untouched
            for (int64_t h = 0; h < n_heads; ++h)
              for (int64_t d = rot_dim; d < head_dim; ++d) ASSERT_EQ(got[h * head_dim + d], x[h * head_dim + d]);
          }
          // rope_qk: q (n_heads) and k (2 heads) in one call, bit for bit the two rope() calls.
          const auto kx = test::randn(2 * head_dim, static_cast<uint32_t>(pos + 7));
          std::vector<float> q2 = x, k2 = kx, k1 = kx;
          cpu::rope(k1.data(), 2, head_dim, rot_dim, pos, 10000.0f, 0.5f, style);
          cpu::rope_qk(q2.data(), n_heads, k2.data(), 2, head_dim, rot_dim, pos, 10000.0f, 0.5f, style);
          ASSERT_EQ(q2, got);
          ASSERT_EQ(k2, k1);
        }
  }
}

TEST(KernelsTest, RopeRotatesDocumentedPairs) {
  // One head, rot_dim 4, pos 1, base 100: theta_0 = 1, theta_1 = 100^(-1/2) = 0.1.
  for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
    float x[4] = {1, 0, 0, 0};
    ref::rope(x, 1, 4, 4, 1, 100.0f, 1.0f, style);
    const int partner = style == RopeStyle::kNeox ? 2 : 1;
    EXPECT_NEAR(x[0], std::cos(1.0), 1e-6);
    EXPECT_NEAR(x[partner], std::sin(1.0), 1e-6);
  }
}

TEST(KernelsTest, AttentionMatchesRef) {
  struct Case {
    int64_t n_q, n_head, n_kv_head, head_dim, pos0, window;
    float softcap;
  } cases[] = {
      {1, 8, 2, 40, 13, 0, 0.0f},     // decode, GQA 4:1
      {1, 4, 1, 256, 30, 8, 0.0f},    // decode, sliding window, Gemma-like head
      // Grouped decode over several 256-position chunks (merged partial softmaxes): Gemma's
      // global layer at 700 positions; a group of 7 (a 4-head and a 3-head pass) with a head
      // dim that is not a multiple of 32 (or 16), a softcap and a window ending mid-chunk;
      // exactly one chunk plus one position.
      {1, 4, 1, 256, 700, 0, 0.0f},
      {1, 14, 2, 72, 600, 300, 20.0f},
      {1, 6, 3, 33, 256, 0, 0.0f},
      // Grouped prefill (per query and KV head): a window inside the chunk, a group of 7.
      {9, 8, 2, 40, 20, 6, 0.0f},
      {3, 14, 2, 72, 30, 0, 0.0f},
      {5, 6, 3, 24, 7, 0, 30.0f},     // prefill chunk after a prefix, softcap
      {7, 4, 4, 33, 0, 3, 0.0f},      // prefill from 0, window shorter than the chunk, MHA
  };
  for (CpuIsa isa : test::cpu_isas()) {
    ASSERT_TRUE(cpu::set_isa(isa));
    for (const auto& c : cases)
      for (DType kv : {DType::kF32, DType::kF16})
        for (int nt : {1, 3}) {
          AttentionParams p;
          p.n_q = c.n_q;
          p.n_head = c.n_head;
          p.n_kv_head = c.n_kv_head;
          p.head_dim = c.head_dim;
          p.pos0 = c.pos0;
          p.window = c.window;
          p.softcap = c.softcap;
          p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
          p.kv_type = kv;
          const int64_t n_ctx = c.pos0 + c.n_q, kv_n = n_ctx * c.n_kv_head * c.head_dim;
          const auto q = test::randn(c.n_q * c.n_head * c.head_dim, 1, 2.0f);
          const auto kf = test::randn(kv_n, 2, 2.0f), vf = test::randn(kv_n, 3);
          std::vector<uint16_t> kh(static_cast<size_t>(kv_n)), vh(static_cast<size_t>(kv_n));
          for (int64_t i = 0; i < kv_n; ++i) {
            kh[i] = f32_to_f16(kf[i]);
            vh[i] = f32_to_f16(vf[i]);
          }
          const void* k = kv == DType::kF16 ? static_cast<const void*>(kh.data()) : kf.data();
          const void* v = kv == DType::kF16 ? static_cast<const void*>(vh.data()) : vf.data();
          std::vector<float> want(q.size()), got = nans(static_cast<int64_t>(q.size()));
          ref::attention(p, q.data(), k, v, want.data());
          ThreadPool pool(nt);
          std::vector<float> scratch = nans(cpu::attention_scratch_floats(p, nt));
          cpu::attention(pool, p, q.data(), k, v, got.data(), scratch.data());
          const float vmax = std::fabs(*std::max_element(vf.begin(), vf.end(), [](float a, float b) {
            return std::fabs(a) < std::fabs(b);
          }));
          expect_close(got, want, 0, 2e-5 * vmax,
                       std::string(cpu_isa_name(isa)) + " attention n_q=" + std::to_string(c.n_q) +
                           " kv=" + dtype_name(kv) + " threads=" + std::to_string(nt));
        }
  }
}

TEST(KernelsTest, AttentionWindowOfOneCopiesCurrentValue) {
  // window 1: each query sees only its own position, so out = v[pos] for that kv head.
  AttentionParams p;
  p.n_q = 2;
  p.n_head = 2;
  p.n_kv_head = 1;
  p.head_dim = 4;
  p.pos0 = 3;
  p.window = 1;
  const auto q = test::randn(2 * 2 * 4, 9), k = test::randn(5 * 4, 10), v = test::randn(5 * 4, 11);
  std::vector<float> out(16);
  ref::attention(p, q.data(), k.data(), v.data(), out.data());
  for (int i = 0; i < 2; ++i)
    for (int h = 0; h < 2; ++h)
      for (int d = 0; d < 4; ++d) EXPECT_FLOAT_EQ(out[(i * 2 + h) * 4 + d], v[(3 + i) * 4 + d]);
}

TEST(KernelsTest, IsaSelection) {
  EXPECT_TRUE(cpu::set_isa(CpuIsa::kScalar));
  EXPECT_EQ(cpu_isa(), CpuIsa::kScalar);
  EXPECT_NE(std::string(cpu_features_string()), "");
  const auto isas = test::cpu_isas();
  EXPECT_EQ(cpu_isa(), isas.back());
}

}  // namespace
}  // namespace omni
