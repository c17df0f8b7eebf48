// audio/io without FFmpeg (OMNIRT_WITH_FFMPEG=OFF): every file call says so.
#include "audio/io/decode.h"

namespace omni::audio {
namespace {
Status no_ffmpeg(const std::string& what) {
  return unsupported(fmt("%s: omnirt was built without FFmpeg (configure with "
                         "-DOMNIRT_WITH_FFMPEG=ON)", what.c_str()));
}
}  // namespace

struct StreamDecoder::Impl {};
StreamDecoder::StreamDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StreamDecoder::~StreamDecoder() = default;

StatusOr<std::unique_ptr<StreamDecoder>> StreamDecoder::open(const std::string& path, int) {
  return no_ffmpeg("decoding '" + path + "'");
}
StatusOr<std::unique_ptr<StreamDecoder>> StreamDecoder::open_memory(const uint8_t*, size_t, int,
                                                                    const std::string& name) {
  return no_ffmpeg("decoding '" + name + "'");
}
StatusOr<std::unique_ptr<StreamDecoder>> StreamDecoder::open_follow(const std::string& path,
                                                                    int sample_rate,
                                                                    const FollowOptions& options) {
  OMNI_RETURN_IF_ERROR(check_sample_rate(sample_rate));
  OMNI_RETURN_IF_ERROR(check_follow_options(options));
  return no_ffmpeg("following '" + path + "'");
}
StatusOr<size_t> StreamDecoder::read(float*, size_t) { return no_ffmpeg("StreamDecoder::read"); }
int StreamDecoder::sample_rate() const { return 0; }
int StreamDecoder::source_rate() const { return 0; }
int StreamDecoder::source_channels() const { return 0; }
const std::string& StreamDecoder::codec_name() const {
  static const std::string kNone;
  return kNone;
}

StatusOr<std::vector<float>> decode_file(const std::string& path, int) {
  return no_ffmpeg("decoding '" + path + "'");
}
StatusOr<std::vector<float>> decode_memory(const uint8_t*, size_t, int, const std::string& name) {
  return no_ffmpeg("decoding '" + name + "'");
}
Status encode_file(const std::string& path, const float*, size_t, int) {
  return no_ffmpeg("encoding '" + path + "'");
}

}  // namespace omni::audio
