#!/usr/bin/env bash
# Time to first audio of a voice turn (issue #6 targets): mini-omni-0.5b Q8_0, 2 threads, a real
# recording paced in real time, N measured turns after one warm-up, wall and process-CPU spread
# of every stage plus the load average. A few minutes on the 2-core build machine.
#
#   bench/voice_bench.sh [BUILD_DIR] [TURNS]      (default build-p, 10)
#
# Needs a build of omnirt_cli with FFmpeg (-DOMNIRT_WITH_FFMPEG=ON: the input is decoded and
# resampled to 16 kHz). Makes models/mini-omni-0.5b-q8_0.gguf when missing (random weights:
# the voice is noise, the timings are real). Results: stdout, and models/voice_bench/ (ignored
# by git): voice_<input>_<chunk>.txt (table), .json (the same spread, one line), answer_*.wav.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-p}
TURNS=${2:-10}
OMNIRT=$BUILD/bin/omnirt
MODEL=models/mini-omni-0.5b-q8_0.gguf
INPUT=${VOICE_INPUT:-tests/data/whisper/librivox_0880.wav}
OUT=models/voice_bench
mkdir -p "$OUT"
[ -x "$OMNIRT" ] || { echo "no $OMNIRT (cmake --build $BUILD --target omnirt_cli)"; exit 1; }
[ -f "$MODEL" ] || "$OMNIRT" model create --preset mini-omni-0.5b --type q8_0 -o "$MODEL"

echo "== $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg)"
top -b -n1 | sed -n 7,14p || true
# 40 steps = 33 frames = 2.8 s of speech per answer: enough for the real-time factor.
common=(voice -m "$MODEL" -t 2 --max-steps 40 --turns "$TURNS" --warmup 1 --seed 1)
# The work left at the end of the input is the last encoder chunk, whose length is where the
# utterance ends inside it: two chunk sizes on one recording, the default on a second one.
PS=/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0930.wav
runs=("$INPUT 2000" "$INPUT 1000")
[ -f "$PS" ] && runs+=("$PS 2000")
for run in "${runs[@]}"; do
  set -- $run
  tag=$(basename "$1" .wav)_$2
  echo "== $(basename "$1"), encoder chunk $2 ms"
  "$OMNIRT" "${common[@]}" -i "$1" --chunk-ms "$2" -o "$OUT/answer_$tag.wav" --json \
    > "$OUT/voice_$tag.json" 2> "$OUT/voice_$tag.txt"
  grep -v "^note:\|^wrote " "$OUT/voice_$tag.txt"
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
