// Capture and playback through PortAudio. The callbacks average/duplicate channels through a
// buffer allocated at open and move samples through the SpscRing; nothing else happens there.
// A device that vanishes shows up as the stream finishing on its own, Pa_IsStreamActive turning
// false, or no callback for kStallSeconds; read()/write() then return kIoError.
#include <portaudio.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "audio/io/ring_stream.h"

namespace omni::audio {
namespace {

constexpr double kStallSeconds = 2.0;
constexpr const char* kFinishedByDriver = "stopped on its own (disconnected?)";
constexpr const char* kStalled = "delivered no callback for 2 s (disconnected?)";
constexpr const char* kInactive = "is no longer active (disconnected?)";

// Pa_Initialize/Pa_Terminate are reference counted by PortAudio; one per object that uses it.
class PaSession {
 public:
  PaSession() : err_(Pa_Initialize()) {}
  ~PaSession() {
    if (err_ == paNoError) Pa_Terminate();
  }
  PaSession(const PaSession&) = delete;
  PaSession& operator=(const PaSession&) = delete;
  Status status() const {
    if (err_ == paNoError) return Status::Ok();
    return io_error(fmt("PortAudio cannot start: %s", Pa_GetErrorText(err_)));
  }

 private:
  PaError err_;
};

Status pa_status(PaError err, const char* what, const std::string& device) {
  if (err >= 0) return Status::Ok();
  return io_error(fmt("%s '%s': %s", what, device.c_str(), Pa_GetErrorText(err)));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "" = default; all digits = index; otherwise the first device whose name contains the text.
StatusOr<PaDeviceIndex> select_device(const std::string& spec, bool input) {
  const int count = Pa_GetDeviceCount();
  if (count < 0) return io_error(fmt("PortAudio: %s", Pa_GetErrorText(count)));
  const char* kind = input ? "input" : "output";
  auto channels = [&](PaDeviceIndex i) {
    const PaDeviceInfo* info = Pa_GetDeviceInfo(i);
    return info ? (input ? info->maxInputChannels : info->maxOutputChannels) : 0;
  };
  if (spec.empty()) {
    PaDeviceIndex i = input ? Pa_GetDefaultInputDevice() : Pa_GetDefaultOutputDevice();
    if (i == paNoDevice) {
      return not_found(fmt("no default %s device (%d devices; no sound hardware?)", kind, count));
    }
    return i;
  }
  if (std::all_of(spec.begin(), spec.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      spec.size() < 9) {
    int i = std::stoi(spec);
    if (i >= count) {
      return not_found(fmt("%s device index %d: there are %d devices", kind, i, count));
    }
    if (channels(i) < 1) return not_found(fmt("device %d has no %s channels", i, kind));
    return static_cast<PaDeviceIndex>(i);
  }
  const std::string want = lower(spec);
  std::string names;
  for (PaDeviceIndex i = 0; i < count; ++i) {
    const PaDeviceInfo* info = Pa_GetDeviceInfo(i);
    if (!info || channels(i) < 1) continue;
    if (lower(info->name).find(want) != std::string::npos) return i;
    names += fmt("%s'%s'", names.empty() ? "" : ", ", info->name);
  }
  return not_found(fmt("no %s device whose name contains '%s' (%s: %s)", kind, spec.c_str(),
                       kind, names.empty() ? "none" : names.c_str()));
}

// Opens a PortAudio stream for one direction; shared by capture and playback.
StatusOr<PaStream*> open_pa_stream(const StreamConfig& c, bool input, PaStreamCallback* callback,
                                   void* user, std::string* name) {
  OMNI_ASSIGN_OR_RETURN(PaDeviceIndex index, select_device(c.device, input));
  const PaDeviceInfo* info = Pa_GetDeviceInfo(index);
  *name = info ? info->name : fmt("device %d", index);
  const int max_channels = info ? (input ? info->maxInputChannels : info->maxOutputChannels) : 0;
  if (c.channels > max_channels) {
    return invalid_argument(fmt("'%s' has %d %s channels, %d asked for", name->c_str(),
                                max_channels, input ? "input" : "output", c.channels));
  }
  PaStreamParameters p{};
  p.device = index;
  p.channelCount = c.channels;
  p.sampleFormat = paFloat32;
  p.suggestedLatency = input ? info->defaultLowInputLatency : info->defaultLowOutputLatency;
  const PaStreamParameters* in = input ? &p : nullptr;
  const PaStreamParameters* out = input ? nullptr : &p;
  PaError err = Pa_IsFormatSupported(in, out, c.sample_rate);
  if (err != paFormatIsSupported) {
    return unsupported(fmt("'%s' cannot %s %d channel(s) of float32 at %d Hz: %s", name->c_str(),
                           input ? "capture" : "play", c.channels, c.sample_rate,
                           Pa_GetErrorText(err)));
  }
  PaStream* stream = nullptr;
  err = Pa_OpenStream(&stream, in, out, c.sample_rate, static_cast<unsigned long>(c.frames_per_buffer),
                      paNoFlag, callback, user);
  OMNI_RETURN_IF_ERROR(pa_status(err, "cannot open", *name));
  return stream;
}

// What both directions do around the callback: start/stop, finished and stall detection.
template <class Base>
class PaStreamBase : public Base {
 public:
  using Base::Base;
  ~PaStreamBase() override { close(); }

  Status start_stream() {
    if (active_) return Status::Ok();
    OMNI_RETURN_IF_ERROR(pa_status(Pa_StartStream(stream_), "cannot start", this->name_));
    active_ = true;
    last_frames_ = this->flags_.frames.load();
    last_progress_ = std::chrono::steady_clock::now();
    this->flags_.running.store(true, std::memory_order_release);
    return Status::Ok();
  }
  Status stop_stream() {
    if (!active_) return Status::Ok();
    active_ = false;
    stopping_.store(true, std::memory_order_release);
    PaError err = Pa_IsStreamStopped(stream_) == 1 ? paNoError : Pa_StopStream(stream_);
    stopping_.store(false, std::memory_order_release);
    this->flags_.running.store(false, std::memory_order_release);
    return pa_status(err, "cannot stop", this->name_);
  }
  void close() {
    if (!stream_) return;
    (void)stop_stream();
    Pa_CloseStream(stream_);
    stream_ = nullptr;
  }

  // Not in the callback: decides whether a quiet device has gone.
  Status health() {
    if (!active_) return Status::Ok();
    const char* why = nullptr;
    PaError a = Pa_IsStreamActive(stream_);
    uint64_t frames = this->flags_.frames.load(std::memory_order_relaxed);
    auto now = std::chrono::steady_clock::now();
    if (frames != last_frames_) {
      last_frames_ = frames;
      last_progress_ = now;
    }
    if (a == 0) {
      why = kInactive;
    } else if (a < 0) {
      why = kInactive;
    } else if (std::chrono::duration<double>(now - last_progress_).count() > kStallSeconds) {
      why = kStalled;
    }
    if (!why) return Status::Ok();
    const char* expected = nullptr;
    this->flags_.lost.compare_exchange_strong(expected, why);
    return io_error(fmt("device '%s' %s", this->name_.c_str(), this->flags_.lost.load()));
  }

  static void on_finished(void* user) {
    auto* self = static_cast<PaStreamBase*>(user);
    if (!self->stopping_.load(std::memory_order_acquire)) {
      const char* expected = nullptr;
      self->flags_.lost.compare_exchange_strong(expected, kFinishedByDriver);
    }
  }

  PaSession session_;
  PaStream* stream_ = nullptr;
  std::vector<float> scratch_;  // [frames_per_buffer] mono, for the callback
  std::atomic<bool> stopping_{false};
  bool active_ = false;
  uint64_t last_frames_ = 0;
  std::chrono::steady_clock::time_point last_progress_;
};

class PaCapture final : public PaStreamBase<detail::RingCapture> {
 public:
  using PaStreamBase::PaStreamBase;
  Status open() {
    OMNI_RETURN_IF_ERROR(session_.status());
    scratch_.assign(static_cast<size_t>(config_.frames_per_buffer), 0.0f);
    OMNI_ASSIGN_OR_RETURN(stream_, open_pa_stream(config_, true, &callback, this, &name_));
    return pa_status(Pa_SetStreamFinishedCallback(stream_, &on_finished), "cannot open", name_);
  }
  Status start() override {
    started_ = true;
    return start_stream();
  }
  Status stop() override { return stop_stream(); }

 private:
  Status check_device() override { return health(); }

  // Real-time: interleaved [frames, channels] float32 -> mono -> ring.
  static int callback(const void* input, void*, unsigned long frames,
                      const PaStreamCallbackTimeInfo*, PaStreamCallbackFlags flags, void* user) {
    auto* self = static_cast<PaCapture*>(user);
    if (flags & (paInputOverflow | paInputUnderflow)) {
      self->flags_.device_overflows.fetch_add(1, std::memory_order_relaxed);
    }
    const auto* in = static_cast<const float*>(input);
    const size_t channels = static_cast<size_t>(self->config_.channels);
    const float scale = 1.0f / static_cast<float>(channels);
    float* mono = self->scratch_.data();
    size_t left = frames;
    while (left > 0) {
      const size_t n = std::min(left, self->scratch_.size());
      for (size_t f = 0; f < n; ++f) {
        float sum = 0;
        if (in) {
          for (size_t ch = 0; ch < channels; ++ch) sum += in[f * channels + ch];
        }
        mono[f] = sum * scale;
      }
      self->ring_.push(mono, n);
      if (in) in += n * channels;
      left -= n;
    }
    self->flags_.frames.fetch_add(frames, std::memory_order_relaxed);
    return paContinue;
  }
};

class PaPlayback final : public PaStreamBase<detail::RingPlayback<PlaybackStream>> {
 public:
  using PaStreamBase::PaStreamBase;
  Status open() {
    OMNI_RETURN_IF_ERROR(session_.status());
    scratch_.assign(static_cast<size_t>(config_.frames_per_buffer), 0.0f);
    OMNI_ASSIGN_OR_RETURN(stream_, open_pa_stream(config_, false, &callback, this, &name_));
    return pa_status(Pa_SetStreamFinishedCallback(stream_, &on_finished), "cannot open", name_);
  }
  Status start() override { return start_stream(); }
  Status stop() override { return stop_stream(); }
  StatusOr<size_t> write(const float* pcm, size_t n, int timeout_ms) override {
    OMNI_RETURN_IF_ERROR(health());
    return RingPlayback::write(pcm, n, timeout_ms);
  }
  Status drain(int timeout_ms) override {
    OMNI_RETURN_IF_ERROR(health());
    return RingPlayback::drain(timeout_ms);
  }

 private:
  // Real-time: ring -> mono (silence on underrun) -> interleaved [frames, channels].
  static int callback(const void*, void* output, unsigned long frames,
                      const PaStreamCallbackTimeInfo*, PaStreamCallbackFlags flags, void* user) {
    auto* self = static_cast<PaPlayback*>(user);
    if (flags & (paOutputUnderflow | paOutputOverflow)) {
      self->flags_.device_overflows.fetch_add(1, std::memory_order_relaxed);
    }
    auto* out = static_cast<float*>(output);
    const size_t channels = static_cast<size_t>(self->config_.channels);
    float* mono = self->scratch_.data();
    size_t left = frames;
    while (left > 0) {
      const size_t n = std::min(left, self->scratch_.size());
      self->ring_.pop_or_silence(mono, n);
      for (size_t f = 0; f < n; ++f) {
        for (size_t ch = 0; ch < channels; ++ch) out[f * channels + ch] = mono[f];
      }
      out += n * channels;
      left -= n;
    }
    self->flags_.frames.fetch_add(frames, std::memory_order_relaxed);
    return paContinue;
  }
};

}  // namespace

StatusOr<std::vector<DeviceInfo>> list_devices() {
  PaSession session;
  OMNI_RETURN_IF_ERROR(session.status());
  const int count = Pa_GetDeviceCount();
  if (count < 0) return io_error(fmt("PortAudio: %s", Pa_GetErrorText(count)));
  std::vector<DeviceInfo> out;
  for (PaDeviceIndex i = 0; i < count; ++i) {
    const PaDeviceInfo* info = Pa_GetDeviceInfo(i);
    if (!info) continue;
    DeviceInfo d;
    d.index = i;
    d.name = info->name ? info->name : "";
    const PaHostApiInfo* api = Pa_GetHostApiInfo(info->hostApi);
    d.host_api = api && api->name ? api->name : "";
    d.max_input_channels = info->maxInputChannels;
    d.max_output_channels = info->maxOutputChannels;
    d.default_sample_rate = info->defaultSampleRate;
    d.default_input = i == Pa_GetDefaultInputDevice();
    d.default_output = i == Pa_GetDefaultOutputDevice();
    out.push_back(std::move(d));
  }
  return out;
}

StatusOr<std::unique_ptr<CaptureStream>> open_capture(const StreamConfig& config) {
  OMNI_RETURN_IF_ERROR(check_stream_config(config));
  auto s = std::make_unique<PaCapture>(config);
  OMNI_RETURN_IF_ERROR(s->open());
  return std::unique_ptr<CaptureStream>(std::move(s));
}

StatusOr<std::unique_ptr<PlaybackStream>> open_playback(const StreamConfig& config) {
  OMNI_RETURN_IF_ERROR(check_stream_config(config));
  auto s = std::make_unique<PaPlayback>(config);
  OMNI_RETURN_IF_ERROR(s->open());
  return std::unique_ptr<PlaybackStream>(std::move(s));
}

}  // namespace omni::audio
