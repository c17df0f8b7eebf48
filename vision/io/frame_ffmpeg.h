// What the FFmpeg-backed decoders of vision/io share (image_ffmpeg.cpp, video_ffmpeg.cpp):
// reading from memory through an AVIOContext and converting a decoded frame to RGB24.
// Private to vision/io; included only by *_ffmpeg.cpp sources (it needs FFmpeg's headers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/core/status.h"
#include "vision/io/image.h"

extern "C" {
#include <libavformat/avio.h>
#include <libavutil/frame.h>
struct SwsContext;
}

namespace omni::vision::detail {

std::string av_error_text(int err);

// Bytes in memory behind an AVIOContext (read + seek callbacks; `opaque` = this).
struct MemorySource {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;

  static int read(void* opaque, uint8_t* buf, int buf_size);
  static int64_t seek(void* opaque, int64_t offset, int whence);
};

// A decoded frame -> RGB24 (BT.601 for YUV, the range the frame reports; deprecated YUVJ
// formats as YUV + full range), after the bomb check on its dimensions. *sws is created or
// reused (sws_getCachedContext) and stays owned by the caller (sws_freeContext).
StatusOr<Image> frame_to_rgb(const AVFrame* frame, SwsContext** sws, const DecodeOptions& opts,
                             const std::string& name);

}  // namespace omni::vision::detail
