// Shared FFmpeg plumbing of vision/io: memory-backed AVIO, the video stream's decoder, and
// frame -> RGB24 conversion.
#include <algorithm>
#include <cstring>
#include <vector>

#include "vision/io/frame_ffmpeg.h"

#include "kernels/core/ffmpeg_log.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace omni::vision::detail {

namespace {

// Input comes from memory only: a demuxer that would open another resource (a concat list's
// files, a playlist's segments, a reference movie's) is refused (fuzz_video reached them).
int refuse_io_open(AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) {
  return AVERROR(EPERM);
}

}  // namespace

MediaDecoder::~MediaDecoder() {
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

Status MediaDecoder::open_io(int io_bytes) {
  ffmpeg::cap_allocations();
  auto* buffer = static_cast<uint8_t*>(av_malloc(static_cast<size_t>(io_bytes)));
  if (!buffer) return Status(StatusCode::kOutOfMemory, "av_malloc failed");
  io = avio_alloc_context(buffer, io_bytes, 0, &src, &ffmpeg::MemorySource::read, nullptr,
                          &ffmpeg::MemorySource::seek);
  if (!io) {
    av_free(buffer);
    return Status(StatusCode::kOutOfMemory, "avio_alloc_context failed");
  }
  format = avformat_alloc_context();
  if (!format) return Status(StatusCode::kOutOfMemory, "avformat_alloc_context failed");
  format->pb = io;
  format->flags |= AVFMT_FLAG_CUSTOM_IO;
  format->io_open = &refuse_io_open;
  // Demuxers that open nested inputs of their own (concat) copy the whitelist, not io_open: no
  // protocol is on it.
  if (av_opt_set(format, "protocol_whitelist", "none", 0) < 0) {
    return Status(StatusCode::kOutOfMemory, "av_opt_set(protocol_whitelist) failed");
  }
  return Status::Ok();
}

Status MediaDecoder::open_stream(const DecodeOptions& limits, bool video) {
  const AVCodec* decoder = nullptr;
  int stream = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
  const char* demuxer = format->iformat ? format->iformat->name : "?";
  if (stream == AVERROR_STREAM_NOT_FOUND) {
    if (!video) return corrupt_file(fmt("'%s' (%s) holds no image", name.c_str(), demuxer));
    int audio = 0;
    for (unsigned i = 0; i < format->nb_streams; ++i)
      audio += format->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO;
    return corrupt_file(fmt("'%s' (%s) holds no video stream (%u streams, %d audio)", name.c_str(),
                            demuxer, format->nb_streams, audio));
  }
  if (stream < 0 || !decoder) {
    const AVStream* s = stream >= 0 ? format->streams[stream] : nullptr;
    return unsupported(fmt("'%s': no decoder in this FFmpeg build for %s codec '%s'", name.c_str(),
                           video ? "video" : "image",
                           s ? avcodec_get_name(s->codecpar->codec_id) : "?"));
  }
  for (unsigned i = 0; i < format->nb_streams; ++i) {
    if (static_cast<int>(i) != stream) format->streams[i]->discard = AVDISCARD_ALL;
  }
  const AVStream* st = format->streams[stream];
  const AVCodecParameters* par = st->codecpar;
  // The bomb guard, on the header's dimensions (0 x 0 = not known yet: checked on the frame).
  if (par->width != 0 || par->height != 0) {
    OMNI_RETURN_IF_ERROR(check_image_dimensions(par->width, par->height, limits, name));
  }
  codec = avcodec_alloc_context3(decoder);
  if (!codec) return Status(StatusCode::kOutOfMemory, "avcodec_alloc_context3 failed");
  codec->log_level_offset = ffmpeg::kQuietLogOffset;
  codec->thread_count = 1;
  int err = avcodec_parameters_to_context(codec, par);
  if (err >= 0) {
    // libavcodec's own pixel limit, so a frame header larger than the container's is refused
    // before allocation.
    codec->max_pixels = limits.max_pixels;
    if (video) codec->pkt_timebase = st->time_base;
    err = avcodec_open2(codec, decoder, nullptr);
  }
  if (err < 0) {
    return unsupported(fmt("'%s': cannot open the %s decoder: %s", name.c_str(), decoder->name,
                           ffmpeg::error_text(err).c_str()));
  }
  packet = av_packet_alloc();
  frame = av_frame_alloc();
  if (!packet || !frame) return Status(StatusCode::kOutOfMemory, "av_packet/frame_alloc failed");
  stream_index = stream;
  return Status::Ok();
}

StatusOr<Image> frame_to_rgb(const AVFrame* frame, SwsContext** sws_ctx,
                             const DecodeOptions& opts, const std::string& name) {
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
  SwsContext* sws = *sws_ctx = sws_getCachedContext(
      *sws_ctx, w, h, fmt_in, w, h, AV_PIX_FMT_RGB24,
      SWS_BILINEAR | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr);
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

}  // namespace omni::vision::detail
