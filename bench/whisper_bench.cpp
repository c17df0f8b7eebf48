// Whisper encoder pieces on the CPU (audio/whisper/whisper_ops.h), 2 threads, with FLOP/s:
//   BM_WhisperAttention/<positions>  full attention of tiny.en's shape (6 heads x 64) over a
//     window of that many positions (1500: a 30 s window; 50: a 1 s chunk), q/k/v random;
//     FLOPs 4 n^2 d (q k^T and p v).
//   BM_WhisperGelu/<n>               erf GELU in place (whisper::gelu_erf), values/s.
// Run: build/bin/omnirt_bench --benchmark_filter=BM_Whisper
#include <benchmark/benchmark.h>

#include <vector>

#include "audio/whisper/whisper_ops.h"
#include "bench/bench_util.h"
#include "kernels/core/thread_pool.h"

namespace omni {
namespace {

using bench::randn;

void BM_WhisperAttention(benchmark::State& state) {
  const int64_t n = state.range(0), n_head = 6, head_dim = 64, d = n_head * head_dim;
  const auto q = randn(n * d, 1), k = randn(n * d, 2), v = randn(n * d, 3);
  std::vector<float> kh(static_cast<size_t>(n * d)), vt(kh.size()), out(kh.size());
  audio::whisper::split_heads(k.data(), v.data(), n, n_head, head_dim, kh.data(), vt.data());
  ThreadPool pool(2);
  audio::whisper::Scratch scratch;
  for (auto _ : state) {
    audio::whisper::attention_full(pool, q.data(), n, kh.data(), vt.data(), n, n_head, head_dim, out.data(), scratch);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * double(n) * double(n) * double(d),
                                                benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_WhisperAttention)->Arg(1500)->Arg(50)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_WhisperGelu(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto src = randn(n, 4);
  std::vector<float> x = src;
  ThreadPool pool(2);
  for (auto _ : state) {
    state.PauseTiming();
    x = src;
    state.ResumeTiming();
    audio::whisper::gelu_erf(pool, x.data(), n);
    benchmark::DoNotOptimize(x.data());
  }
  state.counters["values/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_WhisperGelu)->Arg(1500 * 1536)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace omni
