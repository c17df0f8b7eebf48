// Without FFmpeg: images cannot be decoded; say so.
#include "vision/io/image.h"

namespace omni::vision {

StatusOr<Image> decode_image_memory(const uint8_t*, size_t, const DecodeOptions&,
                                    const std::string& name) {
  return unsupported(fmt("'%s': image decoding needs FFmpeg (configure with "
                         "-DOMNIRT_WITH_FFMPEG=ON)", name.c_str()));
}

}  // namespace omni::vision
