// Kernel microbenchmarks. Matmul reports weight bytes/s (the decode roofline: every weight is
// read once per token) and FLOP/s (2 * n_out * n_in * n_tok). The "cold" variants cycle through
// enough copies of the matrix (>= 256 MiB) that weights come from DRAM, as in a real model whose
// weights exceed the last-level cache; the "hot" ones measure the kernel with weights in cache.
// Run: build/bin/omnirt_bench --benchmark_filter=Matmul
#include <benchmark/benchmark.h>

#include <cmath>
#include <utility>
#include <vector>

#include "bench/bench_util.h"
#include "kernels/core/huge_pages.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/ref/ops_ref.h"

namespace omni {
namespace {

constexpr DType kTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                            DType::kQ5_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

using bench::randn;

// args: type index, n_out, n_in, n_tok, threads, cold (0/1)
void BM_Matmul(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t n_out = state.range(1), n_in = state.range(2), n_tok = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  const bool cold = state.range(5) != 0;
  const int64_t row_bytes = dtype_row_bytes(t, n_in), mat_bytes = row_bytes * n_out;
  const int64_t copies = cold ? std::max<int64_t>(1, (int64_t{256} << 20) / mat_bytes) : 1;
  HugeBuffer w(static_cast<size_t>(mat_bytes * copies));  // 2 MiB pages, as the model file gets
  if (!w.data()) return state.SkipWithError("cannot map the weights");
  const auto src = randn(n_in, 1);
  for (int64_t r = 0; r < n_out * copies; ++r) ref::quantize_row(t, src.data(), w.data() + r * row_bytes, n_in);
  const auto x = randn(n_tok * n_in, 2);
  std::vector<float> y(static_cast<size_t>(n_tok * n_out));
  std::vector<float> scratch(static_cast<size_t>(cpu::matmul_scratch_floats(n_in, threads)));
  ThreadPool pool(threads);
  int64_t c = 0;
  for (auto _ : state) {
    cpu::matmul(pool, t, w.data() + (c++ % copies) * mat_bytes, n_out, n_in, x.data(), n_tok, y.data(),
                scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(dtype_name(t)) + " " + cpu_isa_name(cpu_isa()) + (cold ? " cold" : " hot"));
  state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(mat_bytes), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1024);
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * n_out * n_in * n_tok, benchmark::Counter::kIsIterationInvariantRate);
}

void MatmulArgs(benchmark::internal::Benchmark* b) {
  for (int ti = 0; ti < static_cast<int>(std::size(kTypes)); ++ti) {
    for (int threads : {1, 2}) {
      b->Args({ti, 2048, 2048, 1, threads, 1});
      b->Args({ti, 640, 2048, 1, threads, 0});
      b->Args({ti, 2048, 2048, 1, threads, 0});
    }
    b->Args({ti, 2048, 2048, 64, 2, 0});
  }
}
BENCHMARK(BM_Matmul)->Apply(MatmulArgs)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Prefill GEMMs at Gemma 3 270M's shapes (ffn up 2048 x 640, ffn down 640 x 2048) for F16 and
// Q5_0 weights (the Q4_K_M file's 640-wide rows are Q5_0), 2 threads, weights in cache, 16 to
// 256 tokens (the prefill chunk is 256). A column-panel kernel tried against the dot-product
// tile here was not kept (docs/PERFORMANCE.md, "Prefill GEMM: a column panel, not kept").
void PrefillArgs(benchmark::internal::Benchmark* b) {
  for (int ti : {1, 5})
    for (auto [n_out, n_in] : {std::pair<int64_t, int64_t>{2048, 640}, {640, 2048}})
      for (int64_t n_tok : {16, 32, 48, 64, 128, 256}) b->Args({ti, n_out, n_in, n_tok, 2, 0});
}
BENCHMARK(BM_Matmul)->Name("BM_MatmulPrefill")->Apply(PrefillArgs)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Decode matvec, int8-activation path (cpu::matvec_int8, quantising x included) vs the f32 path
// on the same matrix. args: type (0 Q8_0, 1 Q4_K, 2 Q4_0, 3 Q5_0), n_out, n_in, threads, cold, int8.
void BM_MatvecInt8(benchmark::State& state) {
  constexpr DType kInt8Types[] = {DType::kQ8_0, DType::kQ4_K, DType::kQ4_0, DType::kQ5_0};
  const DType t = kInt8Types[state.range(0)];
  const int64_t n_out = state.range(1), n_in = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const bool cold = state.range(4) != 0, int8 = state.range(5) != 0;
  const int64_t row_bytes = dtype_row_bytes(t, n_in), mat_bytes = row_bytes * n_out;
  const int64_t copies = cold ? std::max<int64_t>(1, (int64_t{256} << 20) / mat_bytes) : 1;
  HugeBuffer w(static_cast<size_t>(mat_bytes * copies));  // 2 MiB pages, as the model file gets
  if (!w.data()) return state.SkipWithError("cannot map the weights");
  const auto src = randn(n_in, 1);
  for (int64_t r = 0; r < n_out * copies; ++r) ref::quantize_row(t, src.data(), w.data() + r * row_bytes, n_in);
  const auto x = randn(n_in, 2);
  std::vector<float> y(static_cast<size_t>(n_out));
  std::vector<float> scratch(static_cast<size_t>(cpu::matmul_scratch_floats(n_in, threads)));
  const auto scratch_bytes = static_cast<int64_t>(scratch.size() * sizeof(float));
  ThreadPool pool(threads);
  int64_t c = 0;
  for (auto _ : state) {
    const uint8_t* wc = w.data() + (c++ % copies) * mat_bytes;
    if (!int8 || !cpu::matvec_int8(pool, t, wc, n_out, n_in, x.data(), y.data(), scratch.data(), scratch_bytes))
      cpu::matmul(pool, t, wc, n_out, n_in, x.data(), 1, y.data(), scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(dtype_name(t)) + " " + cpu_isa_name(cpu_isa()) + (int8 ? " int8" : " f32") +
                 (cold ? " cold" : " hot"));
  state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(mat_bytes), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1024);
}
BENCHMARK(BM_MatvecInt8)
    ->ArgsProduct({{0, 1, 2, 3}, {2048}, {2048}, {1, 2}, {0, 1}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Gemma-3-270M-like decode attention: 4 heads, 1 KV head, head_dim 256. args: n_ctx, f16 KV.
void BM_AttentionDecode(benchmark::State& state) {
  AttentionParams p;
  p.n_head = 4;
  p.n_kv_head = 1;
  p.head_dim = 256;
  p.pos0 = state.range(0) - 1;
  p.scale = 1.0f / 16;
  p.kv_type = state.range(1) ? DType::kF16 : DType::kF32;
  const int64_t kv_n = state.range(0) * p.n_kv_head * p.head_dim;
  const auto q = randn(p.n_head * p.head_dim, 1), kf = randn(kv_n, 2), vf = randn(kv_n, 3);
  std::vector<uint16_t> kh(kf.size()), vh(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) {
    kh[i] = f32_to_f16(kf[i]);
    vh[i] = f32_to_f16(vf[i]);
  }
  const void* k = state.range(1) ? static_cast<const void*>(kh.data()) : kf.data();
  const void* v = state.range(1) ? static_cast<const void*>(vh.data()) : vf.data();
  std::vector<float> out(q.size()), scratch(static_cast<size_t>(cpu::attention_scratch_floats(p, 2)));
  ThreadPool pool(2);
  for (auto _ : state) {
    cpu::attention(pool, p, q.data(), k, v, out.data(), scratch.data());
    benchmark::DoNotOptimize(out.data());
  }
  const double kv_bytes = 2.0 * static_cast<double>(kv_n) * (state.range(1) ? 2 : 4);
  state.counters["bytes/s"] = benchmark::Counter(kv_bytes, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1024);
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * p.n_head * p.head_dim * state.range(0),
                                                benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_AttentionDecode)->ArgsProduct({{512, 4096}, {0, 1}})->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_RmsNorm(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto x = randn(n, 1), w = randn(n, 2);
  std::vector<float> y(static_cast<size_t>(n));
  for (auto _ : state) {
    cpu::rms_norm(x.data(), w.data(), y.data(), n, 1e-6f);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["bytes/s"] = benchmark::Counter(12.0 * n, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1024);
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_RmsNorm)->Arg(640)->Arg(4096);

// q and k of one Gemma-3-270M token: 4 + 1 heads of 256, NeoX style.
void BM_Rope(benchmark::State& state) {
  auto x = randn(5 * 256, 1);
  int64_t pos = 0;
  for (auto _ : state) {
    cpu::rope(x.data(), 5, 256, 256, pos++ & 4095, 1e6f, 1.0f, RopeStyle::kNeox);
    benchmark::DoNotOptimize(x.data());
  }
  state.counters["bytes/s"] = benchmark::Counter(8.0 * 5 * 256, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1024);
  state.counters["FLOP/s"] = benchmark::Counter(6.0 * 5 * 128, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Rope);

}  // namespace
}  // namespace omni

namespace omni {
namespace {

// Thread-pool fork/join latency: one empty job per iteration (decode issues ~150-200 per token).
void BM_PoolRun(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  for (auto _ : state) pool.run([](void*, int, int) {}, nullptr);
}
BENCHMARK(BM_PoolRun)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
}  // namespace omni
