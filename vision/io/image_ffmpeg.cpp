// Image decoding over FFmpeg: probe + demux from memory (libavformat, custom AVIOContext),
// decode the first frame of the first video stream (libavcodec), convert to RGB24 (libswscale,
// exact rounding, full-resolution chroma).
// FFmpeg's log stays as configured by the process (audio/io takes it over when used); our
// decoders run with a log-level offset so that corrupt input does not print (frame_ffmpeg.cpp).
#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "kernels/core/ffmpeg_log.h"
#include "vision/io/frame_ffmpeg.h"
#include "vision/io/image.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace omni::vision {
namespace {

using detail::frame_to_rgb;

// The demuxer for the formats we recognise by their magic: no probing (which also warns on a
// JPEG whose headers outrun the probe buffer); nullptr when the magic is not one of them.
const AVInputFormat* demuxer_for(const uint8_t* d, size_t n) {
  const char* name = nullptr;
  if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) name = "png_pipe";
  else if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) name = "jpeg_pipe";
  else if (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) name = "gif";
  else if (n >= 2 && d[0] == 'B' && d[1] == 'M') name = "bmp_pipe";
  else if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) name = "webp_pipe";
  return name ? av_find_input_format(name) : nullptr;
}

// Image demuxers only: libavformat's single-image readers ("*_pipe": TIFF, PPM/PGM/PAM, QOI,
// JPEG-LS, ...) and GIF. Probing may name any of FFmpeg's hundreds of audio and video demuxers
// for arbitrary bytes; an image decoder has no business running those, and keeping them out
// keeps corrupt input within the small, well-fuzzed image code of FFmpeg.
bool is_image_demuxer(const AVInputFormat* f) {
  if (!f || !f->name) return false;
  const std::string_view name(f->name);
  return name == "gif" || (name.size() > 5 && name.substr(name.size() - 5) == "_pipe");
}

// Probes the first bytes (libavformat's probe needs AVPROBE_PADDING_SIZE zero bytes after them).
const AVInputFormat* probe_image_demuxer(const uint8_t* d, size_t n) {
  constexpr size_t kProbeBytes = 64 * 1024;
  std::vector<uint8_t> buf(std::min(n, kProbeBytes) + AVPROBE_PADDING_SIZE, 0);
  std::memcpy(buf.data(), d, std::min(n, kProbeBytes));
  AVProbeData pd = {};
  pd.filename = "";
  pd.buf = buf.data();
  pd.buf_size = static_cast<int>(std::min(n, kProbeBytes));
  int score = 0;
  const AVInputFormat* f = av_probe_input_format3(&pd, 1, &score);
  return is_image_demuxer(f) ? f : nullptr;
}

constexpr int kIoBufferBytes = 16 * 1024;

struct Decoder : detail::MediaDecoder {
  Status open(const DecodeOptions& opts) {
    OMNI_RETURN_IF_ERROR(open_io(kIoBufferBytes));
    const AVInputFormat* demuxer = demuxer_for(src.data, src.size);
    if (!demuxer) demuxer = probe_image_demuxer(src.data, src.size);
    if (!demuxer) {
      return corrupt_file(fmt("'%s': not a recognised image format (PNG, JPEG, GIF, BMP, WebP, TIFF, "
                              "PNM, ... by their content)", name.c_str()));
    }
    int err = avformat_open_input(&format, nullptr, demuxer, nullptr);
    if (err < 0) {  // frees `format`
      if (err == AVERROR_EOF) {
        return corrupt_file(fmt("'%s': ends before its header does (empty or truncated)",
                                name.c_str()));
      }
      return corrupt_file(fmt("'%s': not a recognised image format (%s)", name.c_str(),
                              ffmpeg::error_text(err).c_str()));
    }
    return open_stream(opts, /*video=*/false);
  }

  // The first decoded frame into `frame`.
  Status first_frame() {
    bool flushed = false;
    for (;;) {
      int err = avcodec_receive_frame(codec, frame);
      if (err >= 0) return Status::Ok();
      if (err == AVERROR_EOF) {
        return corrupt_file(fmt("'%s': no complete image in the data (truncated?)", name.c_str()));
      }
      if (err != AVERROR(EAGAIN)) {
        return corrupt_file(fmt("'%s': image data do not decode: %s", name.c_str(),
                                ffmpeg::error_text(err).c_str()));
      }
      if (flushed) {
        return corrupt_file(fmt("'%s': decoder produced no image", name.c_str()));
      }
      err = av_read_frame(format, packet);
      if (err == AVERROR_EOF) {
        avcodec_send_packet(codec, nullptr);
        flushed = true;
        continue;
      }
      if (err < 0) {
        return corrupt_file(fmt("'%s': cannot read image data: %s", name.c_str(),
                                ffmpeg::error_text(err).c_str()));
      }
      if (packet->stream_index == stream_index) {
        err = avcodec_send_packet(codec, packet);
        av_packet_unref(packet);
        if (err < 0 && err != AVERROR(EAGAIN)) {
          return corrupt_file(fmt("'%s': image data do not decode: %s", name.c_str(),
                                  ffmpeg::error_text(err).c_str()));
        }
      } else {
        av_packet_unref(packet);
      }
    }
  }

  StatusOr<Image> to_rgb(const DecodeOptions& opts) {
    return frame_to_rgb(frame, &sws, opts, name);
  }
};

}  // namespace

StatusOr<Image> decode_image_memory(const uint8_t* data, size_t size, const DecodeOptions& opts,
                                    const std::string& name) {
  if (size == 0) return corrupt_file(fmt("'%s': empty (0 bytes)", name.c_str()));
  if (size > opts.max_file_bytes) {
    return out_of_range(fmt("'%s': %zu bytes exceeds the %zu-byte limit for images", name.c_str(),
                            size, opts.max_file_bytes));
  }
  int64_t header_w = 0, header_h = 0;
  if (sniff_image_dimensions(data, size, &header_w, &header_h)) {
    OMNI_RETURN_IF_ERROR(check_image_dimensions(header_w, header_h, opts, name));
  }
  Decoder d;
  d.name = name;
  d.src.data = data;
  d.src.size = size;
  OMNI_RETURN_IF_ERROR(d.open(opts));
  OMNI_RETURN_IF_ERROR(d.first_frame());
  return d.to_rgb(opts);
}

}  // namespace omni::vision
