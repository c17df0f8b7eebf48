// libFuzzer target for the video path: probing and demuxing from memory over every demuxer
// FFmpeg has (vision/io/video_ffmpeg.cpp), decoding the best video stream, sampling frames by
// presentation time and converting them to RGB (frame_ffmpeg.cpp). Any byte string must give
// well-formed frames within the limits, in time order, or be rejected with a Status that says
// why. The first byte picks the rate, the frame cap and the pixel limit; memory and time per
// input are bounded by small limits (4 Mpx a frame at most, 4 frames, 16 MiB of frames).
// Seeds: tests/fuzz/run_fuzz_video.sh. Build with FFmpeg (the fuzz preset).
#include <cstddef>
#include <cstdint>

#include "vision/io/video.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0];
  static const double kFps[] = {0.5, 1, 2, 5, 25, 1000, 0.001, 3.7};
  omni::vision::VideoOptions opts;
  opts.fps = kFps[sel & 7];
  opts.max_frames = 1 + ((sel >> 3) & 3);
  opts.limits.max_pixels = (sel & 0x20) ? 4096 : int64_t(1) << 20;
  opts.limits.max_side = 4096;
  opts.max_total_bytes = size_t(16) << 20;
  auto video = omni::vision::decode_video_memory(data + 1, size - 1, opts, "fuzz");
  if (!video.ok()) {
    if (video.status().message().empty()) __builtin_trap();  // every rejection says why
    return 0;
  }
  if (video->frames.empty() || int(video->frames.size()) > opts.max_frames ||
      video->frames_decoded < int64_t(video->frames.size())) {
    __builtin_trap();
  }
  size_t total = 0;
  double last = -1;
  for (const omni::vision::VideoFrame& f : video->frames) {
    const omni::vision::Image& img = f.image;
    if (img.width <= 0 || img.height <= 0 || int64_t(img.width) * img.height > opts.limits.max_pixels ||
        img.rgb.size() != size_t(img.width) * size_t(img.height) * 3) {
      __builtin_trap();
    }
    // Sampled frames are in presentation order (strictly apart but where double runs out).
    if (!(f.time_s == f.time_s) || (last >= 0 && !(f.time_s >= last))) __builtin_trap();
    last = f.time_s;
    total += img.rgb.size();
  }
  if (total > opts.max_total_bytes) __builtin_trap();
  return 0;
}
