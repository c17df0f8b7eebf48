// Checks shared by the FFmpeg and the FFmpeg-less builds of audio/io.
#include <cmath>

#include "audio/io/decode.h"

namespace omni::audio {

Status check_sample_rate(int sample_rate) {
  if (sample_rate < kMinSampleRate || sample_rate > kMaxSampleRate) {
    return invalid_argument(fmt("sample rate %d Hz is outside [%d, %d]", sample_rate,
                                kMinSampleRate, kMaxSampleRate));
  }
  return Status::Ok();
}

Status check_finite(const float* pcm, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(pcm[i])) {
      return invalid_argument(fmt("%s sample %zu is %s", what, i,
                                  std::isnan(pcm[i]) ? "NaN" : (pcm[i] > 0 ? "+Inf" : "-Inf")));
    }
  }
  return Status::Ok();
}

}  // namespace omni::audio
