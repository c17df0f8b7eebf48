// FFmpeg's log as omnirt's media decoders use it (audio/io, vision/io): error text for a
// status, the log-level offset our codec contexts run with, the process-wide log capture and
// the process-wide cap on one allocation.
// Header-only, included only by *_ffmpeg.cpp sources (they have FFmpeg's headers; kernels/
// itself does not link FFmpeg). Inline functions and variables: one copy in the process
// however many libraries include it.
#pragma once

#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
}

namespace omni::ffmpeg {

// Messages logged through our codec contexts are shifted below AV_LOG_DEBUG: corrupt input is
// reported through our Status, not on stderr (AVCodecContext::log_level_offset).
inline constexpr int kQuietLogOffset = AV_LOG_TRACE;

// av_strerror's text for an AVERROR code.
inline std::string error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

// The last error FFmpeg logged on this thread since take_over_log() ("invalid residual").
inline thread_local char t_last_error[256];

// av_log callback: keeps errors per thread instead of printing them; prints as before too when
// OMNIRT_FFMPEG_LOG is set.
inline void capture_log(void* avcl, int level, const char* format, va_list args) {
  static const bool forward = std::getenv("OMNIRT_FFMPEG_LOG") != nullptr;
  if (forward) {
    va_list copy;
    va_copy(copy, args);
    av_log_default_callback(avcl, level, format, copy);
    va_end(copy);
  }
  if (level > AV_LOG_ERROR) return;
  int print_prefix = 0;
  char line[sizeof(t_last_error)];
  av_log_format_line2(nullptr, level, format, args, line, sizeof(line), &print_prefix);
  size_t n = std::strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' ')) line[--n] = '\0';
  if (n > 0) std::memcpy(t_last_error, line, n + 1);
}

// Forgets this thread's last error: call it before an operation whose failure said() explains.
inline void forget_last_error() { t_last_error[0] = '\0'; }

// The largest single block FFmpeg may allocate (av_max_alloc; FFmpeg's default is INT_MAX).
// Some demuxers size a buffer from a header field before reading anything: a 666-byte file
// with a corrupt ID3v2 frame made avformat_open_input ask for 1.2 GB (found by fuzz_audio). A
// capped allocation fails, FFmpeg returns ENOMEM and the caller gets a status. 512 MiB still
// holds an 8K RGBA frame (133 MB) four times over. Process-wide, like the log callback.
inline constexpr size_t kMaxAllocBytes = size_t{512} << 20;

inline void cap_allocations() {
  static std::once_flag once;
  std::call_once(once, [] { av_max_alloc(kMaxAllocBytes); });
}

// FFmpeg's log is process-wide: the first call installs capture_log (and the allocation cap);
// every call also forgets this thread's last error.
inline void take_over_log() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(&capture_log); });
  cap_allocations();
  forget_last_error();
}

// " (ffmpeg: <last error>)" or "".
inline std::string said() {
  if (t_last_error[0] == '\0') return "";
  return std::string(" (ffmpeg: ") + t_last_error + ")";
}

}  // namespace omni::ffmpeg
