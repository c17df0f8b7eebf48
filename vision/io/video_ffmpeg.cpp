// Video frames over FFmpeg: probe + demux from memory (libavformat, custom AVIOContext), decode
// the best video stream (libavcodec, frames in presentation order), keep the frames the
// sampling rule picks (video.h) and convert them as images are (frame_ffmpeg.h).
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/core/ffmpeg_log.h"
#include "vision/io/frame_ffmpeg.h"
#include "vision/io/video.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libswscale/swscale.h>
}

namespace omni::vision {
namespace {


constexpr int kIoBufferBytes = 64 * 1024;
// Probing reads at most this much (libavformat's default is 5 MB / 5 s of analysis).
constexpr int64_t kProbeBytes = 4 << 20;

struct VideoDecoder : detail::MediaDecoder {
  AVRational time_base = {0, 1};
  bool flushed = false;

  Status open(const DecodeOptions& limits) {
    OMNI_RETURN_IF_ERROR(open_io(kIoBufferBytes));
    format->probesize = kProbeBytes;
    int err = avformat_open_input(&format, nullptr, nullptr, nullptr);
    if (err < 0) {  // frees `format`
      return corrupt_file(fmt("'%s': not a recognised media file (%s)", name.c_str(),
                              ffmpeg::error_text(err).c_str()));
    }
    format->flags |= AVFMT_FLAG_DISCARD_CORRUPT;
    // The bomb guard on the container's dimensions, before any decoder allocates.
    for (unsigned i = 0; i < format->nb_streams; ++i) {
      const AVCodecParameters* p = format->streams[i]->codecpar;
      if (p->codec_type == AVMEDIA_TYPE_VIDEO && (p->width != 0 || p->height != 0)) {
        OMNI_RETURN_IF_ERROR(check_image_dimensions(p->width, p->height, limits, name));
      }
    }
    // find_stream_info opens decoders of its own (and decodes a few frames for streams whose
    // container lacks their parameters): they get the pixel limit too.
    std::vector<AVDictionary*> stream_opts(format->nb_streams, nullptr);
    for (AVDictionary*& d : stream_opts) {
      av_dict_set_int(&d, "max_pixels", limits.max_pixels, 0);
      av_dict_set_int(&d, "threads", 1, 0);
    }
    err = avformat_find_stream_info(format, stream_opts.empty() ? nullptr : stream_opts.data());
    for (AVDictionary*& d : stream_opts) av_dict_free(&d);
    if (err < 0) {
      return corrupt_file(fmt("'%s': cannot read stream information: %s", name.c_str(),
                              ffmpeg::error_text(err).c_str()));
    }
    OMNI_RETURN_IF_ERROR(open_stream(limits, /*video=*/true));
    time_base = format->streams[stream_index]->time_base;
    return Status::Ok();
  }

  // The next decoded frame into `frame`: true, or false at the end of the stream. Packets that
  // do not decode are skipped (counted in *bad, the last error kept in *last_error).
  bool next_frame(int* bad, int* last_error) {
    for (;;) {
      int err = avcodec_receive_frame(codec, frame);
      if (err >= 0) return true;
      if (err == AVERROR_EOF) return false;
      if (err != AVERROR(EAGAIN)) {  // a broken frame: go on with the next packet
        ++*bad;
        *last_error = err;
      }
      if (flushed) return false;
      err = av_read_frame(format, packet);
      if (err < 0) {  // end of data, or unreadable from here on (a truncated file): flush
        if (err != AVERROR_EOF) {
          ++*bad;
          *last_error = err;
        }
        avcodec_send_packet(codec, nullptr);
        flushed = true;
        continue;
      }
      if (packet->stream_index == stream_index) {
        err = avcodec_send_packet(codec, packet);
        if (err < 0 && err != AVERROR(EAGAIN)) {
          ++*bad;
          *last_error = err;
        }
      }
      av_packet_unref(packet);
    }
  }
};

}  // namespace

StatusOr<Video> decode_video_memory(const uint8_t* data, size_t size, const VideoOptions& opts,
                                    const std::string& name) {
  if (!(opts.fps > 0.0 && opts.fps <= 1000.0)) {
    return invalid_argument(fmt("'%s': fps %g is outside (0, 1000]", name.c_str(), opts.fps));
  }
  if (opts.max_frames < 1 || opts.max_frames > 100000) {
    return invalid_argument(fmt("'%s': max_frames %d is outside [1, 100000]", name.c_str(),
                                opts.max_frames));
  }
  if (size == 0) return corrupt_file(fmt("'%s': empty (0 bytes)", name.c_str()));
  if (size > opts.limits.max_file_bytes) {
    return out_of_range(fmt("'%s': %zu bytes exceeds the %zu-byte limit for videos", name.c_str(),
                            size, opts.limits.max_file_bytes));
  }
  VideoDecoder d;
  d.name = name;
  d.src.data = data;
  d.src.size = size;
  OMNI_RETURN_IF_ERROR(d.open(opts.limits));

  Video video;
  const AVStream* st = d.format->streams[d.stream_index];
  if (st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0) video.stream_fps = av_q2d(st->avg_frame_rate);
  if (d.format->duration > 0) video.duration_s = double(d.format->duration) / AV_TIME_BASE;

  const double tb = av_q2d(d.time_base);
  // Times within a microsecond of a sample count as at it (timestamps are rationals; k / fps
  // in double is not exact).
  constexpr double kSlack = 1e-6;
  int bad = 0, last_error = 0;
  bool have_origin = false;
  int64_t origin = 0, last_ts = 0;
  double next_time = 0;  // the next sample's time, s
  size_t total_bytes = 0;
  while (static_cast<int>(video.frames.size()) < opts.max_frames && d.next_frame(&bad, &last_error)) {
    ++video.frames_decoded;
    int64_t ts = d.frame->best_effort_timestamp;
    // No timestamp: one tick after the previous frame's (keeps the order; such streams are rare).
    if (ts == AV_NOPTS_VALUE) ts = have_origin && last_ts < INT64_MAX ? last_ts + 1 : last_ts;
    last_ts = ts;
    if (!have_origin) {
      origin = ts;
      have_origin = true;
    }
    // In double: timestamps of a damaged file may be anywhere in int64's range.
    const double t = (double(ts) - double(origin)) * tb;
    if (!(t + kSlack >= next_time)) {
      av_frame_unref(d.frame);
      continue;
    }
    const size_t bytes = size_t(d.frame->width > 0 ? d.frame->width : 0) *
                         size_t(d.frame->height > 0 ? d.frame->height : 0) * 3;
    if (total_bytes + bytes > opts.max_total_bytes) {
      return out_of_range(fmt("'%s': %zu frames of %d x %d exceed the %zu-byte limit for a "
                              "video's pixels (VideoOptions::max_total_bytes)", name.c_str(),
                              video.frames.size() + 1, d.frame->width, d.frame->height,
                              opts.max_total_bytes));
    }
    total_bytes += bytes;
    auto img = detail::frame_to_rgb(d.frame, &d.sws, opts.limits,
                                    fmt("%s (frame at %.3f s)", name.c_str(), t));
    av_frame_unref(d.frame);
    if (!img.ok()) return img.status();
    video.frames.push_back(VideoFrame{std::move(*img), t});
    // The next sample is the first k / fps after this frame's time.
    next_time = (std::floor((t + kSlack) * opts.fps) + 1) / opts.fps;
  }
  if (video.frames.empty()) {
    return corrupt_file(fmt("'%s': no video frame decodes (%d damaged packets%s%s)", name.c_str(),
                            bad, bad ? ": " : "", bad ? ffmpeg::error_text(last_error).c_str() : ""));
  }
  return video;
}

}  // namespace omni::vision
