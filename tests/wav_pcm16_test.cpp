// audio/io/wav_pcm16: the FFmpeg-less 16 kHz PCM16 WAV reader and writer. The files are built
// here byte by byte (RIFF layout written out, known s16 samples), so the expected samples are
// s16 / 32768 (channels averaged) with no code under test in between; the committed Whisper clip
// is also checked against FFmpeg's decoder where the build has FFmpeg. Each refusal: exact code,
// message naming the file.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "audio/io/wav_pcm16.h"
#include "tests/test_util.h"
#ifdef OMNIRT_HAVE_FFMPEG
#include "audio/io/decode.h"
#endif

namespace omni {
namespace {

using audio::read_wav_pcm16;

// A RIFF/WAVE file: chunks appended in order, the RIFF size patched by bytes().
struct WavBytes {
  std::vector<uint8_t> b{'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E'};
  void u16(uint16_t v) { b.push_back(uint8_t(v)), b.push_back(uint8_t(v >> 8)); }
  void u32(uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void id(const char* four) { b.insert(b.end(), four, four + 4); }
  void fmt_chunk(uint16_t tag, uint16_t channels, uint32_t rate, uint16_t bits) {
    id("fmt "), u32(16), u16(tag), u16(channels), u32(rate), u32(rate * channels * bits / 8);
    u16(uint16_t(channels * bits / 8)), u16(bits);
  }
  // A data chunk of s16 samples (interleaved); `len` overrides the size field when >= 0.
  void data_chunk(const std::vector<int16_t>& s, int64_t len = -1) {
    id("data"), u32(len >= 0 ? uint32_t(len) : uint32_t(2 * s.size()));
    for (int16_t v : s) u16(uint16_t(v));
  }
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out = b;
    const uint32_t riff = uint32_t(out.size() - 8);
    for (int i = 0; i < 4; ++i) out[4 + i] = uint8_t(riff >> (8 * i));
    return out;
  }
};

// A 16 kHz PCM16 file of `channels` x s (interleaved).
std::vector<uint8_t> pcm16_wav(const std::vector<int16_t>& s, uint16_t channels) {
  WavBytes w;
  w.fmt_chunk(1, channels, 16000, 16);
  w.data_chunk(s);
  return w.bytes();
}

// Writes bytes to a temp file named after the test; the path.
std::string put(const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = test::temp_path("wav_pcm16_" + name + ".wav");
  EXPECT_TRUE(test::write_file(path, bytes)) << path;
  return path;
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The refusal of `bytes`: its code, and a message naming the file and containing `part`.
void expect_refused(const std::string& name, const std::vector<uint8_t>& bytes, StatusCode code,
                    const std::string& part) {
  const std::string path = put(name, bytes);
  auto r = read_wav_pcm16(path);
  ASSERT_FALSE(r.ok()) << name;
  EXPECT_EQ(r.status().code(), code) << name << ": " << r.status().to_string();
  EXPECT_TRUE(has(r.status().message(), "'" + path + "'")) << r.status().message();
  EXPECT_TRUE(has(r.status().message(), part)) << r.status().message() << " lacks " << part;
  std::remove(path.c_str());
}

const std::vector<int16_t> kSamples = {0, 1, -1, 12345, -23456, 32767, -32768, 2, -2, 100};

TEST(WavPcm16, MonoSamplesAreS16Over32768) {
  const std::string path = put("mono", pcm16_wav(kSamples, 1));
  auto r = read_wav_pcm16(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), kSamples.size());
  for (size_t i = 0; i < kSamples.size(); ++i) EXPECT_EQ((*r)[i], float(kSamples[i]) / 32768.0f) << i;
  std::remove(path.c_str());
}

TEST(WavPcm16, StereoChannelsAreAveraged) {
  // Frames (L, R); a trailing half frame is dropped. (L + R) / 65536 is exact in float.
  std::vector<int16_t> s = {32767, 32767, -32768, 32767, 1000, -3000, 7, 8, -32768, -32768, 555};
  const std::string path = put("stereo", pcm16_wav(s, 2));
  auto r = read_wav_pcm16(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 5u);
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ((*r)[i], float((double(s[2 * i]) + double(s[2 * i + 1])) / 65536.0)) << i;
  std::remove(path.c_str());
}

TEST(WavPcm16, SkipsOtherChunksAndTheirPadByte) {
  WavBytes w;
  w.id("LIST"), w.u32(3), w.b.insert(w.b.end(), {'a', 'b', 'c', 0});  // odd length: one pad byte
  w.fmt_chunk(1, 1, 16000, 16);
  w.id("fact"), w.u32(4), w.u32(99);
  w.data_chunk({-5, 6, 7});
  const std::vector<uint8_t> bytes = w.bytes();
  auto r = audio::parse_wav_pcm16(bytes.data(), bytes.size(), "mem");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, (std::vector<float>{-5 / 32768.0f, 6 / 32768.0f, 7 / 32768.0f}));
}

TEST(WavPcm16, CommittedClipMatchesFfmpeg) {
  const std::string clip = test::source_path("tests/data/whisper/librivox_0880.wav");
  if (!test::file_exists(clip)) GTEST_SKIP() << clip << " is missing";
  auto r = read_wav_pcm16(clip);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_GT(r->size(), 16000u);
#ifdef OMNIRT_HAVE_FFMPEG
  auto ref = audio::decode_file(clip, 16000);  // 16 kHz in and out: no resampling, s16 / 32768
  ASSERT_TRUE(ref.ok()) << ref.status().to_string();
  ASSERT_EQ(r->size(), ref->size());
  for (size_t i = 0; i < r->size(); ++i) ASSERT_EQ((*r)[i], (*ref)[i]) << i;
#endif
}

TEST(WavPcm16, MissingFileIsNotFound) {
  const std::string path = test::temp_path("wav_pcm16_no_such_file.wav");
  auto r = read_wav_pcm16(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "cannot open '" + path + "'");
}

TEST(WavPcm16, RefusesNonWav) {
  expect_refused("text", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '\n'}, StatusCode::kUnsupported,
                 "is not a WAV file");
  std::vector<uint8_t> rifx = pcm16_wav(kSamples, 1);
  rifx[3] = 'X';
  expect_refused("rifx", rifx, StatusCode::kUnsupported, "is not a WAV file");
  expect_refused("empty", {}, StatusCode::kUnsupported, "is not a WAV file");
}

TEST(WavPcm16, RefusesTruncatedHeader) {
  const std::vector<uint8_t> good = pcm16_wav(kSamples, 1);
  // Cut inside "RIFF....WAVE": not a WAV file; cut inside the fmt chunk's body: it runs past the end.
  expect_refused("cut8", std::vector<uint8_t>(good.begin(), good.begin() + 8), StatusCode::kUnsupported,
                 "is not a WAV file");
  expect_refused("cut30", std::vector<uint8_t>(good.begin(), good.begin() + 30), StatusCode::kCorruptFile,
                 "the chunk at byte 12 runs past the end");
  // Cut after the fmt chunk, inside the data chunk's header: no data chunk.
  expect_refused("cut40", std::vector<uint8_t>(good.begin(), good.begin() + 40), StatusCode::kCorruptFile,
                 "has no data chunk");
}

TEST(WavPcm16, RefusesChunkSizePastTheEnd) {
  WavBytes w;
  w.fmt_chunk(1, 1, 16000, 16);
  w.data_chunk(kSamples, int64_t(2 * kSamples.size() + 2));  // two bytes more than there are
  expect_refused("past_end", w.bytes(), StatusCode::kCorruptFile, "the chunk at byte 36 runs past the end");
  WavBytes huge;
  huge.fmt_chunk(1, 1, 16000, 16);
  huge.data_chunk(kSamples, 0xFFFFFFFFll);  // a streaming writer's "unknown" size
  expect_refused("huge", huge.bytes(), StatusCode::kCorruptFile, "the chunk at byte 36 runs past the end");
  WavBytes huge_fmt;
  huge_fmt.id("fmt "), huge_fmt.u32(0xFFFFFFF0u);
  expect_refused("huge_fmt", huge_fmt.bytes(), StatusCode::kCorruptFile, "the chunk at byte 12 runs past the end");
}

TEST(WavPcm16, RefusesOtherFormats) {
  struct Case {
    const char* name;
    bool has_fmt;
    uint16_t format, channels;
    uint32_t rate;
    uint16_t bits;
    const char* message;
  } cases[] = {
      {"u8", true, 1, 1, 16000, 8, "(format 1, 8 bits, 1 channels, 16000 Hz)"},
      {"r44", true, 1, 1, 44100, 16, "(format 1, 16 bits, 1 channels, 44100 Hz)"},
      {"f32", true, 3, 2, 16000, 32, "(format 3, 32 bits, 2 channels, 16000 Hz)"},
      {"no_fmt", false, 0, 0, 0, 0, "only 16 kHz 16-bit PCM WAV is read (format 0"},
      {"zero_channels", true, 1, 0, 16000, 16, "0 channels"},
  };
  for (const Case& c : cases) {
    WavBytes w;
    if (c.has_fmt) w.fmt_chunk(c.format, c.channels, c.rate, c.bits);
    w.data_chunk(kSamples);
    expect_refused(c.name, w.bytes(), StatusCode::kUnsupported, c.message);
  }
}

TEST(WavPcm16, RefusesEmptyDataChunk) {
  expect_refused("empty_data", pcm16_wav({}, 1), StatusCode::kCorruptFile,
                 "the data chunk holds no samples (0 bytes, 1 channels)");
  expect_refused("half_frame", pcm16_wav({5}, 2), StatusCode::kCorruptFile,
                 "the data chunk holds no samples (2 bytes, 2 channels)");
}

TEST(WavPcm16, WhyIsAppendedToUnsupportedOnly) {
  const std::string why = "omnirt was built without FFmpeg";
  const std::vector<uint8_t> text = {'n', 'o', 't', ' ', 'a', ' ', 'w', 'a', 'v', 'e', '.', '.', '.'};
  auto a = audio::parse_wav_pcm16(text.data(), text.size(), "x.wav", why);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().message(), "'x.wav' is not a WAV file, and omnirt was built without FFmpeg");
  WavBytes r44;
  r44.fmt_chunk(1, 1, 44100, 16);
  r44.data_chunk(kSamples);
  const std::vector<uint8_t> bytes = r44.bytes();
  auto b = audio::parse_wav_pcm16(bytes.data(), bytes.size(), "x.wav", why);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(), "'x.wav': only 16 kHz 16-bit PCM WAV is read (format 1, 16 bits, 1 channels, "
                                  "44100 Hz), and omnirt was built without FFmpeg");
  auto c = audio::parse_wav_pcm16(bytes.data(), 30, "x.wav", why);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "'x.wav': the chunk at byte 12 runs past the end");
}

TEST(WavPcm16, WriterLayoutAndSamples) {
  // Clipped to [-1, 1], times 32767, rounded to nearest.
  const std::vector<float> pcm = {0.0f, 0.5f, -0.5f, 1.0f, -1.0f, 1.5f, -7.0f, 1e-5f, 0.25f};
  const std::vector<int16_t> want = {0, 16384, -16384, 32767, -32767, 32767, -32767, 0, 8192};
  const std::string path = test::temp_path("wav_pcm16_written.wav");
  ASSERT_TRUE(audio::write_wav_pcm16(path, pcm.data(), pcm.size(), 24000).ok());
  WavBytes w;
  w.fmt_chunk(1, 1, 24000, 16);
  w.data_chunk(want);
  EXPECT_EQ(test::read_file(path), w.bytes());
  // At 16 kHz it reads back as want / 32768.
  ASSERT_TRUE(audio::write_wav_pcm16(path, pcm.data(), pcm.size(), 16000).ok());
  auto r = read_wav_pcm16(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ((*r)[i], want[i] / 32768.0f) << i;
  std::remove(path.c_str());
}

TEST(WavPcm16, WriterRefusals) {
  const float x = 0.0f;
  Status rate = audio::write_wav_pcm16(test::temp_path("wav_pcm16_rate.wav"), &x, 1, 0);
  EXPECT_EQ(rate.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(has(rate.message(), "sample rate 0 Hz")) << rate.message();
  EXPECT_EQ(audio::write_wav_pcm16(test::temp_path("wav_pcm16_null.wav"), nullptr, 3, 16000).code(),
            StatusCode::kInvalidArgument);
  const std::string bad = test::temp_path("no_such_dir") + "/out.wav";
  Status io = audio::write_wav_pcm16(bad, &x, 1, 16000);
  EXPECT_EQ(io.code(), StatusCode::kIoError);
  EXPECT_EQ(io.message(), "cannot create '" + bad + "'");
}

}  // namespace
}  // namespace omni
