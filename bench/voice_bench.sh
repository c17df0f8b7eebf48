#!/usr/bin/env bash
# Time to first audio of a voice turn (issue #6 targets): mini-omni-0.5b Q8_0, 2 threads, a real
# recording paced in real time, N measured turns after one warm-up, wall and process-CPU spread
# of every stage plus the load average. A few minutes on the 2-core build machine.
#
#   bench/voice_bench.sh [BUILD_DIR] [TURNS]      (default build-p, 10; about 6 minutes)
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
# A file made before the preset named its encoder chunk would run 2 s chunks as its "default"
# (the key follows the tokenizer, ~4 MB into the file; grep -c reads it all: no SIGPIPE to head).
if [ ! -f "$MODEL" ] || ! head -c 32M "$MODEL" | grep -ac omni.audio_in.chunk_ms > /dev/null; then
  "$OMNIRT" model create --preset mini-omni-0.5b --type q8_0 -o "$MODEL"
fi

echo "== $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg)"
top -b -n1 | sed -n 7,14p || true
# 40 steps = 33 frames = 2.8 s of speech per answer: enough for the real-time factor.
# --end-spread: turn k of N drops k/N of an encoder chunk from the input, so the work left when
# the input ends (the last chunk's frames, and a chunk still being encoded if one just closed)
# runs over every point of a chunk, as a user's turns do, not over one lucky or unlucky point.
common=(voice -m "$MODEL" -t 2 --max-steps 40 --turns "$TURNS" --warmup 1 --seed 1 --end-spread)
# The model's own chunk (omni.audio_in.chunk_ms: 500 ms for the preset) against 1 s and 2 s on
# one recording, the default on a second one; then, on the first, the codec on a thread of its
# own beside the decode loop (--codec-thread), and a text answer of 8 tokens (random weights
# never end their text; a trained Mini-Omni does, and from then on the steps skip the text head).
PS=/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0930.wav
runs=("$INPUT default" "$INPUT 1000" "$INPUT 2000")
[ -f "$PS" ] && runs+=("$PS default")
runs+=("$INPUT default --codec-thread" "$INPUT default --max-text 8")
for run in "${runs[@]}"; do
  set -- $run
  in=$1 chunk=$2
  shift 2
  extra=$(echo "$*" | tr -d ' -')
  tag=$(basename "$in" .wav)_$chunk${extra:+_$extra}
  chunk_arg=()
  [ "$chunk" = default ] || chunk_arg=(--chunk-ms "$chunk")
  echo "== $(basename "$in"), encoder chunk $chunk${chunk_arg:+ ms}${*:+, $*}"
  "$OMNIRT" "${common[@]}" -i "$in" "${chunk_arg[@]}" "$@" -o "$OUT/answer_$tag.wav" --json \
    > "$OUT/voice_$tag.json" 2> "$OUT/voice_$tag.txt"
  grep -v "^note:\|^wrote " "$OUT/voice_$tag.txt" || true  # one turn with --json leaves nothing
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
