// GPU benchmarks for bench/gpu/check.sh. Every figure is printed as one line
//   RESULT name=<figure> value=<number> unit=<unit> [key=value ...]
// that check.sh gathers into its table, next to the probes measured in the same run.
//
//   omnirt_gpu_bench probe                         HBM copy bandwidth and cuBLAS BF16 GEMM rate
//   omnirt_gpu_bench model --model M --label L [--prefill 512] [--steps 64] [--batch 16] [--breakdown 1]
//       prefill time, decode step (graphs on / off), batched decode, with bytes per step; with
//       --breakdown, the device time of each op of a decode step (batch 1 and batch N), as
//         BREAKDOWN label=L batch=B op=attn_q calls=28 us=123.4 share=0.05 gbs=3900
//       (CUDA events between the ops of eager steps whose launches were all queued behind a
//       host function first, so host launch time is not in the figures; gbs for matmuls only),
//       and of a prefill of --prefill tokens (> 16) as BREAKDOWN label=L prefill=N ... tflops=..
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench.h"
#include "kernels/cuda/blas_loader.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/ops_cuda.h"
#include "runtime/model/cuda_context.h"
#include "runtime/model/model.h"

namespace omni {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

int fail(const Status& st, const char* what) {
  std::printf("ERROR %s: %s\n", what, st.to_string().c_str());
  return 1;
}

#define BENCH_OK(expr, what)                    \
  do {                                          \
    const ::omni::Status st_ = (expr);          \
    if (!st_.ok()) return fail(st_, what);      \
  } while (0)

int probe() {
  auto info = cuda::device_info(0);
  if (!info.ok()) return fail(info.status(), "device");
  std::printf("RESULT name=device value=0 unit=- card=\"%s\" sms=%d mem_gib=%.1f\n", info->name.c_str(), info->sm_count,
              double(info->total_bytes) / (1 << 30));
  auto stream = cuda::Stream::create();
  auto e0 = cuda::Event::create(), e1 = cuda::Event::create();
  if (!stream.ok() || !e0.ok() || !e1.ok()) return fail(stream.status(), "stream/events");
  cudaStream_t s = stream->get();

  // HBM: device-to-device copies of 2 GiB; each byte is read once and written once.
  const size_t bytes = size_t(2) << 30;
  void *a = nullptr, *b = nullptr;
  BENCH_OK(cuda::cuda_status(cudaMalloc(&a, bytes), "cudaMalloc"), "probe alloc");
  BENCH_OK(cuda::cuda_status(cudaMalloc(&b, bytes), "cudaMalloc"), "probe alloc");
  cudaMemsetAsync(a, 1, bytes, s);
  for (int i = 0; i < 2; ++i) cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s);
  const int reps = 10;
  BENCH_OK(e0->record(s), "event");
  for (int i = 0; i < reps; ++i) cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice, s);
  BENCH_OK(e1->record(s), "event");
  BENCH_OK(stream->synchronize(), "copy probe");
  auto ms = cuda::Event::elapsed_ms(*e0, *e1);
  if (!ms.ok()) return fail(ms.status(), "elapsed");
  const double gbs = 2.0 * double(bytes) * reps / (*ms * 1e-3) / 1e9;
  std::printf("RESULT name=hbm_copy value=%.1f unit=GB/s note=\"read+write of a 2 GiB device-to-device copy\"\n", gbs);
  cudaFree(a);
  cudaFree(b);

  // cuBLAS BF16 GEMM, f32 accumulate and output, 8192^3.
  auto api = cuda::blas_api();
  if (!api.ok()) {
    std::printf("RESULT name=gemm_bf16 value=0 unit=TFLOP/s note=\"%s\"\n", api.status().message().c_str());
    return 0;
  }
  auto blas = cuda::BlasHandle::create(s);
  if (!blas.ok()) return fail(blas.status(), "cublas handle");
  const int n = 8192;
  void *A = nullptr, *B = nullptr, *C = nullptr;
  BENCH_OK(cuda::cuda_status(cudaMalloc(&A, size_t(n) * n * 2), "cudaMalloc"), "gemm alloc");
  BENCH_OK(cuda::cuda_status(cudaMalloc(&B, size_t(n) * n * 2), "cudaMalloc"), "gemm alloc");
  BENCH_OK(cuda::cuda_status(cudaMalloc(&C, size_t(n) * n * 4), "cudaMalloc"), "gemm alloc");
  cudaMemsetAsync(A, 0x3c, size_t(n) * n * 2, s);  // bf16 0x3c3c ~ 0.0115: finite, no denormals
  cudaMemsetAsync(B, 0x3c, size_t(n) * n * 2, s);
  const float alpha = 1.0f, beta = 0.0f;
  auto gemm = [&]() {
    return (*api)->gemm_ex(static_cast<cublasHandle_t>(blas->blas()), CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, A,
                           CUDA_R_16BF, n, B, CUDA_R_16BF, n, &beta, C, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT);
  };
  for (int i = 0; i < 2; ++i) BENCH_OK(cuda::cublas_status(gemm(), "gemm"), "gemm warm-up");
  const int greps = 10;
  BENCH_OK(e0->record(s), "event");
  for (int i = 0; i < greps; ++i) BENCH_OK(cuda::cublas_status(gemm(), "gemm"), "gemm");
  BENCH_OK(e1->record(s), "event");
  BENCH_OK(stream->synchronize(), "gemm probe");
  ms = cuda::Event::elapsed_ms(*e0, *e1);
  if (!ms.ok()) return fail(ms.status(), "elapsed");
  const double tflops = 2.0 * n * double(n) * n * greps / (*ms * 1e-3) / 1e12;
  std::printf("RESULT name=gemm_bf16 value=%.1f unit=TFLOP/s note=\"cuBLAS %s, 8192^3 bf16 -> f32\"\n", tflops,
              (*api)->library);
  cudaFree(A);
  cudaFree(B);
  cudaFree(C);
  return 0;
}

struct ModelArgs {
  std::string model, label = "model";
  int prefill = 512, steps = 64, batch = 16, breakdown = 1;
};

// Events recorded by CudaContext's op hook, with the op each one ends.
struct OpEvents {
  cudaStream_t stream = nullptr;
  std::vector<cudaEvent_t> pool;
  std::vector<const char*> labels;
  size_t used = 0;
  static void hook(void* user, const char* label) {
    auto* e = static_cast<OpEvents*>(user);
    if (e->used >= e->pool.size()) return;
    cudaEventRecord(e->pool[e->used], e->stream);
    e->labels[e->used++] = label;
  }
};

void CUDART_CB hold_stream(void*) { usleep(20000); }  // the step's launches queue up meanwhile

// Per-op device time of a decode step of n_tok sequences (eager, hooked), averaged over `steps`.
int breakdown(CudaContext& ctx, const Model& m, const std::string& label, int n_tok, int steps) {
  OpEvents ev;
  ev.stream = static_cast<cudaStream_t>(ctx.stream_handle());
  ev.pool.resize(4096);
  ev.labels.resize(ev.pool.size());
  for (auto& e : ev.pool) BENCH_OK(cuda::cuda_status(cudaEventCreate(&e), "event"), "breakdown events");
  cudaEvent_t start = nullptr;
  BENCH_OK(cuda::cuda_status(cudaEventCreate(&start), "event"), "breakdown events");
  std::map<std::string, std::pair<double, int>> per_op;  // op -> (ms, calls) summed over steps
  std::vector<int32_t> toks(static_cast<size_t>(n_tok), 1), next(toks.size());
  for (int s = 0; s < n_tok; ++s) (void)ctx.rewind_seq(s, 0);
  ctx.set_op_hook(&OpEvents::hook, &ev);
  double total = 0;
  for (int step = 0; step < steps + 1; ++step) {  // step 0 warms up
    ev.used = 0;
    BENCH_OK(cuda::cuda_status(cudaLaunchHostFunc(ev.stream, hold_stream, nullptr), "host func"), "breakdown");
    BENCH_OK(cuda::cuda_status(cudaEventRecord(start, ev.stream), "event"), "breakdown");
    BENCH_OK(ctx.decode_batch(toks, next, false), "breakdown step");
    toks = next;
    if (step == 0) continue;
    cudaEvent_t prev = start;
    for (size_t i = 0; i < ev.used; ++i) {
      float ms = 0;
      BENCH_OK(cuda::cuda_status(cudaEventElapsedTime(&ms, prev, ev.pool[i]), "elapsed"), "breakdown");
      auto& slot = per_op[ev.labels[i]];
      slot.first += ms;
      slot.second += 1;
      total += ms;
      prev = ev.pool[i];
    }
  }
  ctx.set_op_hook(nullptr, nullptr);
  for (auto& e : ev.pool) cudaEventDestroy(e);
  cudaEventDestroy(start);
  // Bytes per call of each matmul op (weights in their stored type).
  std::map<std::string, double> op_bytes;
  const LayerWeights& L0 = m.layers()[0];
  const std::pair<const char*, const Weight*> mats[] = {{"attn_q", &L0.wq}, {"attn_k", &L0.wk}, {"attn_v", &L0.wv},
                                                         {"attn_output", &L0.wo}, {"ffn_gate", &L0.ffn_gate},
                                                         {"ffn_up", &L0.ffn_up}, {"ffn_down", &L0.ffn_down},
                                                         {"output", &m.output()}};
  for (const auto& [name, w] : mats) op_bytes[name] = double(dtype_row_bytes(w->type, w->n_in)) * w->n_out;
  op_bytes["attn_qkv"] = op_bytes["attn_q"] + op_bytes["attn_k"] + op_bytes["attn_v"];  // fused launches
  op_bytes["ffn_gate_up"] = op_bytes["ffn_gate"] + op_bytes["ffn_up"];
  op_bytes["ffn_gate_up_glu"] = op_bytes["ffn_gate_up"];  // one token: GLU in the gate/up epilogue
  for (const auto& [op, v] : per_op) {
    const double us = v.first * 1e3 / steps, calls = double(v.second) / steps;
    std::printf("BREAKDOWN label=%s batch=%d op=\"%s\" calls=%.0f us=%.1f us_per_call=%.2f share=%.3f", label.c_str(),
                n_tok, op.c_str(), calls, us, us / calls, v.first / total);
    if (auto it = op_bytes.find(op); it != op_bytes.end())
      std::printf(" gbs=%.0f", it->second * calls / (us * 1e-6) / 1e9);
    std::printf("\n");
  }
  std::printf("BREAKDOWN label=%s batch=%d op=\"total\" us=%.1f\n", label.c_str(), n_tok, total * 1e3 / steps);
  for (int s = 0; s < n_tok; ++s) (void)ctx.rewind_seq(s, 0);
  return 0;
}

// Per-op device time of a prefill of `prompt` from position 0 (hooked, queued behind a held
// stream so launch gaps do not count), averaged over `reps` after one warm-up:
//   BREAKDOWN label=L prefill=512 op="ffn_gate" calls=28 us=.. us_per_call=.. share=.. tflops=..
// A matmul op of more than 16 rows is the whole cuBLAS path (x rounding, dequantization of
// quantized weights into the scratch, the GEMM); tflops counts the GEMM's 2 n_in n_out n.
int prefill_breakdown(CudaContext& ctx, const Model& m, const std::string& label, const std::vector<int32_t>& prompt,
                      int reps) {
  OpEvents ev;
  ev.stream = static_cast<cudaStream_t>(ctx.stream_handle());
  ev.pool.resize(4096);
  ev.labels.resize(ev.pool.size());
  for (auto& e : ev.pool) BENCH_OK(cuda::cuda_status(cudaEventCreate(&e), "event"), "prefill breakdown events");
  cudaEvent_t start = nullptr;
  BENCH_OK(cuda::cuda_status(cudaEventCreate(&start), "event"), "prefill breakdown events");
  std::map<std::string, std::pair<double, int>> per_op;  // op -> (ms, calls) summed over reps
  ctx.set_op_hook(&OpEvents::hook, &ev);
  double total = 0;
  for (int rep = 0; rep < reps + 1; ++rep) {  // rep 0 warms up
    BENCH_OK(ctx.rewind(0), "rewind");
    ev.used = 0;
    BENCH_OK(cuda::cuda_status(cudaLaunchHostFunc(ev.stream, hold_stream, nullptr), "host func"), "prefill breakdown");
    BENCH_OK(cuda::cuda_status(cudaEventRecord(start, ev.stream), "event"), "prefill breakdown");
    BENCH_OK(ctx.eval(prompt, false), "prefill breakdown eval");
    if (rep == 0) continue;
    cudaEvent_t prev = start;
    for (size_t i = 0; i < ev.used; ++i) {
      float ms = 0;
      BENCH_OK(cuda::cuda_status(cudaEventElapsedTime(&ms, prev, ev.pool[i]), "elapsed"), "prefill breakdown");
      auto& slot = per_op[ev.labels[i]];
      slot.first += ms;
      slot.second += 1;
      total += ms;
      prev = ev.pool[i];
    }
  }
  ctx.set_op_hook(nullptr, nullptr);
  for (auto& e : ev.pool) cudaEventDestroy(e);
  cudaEventDestroy(start);
  const double n = static_cast<double>(prompt.size());
  std::map<std::string, double> op_flops;  // per call
  const LayerWeights& L0 = m.layers()[0];
  const std::pair<const char*, const Weight*> mats[] = {{"attn_q", &L0.wq}, {"attn_k", &L0.wk}, {"attn_v", &L0.wv},
                                                         {"attn_output", &L0.wo}, {"ffn_gate", &L0.ffn_gate},
                                                         {"ffn_up", &L0.ffn_up}, {"ffn_down", &L0.ffn_down}};
  for (const auto& [name, w] : mats) op_flops[name] = 2.0 * double(w->n_in) * double(w->n_out) * n;
  // The fused prefill GEMMs (CudaContextOptions::prefill_fused).
  op_flops["attn_qkv"] = op_flops["attn_q"] + op_flops["attn_k"] + op_flops["attn_v"];
  op_flops["ffn_gate_up"] = op_flops["ffn_gate"] + op_flops["ffn_up"];
  double gemm_ms = 0;
  for (const auto& [op, v] : per_op) {
    const double us = v.first * 1e3 / reps, calls = double(v.second) / reps;
    std::printf("BREAKDOWN label=%s prefill=%zu op=\"%s\" calls=%.0f us=%.1f us_per_call=%.2f share=%.3f", label.c_str(),
                prompt.size(), op.c_str(), calls, us, us / calls, v.first / total);
    if (auto it = op_flops.find(op); it != op_flops.end()) {
      std::printf(" tflops=%.1f", it->second * calls / (us * 1e-6) / 1e12);
      gemm_ms += v.first / reps;
    }
    std::printf("\n");
  }
  std::printf("BREAKDOWN label=%s prefill=%zu op=\"total\" us=%.1f layer_matmul_us=%.1f\n", label.c_str(), prompt.size(),
              total * 1e3 / reps, gemm_ms * 1e3);
  BENCH_OK(ctx.rewind(0), "rewind");
  return 0;
}

int bench_model(const ModelArgs& a) {
  auto t_load = Clock::now();
  auto model = Model::load(a.model);
  if (!model.ok()) return fail(model.status(), "load");
  const Model& m = **model;
  const HParams& hp = m.hparams();
  ContextParams cp;
  cp.n_ctx = std::max(a.prefill, a.steps) + 16;
  cp.n_batch = a.prefill;
  CudaContextOptions opt;
  opt.n_seq = a.batch;
  auto ctx_or = CudaContext::create(m, cp, opt);
  if (!ctx_or.ok()) return fail(ctx_or.status(), "CudaContext::create");
  CudaContext& ctx = **ctx_or;
  std::printf("INFO %s: %s, %.2f GB of weights on the device, KV %.2f GB, loaded in %.1f s, gemm %d\n", a.label.c_str(),
              ctx.device_name().c_str(), ctx.device_weight_bytes() / 1e9, ctx.device_kv_bytes() / 1e9,
              ms_since(t_load) / 1e3, int(ctx.has_gemm()));

  // Bytes a decode step must read: every layer matrix and the output head (the embedding table
  // only one row), plus the KV cache up to the position.
  double matrix_bytes = 0, matmul_params = 0;
  for (const LayerWeights& L : m.layers())
    for (const Weight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) {
      matrix_bytes += double(dtype_row_bytes(w->type, w->n_in)) * w->n_out;
      matmul_params += double(w->n_in) * w->n_out;
    }
  const Weight& out = m.output();
  const double head_bytes = double(dtype_row_bytes(out.type, out.n_in)) * out.n_out;
  const double kv_bytes_per_pos = 2.0 * hp.n_layer * hp.n_head_kv * hp.head_dim * 2.0;

  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(hp.n_vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(a.prefill));
  for (auto& t : prompt) t = tok(rng);

  // Prefill: one warm-up (cuBLASLt heuristics, first-touch), then the best of 3.
  BENCH_OK(ctx.eval(prompt, false), "prefill warm-up");
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    BENCH_OK(ctx.rewind(0), "rewind");
    auto t0 = Clock::now();
    BENCH_OK(ctx.eval(prompt, false), "prefill");
    best = std::min(best, ms_since(t0));
  }
  const double flops = 2.0 * matmul_params * a.prefill + 2.0 * out.n_in * double(out.n_out);
  std::printf("RESULT name=prefill%d_%s value=%.2f unit=ms tflops=%.1f\n", a.prefill, a.label.c_str(), best,
              flops / (best * 1e-3) / 1e12);

  // Decode, batch 1, from position 0: graphs on, then off.
  for (int graphs = 1; graphs >= 0; --graphs) {
    ctx.set_use_graphs(graphs != 0);
    BENCH_OK(ctx.rewind(0), "rewind");
    int32_t t = prompt[0];
    for (int i = 0; i < 4; ++i) {  // warm-up (graph capture)
      auto r = ctx.decode_greedy(t);
      if (!r.ok()) return fail(r.status(), "decode warm-up");
      t = *r;
    }
    BENCH_OK(ctx.rewind(0), "rewind");
    double gpu_ms = 0;
    auto t0 = Clock::now();
    for (int i = 0; i < a.steps; ++i) {
      auto r = ctx.decode_greedy(t);
      if (!r.ok()) return fail(r.status(), "decode");
      t = *r;
      gpu_ms += ctx.last_step_gpu_ms();
    }
    const double step = ms_since(t0) / a.steps;
    const double bytes = matrix_bytes + head_bytes + kv_bytes_per_pos * (a.steps + 1) / 2.0;
    std::printf("RESULT name=decode1_%s%s value=%.3f unit=ms/step bytes=%.0f gpu_ms=%.3f graph_error=\"%s\"\n",
                a.label.c_str(), graphs ? "" : "_nograph", step, bytes, gpu_ms / a.steps, ctx.graph_error().c_str());
  }
  ctx.set_use_graphs(true);

  // Batched decode: a.batch sequences, one token each per step.
  if (a.batch > 1) {
    std::vector<int32_t> toks(static_cast<size_t>(a.batch)), next(toks.size());
    for (auto& t : toks) t = tok(rng);
    auto reset = [&]() {
      for (int s = 0; s < a.batch; ++s) (void)ctx.rewind_seq(s, 0);
    };
    reset();
    for (int i = 0; i < 3; ++i) BENCH_OK(ctx.decode_batch(toks, next, false), "batch warm-up");
    reset();
    auto t0 = Clock::now();
    for (int i = 0; i < a.steps; ++i) {
      BENCH_OK(ctx.decode_batch(toks, next, false), "batch decode");
      toks = next;
    }
    const double step = ms_since(t0) / a.steps;
    std::printf("RESULT name=decode%d_%s value=%.3f unit=ms/step tok_s=%.1f\n", a.batch, a.label.c_str(), step,
                a.batch * 1e3 / step);
  }
  if (a.breakdown) {
    if (a.prefill > cuda::kMatvecMaxTokens)
      if (int rc = prefill_breakdown(ctx, m, a.label, prompt, 2); rc != 0) return rc;
    if (int rc = breakdown(ctx, m, a.label, 1, 4); rc != 0) return rc;
    if (a.batch > 1)
      if (int rc = breakdown(ctx, m, a.label, a.batch, 2); rc != 0) return rc;
  }
  return 0;
}

}  // namespace

namespace gpu_bench {
namespace {
struct Entry {
  const char* name;
  const char* usage;
  Command run;
};
std::vector<Entry>& registry() {
  static std::vector<Entry> r;
  return r;
}
}  // namespace
bool add(const char* name, const char* usage, Command run) {
  registry().push_back({name, usage, run});
  return true;
}
}  // namespace gpu_bench
}  // namespace omni

int main(int argc, char** argv) {
  using namespace omni;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s probe | model --model M --label L [--prefill N] [--steps N] [--batch N]\n", argv[0]);
    for (const auto& e : gpu_bench::registry()) std::fprintf(stderr, "       %s %s\n", argv[0], e.usage);
    return 2;
  }
  auto n = cuda::device_count();
  if (!n.ok()) {
    std::printf("ERROR %s\n", n.status().message().c_str());
    return 1;
  }
  const std::string cmd = argv[1];
  if (cmd == "probe") return probe();
  if (cmd == "model") {
    ModelArgs a;
    for (int i = 2; i + 1 < argc; i += 2) {
      const std::string k = argv[i], v = argv[i + 1];
      if (k == "--model") a.model = v;
      else if (k == "--label") a.label = v;
      else if (k == "--prefill") a.prefill = std::atoi(v.c_str());
      else if (k == "--steps") a.steps = std::atoi(v.c_str());
      else if (k == "--batch") a.batch = std::atoi(v.c_str());
      else if (k == "--breakdown") a.breakdown = std::atoi(v.c_str());
      else {
        std::fprintf(stderr, "unknown option %s\n", k.c_str());
        return 2;
      }
    }
    if (a.model.empty() || a.prefill < 1 || a.steps < 1 || a.batch < 1 || a.batch > CudaContext::kMaxBatch) {
      std::fprintf(stderr, "model: --model is required; --prefill/--steps >= 1; --batch in [1, 16]\n");
      return 2;
    }
    return bench_model(a);
  }
  for (const auto& e : gpu_bench::registry())
    if (cmd == e.name) return e.run(argc - 1, argv + 1);
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}
