#!/usr/bin/env bash
# Runs the GGUF fuzzer for a bounded time on a copy of the seed corpus; exits non-zero on a crash.
#   tests/fuzz/run_fuzz_gguf.sh [path/to/fuzz_gguf]      (SECONDS_BUDGET=60 by default)
# Build it first:  cmake --preset fuzz && cmake --build build-fuzz --target fuzz_gguf
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fuzzer="${1:-$root/build-fuzz/bin/fuzz_gguf}"
budget="${SECONDS_BUDGET:-60}"
[[ -x "$fuzzer" ]] || { echo "run_fuzz_gguf.sh: no fuzzer at $fuzzer (build target fuzz_gguf)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp "$root"/tests/data/gguf/*.gguf "$root"/tests/data/gguf/bad/*.gguf "$work/corpus/"


# shellcheck source=tests/fuzz/fuzz_lib.sh
source "$here/fuzz_lib.sh"
run_fuzzer run_fuzz_gguf.sh "$fuzzer" "$work" 16384 "$root/build-fuzz/crashes"
