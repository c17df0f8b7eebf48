// Audio files and streams in and out: any container/codec FFmpeg reads (WAV, FLAC, MP3, Ogg/Opus,
// M4A/AAC, the first audio track of a video) -> mono float32 at a requested rate, whole or in
// chunks as they arrive; WAV/FLAC/Opus out.
// Samples are float32 in [-1, 1] nominal, channels averaged, resampled by libswresample.
// Without FFmpeg (OMNIRT_HAVE_FFMPEG undefined) every call returns kUnsupported saying so.
// Thread-safety: the free functions may be called from any thread; a StreamDecoder is used by
// one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/core/status.h"

namespace omni::audio {

// Rates omnirt accepts anywhere (decode targets, devices, encoders), in Hz.
constexpr int kMinSampleRate = 1;
constexpr int kMaxSampleRate = 384000;
// Channel counts accepted from files and devices.
constexpr int kMaxChannels = 64;

// invalid_argument naming the value unless kMinSampleRate <= rate <= kMaxSampleRate.
Status check_sample_rate(int sample_rate);

// Whole file or stream (path, "-" = stdin, a named pipe) -> mono float32 at sample_rate (Hz).
// kNotFound: no such file; kCorruptFile: bytes that do not decode (or decode to NaN/Inf),
// truncated headers, no audio stream; kUnsupported: a codec this FFmpeg build lacks;
// kInvalidArgument: a bad sample_rate. Empty but well-formed audio returns an empty vector.
StatusOr<std::vector<float>> decode_file(const std::string& path, int sample_rate);

// The same from bytes in memory (a custom AVIOContext; used by the fuzz target and for
// network buffers). `name` only labels messages.
StatusOr<std::vector<float>> decode_memory(const uint8_t* data, size_t size, int sample_rate,
                                           const std::string& name = "<memory>");

// Following a regular file that another process is still writing (tail -f): at the file's
// current end the reader polls its size every poll_ms instead of ending, and the stream ends
// once the file has not grown for idle_ms. Works for formats read front to back without
// seeking (tested: WAV, FLAC, Ogg/Opus). A WAV header's sizes may be final (read up to the data
// chunk's end) or 0 / 0xFFFFFFFF (read to the idle end). Not for formats whose index sits at
// the end (MP4/M4A with the moov atom last), nor headerless raw PCM (FFmpeg cannot probe it).
struct FollowOptions {
  int idle_ms = 2000;  // [0, 86'400'000]: no growth for this long = the end of the stream
  int poll_ms = 20;    // [1, 10'000]: how often the size is checked while waiting
};

// Incremental decoding: read() returns what has been decoded so far, blocking on the source
// (a pipe, stdin, a file) only as long as needed to produce at least one sample.
class StreamDecoder {
 public:
  static StatusOr<std::unique_ptr<StreamDecoder>> open(const std::string& path, int sample_rate);
  // `path` followed as it grows (FollowOptions). A pipe or stdin ("-") streams anyway and is
  // opened as open() does; an empty file is allowed (its header may come later). Errors as for
  // open(), and kInvalidArgument for options outside their ranges. read() then also returns
  // kCorruptFile when the file stopped growing before the end a WAV header declared (the
  // writer died: "stopped growing at byte N, its data chunk ends at byte M"), and kIoError when
  // the file shrank (rewritten or truncated while followed).
  static StatusOr<std::unique_ptr<StreamDecoder>> open_follow(const std::string& path,
                                                              int sample_rate,
                                                              const FollowOptions& options = {});
  // Over bytes in memory that must outlive the decoder.
  static StatusOr<std::unique_ptr<StreamDecoder>> open_memory(const uint8_t* data, size_t size,
                                                              int sample_rate,
                                                              const std::string& name = "<memory>");
  ~StreamDecoder();
  StreamDecoder(const StreamDecoder&) = delete;
  StreamDecoder& operator=(const StreamDecoder&) = delete;

  // Up to max_samples mono samples into out; 0 = end of stream. Errors as for decode_file.
  StatusOr<size_t> read(float* out, size_t max_samples);

  int sample_rate() const;      // the rate read() delivers, Hz
  int source_rate() const;      // the file's own rate, Hz
  int source_channels() const;  // the file's own channel count
  const std::string& codec_name() const;  // e.g. "opus", "pcm_s16le"

  struct Impl;

 private:
  explicit StreamDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes mono pcm (n samples at sample_rate Hz) to path; the format follows the extension:
// .wav (float32 -> 16-bit PCM), .flac (16-bit), .opus / .ogg (Opus in Ogg; rates other than
// 8/12/16/24/48 kHz are resampled to 48 kHz). Samples beyond [-1, 1] are clipped.
// NaN/Inf samples, a bad rate or an unknown extension: kInvalidArgument naming the value.
Status encode_file(const std::string& path, const float* pcm, size_t n, int sample_rate);

// invalid_argument("<what> sample <i> is NaN") for the first non-finite sample; Ok otherwise.
Status check_finite(const float* pcm, size_t n, const char* what);

// invalid_argument naming the field unless both FollowOptions fields are within their ranges.
Status check_follow_options(const FollowOptions& options);

// Where a RIFF/WAVE file's data chunk ends (byte offset), from the file's first `size` bytes:
// -1 when they are not a WAV header or the data chunk's size is unknown (0 or 0xFFFFFFFF, as a
// streaming writer leaves it) or the data chunk's header is not within them.
int64_t wav_data_end(const uint8_t* head, size_t size);

}  // namespace omni::audio
