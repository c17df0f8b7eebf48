// `omnirt`: generate, eval, tokenize, bench, model create/inspect, --version.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "tools/cli/cli.h"

namespace {

int print_version() {
  std::printf("omnirt %s\n", omni_version());
  std::printf("backends: %s\n", omni_backends());
  std::printf("cpu isa: %s\n", omni_cpu_isa());
  std::printf("cpu features: %s\n", omni_cpu_features());
  return 0;
}

int run(int argc, char** argv) {
  CLI::App app{"omnirt: inference runtime for GGUF transformer models"};
  app.name("omnirt");
  bool version = false;
  app.add_flag("--version", version, "Print the version, compiled backends and CPU features");
  app.require_subcommand(0, 1);
  std::vector<omni::cli::Command> commands;
  omni::cli::add_generate_command(app, commands);
  omni::cli::add_eval_command(app, commands);
  omni::cli::add_tokenize_command(app, commands);
  omni::cli::add_bench_command(app, commands);
  omni::cli::add_model_commands(app, commands);
  omni::cli::add_transcribe_command(app, commands);
  omni::cli::add_voice_command(app, commands);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and a usage hint on stderr
    return omni::cli::kExitUsage;
  }
  if (version) return print_version();
  for (const auto& c : commands) {
    if (c.app->parsed()) return c.run();
  }
  std::fprintf(stderr, "%s", app.help().c_str());
  return omni::cli::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // a bug: still no crash, and say what happened
    std::fprintf(stderr, "omnirt: internal error: %s\n", e.what());
    return omni::cli::kExitFailure;
  }
}
