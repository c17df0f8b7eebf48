// `omnirt bench`: machine probes and model speed, in one process.
//   Probes (per thread count): stream-read bandwidth of a buffer much larger than the caches
//   (GB/s), FMA throughput with the best ISA (register-only chains: the GEMM ceiling) and our
//   f32 matmul on a hot-in-cache problem (GFLOP/s).
//   Model (per thread count and prompt length): prefill tokens/s, then --gen-tokens greedy
//   decode steps (tokens/s); bytes read per decoded token (every weight matrix incl. the output
//   head, plus the K/V the attention reads at that context, averaged over the decode steps) and
//   the roofline fraction = bytes/token x tokens/s / probed bandwidth at the same thread count.
// Every figure is the median [min-max] over --reps runs. The model runs before the probes so
// that the peak RSS (getrusage) is the model's, not the probe buffer's.
// Paired roofline: this host's memory bandwidth moves by tens of percent from minute to
// minute, so a probe taken after the model phase can be far from what the decode steps saw.
// After the probes, the decode reps run again, each between two stream reads on the context's
// own thread pool, and each rep's fraction uses the mean of its own two reads ("paired").
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/core/huge_pages.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/probe_cpu.h"
#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "tools/cli/cli.h"

namespace omni::cli {
namespace {

struct BenchOptions {
  std::string model, prompt_tokens = "64,512", threads = "1,0";
  int gen_tokens = 128, reps = 3, probe_mib = 1024;
  bool json = false, no_probe = false, no_paired = false;
  bool int8 = false;  // ContextParams::int8_activations
  std::string kv = "f16";
};

struct Summary {
  double median = 0, min = 0, max = 0;
};

Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Summary s;
  if (v.empty()) return s;
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.min = v.front();
  s.max = v.back();
  return s;
}

Summary scaled(Summary s, double f) { return {s.median * f, s.min * f, s.max * f}; }

struct Row {
  int prompt_tokens = 0;
  Summary prefill_tps, decode_tps;
  double weight_bytes_per_tok = 0, kv_bytes_per_tok = 0;
  // CPU time / (wall time x threads) over the decode loops: the pool's threads spin between
  // jobs, so anything well below 1 means other processes took CPUs and the timing is unfair.
  double decode_cpu_share = 0;
  // The paired reps: each rep's roofline fraction against the stream reads just before and
  // after it, and those reads.
  bool paired = false;
  Summary paired_roofline, paired_gbs;
};

struct Probe {
  Summary stream_gbs, fma_gflops, matmul_f32_gflops;
};

struct Run {
  int threads = 0;
  std::vector<Row> rows;
  Probe probe;
  bool probed = false;
};

int32_t argmax(const float* x, int64_t n) { return static_cast<int32_t>(cpu::argmax(x, n)); }

// CPU seconds (user + system) this process has used so far.
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(c + 2);
    }
  }
  return "unknown";
}

int64_t matrix_bytes(const Weight& w) { return w ? dtype_row_bytes(w.type, w.n_in) * w.n_out : 0; }

// Weight bytes one decode step streams: every matrix of every layer and the output head (the
// token embedding contributes one row; the f32 norm vectors stay in cache and are not counted).
double weight_bytes_per_token(const Model& m) {
  double b = static_cast<double>(matrix_bytes(m.output()));
  for (const LayerWeights& L : m.layers())
    for (const Weight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down})
      b += static_cast<double>(matrix_bytes(*w));
  return b;
}

// K and V bytes the attention reads, averaged over decode steps at positions [p0, p0 + n).
double kv_bytes_per_token(const Model& m, int64_t p0, int64_t n, size_t kv_elem) {
  const HParams& hp = m.hparams();
  const double pos_bytes = 2.0 * static_cast<double>(hp.n_head_kv * hp.head_dim * static_cast<int64_t>(kv_elem));
  double total = 0;
  for (int64_t pos = p0; pos < p0 + n; ++pos) {
    for (int64_t il = 0; il < hp.n_layer; ++il) {
      const bool swa = il < static_cast<int64_t>(hp.layer_is_swa.size()) && hp.layer_is_swa[il] != 0;
      const int64_t window = swa ? hp.sliding_window : 0;
      const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      total += pos_bytes * static_cast<double>(pos - lo + 1);
    }
  }
  return n > 0 ? total / static_cast<double>(n) : 0;
}

bool parse_threads(const std::string& text, std::vector<int>* out, std::string* error) {
  std::vector<int32_t> v;
  if (!parse_token_list(text, &v, error)) return false;
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int32_t t : v) {
    if (t < 0 || t > 1024) {
      *error = std::to_string(t) + " must be in [0, 1024]";
      return false;
    }
    const int n = t == 0 ? hw : t;
    if (std::find(out->begin(), out->end(), n) == out->end()) out->push_back(n);
  }
  if (out->empty()) *error = "no thread count given";
  return !out->empty();
}

Probe run_probes(int threads, int reps, size_t buf_bytes, uint8_t* buf) {
  ThreadPool pool(threads);
  Probe p;
  std::vector<double> gbs, fma, mm;
  volatile uint64_t sink = 0;
  sink = sink + cpu::stream_read(pool, buf, buf_bytes);  // warm-up: page tables, clocks
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_seconds();
    sink = sink + cpu::stream_read(pool, buf, buf_bytes);
    gbs.push_back(static_cast<double>(buf_bytes) / (now_seconds() - t0) * 1e-9);
  }
  constexpr int64_t kIters = 20'000'000;
  cpu::fma_burst(pool, kIters / 10);
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_seconds();
    const double flops = cpu::fma_burst(pool, kIters);
    fma.push_back(flops / (now_seconds() - t0) * 1e-9);
  }
  // Our f32 matmul, 256 x 1024 weights (1 MiB, in L2) times 64 tokens.
  const int64_t n_out = 256, n_in = 1024, n_tok = 64;
  std::vector<float> w(static_cast<size_t>(n_out * n_in)), x(static_cast<size_t>(n_tok * n_in)),
      y(static_cast<size_t>(n_tok * n_out)),
      scratch(static_cast<size_t>(cpu::matmul_scratch_floats(n_in, threads)));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& v : w) v = u(rng);
  for (auto& v : x) v = u(rng);
  auto once = [&] { cpu::matmul(pool, DType::kF32, w.data(), n_out, n_in, x.data(), n_tok, y.data(), scratch.data()); };
  once();
  for (int r = 0; r < reps; ++r) {
    const int kCalls = 20;
    const double t0 = now_seconds();
    for (int i = 0; i < kCalls; ++i) once();
    mm.push_back(2.0 * n_out * n_in * n_tok * kCalls / (now_seconds() - t0) * 1e-9);
  }
  p.stream_gbs = summarize(gbs);
  p.fma_gflops = summarize(fma);
  p.matmul_f32_gflops = summarize(mm);
  return p;
}

std::string js_summary(const Summary& s) {
  std::ostringstream o;
  o << "{\"median\": " << s.median << ", \"min\": " << s.min << ", \"max\": " << s.max << "}";
  return o.str();
}

int run_bench(const BenchOptions& o) {
  std::vector<int32_t> lengths;
  std::vector<int> thread_counts;
  std::string error;
  if (!parse_token_list(o.prompt_tokens, &lengths, &error)) return fail("--prompt-tokens: " + error);
  for (int32_t n : lengths) {
    if (n < 1) return fail("--prompt-tokens: " + std::to_string(n) + " must be at least 1");
  }
  if (!parse_threads(o.threads, &thread_counts, &error)) return fail("--threads: " + error);
  if (o.gen_tokens < 0) return fail("--gen-tokens " + std::to_string(o.gen_tokens) + " is negative");
  if (o.reps < 1) return fail("--reps " + std::to_string(o.reps) + " must be at least 1");
  if (o.kv != "f16" && o.kv != "f32") return fail("--kv '" + o.kv + "' must be f16 or f32");
  if (o.probe_mib < 64 || o.probe_mib > 65536)
    return fail("--probe-mib " + std::to_string(o.probe_mib) + " must be in [64, 65536]");

  auto model = Model::load(o.model);
  if (!model.ok()) return fail("cannot load model '" + o.model + "': " + model.status().to_string());
  const Model& m = **model;
  if (m.is_synthetic()) note_synthetic(o.model);
  const int64_t n_vocab = m.hparams().n_vocab;
  const int32_t longest = *std::max_element(lengths.begin(), lengths.end());
  const size_t kv_elem = o.kv == "f32" ? 4 : 2;
  const double wbytes = weight_bytes_per_token(m);

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(longest));
  for (auto& t : prompt) t = pick(rng);

  // The timed runs and the paired re-runs use the same context settings.
  auto params_for = [&](int threads) {
    ContextParams cp;
    cp.n_ctx = longest + o.gen_tokens;
    cp.n_threads = threads;
    cp.kv_type = kv_elem == 4 ? DType::kF32 : DType::kF16;
    cp.int8_activations = o.int8;
    return cp;
  };
  std::vector<Run> runs;
  size_t kv_cache_bytes = 0;
  for (int threads : thread_counts) {
    auto ctx_or = Context::create(m, params_for(threads));
    if (!ctx_or.ok()) return fail(ctx_or.status().to_string());
    Context& ctx = **ctx_or;
    kv_cache_bytes = std::max(kv_cache_bytes, ctx.kv_bytes());
    Run run;
    run.threads = ctx.n_threads();
    for (int32_t n_prompt : lengths) {
      std::vector<double> prefill, decode;
      double decode_wall = 0, decode_cpu = 0;
      for (int rep = 0; rep < o.reps; ++rep) {
        if (Status st = ctx.rewind(0); !st.ok()) return fail(st.to_string());
        const double t0 = now_seconds();
        if (Status st = ctx.eval(std::span<const int32_t>(prompt.data(), n_prompt), false); !st.ok()) {
          return fail("prefill: " + st.to_string());
        }
        const double t1 = now_seconds(), c1 = cpu_seconds();
        prefill.push_back(n_prompt / (t1 - t0));
        for (int i = 0; i < o.gen_tokens; ++i) {
          const int32_t next[1] = {argmax(ctx.last_logits(), n_vocab)};
          if (Status st = ctx.eval(next, false); !st.ok()) return fail("decode: " + st.to_string());
        }
        const double t2 = now_seconds();
        decode_wall += t2 - t1;
        decode_cpu += cpu_seconds() - c1;
        if (o.gen_tokens > 0) decode.push_back(o.gen_tokens / (t2 - t1));
      }
      Row row;
      row.prompt_tokens = n_prompt;
      row.prefill_tps = summarize(prefill);
      row.decode_tps = summarize(decode);
      row.weight_bytes_per_tok = wbytes;
      row.kv_bytes_per_tok = kv_bytes_per_token(m, n_prompt, o.gen_tokens, kv_elem);
      row.decode_cpu_share = decode_wall > 0 ? decode_cpu / (decode_wall * run.threads) : 0;
      run.rows.push_back(row);
    }
    runs.push_back(std::move(run));
  }
  const int64_t rss = peak_rss_bytes();
  int64_t probe_huge = -1;  // bytes of the probe buffer in 2 MiB pages

  if (!o.no_probe) {
    // Touched once so every page is resident before timing. With 2 MiB pages where the kernel
    // gives them, as the model's weights get (settle_pages): the roofline is the best read.
    const size_t buf_bytes = static_cast<size_t>(o.probe_mib) << 20;
    HugeBuffer hb(buf_bytes);
    void* buf = hb.data();
    if (!buf) return fail("cannot map the " + std::to_string(o.probe_mib) + " MiB probe buffer");
    std::memset(buf, 0x5A, buf_bytes);
    probe_huge = huge_mapped_bytes(buf, buf_bytes);
    for (Run& r : runs) {
      r.probe = run_probes(r.threads, std::max(o.reps, 3), buf_bytes, static_cast<uint8_t*>(buf));
      r.probed = true;
    }
  }

  if (!o.no_probe && !o.no_paired && o.gen_tokens > 0) {
    const size_t buf_bytes = static_cast<size_t>(o.probe_mib) << 20;
    HugeBuffer hb(buf_bytes);
    void* buf = hb.data();
    if (!buf) return fail("cannot map the " + std::to_string(o.probe_mib) + " MiB probe buffer");
    std::memset(buf, 0x5A, buf_bytes);
    volatile uint64_t sink = 0;
    for (Run& r : runs) {
      auto ctx_or = Context::create(m, params_for(r.threads));
      if (!ctx_or.ok()) return fail(ctx_or.status().to_string());
      Context& ctx = **ctx_or;
      auto read_gbs = [&] {
        const double t0 = now_seconds();
        sink = sink + cpu::stream_read(ctx.thread_pool(), static_cast<uint8_t*>(buf), buf_bytes);
        return static_cast<double>(buf_bytes) / (now_seconds() - t0) * 1e-9;
      };
      read_gbs();  // warm-up: page tables, clocks
      for (Row& row : r.rows) {
        std::vector<double> fr, gbs;
        for (int rep = 0; rep < o.reps; ++rep) {
          if (Status st = ctx.rewind(0); !st.ok()) return fail(st.to_string());
          if (Status st = ctx.eval(std::span<const int32_t>(prompt.data(), row.prompt_tokens), false); !st.ok())
            return fail("prefill: " + st.to_string());
          const double g0 = read_gbs(), t1 = now_seconds();
          for (int i = 0; i < o.gen_tokens; ++i) {
            const int32_t next[1] = {argmax(ctx.last_logits(), n_vocab)};
            if (Status st = ctx.eval(next, false); !st.ok()) return fail("decode: " + st.to_string());
          }
          const double tps = o.gen_tokens / (now_seconds() - t1), g1 = read_gbs();
          gbs.push_back(0.5 * (g0 + g1));
          fr.push_back((row.weight_bytes_per_tok + row.kv_bytes_per_tok) * 1e-9 * tps / gbs.back());
        }
        row.paired = true;
        row.paired_roofline = summarize(fr);
        row.paired_gbs = summarize(gbs);
      }
    }
  }

  auto roofline = [&](const Run& r, const Row& row) {
    if (!r.probed || r.probe.stream_gbs.median <= 0) return Summary{};
    return scaled(row.decode_tps, (row.weight_bytes_per_tok + row.kv_bytes_per_tok) * 1e-9 / r.probe.stream_gbs.median);
  };

  if (o.json) {
    std::ostringstream js;
    js << "{\"model\": \"" << escape_text(o.model) << "\", \"arch\": \"" << arch_name(m.hparams().arch)
       << "\", \"synthetic\": " << (m.is_synthetic() ? "true" : "false") << ", \"cpu\": \""
       << escape_text(cpu_model_name()) << "\", \"cores\": " << std::thread::hardware_concurrency()
       << ", \"isa\": \"" << cpu_isa_name(cpu_isa()) << "\", \"threads\": ";
    if (runs.size() == 1) {
      js << runs[0].threads;
    } else {
      js << "[";
      for (size_t i = 0; i < runs.size(); ++i) js << (i ? ", " : "") << runs[i].threads;
      js << "]";
    }
    js << ", \"kv\": \"" << o.kv << "\", \"int8\": " << (o.int8 ? "true" : "false") << ", \"reps\": " << o.reps << ", \"gen_tokens\": " << o.gen_tokens
       << ", \"weight_bytes\": " << m.weight_bytes() << ", \"kv_cache_bytes\": " << kv_cache_bytes
       << ", \"peak_rss_bytes\": " << rss << ", \"weights_huge_page_bytes\": " << m.pages().huge_bytes
       << ", \"weights_reread\": " << (m.pages().reread ? "true" : "false")
       << ", \"probe_huge_page_bytes\": " << probe_huge << ", \"runs\": [";
    auto rows_json = [&](const Run& r) {
      std::ostringstream a;
      a << "[";
      for (size_t i = 0; i < r.rows.size(); ++i) {
        const Row& row = r.rows[i];
        a << (i ? ", " : "") << "{\"prompt_tokens\": " << row.prompt_tokens
          << ", \"prefill_tok_s\": " << js_summary(row.prefill_tps)
          << ", \"decode_tok_s\": " << js_summary(row.decode_tps)
          << ", \"decode_weight_bytes_per_token\": " << row.weight_bytes_per_tok
          << ", \"decode_kv_bytes_per_token\": " << row.kv_bytes_per_tok
          << ", \"decode_bytes_per_token\": " << row.weight_bytes_per_tok + row.kv_bytes_per_tok
          << ", \"decode_cpu_share\": " << row.decode_cpu_share;
        if (r.probed) a << ", \"roofline_fraction\": " << js_summary(roofline(r, row));
        if (row.paired)
          a << ", \"roofline_fraction_paired\": " << js_summary(row.paired_roofline)
            << ", \"paired_stream_read_gb_s\": " << js_summary(row.paired_gbs);
        a << "}";
      }
      a << "]";
      return a.str();
    };
    for (size_t i = 0; i < runs.size(); ++i) {
      const Run& r = runs[i];
      js << (i ? ", " : "") << "{\"threads\": " << r.threads;
      if (r.probed) {
        js << ", \"probe\": {\"stream_read_gb_s\": " << js_summary(r.probe.stream_gbs)
           << ", \"fma_gflop_s\": " << js_summary(r.probe.fma_gflops)
           << ", \"matmul_f32_gflop_s\": " << js_summary(r.probe.matmul_f32_gflops) << "}";
      }
      js << ", \"results\": " << rows_json(r) << "}";
    }
    // "results": the first thread count's rows (the single-thread-count schema).
    js << "], \"results\": " << rows_json(runs[0]) << "}\n";
    std::fputs(js.str().c_str(), stdout);
    return 0;
  }
  std::printf("model %s (%s%s), kv %s%s, %d reps, weights %.1f MiB, KV cache %.1f MiB, peak RSS %.1f MiB\n",
              o.model.c_str(), arch_name(m.hparams().arch), m.is_synthetic() ? ", synthetic" : "",
              o.kv.c_str(), o.int8 ? ", int8 activations" : "", o.reps, m.weight_bytes() / 1048576.0, kv_cache_bytes / 1048576.0, rss / 1048576.0);
  std::printf("cpu %s, %u cores, isa %s; figures are median [min-max]\n", cpu_model_name().c_str(),
              std::thread::hardware_concurrency(), cpu_isa_name(cpu_isa()));
  const gguf::PageReport& pg = m.pages();
  auto pct = [](int64_t part, size_t whole) { return whole ? 100.0 * static_cast<double>(part) / whole : 0.0; };
  std::printf("2 MiB pages: file %.0f%%", pct(pg.huge_bytes, pg.bytes));
  if (pg.reread) std::printf(" (%.0f%% before its pages were read again at load, %.2f s)", pct(pg.huge_before, pg.bytes), pg.seconds);
  if (probe_huge >= 0) std::printf(", probe buffer %.0f%%", pct(probe_huge, static_cast<size_t>(o.probe_mib) << 20));
  std::printf("%s\n", huge_pages_enabled() ? "" : " (OMNIRT_HUGE_PAGES=0)");
  for (const Run& r : runs) {
    std::printf("\n%d thread%s", r.threads, r.threads == 1 ? "" : "s");
    if (r.probed) {
      std::printf(": stream read %.1f [%.1f-%.1f] GB/s, fma %.1f [%.1f-%.1f] GFLOP/s, f32 matmul %.1f GFLOP/s",
                  r.probe.stream_gbs.median, r.probe.stream_gbs.min, r.probe.stream_gbs.max,
                  r.probe.fma_gflops.median, r.probe.fma_gflops.min, r.probe.fma_gflops.max,
                  r.probe.matmul_f32_gflops.median);
    }
    std::printf("\n%8s  %26s  %26s  %9s  %20s  %9s  %s\n", "prompt", "prefill tok/s",
                ("decode tok/s (" + std::to_string(o.gen_tokens) + " tok)").c_str(), "MB/token",
                "roofline", "cpu share", "paired roofline (its reads, GB/s)");
    for (const Row& row : r.rows) {
      const Summary rf = roofline(r, row);
      std::printf("%8d  %10.1f [%6.1f-%6.1f]  %10.1f [%6.1f-%6.1f]  %9.2f  %5.1f%% [%4.1f-%4.1f]  %9.2f",
                  row.prompt_tokens, row.prefill_tps.median, row.prefill_tps.min, row.prefill_tps.max,
                  row.decode_tps.median, row.decode_tps.min, row.decode_tps.max,
                  (row.weight_bytes_per_tok + row.kv_bytes_per_tok) * 1e-6, 100 * rf.median,
                  100 * rf.min, 100 * rf.max, row.decode_cpu_share);
      if (row.paired) {
        std::printf("  %5.1f%% [%4.1f-%4.1f] (%.1f [%.1f-%.1f])", 100 * row.paired_roofline.median,
                    100 * row.paired_roofline.min, 100 * row.paired_roofline.max, row.paired_gbs.median,
                    row.paired_gbs.min, row.paired_gbs.max);
      }
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& root, std::vector<Command>& out) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* c = root.add_subcommand("bench", "Probe the machine; measure prefill and decode speed");
  c->add_option("--model,-m", o->model, "GGUF model file")->required();
  c->add_option("--threads,-t", o->threads, "CPU thread counts, comma-separated; 0 = all cores (default: 1 and all)")
      ->capture_default_str();
  c->add_option("--prompt-tokens", o->prompt_tokens, "Prompt lengths, comma-separated")
      ->capture_default_str();
  c->add_option("--gen-tokens", o->gen_tokens, "Tokens decoded after each prompt")
      ->capture_default_str();
  c->add_option("--reps", o->reps, "Repetitions per prompt length")->capture_default_str();
  c->add_option("--kv", o->kv, "KV cache type: f16 or f32")->capture_default_str();
  c->add_option("--probe-mib", o->probe_mib, "Stream-read probe buffer size (MiB)")->capture_default_str();
  c->add_flag("--int8", o->int8, "Decode with int8-quantised activations (Q8_0, Q4_0, Q5_0, Q4_K matrices)");
  c->add_flag("--no-probe", o->no_probe, "Skip the machine probes (no roofline)");
  c->add_flag("--no-paired", o->no_paired,
              "Skip the paired roofline (the decode reps again, each between two stream reads)");
  c->add_flag("--json", o->json, "One JSON object on stdout instead of the table");
  out.push_back({c, [o] { return run_bench(*o); }});
}

}  // namespace omni::cli
