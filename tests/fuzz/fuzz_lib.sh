# Sourced by tests/fuzz/run_fuzz_*.sh: the part every runner shares.
# run_fuzzer NAME FUZZER WORK MAX_LEN CRASH_DIR: runs FUZZER over WORK/corpus for $budget
# seconds (-rss_limit_mb / -malloc_limit_mb make a huge allocation a crash too), keeps crash
# inputs from WORK/artifacts in CRASH_DIR; returns 1 when there were any, else the fuzzer's
# own status.
run_fuzzer() {
  local name="$1" fuzzer="$2" work="$3" max_len="$4" crashes="$5" status
  set +e  # the fuzzer's own status, not the pipeline's, decides
  "$fuzzer" "$work/corpus" -max_total_time="$budget" -max_len="$max_len" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" 2>&1 | tail -n 40
  status=${PIPESTATUS[0]}
  set -e
  if compgen -G "$work/artifacts/*" > /dev/null; then
    mkdir -p "$crashes"
    cp "$work"/artifacts/* "$crashes/"
    echo "$name: crash inputs copied to $crashes/" >&2
    return 1
  fi
  return "$status"
}
