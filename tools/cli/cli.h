// The `omnirt` command line: one file per subcommand; this header is what they share.
// Every command returns the process exit code: 0 success, 1 a runtime failure (message on
// stderr naming what was wrong), 2 bad usage (CLI11 reports those).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "include/omnirt.h"

namespace omni::cli {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// A subcommand and the action to run when the command line selected it.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

void add_generate_command(CLI::App& root, std::vector<Command>& out);
void add_eval_command(CLI::App& root, std::vector<Command>& out);
void add_tokenize_command(CLI::App& root, std::vector<Command>& out);
void add_bench_command(CLI::App& root, std::vector<Command>& out);
void add_model_commands(CLI::App& root, std::vector<Command>& out);
void add_transcribe_command(CLI::App& root, std::vector<Command>& out);
void add_voice_command(CLI::App& root, std::vector<Command>& out);

// Prints "omnirt: error: <message>" to stderr and returns kExitFailure.
int fail(const std::string& message);
// Loads through the C API; on failure prints the reason and returns NULL. Prints the
// synthetic-weights note for files made by `omnirt model create`.
omni_model* load_model(const std::string& path);
// "omnirt: note: <file> has random weights (synthetic); its output is noise" on stderr.
void note_synthetic(const std::string& path);
// Token ids from "1 2 3" or "1,2,3". False (with `error` set) on anything else.
bool parse_token_list(const std::string& text, std::vector<int32_t>* out, std::string* error);
// Text safe for a terminal: control bytes and invalid UTF-8 as \xNN, newline as \n.
std::string escape_text(const std::string& bytes);
// Seconds since an arbitrary start, monotonic.
double now_seconds();

}  // namespace omni::cli
