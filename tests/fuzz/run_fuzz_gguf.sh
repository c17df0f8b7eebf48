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

# -rss_limit_mb / -malloc_limit_mb make a huge allocation a crash too.
set +e  # the fuzzer's own status decides, after its crash inputs are saved
"$fuzzer" "$work/corpus" -max_total_time="$budget" -max_len=16384 -timeout=10 \
  -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" 2>&1 | tail -n 40
status=${PIPESTATUS[0]}
set -e
if compgen -G "$work/artifacts/*" > /dev/null; then
  mkdir -p "$root/build-fuzz/crashes"
  cp "$work"/artifacts/* "$root/build-fuzz/crashes/"
  echo "run_fuzz_gguf.sh: crash inputs copied to build-fuzz/crashes/" >&2
  exit 1
fi
exit "$status"
