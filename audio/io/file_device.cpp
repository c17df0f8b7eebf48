// File-backed stand-ins for a microphone and a speaker. A thread plays the device: every period
// (frames_per_buffer / sample_rate / speed seconds) it moves one period between its buffer and
// the ring, exactly as a PortAudio callback would, so the application side is the same code.
#include <chrono>
#include <cmath>
#include <thread>

#include "audio/io/ring_stream.h"

namespace omni::audio {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSimulatedDisconnect = "stopped delivering audio (simulated disconnect)";

Status check_options(const FileDeviceOptions& o) {
  if (!(o.speed >= 0 && o.speed <= 1000)) {
    return invalid_argument(fmt("file device speed %g is outside [0, 1000]", o.speed));
  }
  return Status::Ok();
}

Clock::duration period_of(const StreamConfig& c, double speed) {
  double seconds = static_cast<double>(c.frames_per_buffer) / c.sample_rate / speed;
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

class FileCapture final : public detail::RingCapture {
 public:
  FileCapture(std::vector<float> samples, const StreamConfig& c, const FileDeviceOptions& o,
              std::string name)
      : RingCapture(c), samples_(std::move(samples)), options_(o) {
    name_ = std::move(name);
  }
  ~FileCapture() override { (void)stop(); }

  Status start() override {
    if (thread_.joinable()) return Status::Ok();
    started_ = true;
    stop_requested_.store(false);
    flags_.running.store(true, std::memory_order_release);
    thread_ = std::thread([this] { run(); });
    return Status::Ok();
  }
  Status stop() override {
    stop_requested_.store(true);
    if (thread_.joinable()) thread_.join();
    flags_.running.store(false, std::memory_order_release);
    return Status::Ok();
  }

 private:
  // The "callback": one period per tick, pushed into the ring (overrun when the reader lags).
  void run() {
    const size_t period = static_cast<size_t>(config_.frames_per_buffer);
    const bool paced = options_.speed > 0;
    const auto tick = paced ? period_of(config_, options_.speed) : Clock::duration::zero();
    auto next = Clock::now();
    while (!stop_requested_.load(std::memory_order_relaxed)) {
      if (options_.disconnect_after_samples > 0 && pos_ >= options_.disconnect_after_samples) {
        flags_.lost.store(kSimulatedDisconnect, std::memory_order_release);
        break;
      }
      if (pos_ >= samples_.size()) {
        flags_.ended.store(true, std::memory_order_release);
        break;
      }
      size_t n = std::min(period, samples_.size() - pos_);
      if (options_.disconnect_after_samples > 0) {
        n = std::min<size_t>(n, options_.disconnect_after_samples - pos_);
      }
      if (paced) {
        ring_.push(samples_.data() + pos_, n);
        next += tick;
        std::this_thread::sleep_until(next);
      } else {  // lossless: wait for room instead of dropping
        size_t done = 0;
        while (done < n && !stop_requested_.load(std::memory_order_relaxed)) {
          done += ring_.try_push(samples_.data() + pos_ + done, n - done);
          if (done < n) std::this_thread::sleep_for(detail::poll_interval(config_));
        }
        n = done;
      }
      pos_ += n;
      flags_.frames.fetch_add(n, std::memory_order_relaxed);
    }
    flags_.running.store(false, std::memory_order_release);
  }

  std::vector<float> samples_;  // [n] mono at config_.sample_rate
  FileDeviceOptions options_;
  size_t pos_ = 0;              // next sample to deliver; owned by the thread
  std::atomic<bool> stop_requested_{false};
  std::thread thread_;
};

class FilePlayback final : public detail::RingPlayback<FilePlaybackStream> {
 public:
  FilePlayback(std::string path, const StreamConfig& c, const FileDeviceOptions& o)
      : RingPlayback(c), path_(std::move(path)), options_(o) {
    name_ = path_.empty() ? std::string("<memory speaker>") : path_;
  }
  ~FilePlayback() override { (void)stop(); }

  Status start() override {
    if (thread_.joinable()) return Status::Ok();
    stop_requested_.store(false);
    flags_.running.store(true, std::memory_order_release);
    thread_ = std::thread([this] { run(); });
    return Status::Ok();
  }
  Status stop() override {
    stop_requested_.store(true);
    if (!thread_.joinable()) return Status::Ok();
    thread_.join();
    flags_.running.store(false, std::memory_order_release);
    if (!path_.empty()) return encode_file(path_, played_.data(), played_.size(), config_.sample_rate);
    return Status::Ok();
  }
  std::vector<float> played() const override {
    return flags_.running.load(std::memory_order_acquire) ? std::vector<float>{} : played_;
  }

 private:
  void run() {
    const size_t period = static_cast<size_t>(config_.frames_per_buffer);
    std::vector<float> buffer(period);  // the device's buffer, allocated before "streaming"
    const bool paced = options_.speed > 0;
    const auto tick = paced ? period_of(config_, options_.speed) : Clock::duration::zero();
    auto next = Clock::now();
    while (!stop_requested_.load(std::memory_order_relaxed)) {
      if (options_.disconnect_after_samples > 0 &&
          played_.size() >= options_.disconnect_after_samples) {
        flags_.lost.store(kSimulatedDisconnect, std::memory_order_release);
        break;
      }
      size_t want = period;
      if (options_.disconnect_after_samples > 0) {
        want = std::min<size_t>(want, options_.disconnect_after_samples - played_.size());
      }
      size_t got;
      if (paced) {
        got = ring_.pop_or_silence(buffer.data(), want);  // silence where the ring ran dry
        next += tick;
      } else {
        got = ring_.pop(buffer.data(), want);
      }
      played_.insert(played_.end(), buffer.begin(), buffer.begin() + static_cast<long>(got));
      flags_.frames.fetch_add(paced ? want : got, std::memory_order_relaxed);
      if (paced) {
        std::this_thread::sleep_until(next);
      } else if (got == 0) {
        std::this_thread::sleep_for(detail::poll_interval(config_));
      }
    }
    flags_.running.store(false, std::memory_order_release);
  }

  std::string path_;
  FileDeviceOptions options_;
  std::vector<float> played_;  // owned by the thread while running
  std::atomic<bool> stop_requested_{false};
  std::thread thread_;
};

}  // namespace

StatusOr<std::unique_ptr<CaptureStream>> open_pcm_capture(std::vector<float> samples,
                                                          const StreamConfig& config,
                                                          const FileDeviceOptions& options) {
  OMNI_RETURN_IF_ERROR(check_stream_config(config));
  OMNI_RETURN_IF_ERROR(check_options(options));
  OMNI_RETURN_IF_ERROR(check_finite(samples.data(), samples.size(), "capture source:"));
  return std::unique_ptr<CaptureStream>(
      new FileCapture(std::move(samples), config, options, "<memory microphone>"));
}

StatusOr<std::unique_ptr<CaptureStream>> open_file_capture(const std::string& path,
                                                           const StreamConfig& config,
                                                           const FileDeviceOptions& options) {
  OMNI_RETURN_IF_ERROR(check_stream_config(config));
  OMNI_RETURN_IF_ERROR(check_options(options));
  // Decoded up front, so the stand-in's "callback" thread only copies.
  OMNI_ASSIGN_OR_RETURN(std::vector<float> samples, decode_file(path, config.sample_rate));
  return std::unique_ptr<CaptureStream>(
      new FileCapture(std::move(samples), config, options, path));
}

StatusOr<std::unique_ptr<FilePlaybackStream>> open_file_playback(const std::string& path,
                                                                 const StreamConfig& config,
                                                                 const FileDeviceOptions& options) {
  OMNI_RETURN_IF_ERROR(check_stream_config(config));
  OMNI_RETURN_IF_ERROR(check_options(options));
  return std::unique_ptr<FilePlaybackStream>(new FilePlayback(path, config, options));
}

}  // namespace omni::audio
