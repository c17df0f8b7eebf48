// 16 kHz PCM16 WAV read and write without FFmpeg (wav_pcm16.h). Built with and without FFmpeg.
#include "audio/io/wav_pcm16.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

namespace omni::audio {
namespace {

constexpr uint32_t kPcm16Rate = 16000;  // Hz; there is no resampler without FFmpeg

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

std::string and_why(std::string_view why) { return why.empty() ? std::string() : ", and " + std::string(why); }

}  // namespace

StatusOr<std::vector<float>> parse_wav_pcm16(const uint8_t* b, size_t size, const std::string& name,
                                             std::string_view why) {
  // "RIFF" u32 "WAVE", then chunks {4-byte id, u32 little-endian length, body, pad to even}.
  if (!b || size < 12 || std::memcmp(b, "RIFF", 4) != 0 || std::memcmp(b + 8, "WAVE", 4) != 0)
    return unsupported("'" + name + "' is not a WAV file" + and_why(why));
  uint16_t tag = 0, channels = 0, bits = 0;  // from the fmt chunk; 0 until one is seen
  uint32_t rate = 0;
  for (size_t at = 12; at + 8 <= size;) {
    const uint32_t len = le32(b + at + 4);
    if (len > size - at - 8) return corrupt_file(fmt("'%s': the chunk at byte %zu runs past the end", name.c_str(), at));
    const uint8_t* body = b + at + 8;
    if (std::memcmp(b + at, "fmt ", 4) == 0 && len >= 16) {
      tag = le16(body);
      channels = le16(body + 2);
      rate = le32(body + 4);
      bits = le16(body + 14);
    } else if (std::memcmp(b + at, "data", 4) == 0) {
      if (tag != 1 || bits != 16 || channels == 0 || rate != kPcm16Rate)
        return unsupported(fmt("'%s': only 16 kHz 16-bit PCM WAV is read (format %u, %u bits, %u channels, %u Hz)",
                               name.c_str(), tag, bits, channels, rate) + and_why(why));
      // Interleaved s16 frames of `channels` samples; a trailing partial frame is dropped.
      const size_t frames = len / (2u * channels);
      if (frames == 0)
        return corrupt_file(fmt("'%s': the data chunk holds no samples (%u bytes, %u channels)", name.c_str(), len,
                                channels));
      std::vector<float> out(frames);
      for (size_t i = 0; i < frames; ++i) {
        float sum = 0;
        for (size_t c = 0; c < channels; ++c)
          sum += static_cast<float>(static_cast<int16_t>(le16(body + 2 * (i * channels + c)))) / 32768.0f;
        out[i] = sum / channels;
      }
      return out;
    }
    at += 8 + size_t(len) + (len & 1);
  }
  return corrupt_file("'" + name + "' has no data chunk");
}

StatusOr<std::vector<float>> read_wav_pcm16(const std::string& path, std::string_view why) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found("cannot open '" + path + "'");
  const std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse_wav_pcm16(reinterpret_cast<const uint8_t*>(b.data()), b.size(), path, why);
}

Status write_wav_pcm16(const std::string& path, const float* pcm, size_t n, int sample_rate) {
  if (sample_rate <= 0) return invalid_argument(fmt("write_wav_pcm16: '%s': sample rate %d Hz", path.c_str(), sample_rate));
  // The RIFF size field holds 36 + data bytes; the byte rate 2 * rate.
  constexpr size_t kMaxSamples = (std::numeric_limits<uint32_t>::max() - 36) / 2;
  if (n > kMaxSamples)
    return invalid_argument(fmt("write_wav_pcm16: '%s': %zu samples (a WAV holds at most %zu)", path.c_str(), n,
                                kMaxSamples));
  if (n > 0 && !pcm) return invalid_argument("write_wav_pcm16: null samples");
  std::vector<uint8_t> b;
  b.reserve(44 + 2 * n);
  auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); };
  auto u16 = [&](uint16_t v) { b.push_back(static_cast<uint8_t>(v)); b.push_back(static_cast<uint8_t>(v >> 8)); };
  const uint32_t data_bytes = static_cast<uint32_t>(n * 2);
  b.insert(b.end(), {'R', 'I', 'F', 'F'});
  u32(36 + data_bytes);
  b.insert(b.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  u32(16);
  u16(1);  // PCM
  u16(1);  // mono
  u32(static_cast<uint32_t>(sample_rate));
  u32(static_cast<uint32_t>(sample_rate) * 2);  // bytes per second
  u16(2);                                        // bytes per frame
  u16(16);
  b.insert(b.end(), {'d', 'a', 't', 'a'});
  u32(data_bytes);
  for (size_t i = 0; i < n; ++i) {
    const float c = std::clamp(pcm[i], -1.0f, 1.0f);
    u16(static_cast<uint16_t>(static_cast<int16_t>(std::lrint(c * 32767.0f))));
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return io_error("cannot create '" + path + "'");
  const bool ok = std::fwrite(b.data(), 1, b.size(), f) == b.size();
  if (std::fclose(f) != 0 || !ok) return io_error("writing '" + path + "' failed");
  return Status::Ok();
}

}  // namespace omni::audio
