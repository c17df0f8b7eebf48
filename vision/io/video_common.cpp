// What every build has: reading a video file into memory for the decoder.
#include "vision/io/video.h"

namespace omni::vision {

StatusOr<Video> decode_video_file(const std::string& path, const VideoOptions& opts) {
  OMNI_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                        read_media_file(path, opts.limits.max_file_bytes, "video"));
  return decode_video_memory(bytes.data(), bytes.size(), opts, path);
}

}  // namespace omni::vision
