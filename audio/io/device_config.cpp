// StreamConfig validation, shared by PortAudio devices and the file-backed stand-ins.
#include "audio/io/decode.h"
#include "audio/io/device.h"

namespace omni::audio {

Status check_stream_config(const StreamConfig& c) {
  if (c.sample_rate < kMinSampleRate || c.sample_rate > kMaxSampleRate) {
    return invalid_argument(fmt("stream sample rate %d Hz is outside [%d, %d]", c.sample_rate,
                                kMinSampleRate, kMaxSampleRate));
  }
  if (c.channels < 1 || c.channels > kMaxChannels) {
    return invalid_argument(fmt("stream channel count %d is outside [1, %d]", c.channels,
                                kMaxChannels));
  }
  if (c.frames_per_buffer < 16 || c.frames_per_buffer > 65536) {
    return invalid_argument(fmt("frames_per_buffer %d is outside [16, 65536]",
                                c.frames_per_buffer));
  }
  // NaN fails both comparisons, so test the good range.
  if (!(c.ring_seconds * c.sample_rate >= 2.0 * c.frames_per_buffer && c.ring_seconds <= 600)) {
    return invalid_argument(fmt("ring_seconds %g holds less than two %d-frame periods at %d Hz "
                                "or more than 600 s", c.ring_seconds, c.frames_per_buffer,
                                c.sample_rate));
  }
  return Status::Ok();
}

}  // namespace omni::audio
