// audio/io decoding and encoding against the ffmpeg command-line tool as the independent
// reference: a real recording (a LibriVox clip from pocketsphinx-testdata) is converted AT TEST
// TIME by `ffmpeg` into each container/codec, and our decode at a rate is compared with
// `ffmpeg -ar RATE -f f32le` of the same file.
// Bounds: 1e-6 absolute everywhere; measured 0 (bit-exact) for every format, rate and downmix
// with FFmpeg 5.1: the CLI and we run the same libavcodec decoders and libswresample defaults.
// Our Opus encoder is also checked against the original recording (AudioEncode.Opus...).
// Tests that need `ffmpeg` or the clip skip with the reason (tools/setup.sh installs both).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "audio/io/decode.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using audio::decode_file;

const char* kClip =
    "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav";

#ifdef OMNIRT_HAVE_FFMPEG

std::string fixture_dir() {
  static const std::string dir = [] {
    std::string d = test::temp_path("audio_io");
    ::mkdir(d.c_str(), 0755);
    std::atexit([] { std::filesystem::remove_all(test::temp_path("audio_io")); });
    return d;
  }();
  return dir;
}

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

std::string quote(const std::string& s) { return "'" + s + "'"; }

// `ffmpeg -i in ARGS out` once per process; the output path.
std::string convert(const std::string& in, const std::string& args, const std::string& name) {
  const std::string out = fixture_dir() + "/" + name;
  if (!test::file_exists(out)) {
    std::string cmd = "ffmpeg -nostdin -v error -y -i " + quote(in) + " " + args + " " + quote(out);
    EXPECT_EQ(sh(cmd), 0) << cmd;
  }
  return out;
}

// The reference: ffmpeg's own decode of `path` to mono f32 at `rate` (`filter` for downmix);
// from_pipe: the file's bytes fed to ffmpeg's stdin (unseekable, as our pipe/stdin tests).
std::vector<float> ffmpeg_decode(const std::string& path, int rate, const std::string& filter = "-ac 1",
                                 bool from_pipe = false) {
  static int counter = 0;
  const std::string raw = fixture_dir() + "/ref_" + std::to_string(counter++) + ".f32";
  std::string input = from_pipe ? "-i pipe:0 < " + quote(path) : "-nostdin -i " + quote(path);
  std::string cmd = "ffmpeg -v error -y " + input + " " + filter + " -ar " +
                    std::to_string(rate) + " -f f32le " + quote(raw);
  EXPECT_EQ(sh(cmd), 0) << cmd;
  return test::read_f32(raw);
}

#define REQUIRE_MEDIA()                                                              \
  do {                                                                               \
    if (!test::have_ffmpeg_cli()) GTEST_SKIP() << "the ffmpeg command is not installed";       \
    if (!test::file_exists(kClip)) GTEST_SKIP() << kClip << " missing (pocketsphinx-testdata)"; \
  } while (0)

struct Diff {
  double max_abs = 0;
  size_t len_a = 0, len_b = 0;
};
Diff compare(const std::vector<float>& a, const std::vector<float>& b) {
  Diff d;
  d.len_a = a.size();
  d.len_b = b.size();
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    d.max_abs = std::max(d.max_abs, std::fabs(double(a[i]) - double(b[i])));
  }
  return d;
}

void expect_matches_ffmpeg(const std::string& path, int rate, double bound,
                           const std::string& filter = "-ac 1") {
  auto ours = decode_file(path, rate);
  ASSERT_TRUE(ours.ok()) << ours.status().to_string();
  std::vector<float> ref = ffmpeg_decode(path, rate, filter);
  ASSERT_GT(ref.size(), size_t(rate)) << "reference decode of " << path << " is too short";
  Diff d = compare(*ours, ref);
  EXPECT_EQ(d.len_a, d.len_b) << path;
  EXPECT_LE(d.max_abs, bound) << path << " at " << rate << " Hz";
  std::printf("  %s -> %d Hz: %zu samples, max |ours - ffmpeg| = %.3g\n",
              path.substr(path.rfind('/') + 1).c_str(), rate, d.len_a, d.max_abs);
  double energy = 0;
  for (float x : ref) energy += double(x) * x;
  EXPECT_GT(energy / ref.size(), 1e-5) << "the reference is near silence: the test proves nothing";
}


TEST(AudioDecode, WavAtOwnRateIsExact) {
  REQUIRE_MEDIA();
  expect_matches_ffmpeg(kClip, 16000, 0.0);
  auto ours = decode_file(kClip, 16000);
  ASSERT_TRUE(ours.ok());
  EXPECT_EQ(ours->size(), 113600u);  // 227244-byte WAV: 44-byte header + 2 bytes per sample
}

TEST(AudioDecode, FlacIsExact) {
  REQUIRE_MEDIA();
  expect_matches_ffmpeg(convert(kClip, "-c:a flac", "speech.flac"), 16000, 0.0);
}

TEST(AudioDecode, LossyFormatsMatchFfmpeg) {
  REQUIRE_MEDIA();
  expect_matches_ffmpeg(convert(kClip, "-c:a libmp3lame -b:a 64k", "speech.mp3"), 16000, 1e-6);
  expect_matches_ffmpeg(convert(kClip, "-c:a libopus -b:a 32k", "speech.opus"), 16000, 1e-6);
  expect_matches_ffmpeg(convert(kClip, "-c:a libvorbis", "speech.ogg"), 16000, 1e-6);
  expect_matches_ffmpeg(convert(kClip, "-c:a aac -b:a 64k", "speech.m4a"), 16000, 1e-6);
}

TEST(AudioDecode, AudioTrackOfVideo) {
  REQUIRE_MEDIA();
  for (const char* name : {"speech_video.mp4", "speech_video.mkv"}) {
    const std::string audio_codec = std::string(name).ends_with(".mp4") ? "aac" : "libopus";
    std::string out = fixture_dir() + "/" + name;
    std::string cmd = std::string("ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=64x48:rate=10 -i ") +
                      quote(kClip) + " -map 0:v -map 1:a -shortest -c:v mpeg4 -c:a " + audio_codec +
                      " " + quote(out);
    ASSERT_EQ(sh(cmd), 0) << cmd;
    expect_matches_ffmpeg(out, 16000, 1e-6);
  }
}

TEST(AudioDecode, ResampleMatchesFfmpeg) {
  REQUIRE_MEDIA();
  std::string s48 = convert(kClip, "-ar 48000 -c:a pcm_f32le", "speech48k.wav");
  std::string s44 = convert(kClip, "-ar 44100 -c:a pcm_s16le", "speech44k.wav");
  expect_matches_ffmpeg(s48, 16000, 1e-6);
  expect_matches_ffmpeg(s44, 16000, 1e-6);
  expect_matches_ffmpeg(s44, 22050, 1e-6);
  expect_matches_ffmpeg(s48, 8000, 1e-6);
}

// ffmpeg's pan on s16 input rounds to s16; ask for float first so the reference is the exact mean.
const char* kMeanFilter = "-af 'aformat=sample_fmts=flt,pan=mono|c0=0.5*c0+0.5*c1'";

TEST(AudioDecode, ChannelsAreAveraged) {
  REQUIRE_MEDIA();
  // Left = the clip, right = half of it: the mean is 0.75 x the clip.
  std::string stereo = convert(kClip, "-af 'pan=stereo|c0=c0|c1=0.5*c0' -c:a pcm_s16le", "stereo.wav");
  expect_matches_ffmpeg(stereo, 16000, 1e-6, kMeanFilter);
  std::string st44 = convert(stereo, "-ar 44100 -c:a flac", "stereo44k.flac");
  expect_matches_ffmpeg(st44, 16000, 1e-6, kMeanFilter);
  auto mono = decode_file(kClip, 16000);
  auto mean = decode_file(stereo, 16000);
  ASSERT_TRUE(mono.ok() && mean.ok());
  ASSERT_EQ(mono->size(), mean->size());
  for (size_t i = 0; i < mono->size(); i += 97) {
    EXPECT_NEAR((*mean)[i], 0.75f * (*mono)[i], 2.0 / 32768) << i;
  }
}

TEST(AudioDecode, StreamDecoderChunksEqualWholeFile) {
  REQUIRE_MEDIA();
  std::string mp3 = convert(kClip, "-c:a libmp3lame -b:a 64k -ar 44100", "speech44k.mp3");
  auto whole = decode_file(mp3, 16000);
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  auto dec = audio::StreamDecoder::open(mp3, 16000);
  ASSERT_TRUE(dec.ok()) << dec.status().to_string();
  EXPECT_EQ((*dec)->source_rate(), 44100);
  EXPECT_EQ((*dec)->source_channels(), 1);
  EXPECT_EQ((*dec)->codec_name(), "mp3float");
  std::vector<float> got;
  std::vector<float> buf(777);
  while (true) {
    auto n = (*dec)->read(buf.data(), buf.size());
    ASSERT_TRUE(n.ok()) << n.status().to_string();
    if (*n == 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<long>(*n));
  }
  EXPECT_EQ(got, *whole);
  auto again = (*dec)->read(buf.data(), buf.size());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
}

// Bytes written into a FIFO a little at a time: samples come out before the writer is done.
void stream_through_fifo(const std::string& file, bool via_stdin) {
  std::vector<uint8_t> bytes = test::read_file(file);
  std::string fifo = fixture_dir() + "/fifo_" + std::to_string(via_stdin);
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::atomic<bool> writer_done{false};
  std::thread writer([&] {
    int fd = ::open(fifo.c_str(), O_WRONLY);
    if (fd < 0) return;
    for (size_t pos = 0; pos < bytes.size(); pos += 4096) {
      size_t n = std::min<size_t>(4096, bytes.size() - pos);
      if (::write(fd, bytes.data() + pos, n) != static_cast<ssize_t>(n)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    writer_done = true;
    ::close(fd);
  });
  int saved_stdin = -1;
  std::string path = fifo;
  if (via_stdin) {
    int fd = ::open(fifo.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    saved_stdin = ::dup(0);
    ::dup2(fd, 0);
    ::close(fd);
    path = "-";
  }
  auto dec = audio::StreamDecoder::open(path, 16000);
  ASSERT_TRUE(dec.ok()) << dec.status().to_string();
  std::vector<float> got, buf(1600);
  bool early = false;
  while (true) {
    auto n = (*dec)->read(buf.data(), buf.size());
    ASSERT_TRUE(n.ok()) << n.status().to_string();
    if (*n == 0) break;
    if (!writer_done) early = true;
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<long>(*n));
  }
  writer.join();
  if (via_stdin) {
    ::dup2(saved_stdin, 0);
    ::close(saved_stdin);
  }
  EXPECT_TRUE(early) << "no samples before the writer finished: not incremental";
  // Unseekable input: ffmpeg cannot read trailers (MP3 gapless end padding), so the reference is
  // ffmpeg reading the same bytes from a pipe.
  std::vector<float> ref = ffmpeg_decode(file, 16000, "-ac 1", /*from_pipe=*/true);
  EXPECT_EQ(compare(got, ref).max_abs, 0.0);
  EXPECT_EQ(got.size(), ref.size());
}

TEST(AudioDecode, PipeAndStdinAsTheyArrive) {
  REQUIRE_MEDIA();
  stream_through_fifo(convert(kClip, "-c:a flac", "speech.flac"), false);
  stream_through_fifo(convert(kClip, "-c:a libmp3lame -b:a 64k", "speech.mp3"), true);
}

TEST(AudioDecode, FromMemoryEqualsFromFile) {
  REQUIRE_MEDIA();
  std::string ogg = convert(kClip, "-c:a libopus -b:a 32k", "speech.opus");
  std::vector<uint8_t> bytes = test::read_file(ogg);
  auto a = audio::decode_memory(bytes.data(), bytes.size(), 16000);
  auto b = decode_file(ogg, 16000);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().to_string();
  EXPECT_EQ(*a, *b);
}

// ---- encoding ---------------------------------------------------------------------------

// What 16-bit PCM holds for x: ffmpeg's flt -> s16 (lrintf(x * 32768), clipped).
float s16_of(float x) {
  long v = std::lrint(double(x) * 32768.0);
  v = std::clamp(v, -32768L, 32767L);
  return float(v) / 32768.0f;
}

TEST(AudioEncode, WavAndFlacRoundTripThroughFfmpeg) {
  REQUIRE_MEDIA();
  auto pcm = decode_file(convert(kClip, "-ar 48000 -c:a pcm_f32le", "speech48k.wav"), 22050);
  ASSERT_TRUE(pcm.ok());
  // Beyond [-1, 1] must clip, not wrap.
  (*pcm)[100] = 1.5f;
  (*pcm)[101] = -2.0f;
  for (const char* ext : {".wav", ".flac"}) {
    std::string out = fixture_dir() + "/encoded" + ext;
    Status s = audio::encode_file(out, pcm->data(), pcm->size(), 22050);
    ASSERT_TRUE(s.ok()) << s.to_string();
    std::vector<float> ref = ffmpeg_decode(out, 22050);
    ASSERT_EQ(ref.size(), pcm->size()) << ext;
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, double(std::fabs(ref[i] - s16_of((*pcm)[i]))));
    EXPECT_EQ(worst, 0.0) << ext;
  }
}

TEST(AudioEncode, OpusIsCloseToTheInput) {
  REQUIRE_MEDIA();
  auto pcm = decode_file(kClip, 16000);
  ASSERT_TRUE(pcm.ok());
  for (int rate : {16000, 22050}) {  // 22050 is not an Opus rate: resampled to 48 kHz
    auto in = decode_file(kClip, rate);
    ASSERT_TRUE(in.ok());
    std::string out = fixture_dir() + "/encoded_" + std::to_string(rate) + ".opus";
    Status s = audio::encode_file(out, in->data(), in->size(), rate);
    ASSERT_TRUE(s.ok()) << s.to_string();
    std::vector<float> ref = ffmpeg_decode(out, 16000);
    ASSERT_NEAR(double(ref.size()), double(pcm->size()), 0.02 * pcm->size()) << rate;
    // Lossy, but the waveform survives: relative L2 error well under 1 at 64 kb/s speech.
    size_t n = std::min(ref.size(), pcm->size());
    double err = test::rel_l2(ref.data(), pcm->data(), n);
    EXPECT_LT(err, 0.5) << "Opus at " << rate << " Hz";
  }
}

// ---- bad input --------------------------------------------------------------------------

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  ASSERT_TRUE(test::write_file(path, bytes)) << path;
}

// A canonical 44-byte-header WAV with the given header fields and raw data bytes.
std::vector<uint8_t> wav_bytes(uint16_t format_tag, uint16_t channels, uint32_t rate,
                               uint16_t bits, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b;
  auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i))); };
  auto u16 = [&](uint16_t v) { b.push_back(uint8_t(v)); b.push_back(uint8_t(v >> 8)); };
  auto tag = [&](const char* t) { for (int i = 0; i < 4; ++i) b.push_back(uint8_t(t[i])); };
  tag("RIFF"); u32(uint32_t(36 + data.size())); tag("WAVE");
  tag("fmt "); u32(16); u16(format_tag); u16(channels); u32(rate);
  u32(rate * channels * (bits / 8)); u16(uint16_t(channels * (bits / 8))); u16(bits);
  tag("data"); u32(uint32_t(data.size()));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::vector<uint8_t> float_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

TEST(AudioDecodeBadInput, MissingEmptyGarbageTruncated) {
  auto missing = decode_file(fixture_dir() + "/no_such_file.wav", 16000);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().to_string();
  EXPECT_NE(missing.status().message().find("no_such_file.wav"), std::string::npos);

  std::string empty = fixture_dir() + "/empty.wav";
  write_bytes(empty, {});
  auto e = decode_file(empty, 16000);
  EXPECT_EQ(e.status().code(), StatusCode::kCorruptFile) << e.status().to_string();
  EXPECT_NE(e.status().message().find("empty"), std::string::npos) << e.status().to_string();

  std::vector<uint8_t> garbage(5000);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = uint8_t((i * 2654435761u) >> 13);
  std::string junk = fixture_dir() + "/garbage.bin";
  write_bytes(junk, garbage);
  auto g = decode_file(junk, 16000);
  EXPECT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kCorruptFile) << g.status().to_string();

  std::vector<uint8_t> wav = wav_bytes(1, 1, 16000, 16, std::vector<uint8_t>(3200, 0));
  std::string head = fixture_dir() + "/header_only.wav";
  write_bytes(head, std::vector<uint8_t>(wav.begin(), wav.begin() + 20));
  auto h = decode_file(head, 16000);
  EXPECT_EQ(h.status().code(), StatusCode::kCorruptFile) << h.status().to_string();

  auto dir = decode_file(fixture_dir(), 16000);
  EXPECT_EQ(dir.status().code(), StatusCode::kInvalidArgument) << dir.status().to_string();
}

TEST(AudioDecodeBadInput, TruncatedAndDamagedCompressedFiles) {
  REQUIRE_MEDIA();
  for (const char* name : {"speech.flac", "speech.mp3", "speech.opus", "speech.m4a"}) {
    std::string args = std::string(name).ends_with(".flac") ? "-c:a flac"
                     : std::string(name).ends_with(".mp3")  ? "-c:a libmp3lame -b:a 64k"
                     : std::string(name).ends_with(".opus") ? "-c:a libopus -b:a 32k"
                                                            : "-c:a aac -b:a 64k";
    std::string src = convert(kClip, args, name);
    auto full = decode_file(src, 16000);
    ASSERT_TRUE(full.ok()) << name;
    std::vector<uint8_t> bytes = test::read_file(src);
    // Cut in half: either the first part (shorter) or a corrupt-file status, never a crash.
    std::string cut = fixture_dir() + "/cut_" + name;
    write_bytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(bytes.size() / 2)));
    auto c = decode_file(cut, 16000);
    if (c.ok()) {
      EXPECT_LT(c->size(), full->size() * 3 / 4) << name;
    } else {
      EXPECT_EQ(c.status().code(), StatusCode::kCorruptFile) << c.status().to_string();
    }
    // Damage the middle: again a status or samples, all finite.
    std::vector<uint8_t> hurt = bytes;
    for (size_t i = hurt.size() / 3; i < hurt.size() / 3 + 400 && i < hurt.size(); ++i) hurt[i] ^= 0x5a;
    auto d = audio::decode_memory(hurt.data(), hurt.size(), 16000, name);
    if (d.ok()) {
      for (float x : *d) ASSERT_TRUE(std::isfinite(x)) << name;
    } else {
      EXPECT_EQ(d.status().code(), StatusCode::kCorruptFile) << d.status().to_string();
    }
  }
}

TEST(AudioDecodeBadInput, NonFiniteSamplesRatesChannelsCodecs) {
  // An IEEE-float WAV whose sample 300 is NaN, another with +Inf.
  for (float bad : {NAN, INFINITY}) {
    std::vector<float> v(1000, 0.25f);
    v[300] = bad;
    std::string p = fixture_dir() + "/nonfinite.wav";
    write_bytes(p, wav_bytes(3, 1, 16000, 32, float_bytes(v)));
    auto r = decode_file(p, 16000);
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptFile) << r.status().to_string();
    EXPECT_NE(r.status().message().find("sample 300"), std::string::npos) << r.status().to_string();
  }
  std::string ok_wav = fixture_dir() + "/ok.wav";
  write_bytes(ok_wav, wav_bytes(1, 1, 16000, 16, std::vector<uint8_t>(3200, 0)));
  for (int rate : {0, -16000, 384001, 1 << 30}) {
    auto r = decode_file(ok_wav, rate);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << rate;
    EXPECT_NE(r.status().message().find(std::to_string(rate)), std::string::npos);
  }
  // Headers claiming absurd rates / channel counts, and a format tag nobody decodes.
  struct Case { uint16_t tag, channels; uint32_t rate; };
  for (Case c : {Case{1, 1, 0}, Case{1, 1, 2000000000u}, Case{1, 0, 16000}, Case{1, 1000, 16000},
                 Case{0x7777, 1, 16000}}) {
    std::string p = fixture_dir() + "/absurd.wav";
    write_bytes(p, wav_bytes(c.tag, c.channels, c.rate, 16, std::vector<uint8_t>(32000, 1)));
    auto r = decode_file(p, 16000);
    EXPECT_FALSE(r.ok()) << "tag " << c.tag << " channels " << c.channels << " rate " << c.rate;
    EXPECT_TRUE(r.status().code() == StatusCode::kCorruptFile ||
                r.status().code() == StatusCode::kUnsupported)
        << r.status().to_string();
  }
}

TEST(AudioDecodeBadInput, NoAudioStream) {
  REQUIRE_MEDIA();
  std::string out = fixture_dir() + "/video_only.mp4";
  ASSERT_EQ(sh("ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=64x48:rate=10 -t 1 -c:v mpeg4 " +
               quote(out)), 0);
  auto r = decode_file(out, 16000);
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().to_string();
  EXPECT_NE(r.status().message().find("no audio stream"), std::string::npos);
}

// Bytes in memory are all a decoder reads: an ffconcat list naming a WAV in the working
// directory (relative names are "safe" to FFmpeg's concat demuxer) decodes to nothing.
TEST(AudioDecodeBadInput, MemoryListOpensNoOtherFile) {
  const std::string rel = "omnirt_concat_test_" + std::to_string(::getpid()) + ".wav";
  write_bytes(rel, wav_bytes(1, 1, 16000, 16, std::vector<uint8_t>(3200, 7)));
  ASSERT_TRUE(audio::decode_file(rel, 16000).ok());  // the named file itself decodes
  const std::string list = "ffconcat version 1.0\nfile " + rel + "\n";
  auto d = audio::decode_memory(reinterpret_cast<const uint8_t*>(list.data()), list.size(), 16000,
                                "list.ffconcat");
  ASSERT_FALSE(d.ok()) << d->size() << " samples read through the list";
  EXPECT_EQ(d.status().code(), StatusCode::kUnsupported) << d.status().to_string();
  EXPECT_NE(d.status().message().find("'concat'"), std::string::npos) << d.status().to_string();
  std::remove(rel.c_str());
}

// A path is the only file read: an ffconcat list and an HLS playlist beside a real WAV that
// they name (relative, as FFmpeg's concat demuxer deems "safe") are refused with kUnsupported
// naming the demuxer, never decoded as that WAV; the WAV itself and a `.m3u8` that is really a
// WAV still decode.
TEST(AudioDecodeBadInput, PathListsAndPlaylistsOpenNoOtherFile) {
  const std::string dir = fixture_dir() + "/lists";
  std::filesystem::create_directories(dir);
  const std::string wav = dir + "/named.wav";
  write_bytes(wav, wav_bytes(1, 1, 16000, 16, std::vector<uint8_t>(3200, 7)));
  ASSERT_TRUE(decode_file(wav, 16000).ok());
  auto write_text = [](const std::string& path, const std::string& text) {
    write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  };
  struct Case { const char* file; const char* text; const char* demuxer; };
  for (const Case& c : {
           Case{"list.ffconcat", "ffconcat version 1.0\nfile named.wav\n", "concat"},
           Case{"list.txt", "ffconcat version 1.0\nfile 'named.wav'\nfile 'named.wav'\n", "concat"},
           Case{"play.m3u8",
                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
                "#EXTINF:0.1,\nnamed.wav\n#EXT-X-ENDLIST\n",
                "hls"}}) {
    const std::string path = dir + "/" + c.file;
    write_text(path, c.text);
    auto r = decode_file(path, 16000);
    ASSERT_FALSE(r.ok()) << c.file << ": " << r->size() << " samples read through it";
    EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().to_string();
    const std::string& m = r.status().message();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find(std::string("'") + c.demuxer + "'"), std::string::npos) << m;
    EXPECT_NE(m.find("other files"), std::string::npos) << m;
    std::printf("  %s: %s\n", c.file, r.status().to_string().c_str());
    // Streamed as it is written (open_follow): the same refusal.
    auto f = audio::StreamDecoder::open_follow(path, 16000, audio::FollowOptions{50, 5});
    EXPECT_EQ(f.status().code(), StatusCode::kUnsupported) << c.file << ": " << f.status().to_string();
  }
  // Through a FIFO the input cannot be probed again to name its demuxer: the refusal is then
  // FFmpeg's own (no protocol for the list's nested input), still never the WAV's samples.
  const std::string fifo = dir + "/list_fifo";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] {
    const std::string list = "ffconcat version 1.0\nfile named.wav\n";
    int fd = ::open(fifo.c_str(), O_WRONLY);
    if (fd < 0) return;
    EXPECT_EQ(::write(fd, list.data(), list.size()), ssize_t(list.size()));
    ::close(fd);
  });
  auto p = decode_file(fifo, 16000);
  writer.join();
  ASSERT_FALSE(p.ok()) << p->size() << " samples read through the list in a FIFO";
  std::printf("  FIFO: %s\n", p.status().to_string().c_str());
  // The name does not decide: a WAV called .m3u8 / .ffconcat is a WAV.
  const std::string disguised = dir + "/really_a_wav.m3u8";
  write_bytes(disguised, test::read_file(wav));
  auto d = decode_file(disguised, 16000);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->size(), size_t(1600));
}

TEST(AudioEncodeBadInput, NonFiniteRateExtension) {
  std::vector<float> pcm(1000, 0.1f);
  std::string out = fixture_dir() + "/bad_out.wav";
  pcm[7] = NAN;
  Status s = audio::encode_file(out, pcm.data(), pcm.size(), 16000);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("sample 7 is NaN"), std::string::npos) << s.to_string();
  pcm[7] = -INFINITY;
  s = audio::encode_file(out, pcm.data(), pcm.size(), 16000);
  EXPECT_NE(s.message().find("sample 7 is -Inf"), std::string::npos) << s.to_string();
  pcm[7] = 0;
  EXPECT_EQ(audio::encode_file(out, pcm.data(), pcm.size(), 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(audio::encode_file(out, pcm.data(), pcm.size(), 500000).code(),
            StatusCode::kInvalidArgument);
  s = audio::encode_file(fixture_dir() + "/x.xyz", pcm.data(), pcm.size(), 16000);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("x.xyz"), std::string::npos);
  s = audio::encode_file("/nonexistent_dir_omnirt/out.wav", pcm.data(), pcm.size(), 16000);
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.to_string();
}

#else  // no FFmpeg: the API still links and says why it cannot work

TEST(AudioDecode, WithoutFfmpegSaysSo) {
  auto r = decode_file(kClip, 16000);
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("without FFmpeg"), std::string::npos);
}

#endif  // OMNIRT_HAVE_FFMPEG

}  // namespace
}  // namespace omni
