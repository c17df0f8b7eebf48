// Running the `omnirt` binary (OMNIRT_CLI_PATH, defined for omnirt_tests) from a test as a user
// would: shell-syntax arguments, no stdin, both streams captured, the exit code. Also the dynamic
// symbols of the libomnirt.so built beside it.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
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

// The symbols libomnirt.so (lib/ beside the CLI's bin/) defines in its dynamic table, name -> the
// type letter `nm -D --defined-only` prints ('T': code). Empty, with `*skip_reason` set, when the
// library is not built (a static-only build) or `nm` cannot read it.
inline std::map<std::string, char> exported_symbols(std::string* skip_reason) {
  namespace fs = std::filesystem;
  const fs::path lib = fs::path(OMNIRT_CLI_PATH).parent_path().parent_path() / "lib" / "libomnirt.so";
  if (!fs::exists(lib)) {
    *skip_reason = lib.string() + " not built";
    return {};
  }
  FILE* p = ::popen(("nm -D --defined-only " + lib.string() + " 2>/dev/null").c_str(), "r");
  std::string text;
  if (p != nullptr) {
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  }
  if (p == nullptr || ::pclose(p) != 0) {
    *skip_reason = "nm not available";
    return {};
  }
  std::map<std::string, char> symbols;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {  // "<address> <type> <name>"
    const size_t name_at = line.find_last_of(' ');
    if (name_at == std::string::npos || name_at < 1) continue;
    symbols[line.substr(name_at + 1)] = line[name_at - 1];
  }
  return symbols;
}

}  // namespace omni::test
