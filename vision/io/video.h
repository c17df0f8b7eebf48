// Video frames in: the frames of a video file or buffer (any container and codec FFmpeg reads:
// MP4/H.264, WebM/VP8/VP9, MKV, AVI, animated GIF, ...) sampled at a requested rate, each as an
// RGB8 Image converted exactly as still images are (image.h: BT.601, the range the decoder
// reports; libswscale into padded rows).
//
// Sampling: times are presentation times (the frame's best-effort timestamp in seconds) minus
// the first decoded frame's. Sample k is the first frame whose time is >= k / fps; a frame is
// taken at most once (a rate above the video's gives each frame once, not duplicates). Decoding
// stops after max_frames samples, so a long video costs only its first max_frames / fps seconds.
// Bomb limits: the stream's and every frame's dimensions are checked against DecodeOptions
// before conversion (libavcodec's own max_pixels is set too); max_file_bytes caps the input.
// Damaged packets are skipped as players do; a stream that yields no frame at all is
// kCorruptFile; a truncated file gives the frames before the cut.
// Without FFmpeg (OMNIRT_HAVE_FFMPEG undefined) decoding returns kUnsupported saying so.
// Thread-safety: reentrant; results are plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/core/status.h"
#include "vision/io/image.h"

namespace omni::vision {

struct VideoOptions {
  double fps = 1.0;       // samples per second of presentation time; > 0 and <= 1000
  int max_frames = 8;     // >= 1 (and <= 100000)
  DecodeOptions limits;   // per-frame pixel limits; max_file_bytes caps the whole input
  size_t max_total_bytes = size_t(1) << 30;  // RGB bytes of all sampled frames together
};

struct VideoFrame {
  Image image;
  double time_s = 0;      // presentation time of this frame, first frame = 0
};

struct Video {
  std::vector<VideoFrame> frames;  // in presentation order
  double stream_fps = 0;           // the stream's average frame rate (0 when unknown)
  double duration_s = 0;           // the container's duration (0 when unknown)
  int64_t frames_decoded = 0;      // frames the decoder produced before sampling stopped
};

// kNotFound: no such file; kIoError: unreadable; kInvalidArgument: fps or max_frames out of
// range; kCorruptFile: not a media file, no video stream (e.g. audio only: the message says
// so), or no frame decodes; kOutOfRange: dimensions, file size or the frames' total bytes
// beyond the limits; kUnsupported: no
// decoder for the codec in this build, or no FFmpeg.
StatusOr<Video> decode_video_file(const std::string& path, const VideoOptions& opts = {});
// The same from bytes in memory; `name` only labels messages.
StatusOr<Video> decode_video_memory(const uint8_t* data, size_t size,
                                    const VideoOptions& opts = {},
                                    const std::string& name = "<memory>");

}  // namespace omni::vision
