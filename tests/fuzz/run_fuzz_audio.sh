#!/usr/bin/env bash
# Runs the audio decoding fuzzer for a bounded time on seeds made here with the ffmpeg command
# (a quarter second of a real recording in WAV, FLAC, MP3, Ogg/Opus, Ogg/Vorbis, M4A/AAC, MKV);
# exits non-zero on a crash.
#   tests/fuzz/run_fuzz_audio.sh [path/to/fuzz_audio]     (SECONDS_BUDGET=60 by default)
# Build it with the fuzz preset (clang, FFmpeg on; FFmpeg's own libraries are not instrumented):
#   cmake --preset fuzz && cmake --build build-fuzz --target fuzz_audio
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fuzzer="${1:-$root/build-fuzz/bin/fuzz_audio}"
budget="${SECONDS_BUDGET:-60}"
[[ -x "$fuzzer" ]] || { echo "run_fuzz_audio.sh: no fuzzer at $fuzzer (build target fuzz_audio)" >&2; exit 2; }
command -v ffmpeg >/dev/null || { echo "run_fuzz_audio.sh: the ffmpeg command is needed for seeds" >&2; exit 2; }
clip=/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav
[[ -f "$clip" ]] || { echo "run_fuzz_audio.sh: $clip missing (pocketsphinx-testdata)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
i=0
for args in "-c:a pcm_s16le -f wav" "-c:a pcm_f32le -ac 2 -f wav" "-c:a flac -f flac" \
            "-c:a libmp3lame -f mp3" "-c:a libopus -f ogg" "-c:a libvorbis -f ogg" \
            "-c:a aac -f adts" "-c:a aac -movflags frag_keyframe+empty_moov -f mp4" \
            "-c:a libopus -f matroska"; do
  # A leading byte: the fuzz target's rate selector.
  { printf '\001'; ffmpeg -nostdin -v error -t 0.25 -i "$clip" $args -; } > "$work/corpus/seed$i"
  i=$((i + 1))
done

# Inputs that once failed (the fuzz target's own byte first, as the fuzzer wrote them).
for f in "$root"/tests/data/audio/fuzz_regressions/*; do
  [[ -f "$f" ]] && cp "$f" "$work/corpus/regression_$(basename "$f")"
done

# shellcheck source=tests/fuzz/fuzz_lib.sh
source "$here/fuzz_lib.sh"
run_fuzzer run_fuzz_audio.sh "$fuzzer" "$work" 65536 "$root/build-fuzz-audio/crashes"
