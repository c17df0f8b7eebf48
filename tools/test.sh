#!/usr/bin/env bash
# Runs the whole test suite (run tools/setup.sh first):
#  1. the release build's ctest (build/): unit tests incl. golden and real-Gemma tests, the C99
#     API test, the CLI tests;
#  2. the asan preset (AddressSanitizer + UndefinedBehaviorSanitizer): build + ctest;
#  3. the fuzz preset (clang + libFuzzer): each fuzz target for 60 s (tests/fuzz/run_<target>.sh);
#  4. the Python binding's test, when present.
# Ends with one line "N passed, N failed" (ctest tests plus the fuzz and Python steps) and a
# non-zero exit status if anything failed.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# ccache: key on paths relative to the checkout, so a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
cd "$root"

# The real-model tests fail (instead of skipping) when the installed model is missing.
export OMNIRT_REQUIRE_MODELS=1

passed=0
failed=0
failed_steps=()

# Runs ctest in $1 and adds its counts (parsed from its summary line) to the totals.
run_ctest() {
  local dir=$1 log
  log="$(mktemp)"
  ctest --test-dir "$dir" --output-on-failure -j2 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  local line
  line="$(grep -E '[0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)"
  rm -f "$log"
  if [[ -z "$line" ]]; then
    echo "test.sh: ctest in $dir printed no summary (status $status)" >&2
    failed=$((failed + 1)); failed_steps+=("ctest $dir")
    return
  fi
  local n_failed n_total
  n_failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
  n_total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")"
  passed=$((passed + n_total - n_failed))
  failed=$((failed + n_failed))
  if ((status != 0 || n_failed != 0)); then failed_steps+=("ctest $dir"); fi
}

step() {  # step NAME COMMAND...: one pass or one failure
  local name=$1
  shift
  echo "== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); failed_steps+=("$name")
  fi
}

echo "== release build + ctest (build/)"
if cmake --preset default >/dev/null && cmake --build --preset default; then
  run_ctest build
else
  failed=$((failed + 1)); failed_steps+=("release build")
fi

echo "== asan build + ctest (build-asan/)"
if cmake --preset asan >/dev/null && cmake --build --preset asan; then
  UBSAN_OPTIONS=print_stacktrace=1 run_ctest build-asan
else
  failed=$((failed + 1)); failed_steps+=("asan build")
fi

if compgen -G "tests/fuzz/run_fuzz_*.sh" > /dev/null; then
  fuzz_targets=()
  for src in tests/fuzz/fuzz_*.cpp; do
    [[ -e "$src" ]] && fuzz_targets+=("$(basename "$src" .cpp)")
  done
  build_fuzz() {
    cmake --preset fuzz >/dev/null && cmake --build --preset fuzz --target "${fuzz_targets[@]}"
  }
  run_fuzzers() {
    local t status=0
    for t in "${fuzz_targets[@]}"; do
      # Each target has its runner tests/fuzz/run_<target>.sh (seeds differ per input format).
      SECONDS_BUDGET=60 bash "tests/fuzz/run_$t.sh" "build-fuzz/bin/$t" || status=1
    done
    return $status
  }
  if ((${#fuzz_targets[@]})) && build_fuzz; then
    step "fuzz (${fuzz_targets[*]}, 60 s each)" run_fuzzers
  else
    failed=$((failed + 1)); failed_steps+=("fuzz build")
  fi
else
  echo "== fuzz: skipped (no tests/fuzz/run_fuzz_*.sh)"
fi

if [[ -f bindings/python/test_omnirt.py ]]; then
  step "python binding" env OMNIRT_LIB="$root/build/lib/libomnirt.so" \
    OMNIRT_CLI="$root/build/bin/omnirt" python3 bindings/python/test_omnirt.py
fi

# The Whisper converter on hand-made checkpoints and bad inputs (standard library only).
step "whisper converter" python3 tools/test_convert_whisper.py

if ((${#failed_steps[@]})); then echo "failed: ${failed_steps[*]}"; fi
echo "${passed} passed, ${failed} failed"
((failed == 0))
