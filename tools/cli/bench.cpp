// `omnirt bench`: prefill and decode speed (tokens/s; median and range over reps), peak RSS and
// weight bytes. Prompts are fixed pseudo-random token ids; decode is greedy, one token per step,
// so every rep does the same work.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "tools/cli/cli.h"

namespace omni::cli {
namespace {

struct BenchOptions {
  std::string model, prompt_tokens = "64,512";
  int threads = 0, gen_tokens = 128, reps = 3;
  bool json = false;
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

struct Row {
  int prompt_tokens = 0;
  Summary prefill_tps, decode_tps;
};

int32_t argmax(const float* x, int64_t n) {
  return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

int run_bench(const BenchOptions& o) {
  std::vector<int32_t> lengths;
  std::string error;
  if (!parse_token_list(o.prompt_tokens, &lengths, &error)) return fail("--prompt-tokens: " + error);
  for (int32_t n : lengths) {
    if (n < 1) return fail("--prompt-tokens: " + std::to_string(n) + " must be at least 1");
  }
  if (o.gen_tokens < 0) return fail("--gen-tokens " + std::to_string(o.gen_tokens) + " is negative");
  if (o.reps < 1) return fail("--reps " + std::to_string(o.reps) + " must be at least 1");
  if (o.kv != "f16" && o.kv != "f32") return fail("--kv '" + o.kv + "' must be f16 or f32");

  auto model = Model::load(o.model);
  if (!model.ok()) return fail("cannot load model '" + o.model + "': " + model.status().to_string());
  const Model& m = **model;
  if (m.is_synthetic()) note_synthetic(o.model);
  const int64_t n_vocab = m.hparams().n_vocab;
  const int32_t longest = *std::max_element(lengths.begin(), lengths.end());

  ContextParams cp;
  cp.n_ctx = longest + o.gen_tokens;
  cp.n_threads = o.threads;
  cp.kv_type = o.kv == "f32" ? DType::kF32 : DType::kF16;
  auto ctx_or = Context::create(m, cp);
  if (!ctx_or.ok()) return fail(ctx_or.status().to_string());
  Context& ctx = **ctx_or;

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(longest));
  for (auto& t : prompt) t = pick(rng);

  std::vector<Row> rows;
  for (int32_t n_prompt : lengths) {
    std::vector<double> prefill, decode;
    for (int rep = 0; rep < o.reps; ++rep) {
      if (Status st = ctx.rewind(0); !st.ok()) return fail(st.to_string());
      const double t0 = now_seconds();
      if (Status st = ctx.eval(std::span<const int32_t>(prompt.data(), n_prompt), false); !st.ok()) {
        return fail("prefill: " + st.to_string());
      }
      const double t1 = now_seconds();
      prefill.push_back(n_prompt / (t1 - t0));
      for (int i = 0; i < o.gen_tokens; ++i) {
        const int32_t next[1] = {argmax(ctx.last_logits(), n_vocab)};
        if (Status st = ctx.eval(next, false); !st.ok()) return fail("decode: " + st.to_string());
      }
      const double t2 = now_seconds();
      if (o.gen_tokens > 0) decode.push_back(o.gen_tokens / (t2 - t1));
    }
    rows.push_back({n_prompt, summarize(prefill), summarize(decode)});
  }

  const int64_t rss = peak_rss_bytes();
  if (o.json) {
    std::ostringstream js;
    js << "{\"model\": \"" << escape_text(o.model) << "\", \"arch\": \"" << arch_name(m.hparams().arch)
       << "\", \"synthetic\": " << (m.is_synthetic() ? "true" : "false")
       << ", \"threads\": " << ctx.n_threads() << ", \"kv\": \"" << o.kv
       << "\", \"reps\": " << o.reps << ", \"gen_tokens\": " << o.gen_tokens
       << ", \"weight_bytes\": " << m.weight_bytes() << ", \"peak_rss_bytes\": " << rss
       << ", \"results\": [";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      js << (i ? ", " : "") << "{\"prompt_tokens\": " << r.prompt_tokens
         << ", \"prefill_tok_s\": {\"median\": " << r.prefill_tps.median << ", \"min\": "
         << r.prefill_tps.min << ", \"max\": " << r.prefill_tps.max << "}"
         << ", \"decode_tok_s\": {\"median\": " << r.decode_tps.median << ", \"min\": "
         << r.decode_tps.min << ", \"max\": " << r.decode_tps.max << "}}";
    }
    js << "]}\n";
    std::fputs(js.str().c_str(), stdout);
    return 0;
  }
  std::printf("model %s (%s%s), %d threads, kv %s, %d reps, weights %.1f MiB, peak RSS %.1f MiB\n",
              o.model.c_str(), arch_name(m.hparams().arch), m.is_synthetic() ? ", synthetic" : "",
              ctx.n_threads(), o.kv.c_str(), o.reps, m.weight_bytes() / 1048576.0, rss / 1048576.0);
  std::printf("%8s  %26s  %26s\n", "prompt", "prefill tok/s med [min-max]",
              ("decode tok/s (" + std::to_string(o.gen_tokens) + " tok)").c_str());
  for (const Row& r : rows) {
    std::printf("%8d  %10.1f [%6.1f-%6.1f]  %10.1f [%6.1f-%6.1f]\n", r.prompt_tokens,
                r.prefill_tps.median, r.prefill_tps.min, r.prefill_tps.max, r.decode_tps.median,
                r.decode_tps.min, r.decode_tps.max);
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& root, std::vector<Command>& out) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* c = root.add_subcommand("bench", "Measure prefill and decode speed");
  c->add_option("--model,-m", o->model, "GGUF model file")->required();
  c->add_option("--threads,-t", o->threads, "CPU threads; 0 = all cores")->capture_default_str();
  c->add_option("--prompt-tokens", o->prompt_tokens, "Prompt lengths, comma-separated")
      ->capture_default_str();
  c->add_option("--gen-tokens", o->gen_tokens, "Tokens decoded after each prompt")
      ->capture_default_str();
  c->add_option("--reps", o->reps, "Repetitions per prompt length")->capture_default_str();
  c->add_option("--kv", o->kv, "KV cache type: f16 or f32")->capture_default_str();
  c->add_flag("--json", o->json, "One JSON object on stdout instead of the table");
  out.push_back({c, [o] { return run_bench(*o); }});
}

}  // namespace omni::cli
