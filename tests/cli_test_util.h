// Running the `omnirt` binary (OMNIRT_CLI_PATH, defined for omnirt_tests) from a test as a user
// would: shell-syntax arguments, no stdin, both streams captured, the exit code.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace omni::test {

struct CliResult {
  int exit_code = -1;  // the exit status; 128 + the signal when a signal ended it
  std::string out, err;
};

// The whole file as bytes ("" when it cannot be read).
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Runs the CLI with `args` (shell syntax), stdin from /dev/null; stdout and stderr go through
// `dir`/stdout.txt and `dir`/stderr.txt (overwritten on every call).
inline CliResult run_cli(const std::string& args, const std::filesystem::path& dir) {
  const std::filesystem::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd =
      std::string(OMNIRT_CLI_PATH) + " " + args + " >" + out.string() + " 2>" + err.string() + " </dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

}  // namespace omni::test
