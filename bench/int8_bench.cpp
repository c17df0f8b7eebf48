// Decode matvec with int8 activations for the k-quants (Q4_K, Q5_K, Q6_K) and Q5_0 / Q4_0 (most
// of the bytes of a "q4_K" qwen2.5-0.5b: its 896-wide rows are not whole 256-blocks): cpu::matvec_int8
// (x quantised inside, as in a decode step) against the f32 path (cpu::matmul, n_tok = 1) on the
// same matrix. Named BM_MatmulInt8K so that --benchmark_filter=BM_Matmul lists it next to
// BM_Matmul. "cold" cycles through >= 256 MiB of copies so the weights come from DRAM.
// Run: build/bin/omnirt_bench --benchmark_filter='BM_MatmulInt8K'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "kernels/core/huge_pages.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/ref/ops_ref.h"

namespace omni {
namespace {

using bench::randn;

// args: type (0 Q6_K, 1 Q5_K, 2 Q4_K, 3 Q5_0, 4 Q4_0, 5 Q8_0), n_out, n_in, threads, cold,
// path (0 f32, 1 int8, 2 three-level int8 = cpu::matvec_int8x3)
void BM_MatmulInt8K(benchmark::State& state) {
  constexpr DType kKTypes[] = {DType::kQ6_K, DType::kQ5_K, DType::kQ4_K, DType::kQ5_0, DType::kQ4_0, DType::kQ8_0};
  const DType t = kKTypes[state.range(0)];
  const int64_t n_out = state.range(1), n_in = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const bool cold = state.range(4) != 0;
  const int64_t path = state.range(5);
  const int64_t row_bytes = dtype_row_bytes(t, n_in), mat_bytes = row_bytes * n_out;
  const int64_t copies = cold ? std::max<int64_t>(1, (int64_t{256} << 20) / mat_bytes) : 1;
  HugeBuffer w(static_cast<size_t>(mat_bytes * copies));  // 2 MiB pages, as the model file gets
  if (!w.data()) return state.SkipWithError("cannot map the weights");
  // Distinct rows (a few seeds cycled) so the scales vary between rows.
  std::vector<std::vector<float>> src;
  for (uint32_t k = 0; k < 7; ++k) src.push_back(randn(n_in, 10 + k));
  for (int64_t r = 0; r < n_out * copies; ++r)
    ref::quantize_row(t, src[static_cast<size_t>(r % 7)].data(), w.data() + r * row_bytes, n_in);
  const auto x = randn(n_in, 2);
  std::vector<float> y(static_cast<size_t>(n_out));
  std::vector<float> scratch(static_cast<size_t>(
      std::max<int64_t>(cpu::matmul_scratch_floats(n_in, threads), cpu::matvec_int8_scratch_bytes(n_in) / 4 + 1)));
  const auto scratch_bytes = static_cast<int64_t>(scratch.size() * sizeof(float));
  ThreadPool pool(threads);
  int64_t c = 0;
  for (auto _ : state) {
    const uint8_t* wc = w.data() + (c++ % copies) * mat_bytes;
    const bool done =
        (path == 1 && cpu::matvec_int8(pool, t, wc, n_out, n_in, x.data(), y.data(), scratch.data(), scratch_bytes)) ||
        (path == 2 && cpu::matvec_int8x3(pool, t, wc, n_out, n_in, x.data(), y.data(), scratch.data(), scratch_bytes));
    if (!done)
      cpu::matmul(pool, t, wc, n_out, n_in, x.data(), 1, y.data(), scratch.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(dtype_name(t)) + " " + cpu_isa_name(cpu_isa()) + (path == 2 ? " int8x3" : path == 1 ? " int8" : " f32") +
                 (cold ? " cold" : " hot"));
  state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(mat_bytes), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1024);
}
BENCHMARK(BM_MatmulInt8K)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {2048}, {2048}, {1, 2}, {0, 1}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
// Gemma 3 270M's tied output matrix (262144 x 640, Q8_0: 170 MiB, most of its decode bytes):
// "cold" by its size alone (one copy already exceeds the 256 MiB the cold variant cycles).
BENCHMARK(BM_MatmulInt8K)
    ->ArgsProduct({{5}, {262144}, {640}, {1, 2}, {1}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace omni
