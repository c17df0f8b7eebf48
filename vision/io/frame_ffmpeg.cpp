// Shared FFmpeg plumbing of vision/io: memory-backed AVIO and frame -> RGB24 conversion.
#include <algorithm>
#include <cstring>
#include <vector>

#include "vision/io/frame_ffmpeg.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace omni::vision::detail {

std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

int MemorySource::read(void* opaque, uint8_t* buf, int buf_size) {
  auto* m = static_cast<MemorySource*>(opaque);
  size_t left = m->size - m->pos;
  if (left == 0) return AVERROR_EOF;
  size_t n = std::min(left, static_cast<size_t>(buf_size));
  std::memcpy(buf, m->data + m->pos, n);
  m->pos += n;
  return static_cast<int>(n);
}

int64_t MemorySource::seek(void* opaque, int64_t offset, int whence) {
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
