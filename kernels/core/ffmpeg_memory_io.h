// Bytes in memory as a seekable FFmpeg input: the read and seek callbacks of an AVIOContext
// (avio_alloc_context(buffer, n, 0, &source, &MemorySource::read, nullptr, &MemorySource::seek)).
// Used by audio/io (StreamDecoder::open_memory) and vision/io (MediaDecoder).
// Header-only, included only by *_ffmpeg.cpp sources and their private headers, as
// ffmpeg_log.h: kernels/ itself does not link FFmpeg, and audio/ and vision/ share it without
// depending on each other.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

extern "C" {
#include <libavformat/avio.h>
#include <libavutil/error.h>
}

namespace omni::ffmpeg {

// `data` is borrowed: it outlives the AVIOContext. `pos` is the next byte read() returns.
struct MemorySource {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;

  // Up to buf_size bytes from pos; AVERROR_EOF at the end.
  static int read(void* opaque, uint8_t* buf, int buf_size) {
    auto* m = static_cast<MemorySource*>(opaque);
    size_t left = m->size - m->pos;
    if (left == 0) return AVERROR_EOF;
    size_t n = std::min(left, static_cast<size_t>(buf_size));
    std::memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return static_cast<int>(n);
  }
  // SEEK_SET / SEEK_CUR / SEEK_END within [0, size] (AVSEEK_FORCE ignored), or AVSEEK_SIZE:
  // the size. AVERROR(EINVAL) for any other whence or a target outside the bytes.
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

}  // namespace omni::ffmpeg
