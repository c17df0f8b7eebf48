// Checks shared by the FFmpeg and the FFmpeg-less builds of audio/io.
#include <cmath>
#include <cstring>

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

Status check_follow_options(const FollowOptions& options) {
  if (options.idle_ms < 0 || options.idle_ms > 86'400'000) {
    return invalid_argument(fmt("follow idle timeout %d ms is outside [0, 86400000]", options.idle_ms));
  }
  if (options.poll_ms < 1 || options.poll_ms > 10'000) {
    return invalid_argument(fmt("follow poll interval %d ms is outside [1, 10000]", options.poll_ms));
  }
  return Status::Ok();
}

int64_t wav_data_end(const uint8_t* head, size_t size) {
  // "RIFF" u32 "WAVE", then chunks {4-byte id, u32 little-endian length, body, pad to even}.
  if (!head || size < 12 || std::memcmp(head, "RIFF", 4) != 0 || std::memcmp(head + 8, "WAVE", 4) != 0)
    return -1;
  auto u32 = [&](size_t at) {
    return static_cast<uint32_t>(head[at]) | static_cast<uint32_t>(head[at + 1]) << 8 |
           static_cast<uint32_t>(head[at + 2]) << 16 | static_cast<uint32_t>(head[at + 3]) << 24;
  };
  uint64_t at = 12;
  while (at + 8 <= size) {
    const uint32_t len = u32(static_cast<size_t>(at) + 4);
    if (std::memcmp(head + at, "data", 4) == 0) {
      if (len == 0 || len == 0xFFFFFFFFu) return -1;
      return static_cast<int64_t>(at + 8 + len);
    }
    at += 8 + static_cast<uint64_t>(len) + (len & 1);
  }
  return -1;
}

}  // namespace omni::audio
