// `omnirt eval`: logits for every position of a token list, written as raw float32
// [n_tokens, n_vocab] row-major (for comparisons against other implementations).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "tools/cli/cli.h"

namespace omni::cli {
namespace {

struct EvalOptions {
  std::string model, tokens, logits_out, kv = "f16";
  int threads = 0, n_ctx = 0;
};

int run_eval(const EvalOptions& o) {
  std::vector<int32_t> ids;
  std::string error;
  if (!parse_token_list(o.tokens, &ids, &error)) return fail("--tokens: " + error);
  if (o.kv != "f16" && o.kv != "f32") return fail("--kv '" + o.kv + "' must be f16 or f32");
  auto model = Model::load(o.model);
  if (!model.ok()) return fail("cannot load model '" + o.model + "': " + model.status().to_string());
  if ((*model)->is_synthetic()) note_synthetic(o.model);
  ContextParams cp;
  cp.n_ctx = o.n_ctx > 0 ? o.n_ctx : static_cast<int64_t>(ids.size());
  cp.n_threads = o.threads;
  cp.kv_type = o.kv == "f32" ? DType::kF32 : DType::kF16;
  auto ctx = Context::create(**model, cp);
  if (!ctx.ok()) return fail(ctx.status().to_string());
  if (Status st = (*ctx)->eval(ids, /*all_logits=*/true); !st.ok()) {
    return fail("eval: " + st.to_string());
  }
  const int64_t n_vocab = (*model)->hparams().n_vocab;
  const size_t n_floats = static_cast<size_t>((*ctx)->n_logit_rows() * n_vocab);
  FILE* f = std::fopen(o.logits_out.c_str(), "wb");
  if (!f) return fail("cannot open '" + o.logits_out + "' for writing");
  const size_t written = std::fwrite((*ctx)->logits(), sizeof(float), n_floats, f);
  if (std::fclose(f) != 0 || written != n_floats) {
    return fail("writing '" + o.logits_out + "' failed");
  }
  std::fprintf(stderr, "wrote logits [%lld, %lld] f32 to %s\n",
               static_cast<long long>((*ctx)->n_logit_rows()), static_cast<long long>(n_vocab),
               o.logits_out.c_str());
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& root, std::vector<Command>& out) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* c = root.add_subcommand("eval", "Write the logits of every position of a token list");
  c->add_option("--model,-m", o->model, "GGUF model file")->required();
  c->add_option("--tokens", o->tokens, "Token ids: \"1 2 3\" or \"1,2,3\"")->required();
  c->add_option("--logits-out", o->logits_out, "Output file: float32 [n_tokens, n_vocab]")
      ->required();
  c->add_option("--kv", o->kv, "KV cache type: f16 or f32")->capture_default_str();
  c->add_option("--threads,-t", o->threads, "CPU threads; 0 = all cores")->capture_default_str();
  c->add_option("--ctx,-c", o->n_ctx, "Context size; 0 = the number of tokens")
      ->capture_default_str();
  out.push_back({c, [o] { return run_eval(*o); }});
}

}  // namespace omni::cli
