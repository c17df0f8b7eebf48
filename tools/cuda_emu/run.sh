#!/usr/bin/env bash
# Runs the CUDA Whisper decoder's tests (tests/cuda_whisper_test.cpp) on a host emulation of the
# CUDA layer (tools/cuda_emu/), under ASan + UBSan: runtime/model/cuda_whisper.cpp compiled with
# OMNIRT_HAVE_CUDA=1 against the stand-in headers, linked with a build made WITHOUT CUDA.
#   tools/cuda_emu/run.sh [build dir, default build] [gtest filter]
# Not part of CI (a CUDA build's libraries define the real launchers); a developer's check for
# sessions without a GPU. The encoder half of TinyEnTranscribesLikeTheCpu needs cuBLAS and fails.
set -eu
BUILD=${1:-build}
FILTER=${2:-'CudaWhisperDecoder.*:CudaWhisperParams.Decoder*'}
grep -q '^OMNIRT_CUDA:STRING=OFF' "$BUILD/CMakeCache.txt" || { echo "$BUILD must be configured with -DOMNIRT_CUDA=OFF"; exit 2; }
cmake --build "$BUILD" --target omnirt_runtime omnirt_audio omnirt_vision omnirt_kernels > /dev/null
OUT=$(mktemp -d)
F=(-std=c++20 -O1 -g -fsanitize=address,undefined -DOMNIRT_HAVE_CUDA=1 "-DOMNIRT_SOURCE_DIR=\"$PWD\""
   -Itools/cuda_emu/include -I. -Iinclude)
for src in tools/cuda_emu/emu_backend.cpp runtime/model/cuda_whisper.cpp tests/cuda_whisper_test.cpp; do
  g++ "${F[@]}" -c "$src" -o "$OUT/$(basename "$src").o" &
done
wait
L="$BUILD/lib"
g++ -fsanitize=address,undefined -o "$OUT/emu_tests" "$OUT"/*.o "$L/libomnirt_runtime.a" "$L/libomnirt_audio.a" \
  "$L/libomnirt_vision.a" "$L/libomnirt_kernels.a" -lgtest -lgtest_main -lpcre2-8 -lpthread
"$OUT/emu_tests" --gtest_filter="$FILTER"
