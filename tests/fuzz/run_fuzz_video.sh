#!/usr/bin/env bash
# Runs the video demuxing/decoding fuzzer for a bounded time; exits non-zero on a crash (the
# crash inputs are kept in build-fuzz-video/crashes/). Seeds: the committed tiny clips in
# tests/data/vision/video_seeds (16 x 12, 3 frames of astro.png: FFV1/Matroska, VP8/WebM,
# H.264/MP4, MPEG-4/AVI, made with `ffmpeg -loop 1 -framerate 5 -t 0.6 -i astro.png
# -vf scale=16:12 -c:v CODEC`), plus, when the ffmpeg command is present, an animated GIF,
# MPEG-2 in MPEG-TS and MJPEG in MOV made the same way, and the committed still images (a
# still is a one-frame video). Each input is bounded by the fuzzer's own limits (fuzz_video.cpp:
# 1 Mpx a frame, 4 frames, 16 MiB) and here by -timeout and -rss_limit_mb.
#   tests/fuzz/run_fuzz_video.sh [path/to/fuzz_video]     (SECONDS_BUDGET=60 by default)
# Build it with the fuzz preset (clang, FFmpeg on; FFmpeg's own libraries are not instrumented):
#   cmake --preset fuzz && cmake --build build-fuzz --target fuzz_video
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fuzzer="${1:-$root/build-fuzz/bin/fuzz_video}"
budget="${SECONDS_BUDGET:-60}"
[[ -x "$fuzzer" ]] || { echo "run_fuzz_video.sh: no fuzzer at $fuzzer (build target fuzz_video)" >&2; exit 2; }
seeds="$root/tests/data/vision/video_seeds"
images="$root/tests/data/vision"
compgen -G "$seeds/tiny_*" > /dev/null || { echo "run_fuzz_video.sh: no seeds in $seeds" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
i=0
add_seed() {  # add_seed FILE: a leading selector byte (rate, frame cap, limits), then the file
  [[ -s "$1" ]] || return 0
  { printf "\\$(printf '%03o' $((i * 37 % 256)))"; cat "$1"; } > "$work/corpus/seed$i"
  i=$((i + 1))
}
for f in "$seeds"/tiny_* "$images"/astro.gif "$images"/astro.webp "$images"/bad_*; do
  [[ -f "$f" ]] && add_seed "$f"
done
if command -v ffmpeg >/dev/null; then
  for spec in "gif:-c:v gif" "ts:-c:v mpeg2video" "mov:-c:v mjpeg"; do
    ext="${spec%%:*}"; args="${spec#*:}"
    out="$work/tiny.$ext"
    # shellcheck disable=SC2086
    if ffmpeg -nostdin -v error -y -loop 1 -framerate 5 -t 0.6 -i "$images/astro.png" \
         -vf scale=16:12 $args "$out" 2>/dev/null; then
      add_seed "$out"
    fi
  done
else
  echo "run_fuzz_video.sh: no ffmpeg command; seeding with the committed clips only" >&2
fi
# Inputs that once crashed (already with their selector byte) run first, as-is.
for f in "$seeds"/regressions/*; do
  [[ -f "$f" ]] && cp "$f" "$work/corpus/regression_$(basename "$f")"
done
echo "run_fuzz_video.sh: $i seeds, ${budget}s" >&2

# shellcheck source=tests/fuzz/fuzz_lib.sh
source "$here/fuzz_lib.sh"
run_fuzzer run_fuzz_video.sh "$fuzzer" "$work" 16384 "$root/build-fuzz-video/crashes"
