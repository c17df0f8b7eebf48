// Live audio: capture and playback streams of mono float32, over PortAudio or over a file-backed
// stand-in with the same interface (for machines without sound hardware: tests, CI).
// The device side (a PortAudio callback, or the stand-in's thread) only copies between its
// buffer and an SpscRing: no allocation, lock or I/O there. The application side reads/writes
// the ring with a timeout. Overruns (capture ring full: samples dropped) and underruns (playback
// ring empty: silence played) are counted, never fatal.
// A device that stops delivering (unplugged, its driver died) turns the next read/write into an
// kIoError status naming the device; the stream object stays valid and can be destroyed.
// Thread-safety: one application thread uses a stream at a time.
//
//   StreamConfig cfg;  cfg.sample_rate = 16000;
//   auto cap = open_capture(cfg);                 // or open_file_capture("clip.wav", cfg, {})
//   (*cap)->start();
//   float buf[1600];
//   auto n = (*cap)->read(buf, 1600, /*timeout_ms=*/200);   // 0 = nothing yet
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/core/status.h"

namespace omni::audio {

struct DeviceInfo {
  int index = -1;                 // PortAudio device index
  std::string name;
  std::string host_api;           // "ALSA", "JACK Audio Connection Kit", ...
  int max_input_channels = 0;
  int max_output_channels = 0;
  double default_sample_rate = 0; // Hz
  bool default_input = false;
  bool default_output = false;
};

// Every device PortAudio sees (empty on a machine without sound hardware).
// kUnsupported without PortAudio; kIoError when PortAudio cannot start.
StatusOr<std::vector<DeviceInfo>> list_devices();

struct StreamConfig {
  std::string device;           // "" = the default; a device index ("3"); or a name substring
  int sample_rate = 16000;      // Hz, what read()/write() deliver and take
  int channels = 1;             // device channels: capture averages them, playback copies mono
  int frames_per_buffer = 256;  // device callback period, frames
  double ring_seconds = 2.0;    // ring capacity between the device and the application
};

// invalid_argument naming the bad field (rate outside [1, 384000], channels outside [1, 64],
// period outside [16, 65536], ring shorter than two periods or longer than 600 s).
Status check_stream_config(const StreamConfig& config);

struct DeviceCounters {
  uint64_t frames = 0;            // frames the device side moved (captured or played)
  uint64_t overrun_samples = 0;   // capture: dropped because the application read too slowly
  uint64_t underrun_samples = 0;  // playback: silence because the application wrote too slowly
  uint64_t device_overflows = 0;  // callbacks where the device itself reported lost input/output
};

class CaptureStream {
 public:
  virtual ~CaptureStream() = default;
  virtual Status start() = 0;
  virtual Status stop() = 0;  // idempotent; samples already in the ring stay readable
  // Waits up to timeout_ms for at least one sample; returns how many were copied (0 = none yet).
  // After the source ended (a file stand-in reached its end) and the ring is drained: 0 and
  // at_end() is true. A device that stopped delivering: kIoError once the ring is drained.
  virtual StatusOr<size_t> read(float* out, size_t max_samples, int timeout_ms) = 0;
  virtual bool at_end() const = 0;
  virtual DeviceCounters counters() const = 0;
  virtual int sample_rate() const = 0;
  virtual const std::string& device_name() const = 0;
};

class PlaybackStream {
 public:
  virtual ~PlaybackStream() = default;
  virtual Status start() = 0;
  virtual Status stop() = 0;  // idempotent; what was still queued is discarded
  // Queues up to n samples, waiting up to timeout_ms for room; returns how many were queued.
  // NaN/Inf samples: kInvalidArgument naming the first, nothing queued.
  virtual StatusOr<size_t> write(const float* pcm, size_t n, int timeout_ms) = 0;
  // Waits until the device has taken everything queued (kOutOfRange after timeout_ms).
  virtual Status drain(int timeout_ms) = 0;
  virtual DeviceCounters counters() const = 0;
  virtual int sample_rate() const = 0;
  virtual const std::string& device_name() const = 0;
};

// PortAudio devices (kUnsupported without PortAudio; kNotFound for no such / no default device).
StatusOr<std::unique_ptr<CaptureStream>> open_capture(const StreamConfig& config);
StatusOr<std::unique_ptr<PlaybackStream>> open_playback(const StreamConfig& config);

// How the file-backed stand-in behaves.
struct FileDeviceOptions {
  // 1.0 = real time (the stand-in's thread moves one period per period, like a device);
  // 2.0 = twice as fast; 0 = as fast as the ring allows, never dropping (lossless, for tests).
  double speed = 1.0;
  // Simulates a device unplugged after this many samples (capture: taken from the source,
  // playback: played); 0 = never.
  uint64_t disconnect_after_samples = 0;
};

// A capture stream whose "microphone" is a decoded file (any format decode_file reads,
// resampled to config.sample_rate) or given samples. config.device is ignored.
StatusOr<std::unique_ptr<CaptureStream>> open_file_capture(const std::string& path,
                                                           const StreamConfig& config,
                                                           const FileDeviceOptions& options);
StatusOr<std::unique_ptr<CaptureStream>> open_pcm_capture(std::vector<float> samples,
                                                          const StreamConfig& config,
                                                          const FileDeviceOptions& options);

// A playback stream whose "speaker" records what it played. played() returns the samples the
// device side took from the ring (not the underrun silence), valid after stop(); if path is
// not empty, stop() also writes them with encode_file.
class FilePlaybackStream : public PlaybackStream {
 public:
  virtual std::vector<float> played() const = 0;
};
StatusOr<std::unique_ptr<FilePlaybackStream>> open_file_playback(const std::string& path,
                                                                 const StreamConfig& config,
                                                                 const FileDeviceOptions& options);

}  // namespace omni::audio
