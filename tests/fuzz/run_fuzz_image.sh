#!/usr/bin/env bash
# Runs the image decoding fuzzer for a bounded time; exits non-zero on a crash (the crash inputs
# are kept in build-fuzz-image/crashes/). Seeds are made here: the committed test images
# (tests/data/vision: PNG, JPEG, WebP, BMP, GIF, grey/palette/RGBA PNGs and broken files), plus,
# when the ffmpeg command is present, small PNG/JPEG/WebP/BMP/GIF/TIFF/PPM files made from them.
#   tests/fuzz/run_fuzz_image.sh [path/to/fuzz_image]     (SECONDS_BUDGET=60 by default)
# Build it with the fuzz preset (clang, FFmpeg on; FFmpeg's own libraries are not instrumented):
#   cmake --preset fuzz && cmake --build build-fuzz --target fuzz_image
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fuzzer="${1:-$root/build-fuzz/bin/fuzz_image}"
budget="${SECONDS_BUDGET:-60}"
[[ -x "$fuzzer" ]] || { echo "run_fuzz_image.sh: no fuzzer at $fuzzer (build target fuzz_image)" >&2; exit 2; }
images="$root/tests/data/vision"
[[ -f "$images/astro.png" ]] || { echo "run_fuzz_image.sh: $images/astro.png missing" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
i=0
add_seed() {  # add_seed FILE: a leading selector byte (limits / preprocessing), then the file
  [[ -s "$1" ]] || return 0
  { printf "\\$(printf '%03o' $((i * 37 % 256)))"; cat "$1"; } > "$work/corpus/seed$i"
  i=$((i + 1))
}
for f in "$images"/astro* "$images"/bad_*; do
  case "$f" in *.rgb) continue ;; esac
  add_seed "$f"
done
if command -v ffmpeg >/dev/null; then
  # Tiny images keep the corpus fast to mutate.
  for ext in png jpg webp bmp gif tiff ppm; do
    out="$work/small.$ext"
    if ffmpeg -nostdin -v error -y -i "$images/astro.png" -vf scale=24:17 -frames:v 1 "$out" 2>/dev/null; then
      add_seed "$out"
    fi
  done
  if ffmpeg -nostdin -v error -y -i "$images/astro.png" -vf scale=9:31,format=gray -frames:v 1 \
       "$work/grey.png" 2>/dev/null; then
    add_seed "$work/grey.png"
  fi
else
  echo "run_fuzz_image.sh: no ffmpeg command; seeding with the committed images only" >&2
fi
# Inputs that once crashed (already with their selector byte) run first, as-is.
for f in "$root"/tests/data/vision/fuzz_regressions/*; do
  [[ -f "$f" ]] && cp "$f" "$work/corpus/regression_$(basename "$f")"
done
echo "run_fuzz_image.sh: $i seeds, ${budget}s" >&2

# shellcheck source=tests/fuzz/fuzz_lib.sh
source "$here/fuzz_lib.sh"
run_fuzzer run_fuzz_image.sh "$fuzzer" "$work" 65536 "$root/build-fuzz-image/crashes"
