// The application side of capture and playback streams, shared by the PortAudio devices and the
// file-backed stand-ins: the ring, the flags the device side sets, and read/write/drain with
// timeouts. The device side (a subclass's callback or thread) only touches the ring and the
// atomics below. Internal to audio/io.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <string>
#include <thread>

#include "audio/io/decode.h"
#include "audio/io/device.h"
#include "audio/io/ring_buffer.h"

namespace omni::audio::detail {

// Samples; SpscRing rounds it up to a power of two.
inline size_t ring_capacity(const StreamConfig& c) {
  return static_cast<size_t>(std::ceil(c.ring_seconds * c.sample_rate));
}

// Sleep between polls of the ring: short against the period, never busy.
inline std::chrono::microseconds poll_interval(const StreamConfig& c) {
  double period_us = 1e6 * c.frames_per_buffer / c.sample_rate;
  return std::chrono::microseconds(static_cast<int64_t>(std::clamp(period_us / 4, 200.0, 5000.0)));
}

// Device-side state both kinds of stream publish.
struct DeviceFlags {
  std::atomic<bool> running{false};
  std::atomic<bool> ended{false};                // capture source exhausted (stand-in only)
  std::atomic<const char*> lost{nullptr};        // why the device stopped; static text
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> device_overflows{0};
};

class RingCapture : public CaptureStream {
 public:
  explicit RingCapture(const StreamConfig& c) : config_(c), ring_(ring_capacity(c)) {}

  StatusOr<size_t> read(float* out, size_t max_samples, int timeout_ms) override {
    if (max_samples == 0) return size_t{0};
    if (!out) return invalid_argument("CaptureStream::read: null buffer");
    if (!started_) return wrong_state(fmt("capture '%s': read() before start()", name_.c_str()));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      const char* lost = flags_.lost.load(std::memory_order_acquire);
      const bool ended = flags_.ended.load(std::memory_order_acquire);
      size_t k = ring_.pop(out, max_samples);
      if (k > 0) return k;
      if (lost) {
        return io_error(fmt("capture device '%s' %s", name_.c_str(), lost));
      }
      if (ended || !flags_.running.load(std::memory_order_acquire)) return size_t{0};
      Status health = check_device();
      if (!health.ok()) return health;
      if (std::chrono::steady_clock::now() >= deadline) return size_t{0};
      std::this_thread::sleep_for(poll_interval(config_));
    }
  }
  bool at_end() const override {
    return flags_.ended.load(std::memory_order_acquire) && ring_.size() == 0;
  }
  DeviceCounters counters() const override {
    DeviceCounters c;
    c.frames = flags_.frames.load(std::memory_order_relaxed);
    c.overrun_samples = ring_.overrun_samples();
    c.device_overflows = flags_.device_overflows.load(std::memory_order_relaxed);
    return c;
  }
  int sample_rate() const override { return config_.sample_rate; }
  const std::string& device_name() const override { return name_; }

 protected:
  // Called while read() waits: a subclass notices a stalled/vanished device here (sets lost).
  virtual Status check_device() { return Status::Ok(); }

  StreamConfig config_;
  SpscRing ring_;
  DeviceFlags flags_;
  std::string name_;
  bool started_ = false;
};

// Base: PlaybackStream, or an extension of it (FilePlaybackStream).
template <class Base = PlaybackStream>
class RingPlayback : public Base {
 public:
  explicit RingPlayback(const StreamConfig& c) : config_(c), ring_(ring_capacity(c)) {}

  StatusOr<size_t> write(const float* pcm, size_t n, int timeout_ms) override {
    if (n == 0) return size_t{0};
    if (!pcm) return invalid_argument("PlaybackStream::write: null samples");
    OMNI_RETURN_IF_ERROR(check_finite(pcm, n, "playback:"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    size_t done = 0;
    while (true) {
      if (const char* lost = flags_.lost.load(std::memory_order_acquire)) {
        return io_error(fmt("playback device '%s' %s", name_.c_str(), lost));
      }
      done += ring_.try_push(pcm + done, n - done);
      if (done == n || std::chrono::steady_clock::now() >= deadline) return done;
      if (!flags_.running.load(std::memory_order_acquire)) return done;  // full, nobody drains
      std::this_thread::sleep_for(poll_interval(config_));
    }
  }
  Status drain(int timeout_ms) override {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (ring_.size() > 0) {
      if (const char* lost = flags_.lost.load(std::memory_order_acquire)) {
        return io_error(fmt("playback device '%s' %s", name_.c_str(), lost));
      }
      if (!flags_.running.load(std::memory_order_acquire)) {
        return wrong_state(fmt("playback '%s': drain() while stopped", name_.c_str()));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return out_of_range(fmt("playback '%s': %zu samples still queued after %d ms",
                                name_.c_str(), ring_.size(), timeout_ms));
      }
      std::this_thread::sleep_for(poll_interval(config_));
    }
    return Status::Ok();
  }
  DeviceCounters counters() const override {
    DeviceCounters c;
    c.frames = flags_.frames.load(std::memory_order_relaxed);
    c.underrun_samples = ring_.underrun_samples();
    c.device_overflows = flags_.device_overflows.load(std::memory_order_relaxed);
    return c;
  }
  int sample_rate() const override { return config_.sample_rate; }
  const std::string& device_name() const override { return name_; }

 protected:
  StreamConfig config_;
  SpscRing ring_;
  DeviceFlags flags_;
  std::string name_;
};

}  // namespace omni::audio::detail
