// SNAC decoder speed at the real snac-24khz shape (synthetic weights, runtime/model/
// synthetic_snac.cpp). Counters: x_realtime = audio seconds decoded per wall second;
// GFLOPs = matmul FLOPs (the 1x1 and transposed convs, 2 * n_out * n_in * steps; > 97% of the
// work) per second. Run:
//   build/bin/omnirt_bench --benchmark_filter=Snac
// BM_SnacDecode/<threads>/<groups>: whole decode of `groups` frame groups (12 = 1.02 s).
// BM_SnacStreamPush/<threads>: one push of one frame group (85 ms of audio) into a running
// stream, i.e. the codec's share of each step of a voice answer.
#include <benchmark/benchmark.h>

#include <memory>
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
  static std::unique_ptr<Codec> cache[2];
  std::unique_ptr<Codec>& c = cache[t == DType::kF16 ? 1 : 0];
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

void BM_SnacDecode(benchmark::State& state) {
  const int threads = int(state.range(0));
  const int64_t groups = state.range(1);
  const DType t = state.range(2) ? DType::kF16 : DType::kF32;
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
BENCHMARK(BM_SnacDecode)->ArgsProduct({{1, 2}, {12}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SnacStreamPush(benchmark::State& state) {
  const Codec& c = codec(DType::kF32);
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
}
BENCHMARK(BM_SnacStreamPush)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace omni
