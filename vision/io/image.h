// Still images in: PNG, JPEG, WebP, BMP, GIF (first frame) and anything else FFmpeg's image
// decoders read -> 8-bit RGB, row-major [height][width][3], alpha dropped, palettes expanded,
// grey replicated (what PIL's Image.convert("RGB") gives).
// A decompression-bomb limit (max_pixels) is checked on the header's dimensions, before any
// pixel buffer is allocated, and again on the decoded frame.
// Without FFmpeg (OMNIRT_HAVE_FFMPEG undefined) decoding returns kUnsupported saying so.
// Thread-safety: the functions are reentrant; an Image is a plain value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/core/status.h"

namespace omni::vision {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // [height * width * 3]
  const uint8_t* pixel(int x, int y) const { return rgb.data() + (size_t(y) * width + x) * 3; }
};

struct DecodeOptions {
  int64_t max_pixels = int64_t(64) << 20;  // width * height above this: kOutOfRange
  int64_t max_side = 65535;                // either side above this: kOutOfRange
  size_t max_file_bytes = size_t(512) << 20;
};

// kNotFound: no such file; kIoError: unreadable; kCorruptFile: bytes that are no image, a
// truncated image, zero width or height; kOutOfRange: dimensions beyond the options;
// kUnsupported: a format with no decoder in this build (or no FFmpeg at all).
StatusOr<Image> decode_image_file(const std::string& path, const DecodeOptions& opts = {});
// The same from bytes in memory; `name` only labels messages.
StatusOr<Image> decode_image_memory(const uint8_t* data, size_t size,
                                    const DecodeOptions& opts = {},
                                    const std::string& name = "<memory>");

// Width and height from the header of a PNG, JPEG, GIF, BMP or WebP file, without decoding
// (the bomb guard runs on these before FFmpeg allocates anything). False when the bytes are not
// one of those formats or the header is cut short.
bool sniff_image_dimensions(const uint8_t* data, size_t size, int64_t* width, int64_t* height);

// An uncompressed 24-bit BMP holding img's pixels exactly (BITMAPINFOHEADER, bottom-up rows
// padded to 4 bytes): how decoded pixels (video frames) travel through APIs that take image
// files; decode_image_memory gives img back. Empty for an empty image.
std::vector<uint8_t> encode_bmp(const Image& img);

// A whole file's bytes (kNotFound, kIoError; kOutOfRange beyond max_bytes, naming `what`).
StatusOr<std::vector<uint8_t>> read_media_file(const std::string& path, size_t max_bytes,
                                               const char* what);

// Ok, or the status the decoders return for a width x height image of `name`.
Status check_image_dimensions(int64_t width, int64_t height, const DecodeOptions& opts,
                              const std::string& name);

}  // namespace omni::vision
