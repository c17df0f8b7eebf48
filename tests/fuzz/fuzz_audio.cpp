// libFuzzer target for the audio decoding path (audio/io/decode_ffmpeg.cpp through a custom
// AVIOContext over the input bytes): any byte string must either decode to finite samples or be
// rejected with a Status that says why. The first byte picks the output rate, so the resampler
// setups are fuzzed too. Seeds: tiny files in each format, made by
//   tests/fuzz/run_fuzz_audio.sh (with the ffmpeg command).
// Without FFmpeg (the "fuzz" preset) the decoder is a stub: build with -DOMNIRT_WITH_FFMPEG=ON.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "audio/io/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const int kRates[] = {16000, 8000, 22050, 44100, 48000, 11025, 96000, 1};
  const int rate = kRates[data[0] % (sizeof(kRates) / sizeof(kRates[0]))];
  auto decoder = omni::audio::StreamDecoder::open_memory(data + 1, size - 1, rate, "fuzz");
  if (!decoder.ok()) {
    if (decoder.status().message().empty()) __builtin_trap();  // every rejection says why
    return 0;
  }
  // At most 10 minutes of output per input, in odd-sized chunks.
  float buf[1237];
  size_t total = 0;
  while (total < size_t(600) * 48000) {
    auto n = (*decoder)->read(buf, sizeof(buf) / sizeof(buf[0]));
    if (!n.ok()) {
      if (n.status().message().empty()) __builtin_trap();
      break;
    }
    if (*n == 0) break;
    for (size_t i = 0; i < *n; ++i) {
      if (!std::isfinite(buf[i])) __builtin_trap();  // non-finite output must be a Status
    }
    total += *n;
  }
  return 0;
}
