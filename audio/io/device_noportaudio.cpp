// Live audio without PortAudio (OMNIRT_WITH_PORTAUDIO=OFF): the file-backed stand-ins still work.
#include "audio/io/device.h"

namespace omni::audio {
namespace {
Status no_portaudio(const char* what) {
  return unsupported(fmt("%s: omnirt was built without PortAudio (configure with "
                         "-DOMNIRT_WITH_PORTAUDIO=ON)", what));
}
}  // namespace

StatusOr<std::vector<DeviceInfo>> list_devices() { return no_portaudio("listing audio devices"); }
StatusOr<std::unique_ptr<CaptureStream>> open_capture(const StreamConfig&) {
  return no_portaudio("audio capture");
}
StatusOr<std::unique_ptr<PlaybackStream>> open_playback(const StreamConfig&) {
  return no_portaudio("audio playback");
}

}  // namespace omni::audio
