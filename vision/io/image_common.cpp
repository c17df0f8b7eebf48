// What every build has: dimension checks and reading a file into memory for the decoder.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "vision/io/image.h"

namespace omni::vision {

Status check_image_dimensions(int64_t width, int64_t height, const DecodeOptions& opts,
                              const std::string& name) {
  if (width <= 0 || height <= 0) {
    return corrupt_file(fmt("'%s': image of zero size (%lld x %lld)", name.c_str(),
                            static_cast<long long>(width), static_cast<long long>(height)));
  }
  if (width > opts.max_side || height > opts.max_side) {
    return out_of_range(fmt("'%s': %lld x %lld pixels: a side exceeds the limit of %lld",
                            name.c_str(), static_cast<long long>(width),
                            static_cast<long long>(height), static_cast<long long>(opts.max_side)));
  }
  if (width * height > opts.max_pixels) {
    return out_of_range(fmt("'%s': %lld x %lld = %lld pixels exceeds the limit of %lld "
                            "(decompression-bomb guard; raise DecodeOptions::max_pixels)",
                            name.c_str(), static_cast<long long>(width),
                            static_cast<long long>(height), static_cast<long long>(width * height),
                            static_cast<long long>(opts.max_pixels)));
  }
  return Status::Ok();
}

namespace {

uint32_t be16(const uint8_t* p) { return uint32_t(p[0]) << 8 | p[1]; }
uint32_t be32(const uint8_t* p) { return be16(p) << 16 | be16(p + 2); }
uint32_t le16(const uint8_t* p) { return uint32_t(p[1]) << 8 | p[0]; }
uint32_t le24(const uint8_t* p) { return le16(p) | uint32_t(p[2]) << 16; }
uint32_t le32(const uint8_t* p) { return le16(p) | le16(p + 2) << 16; }

// JPEG: the first SOFn marker's frame header (FF Cn, length, precision, height, width).
bool sniff_jpeg(const uint8_t* d, size_t n, int64_t* w, int64_t* h) {
  size_t i = 2;
  while (i + 4 <= n) {
    if (d[i] != 0xFF) return false;
    const uint8_t m = d[i + 1];
    if (m == 0xFF) { ++i; continue; }  // fill byte
    if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) { i += 2; continue; }
    const size_t len = be16(d + i + 2);
    if (len < 2) return false;
    const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      if (i + 9 > n) return false;
      *h = be16(d + i + 5);
      *w = be16(d + i + 7);
      return true;
    }
    if (m == 0xD9 || m == 0xDA) return false;  // end of image / scan before any frame header
    i += 2 + len;
  }
  return false;
}

}  // namespace

bool sniff_image_dimensions(const uint8_t* d, size_t n, int64_t* w, int64_t* h) {
  if (n >= 24 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(d + 12, "IHDR", 4) == 0) {
    *w = be32(d + 16);
    *h = be32(d + 20);
    return true;
  }
  if (n >= 10 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) {
    *w = le16(d + 6);
    *h = le16(d + 8);
    return true;
  }
  if (n >= 26 && d[0] == 'B' && d[1] == 'M') {
    const uint32_t header = le32(d + 14);
    if (header == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sides
      *w = le16(d + 18);
      *h = le16(d + 20);
    } else {
      *w = static_cast<int32_t>(le32(d + 18));
      const int64_t hh = static_cast<int32_t>(le32(d + 22));
      *h = hh < 0 ? -hh : hh;  // negative: rows stored top-down
    }
    return true;
  }
  if (n >= 30 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) {
    if (std::memcmp(d + 12, "VP8 ", 4) == 0) {
      *w = le16(d + 26) & 0x3FFF;
      *h = le16(d + 28) & 0x3FFF;
      return true;
    }
    if (std::memcmp(d + 12, "VP8L", 4) == 0 && d[20] == 0x2F) {
      const uint32_t bits = le32(d + 21);
      *w = int64_t(bits & 0x3FFF) + 1;
      *h = int64_t((bits >> 14) & 0x3FFF) + 1;
      return true;
    }
    if (std::memcmp(d + 12, "VP8X", 4) == 0) {
      *w = int64_t(le24(d + 24)) + 1;
      *h = int64_t(le24(d + 27)) + 1;
      return true;
    }
    return false;
  }
  if (n >= 4 && d[0] == 0xFF && d[1] == 0xD8) return sniff_jpeg(d, n, w, h);
  return false;
}

std::vector<uint8_t> encode_bmp(const Image& img) {
  if (img.width <= 0 || img.height <= 0 || img.rgb.size() != size_t(img.width) * img.height * 3) {
    return {};
  }
  const size_t row = (size_t(img.width) * 3 + 3) / 4 * 4;
  const size_t pixels = row * size_t(img.height), header = 14 + 40;
  std::vector<uint8_t> out(header + pixels, 0);
  auto put16 = [&](size_t at, uint32_t v) { out[at] = uint8_t(v); out[at + 1] = uint8_t(v >> 8); };
  auto put32 = [&](size_t at, uint32_t v) { put16(at, v & 0xFFFF); put16(at + 2, v >> 16); };
  out[0] = 'B';
  out[1] = 'M';
  put32(2, uint32_t(out.size()));
  put32(10, uint32_t(header));
  put32(14, 40);
  put32(18, uint32_t(img.width));
  put32(22, uint32_t(img.height));  // positive: bottom-up
  put16(26, 1);                     // planes
  put16(28, 24);                    // bits per pixel; compression 0 (BI_RGB)
  put32(34, uint32_t(pixels));
  put32(38, 2835);                  // 72 dpi
  put32(42, 2835);
  for (int y = 0; y < img.height; ++y) {
    uint8_t* dst = out.data() + header + size_t(img.height - 1 - y) * row;
    const uint8_t* src = img.pixel(0, y);
    for (int x = 0; x < img.width; ++x) {
      dst[3 * x] = src[3 * x + 2];
      dst[3 * x + 1] = src[3 * x + 1];
      dst[3 * x + 2] = src[3 * x];
    }
  }
  return out;
}

StatusOr<std::vector<uint8_t>> read_media_file(const std::string& path, size_t max_bytes,
                                               const char* what) {
  struct Closer {
    void operator()(FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<FILE, Closer> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    if (errno == ENOENT) return not_found(fmt("'%s': no such file", path.c_str()));
    return io_error(fmt("'%s': cannot open: %s", path.c_str(), std::strerror(errno)));
  }
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f.get())) > 0) {
    if (bytes.size() + n > max_bytes) {
      return out_of_range(fmt("'%s': larger than the %zu-byte limit for %s files", path.c_str(),
                              max_bytes, what));
    }
    bytes.insert(bytes.end(), buf, buf + n);
  }
  if (std::ferror(f.get())) {
    return io_error(fmt("'%s': read failed: %s", path.c_str(), std::strerror(errno)));
  }
  return bytes;
}

StatusOr<Image> decode_image_file(const std::string& path, const DecodeOptions& opts) {
  OMNI_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                        read_media_file(path, opts.max_file_bytes, "image"));
  return decode_image_memory(bytes.data(), bytes.size(), opts, path);
}

}  // namespace omni::vision
