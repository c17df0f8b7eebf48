// SNAC decoder speed at the real snac-24khz shape (synthetic weights, runtime/model/
// synthetic_snac.cpp). Counters: x_realtime = audio seconds decoded per wall second;
// GFLOPs = matmul FLOPs (the 1x1 and transposed convs, 2 * n_out * n_in * steps; > 97% of the
// work) per second. Run:
//   build/bin/omnirt_bench --benchmark_filter=Snac
// BM_SnacDecode/<threads>/<groups>: whole decode of `groups` frame groups (12 = 1.02 s).
// BM_SnacStreamPush/<threads>: one push of one frame group (85 ms of audio) into a running
// stream, i.e. the codec's share of each step of a voice answer.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "audio/codec/snac.h"
#include "runtime/model/snac_loader.h"

namespace omni {
namespace {

struct Codec {
  std::vector<uint8_t> bytes;
  std::unique_ptr<gguf::GgufFile> file;
  std::unique_ptr<SnacModel> model;
};

const Codec& codec(DType t) {
  static std::unique_ptr<Codec> cache[3];
  std::unique_ptr<Codec>& c = cache[t == DType::kF16 ? 1 : t == DType::kBF16 ? 2 : 0];
  if (!c) {
    c = std::make_unique<Codec>();
    gguf::GgufWriter w;
    w.add_string("general.architecture", "snac");
    if (!add_synthetic_snac(w, "snac-24khz", t, 1).ok()) std::abort();
    c->bytes = w.to_bytes();
    c->file = std::move(gguf::GgufFile::from_memory(c->bytes.data(), c->bytes.size()).value());
    c->model = std::move(load_snac(*c->file).value());
  }
  return *c;
}

audio::SnacCodes codes(int64_t groups) {
  audio::SnacCodes c(3);
  uint32_t s = 1;
  for (int l = 0; l < 3; ++l)
    for (int64_t i = 0; i < groups << l; ++i) {
      s = s * 1664525u + 1013904223u;
      c[size_t(l)].push_back(int32_t((s >> 8) % 4096u));
    }
  return c;
}

// Matmul FLOPs of decoding T latent steps.
double matmul_flops(const audio::SnacWeights& w, int64_t T) {
  double f = 2.0 * w.in_pw.n_out * w.in_pw.n_in * T;
  int64_t t = T;
  for (const audio::SnacBlock& b : w.blocks) {
    f += 2.0 * b.up.n_out * b.up.n_in * t;
    t *= b.stride;
    if (b.noise.data) f += 2.0 * b.noise.n_out * b.noise.n_in * t;
    for (const auto& r : b.res) f += 2.0 * r.pw.n_out * r.pw.n_in * t;
  }
  return f + 2.0 * 7 * w.blocks.back().out_dim * t;
}

// Matrix types of the benchmarks: f32 and f16 run f32 panels, bf16 the bf16-dot panels
// (AVX512_BF16; widened to f32 panels elsewhere).
constexpr DType kTypes[] = {DType::kF32, DType::kF16, DType::kBF16};

void BM_SnacDecode(benchmark::State& state) {
  const int threads = int(state.range(0));
  const int64_t groups = state.range(1);
  const DType t = kTypes[state.range(2)];
  const Codec& c = codec(t);
  ThreadPool pool(threads);
  audio::SnacDecoder dec(c.model->weights, pool);
  const audio::SnacCodes in = codes(groups);
  std::vector<float> pcm;
  for (auto _ : state) {
    if (!dec.decode(in, &pcm).ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(pcm.data());
  }
  const double audio_s = double(pcm.size()) / 24000.0;
  state.counters["x_realtime"] = benchmark::Counter(audio_s, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOPs"] = benchmark::Counter(matmul_flops(c.model->weights, groups * 4) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(dtype_name(t)) + " matrices");
}
BENCHMARK(BM_SnacDecode)->ArgsProduct({{1, 2}, {12}, {0, 1, 2}})->Unit(benchmark::kMillisecond)->UseRealTime();

// Where a whole decode's time goes: wall ms per stage kind and block (input convs; per block
// the up-sampling with its noise, and the three residual units; output conv), as counters.
void BM_SnacStages(benchmark::State& state) {
  const int threads = int(state.range(0));
  const DType t = kTypes[state.range(1)];
  const Codec& c = codec(t);
  ThreadPool pool(threads);
  audio::SnacDecoder dec(c.model->weights, pool);
  const audio::SnacCodes in = codes(12);
  std::vector<float> z, pcm;
  dec.latents(in, &z);
  const int64_t T = int64_t(in[0].size()) * c.model->weights.hp.vq_strides[0];
  const size_t nb = c.model->weights.blocks.size();
  std::vector<double> up(nb), res(nb);
  double t_in = 0, t_out = 0;
  using clk = std::chrono::steady_clock;
  auto ms = [](clk::time_point a, clk::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  int64_t iters = 0;
  for (auto _ : state) {
    auto a = clk::now();
    float* x = dec.run_input(z.data(), T);
    auto b = clk::now();
    t_in += ms(a, b);
    int64_t rate = 1;
    for (size_t bi = 0; bi < nb; ++bi) {
      const int s = c.model->weights.blocks[bi].stride;
      rate *= s;
      a = clk::now();
      x = dec.run_up(bi, x, T * rate / s, 0);
      b = clk::now();
      for (int r = 0; r < 3; ++r) x = dec.run_residual(bi, r, x, T * rate);
      up[bi] += ms(a, b);
      res[bi] += ms(b, clk::now());
    }
    pcm.resize(size_t(T * rate));
    a = clk::now();
    dec.run_output(x, T * rate, pcm.data());
    t_out += ms(a, clk::now());
    ++iters;
  }
  const double n = double(std::max<int64_t>(iters, 1));
  state.counters["in_ms"] = t_in / n;
  for (size_t bi = 0; bi < nb; ++bi) {
    state.counters["up" + std::to_string(bi) + "_ms"] = up[bi] / n;
    state.counters["res" + std::to_string(bi) + "_ms"] = res[bi] / n;
  }
  state.counters["out_ms"] = t_out / n;
  state.SetLabel(std::string(dtype_name(t)) + " matrices");
}
BENCHMARK(BM_SnacStages)->ArgsProduct({{1, 2}, {0, 2}})->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SnacStreamPush(benchmark::State& state) {
  const DType t = kTypes[state.range(1)];
  const Codec& c = codec(t);
  ThreadPool pool(int(state.range(0)));
  audio::SnacDecoder dec(c.model->weights, pool);
  audio::SnacStreamDecoder stream(dec);
  const audio::SnacCodes one = codes(1);
  std::vector<float> pcm;
  for (int i = 0; i < 4; ++i) (void)stream.push(one, &pcm);  // steady state
  for (auto _ : state) {
    pcm.clear();
    if (!stream.push(one, &pcm).ok()) state.SkipWithError("push failed");
  }
  state.counters["x_realtime"] = benchmark::Counter(2048.0 / 24000.0, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["held_back_ms"] = double(stream.samples_pending()) * 1000.0 / 24000.0;
  state.SetLabel(std::string(dtype_name(t)) + " matrices");
}
BENCHMARK(BM_SnacStreamPush)->ArgsProduct({{1, 2}, {0, 2}})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace omni
