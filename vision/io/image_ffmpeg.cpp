// Image decoding over FFmpeg: probe + demux from memory (libavformat, custom AVIOContext),
// decode the first frame of the first video stream (libavcodec), convert to RGB24 (libswscale,
// exact rounding, full-resolution chroma).
// FFmpeg's log stays as configured by the process (audio/io takes it over when used); our
// decoders run with a log-level offset so that corrupt input does not print.
#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

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

std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

struct MemorySource {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;

  static int read(void* opaque, uint8_t* buf, int buf_size) {
    auto* m = static_cast<MemorySource*>(opaque);
    size_t left = m->size - m->pos;
    if (left == 0) return AVERROR_EOF;
    size_t n = std::min(left, static_cast<size_t>(buf_size));
    std::memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return static_cast<int>(n);
  }
  static int64_t seek(void* opaque, int64_t offset, int whence) {
    auto* m = static_cast<MemorySource*>(opaque);
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return static_cast<int64_t>(m->size);
    int64_t base = whence == SEEK_SET ? 0
                 : whence == SEEK_CUR ? static_cast<int64_t>(m->pos)
                 : whence == SEEK_END ? static_cast<int64_t>(m->size) : -1;
    if (base < 0) return AVERROR(EINVAL);
    int64_t target = base + offset;
    if (target < 0 || target > static_cast<int64_t>(m->size)) return AVERROR(EINVAL);
    m->pos = static_cast<size_t>(target);
    return target;
  }
};

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
// Messages logged through our contexts are shifted below AV_LOG_DEBUG: a corrupt image is
// reported through our Status, not on stderr.
constexpr int kQuietLogOffset = AV_LOG_TRACE;

struct Decoder {
  std::string name;
  MemorySource src;
  AVIOContext* io = nullptr;
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* frame = nullptr;
  SwsContext* sws = nullptr;

  ~Decoder() {
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&codec);
    avformat_close_input(&format);
    if (io) {
      av_freep(&io->buffer);
      avio_context_free(&io);
    }
  }

  Status open(const DecodeOptions& opts) {
    auto* buffer = static_cast<uint8_t*>(av_malloc(kIoBufferBytes));
    if (!buffer) return Status(StatusCode::kOutOfMemory, "av_malloc failed");
    io = avio_alloc_context(buffer, kIoBufferBytes, 0, &src, &MemorySource::read, nullptr,
                            &MemorySource::seek);
    if (!io) {
      av_free(buffer);
      return Status(StatusCode::kOutOfMemory, "avio_alloc_context failed");
    }
    format = avformat_alloc_context();
    if (!format) return Status(StatusCode::kOutOfMemory, "avformat_alloc_context failed");
    format->pb = io;
    format->flags |= AVFMT_FLAG_CUSTOM_IO;
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
                              av_error_text(err).c_str()));
    }
    const AVCodec* decoder = nullptr;
    int stream = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
    if (stream == AVERROR_STREAM_NOT_FOUND) {
      return corrupt_file(fmt("'%s' (%s) holds no image", name.c_str(),
                              format->iformat ? format->iformat->name : "?"));
    }
    if (stream < 0 || !decoder) {
      const AVStream* s = stream >= 0 ? format->streams[stream] : nullptr;
      return unsupported(fmt("'%s': no decoder in this FFmpeg build for image codec '%s'",
                             name.c_str(), s ? avcodec_get_name(s->codecpar->codec_id) : "?"));
    }
    for (unsigned i = 0; i < format->nb_streams; ++i) {
      if (static_cast<int>(i) != stream) format->streams[i]->discard = AVDISCARD_ALL;
    }
    const AVCodecParameters* par = format->streams[stream]->codecpar;
    // The bomb guard, on the header's dimensions (0 x 0 = not known yet: checked on the frame).
    if (par->width != 0 || par->height != 0) {
      OMNI_RETURN_IF_ERROR(check_image_dimensions(par->width, par->height, opts, name));
    }
    codec = avcodec_alloc_context3(decoder);
    if (!codec) return Status(StatusCode::kOutOfMemory, "avcodec_alloc_context3 failed");
    codec->log_level_offset = kQuietLogOffset;
    codec->thread_count = 1;
    err = avcodec_parameters_to_context(codec, par);
    if (err >= 0) {
      // libavcodec's own pixel limit, so a frame header larger than the container's is refused
      // before allocation.
      codec->max_pixels = opts.max_pixels;
      err = avcodec_open2(codec, decoder, nullptr);
    }
    if (err < 0) {
      return unsupported(fmt("'%s': cannot open the %s decoder: %s", name.c_str(), decoder->name,
                             av_error_text(err).c_str()));
    }
    packet = av_packet_alloc();
    frame = av_frame_alloc();
    if (!packet || !frame) return Status(StatusCode::kOutOfMemory, "av_packet/frame_alloc failed");
    stream_index = stream;
    return Status::Ok();
  }

  int stream_index = -1;

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
                                av_error_text(err).c_str()));
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
                                av_error_text(err).c_str()));
      }
      if (packet->stream_index == stream_index) {
        err = avcodec_send_packet(codec, packet);
        av_packet_unref(packet);
        if (err < 0 && err != AVERROR(EAGAIN)) {
          return corrupt_file(fmt("'%s': image data do not decode: %s", name.c_str(),
                                  av_error_text(err).c_str()));
        }
      } else {
        av_packet_unref(packet);
      }
    }
  }

  StatusOr<Image> to_rgb(const DecodeOptions& opts) {
    OMNI_RETURN_IF_ERROR(check_image_dimensions(frame->width, frame->height, opts, name));
    auto fmt_in = static_cast<AVPixelFormat>(frame->format);
    if (!av_pix_fmt_desc_get(fmt_in)) {
      return corrupt_file(fmt("'%s': decoder gave an unknown pixel format %d", name.c_str(),
                              frame->format));
    }
    // The deprecated full-range YUVJ formats: the same layout, range given explicitly.
    bool full_range = frame->color_range == AVCOL_RANGE_JPEG;
    switch (fmt_in) {
      case AV_PIX_FMT_YUVJ420P: fmt_in = AV_PIX_FMT_YUV420P; full_range = true; break;
      case AV_PIX_FMT_YUVJ422P: fmt_in = AV_PIX_FMT_YUV422P; full_range = true; break;
      case AV_PIX_FMT_YUVJ444P: fmt_in = AV_PIX_FMT_YUV444P; full_range = true; break;
      case AV_PIX_FMT_YUVJ440P: fmt_in = AV_PIX_FMT_YUV440P; full_range = true; break;
      case AV_PIX_FMT_YUVJ411P: fmt_in = AV_PIX_FMT_YUV411P; full_range = true; break;
      default: break;
    }
    if (!sws_isSupportedInput(fmt_in)) {
      return unsupported(fmt("'%s': pixel format %s cannot be converted to RGB", name.c_str(),
                             av_get_pix_fmt_name(fmt_in)));
    }
    const int w = frame->width, h = frame->height;
    sws = sws_getContext(w, h, fmt_in, w, h, AV_PIX_FMT_RGB24,
                         SWS_BILINEAR | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP,
                         nullptr, nullptr, nullptr);
    if (!sws) {
      return unsupported(fmt("'%s': cannot convert %s (%d x %d) to RGB", name.c_str(),
                             av_get_pix_fmt_name(fmt_in), w, h));
    }
    const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(fmt_in);
    if (!(desc->flags & AV_PIX_FMT_FLAG_RGB) && !(desc->flags & AV_PIX_FMT_FLAG_PAL) &&
        desc->nb_components >= 3) {
      // JPEG, WebP (VP8): BT.601 matrix; the range as the decoder reports it.
      const int* coeffs = sws_getCoefficients(SWS_CS_ITU601);
      sws_setColorspaceDetails(sws, coeffs, full_range ? 1 : 0, coeffs, 1, 0, 1 << 16, 1 << 16);
    }
    Image img;
    img.width = w;
    img.height = h;
    // libswscale's x86 "unscaled" YUV -> RGB converter (4:2:0 / 4:2:2, even height; 15x faster
    // than the exact path at 1080p) converts whole groups of 8 pixels and stores them; where a
    // row's stride cannot hold the last group it drops that group, leaving the row's last
    // pixels unconverted, and still stores past the row's end when the image is narrower than
    // 8 (tests: astro_narrow_*.jpg; found by fuzz_image). So it writes into rows padded to a
    // multiple of 16 pixels, with slack after the last one, and the rows are packed after.
    constexpr size_t kSwsSlack = 64;
    const size_t packed = size_t(w) * 3;
    const size_t stride = (size_t(w) + 15) / 16 * 16 * 3;
    const size_t bytes = packed * size_t(h);
    std::vector<uint8_t> padded(stride == packed ? 0 : stride * size_t(h) + kSwsSlack);
    img.rgb.resize(bytes + (padded.empty() ? kSwsSlack : 0));
    uint8_t* dst[4] = {padded.empty() ? img.rgb.data() : padded.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {static_cast<int>(stride), 0, 0, 0};
    int rows = sws_scale(sws, frame->data, frame->linesize, 0, h, dst, dst_stride);
    if (rows != h) {
      return internal_error(fmt("'%s': sws_scale converted %d of %d rows", name.c_str(), rows, h));
    }
    if (!padded.empty()) {
      for (int y = 0; y < h; ++y) std::memcpy(img.rgb.data() + size_t(y) * packed, padded.data() + size_t(y) * stride, packed);
    }
    img.rgb.resize(bytes);
    return img;
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
