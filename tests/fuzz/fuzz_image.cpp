// libFuzzer target for the image path: decoding (vision/io/image_ffmpeg.cpp over a custom
// AVIOContext, after the header sniffer) then preprocessing (Pillow-style resize, crop,
// normalise). Any byte string must either give a well-formed image and finite tensor or be
// rejected with a Status that says why. The first byte picks the limits and the preprocessing,
// so the bomb guard and every resize direction are fuzzed too. Seeds: the committed test images
// and small files made by tests/fuzz/run_fuzz_image.sh (with the ffmpeg command when present).
// Without FFmpeg the decoder is a stub: build with -DOMNIRT_WITH_FFMPEG=ON (the fuzz preset).
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "vision/io/image.h"
#include "vision/preprocess/preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0];
  omni::vision::DecodeOptions opts;
  // Small limits keep each run fast; one in four inputs runs with a tiny limit.
  opts.max_pixels = (sel & 3) == 0 ? 4096 : int64_t(4) << 20;
  opts.max_side = 8192;
  auto img = omni::vision::decode_image_memory(data + 1, size - 1, opts, "fuzz");
  if (!img.ok()) {
    if (img.status().message().empty()) __builtin_trap();  // every rejection says why
    return 0;
  }
  if (img->width <= 0 || img->height <= 0 ||
      int64_t(img->width) * img->height > opts.max_pixels ||
      img->rgb.size() != size_t(img->width) * size_t(img->height) * 3) {
    __builtin_trap();
  }
  static const int kSizes[] = {1, 7, 14, 32, 57};
  omni::vision::PreprocessConfig cfg = (sel & 4) ? omni::vision::PreprocessConfig::clip(kSizes[(sel >> 3) % 5])
                                                 : omni::vision::PreprocessConfig::siglip(kSizes[(sel >> 3) % 5]);
  if (sel & 0x80) cfg.filter = omni::vision::Resample::kBilinear;
  auto t = omni::vision::preprocess(*img, cfg);
  if (!t.ok()) {
    if (t.status().message().empty()) __builtin_trap();
    return 0;
  }
  for (float v : t->chw) {
    if (!std::isfinite(v) || std::fabs(v) > 10.0f) __builtin_trap();  // |(x/255 - m)/s| < 4.1
  }
  return 0;
}
