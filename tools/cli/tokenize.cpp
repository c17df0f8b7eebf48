// `omnirt tokenize`: text to token ids (and pieces with --verbose), through the C API.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tools/cli/cli.h"

namespace omni::cli {
namespace {

struct TokenizeOptions {
  std::string model, text;
  bool no_bos = false, special = false, verbose = false;
};

int run_tokenize(const TokenizeOptions& o) {
  omni_model* model = load_model(o.model);
  if (!model) return kExitFailure;
  std::unique_ptr<omni_model, void (*)(omni_model*)> guard(model, omni_model_destroy);
  uint32_t flags = 0;
  if (!o.no_bos) flags |= OMNI_TOKENIZE_ADD_BOS;
  if (o.special) flags |= OMNI_TOKENIZE_PARSE_SPECIAL;
  size_t n = 0;
  omni_status st = omni_tokenize(model, o.text.c_str(), flags, nullptr, 0, &n);  // size query
  if (st != OMNI_OK && st != OMNI_ERR_OUT_OF_RANGE) return fail(omni_last_error());
  std::vector<omni_token> ids(n);
  if (omni_tokenize(model, o.text.c_str(), flags, ids.data(), ids.size(), &n) != OMNI_OK) {
    return fail(omni_last_error());
  }
  if (!o.verbose) {
    for (size_t i = 0; i < n; ++i) std::printf(i ? " %d" : "%d", ids[i]);
    std::printf("\n");
    return 0;
  }
  std::string piece;
  for (size_t i = 0; i < n; ++i) {
    size_t len = 0;
    omni_detokenize(model, &ids[i], 1, OMNI_DETOKENIZE_RENDER_SPECIAL, nullptr, 0, &len);
    piece.assign(len + 1, '\0');
    if (omni_detokenize(model, &ids[i], 1, OMNI_DETOKENIZE_RENDER_SPECIAL, piece.data(),
                        piece.size(), &len) != OMNI_OK) {
      return fail(omni_last_error());
    }
    piece.resize(len);
    std::printf("%6d  '%s'\n", ids[i], escape_text(piece).c_str());
  }
  std::printf("%zu tokens\n", n);
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& root, std::vector<Command>& out) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* c = root.add_subcommand("tokenize", "Print the token ids of a text");
  c->add_option("--model,-m", o->model, "GGUF model file")->required();
  c->add_option("--text", o->text, "UTF-8 text")->required();
  c->add_flag("--no-bos", o->no_bos, "Do not prepend BOS");
  c->add_flag("--special", o->special, "Parse special-token text (\"<start_of_turn>\") as ids");
  c->add_flag("--verbose,-v", o->verbose, "One token per line with its text");
  out.push_back({c, [o] { return run_tokenize(*o); }});
}

}  // namespace omni::cli
