// What the FFmpeg-backed decoders of vision/io share (image_ffmpeg.cpp, video_ffmpeg.cpp):
// reading from memory through an AVIOContext, opening the best video stream's decoder, and
// converting a decoded frame to RGB24.
// Private to vision/io; included only by *_ffmpeg.cpp sources (it needs FFmpeg's headers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/core/ffmpeg_memory_io.h"
#include "kernels/core/status.h"
#include "vision/io/image.h"

extern "C" {
#include <libavformat/avio.h>
#include <libavutil/frame.h>
struct AVCodecContext;
struct AVFormatContext;
struct AVPacket;
struct SwsContext;
}

namespace omni::vision::detail {

// Bytes in memory -> demuxer -> the best video stream's decoder, and what decoding needs; the
// destructor frees whatever was allocated. The caller sets name and src, calls open_io, opens
// `format` its own way (avformat_open_input: a fixed demuxer for images, probing for videos),
// then open_stream.
struct MediaDecoder {
  std::string name;  // for messages
  ffmpeg::MemorySource src;
  AVIOContext* io = nullptr;
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* frame = nullptr;
  SwsContext* sws = nullptr;
  int stream_index = -1;

  MediaDecoder() = default;
  MediaDecoder(const MediaDecoder&) = delete;
  MediaDecoder& operator=(const MediaDecoder&) = delete;
  ~MediaDecoder();

  // An AVIOContext over src (read + seek, io_bytes of buffer) and an AVFormatContext that
  // reads through it (custom IO; not opened yet).
  Status open_io(int io_bytes);
  // On an opened `format`: the best video stream (the others discarded), its dimensions
  // against the limits, its decoder opened with one thread, libavcodec's max_pixels, a quiet
  // log and (video) the stream's time base; packet and frame allocated. kCorruptFile: no such
  // stream ("holds no image" / "holds no video stream (N streams, M audio)"); kUnsupported: no
  // decoder for its codec, or the decoder does not open; kOutOfRange: beyond the limits.
  Status open_stream(const DecodeOptions& limits, bool video);
};

// A decoded frame -> RGB24 (BT.601 for YUV, the range the frame reports; deprecated YUVJ
// formats as YUV + full range), after the bomb check on its dimensions. *sws is created or
// reused (sws_getCachedContext) and stays owned by the caller (sws_freeContext).
StatusOr<Image> frame_to_rgb(const AVFrame* frame, SwsContext** sws, const DecodeOptions& opts,
                             const std::string& name);

}  // namespace omni::vision::detail
