// Without FFmpeg: videos cannot be decoded; say so.
#include "vision/io/video.h"

namespace omni::vision {

StatusOr<Video> decode_video_memory(const uint8_t*, size_t, const VideoOptions&,
                                    const std::string& name) {
  return unsupported(fmt("'%s': video decoding needs FFmpeg (configure with "
                         "-DOMNIRT_WITH_FFMPEG=ON)", name.c_str()));
}

}  // namespace omni::vision
