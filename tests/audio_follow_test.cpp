// StreamDecoder::open_follow: a writer thread appends a real recording (tests/data/whisper's
// LibriVox WAV, and Ogg/Opus and FLAC made from it) to a file in pieces while the decoder reads it.
// Reference: decode_file of the finished file (itself checked against the ffmpeg CLI in
// audio_io_test): the samples must be identical, and the first ones must arrive before the
// writer is done. Also: the idle timeout ends a stream whose header has no sizes (0xFFFFFFFF),
// a writer that stops before the end its WAV header declared gives kCorruptFile naming both
// byte positions, a file that shrinks gives kIoError, and bad options are refused.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "audio/io/decode.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using Clock = std::chrono::steady_clock;

std::string clip_path() { return test::source_path("tests/data/whisper/librivox_0880.wav"); }

[[maybe_unused]] int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

TEST(AudioFollow, WavDataEndParsesTheHeader) {
  const std::vector<uint8_t> wav = test::read_file(clip_path());
  ASSERT_GT(wav.size(), 44u);
  EXPECT_EQ(audio::wav_data_end(wav.data(), wav.size()), static_cast<int64_t>(wav.size()));
  EXPECT_EQ(audio::wav_data_end(wav.data(), 44), static_cast<int64_t>(wav.size()));
  EXPECT_EQ(audio::wav_data_end(wav.data(), 20), -1);  // the data chunk header is not in view
  EXPECT_EQ(audio::wav_data_end(wav.data(), 0), -1);
  EXPECT_EQ(audio::wav_data_end(nullptr, 100), -1);
  std::vector<uint8_t> unknown = wav;
  std::memset(unknown.data() + 40, 0xFF, 4);  // the data size a streaming writer leaves
  EXPECT_EQ(audio::wav_data_end(unknown.data(), unknown.size()), -1);
  std::vector<uint8_t> junk(64, 'x');
  EXPECT_EQ(audio::wav_data_end(junk.data(), junk.size()), -1);
  // A chunk whose length runs far past the bytes given: walked over, no data chunk found.
  std::vector<uint8_t> big(wav.begin(), wav.begin() + 44);
  std::memcpy(big.data() + 12, "LIST", 4);
  const uint8_t huge[4] = {0xF0, 0xFF, 0xFF, 0xFF};
  std::memcpy(big.data() + 16, huge, 4);
  EXPECT_EQ(audio::wav_data_end(big.data(), big.size()), -1);
}

TEST(AudioFollow, OptionsAreChecked) {
  audio::FollowOptions bad;
  bad.idle_ms = -1;
  auto d = audio::StreamDecoder::open_follow(clip_path(), 16000, bad);
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("-1 ms"), std::string::npos) << d.status().to_string();
  bad = {};
  bad.poll_ms = 0;
  EXPECT_EQ(audio::StreamDecoder::open_follow(clip_path(), 16000, bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(audio::StreamDecoder::open_follow(clip_path(), 0).status().code(), StatusCode::kInvalidArgument);
}

#ifdef OMNIRT_HAVE_FFMPEG

// How the writer thread grows a followed file: the first `first` bytes at once, then the rest in
// pieces of `piece` bytes, each after a `pause_ms` pause; then, when `shrink_to` >= 0, it
// truncates the file to that many bytes.
struct Growth {
  size_t first = 0;
  size_t piece = 4096;
  int pause_ms = 10;
  long shrink_to = -1;
};

struct Followed {
  Status status;
  std::vector<float> samples;
  bool first_before_writer_done = false;
  Clock::time_point ended;       // when read() gave the end or an error
  Clock::time_point last_write;  // when the writer's last write (or truncation) returned
};

// Appends `bytes` to `path` as `g` says; sets `last_write`, then `done`.
void write_slowly(const std::string& path, const std::vector<uint8_t>& bytes, const Growth& g,
                  Clock::time_point* last_write, std::atomic<bool>* done) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << path;
  const size_t first = std::min(g.first, bytes.size());
  ASSERT_EQ(::write(fd, bytes.data(), first), static_cast<ssize_t>(first));
  for (size_t at = first; at < bytes.size(); at += g.piece) {
    std::this_thread::sleep_for(std::chrono::milliseconds(g.pause_ms));
    const size_t n = std::min(g.piece, bytes.size() - at);
    ASSERT_EQ(::write(fd, bytes.data() + at, n), static_cast<ssize_t>(n));
  }
  if (g.shrink_to >= 0) {
    ASSERT_EQ(::ftruncate(fd, g.shrink_to), 0);
  }
  *last_write = Clock::now();
  ::close(fd);
  done->store(true);
}

std::string empty_file(const std::string& name) {
  const std::string path = test::temp_path(name);
  EXPECT_TRUE(test::write_file(path, {}));
  return path;
}

// Follow options polling every 5 ms, ending after `idle_ms` without growth.
audio::FollowOptions polling(int idle_ms) {
  audio::FollowOptions opt;
  opt.idle_ms = idle_ms;
  opt.poll_ms = 5;
  return opt;
}

// A writer thread appends `bytes` to the new empty temp file `name` (as `g` says) while
// open_follow(16 kHz, `opt`) reads it to its end; the file is removed afterwards.
Followed follow_growing(const std::string& name, const std::vector<uint8_t>& bytes, const Growth& g,
                        const audio::FollowOptions& opt) {
  const std::string path = empty_file(name);
  std::atomic<bool> done{false};
  Followed f;
  std::thread writer([&] { write_slowly(path, bytes, g, &f.last_write, &done); });
  auto d = audio::StreamDecoder::open_follow(path, 16000, opt);
  if (!d.ok()) f.status = d.status();
  std::vector<float> chunk(4096);
  while (d.ok()) {
    auto n = (*d)->read(chunk.data(), chunk.size());
    if (!n.ok()) {
      f.status = n.status();
      break;
    }
    if (*n == 0) break;
    if (f.samples.empty()) f.first_before_writer_done = !done.load();
    f.samples.insert(f.samples.end(), chunk.begin(), chunk.begin() + static_cast<long>(*n));
  }
  f.ended = Clock::now();
  writer.join();
  std::remove(path.c_str());
  return f;
}

TEST(AudioFollow, GrowingWavEqualsTheFinishedFile) {
  // 12 s (the clip four times, 384 KB): FFmpeg's WAV demuxer reads the first 64 KiB before the
  // first packet (it probes for S/PDIF-wrapped AC-3/DTS), so the file must be longer than that
  // for samples to arrive while it is still being written.
  auto clip = audio::decode_file(clip_path(), 16000);
  ASSERT_TRUE(clip.ok()) << clip.status().to_string();
  std::vector<float> pcm;
  for (int i = 0; i < 4; ++i) pcm.insert(pcm.end(), clip->begin(), clip->end());
  const std::string finished = test::temp_path("follow_src.wav");
  ASSERT_TRUE(audio::encode_file(finished, pcm.data(), pcm.size(), 16000).ok());
  const std::vector<uint8_t> wav = test::read_file(finished);
  auto want = audio::decode_file(finished, 16000);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  ASSERT_EQ(audio::wav_data_end(wav.data(), wav.size()), static_cast<int64_t>(wav.size()));
  // The header split (30 bytes first), then 4096-byte pieces every 10 ms (~1 s in all).
  // idle_ms: generous, a loaded CI machine may stall the writer thread.
  Followed f = follow_growing("follow_grow.wav", wav, {.first = 30, .piece = 4096, .pause_ms = 10}, polling(1500));
  ASSERT_TRUE(f.status.ok()) << f.status.to_string();
  EXPECT_TRUE(f.first_before_writer_done);
  ASSERT_EQ(f.samples.size(), want->size());
  EXPECT_EQ(std::memcmp(f.samples.data(), want->data(), want->size() * sizeof(float)), 0);
  std::remove(finished.c_str());
}

TEST(AudioFollow, UnknownSizesEndAtTheIdleTimeout) {
  std::vector<uint8_t> wav = test::read_file(clip_path());
  ASSERT_EQ(std::memcmp(wav.data() + 36, "data", 4), 0);
  auto want = audio::decode_file(clip_path(), 16000);
  ASSERT_TRUE(want.ok());
  std::memset(wav.data() + 4, 0xFF, 4);   // RIFF size unknown
  std::memset(wav.data() + 40, 0xFF, 4);  // data size unknown
  const audio::FollowOptions opt = polling(1500);  // generous: a loaded CI machine may stall the writer
  Followed f = follow_growing("follow_unknown.wav", wav, {.piece = 8000, .pause_ms = 15}, opt);
  ASSERT_TRUE(f.status.ok()) << f.status.to_string();
  ASSERT_EQ(f.samples.size(), want->size());
  EXPECT_EQ(std::memcmp(f.samples.data(), want->data(), want->size() * sizeof(float)), 0);
  const auto quiet = std::chrono::duration_cast<std::chrono::milliseconds>(f.ended - f.last_write).count();
  EXPECT_GE(quiet, opt.idle_ms - 20) << "ended " << quiet << " ms after the last write";
  EXPECT_LT(quiet, opt.idle_ms + 1500) << "ended " << quiet << " ms after the last write";
}

// The clip encoded by encode_file into `ext`, appended in 700-byte pieces 25 ms apart while followed.
void grow_encoded(const std::string& ext) {
  auto pcm = audio::decode_file(clip_path(), 16000);
  ASSERT_TRUE(pcm.ok());
  const std::string finished = test::temp_path("follow_src." + ext);
  ASSERT_TRUE(audio::encode_file(finished, pcm->data(), pcm->size(), 16000).ok());
  auto want = audio::decode_file(finished, 16000);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  const std::vector<uint8_t> bytes = test::read_file(finished);
  // idle_ms: generous, a loaded CI machine may stall the writer thread.
  Followed f = follow_growing("follow_grow." + ext, bytes, {.piece = 700, .pause_ms = 25}, polling(1500));
  ASSERT_TRUE(f.status.ok()) << f.status.to_string();
  EXPECT_TRUE(f.first_before_writer_done);
  ASSERT_EQ(f.samples.size(), want->size());
  EXPECT_EQ(std::memcmp(f.samples.data(), want->data(), want->size() * sizeof(float)), 0);
  std::remove(finished.c_str());
}

TEST(AudioFollow, GrowingOggOpusEqualsTheFinishedFile) { grow_encoded("opus"); }
TEST(AudioFollow, GrowingFlacEqualsTheFinishedFile) { grow_encoded("flac"); }

TEST(AudioFollow, WriterStoppingBeforeTheDeclaredEndIsCorrupt) {
  std::vector<uint8_t> wav = test::read_file(clip_path());
  const size_t keep = wav.size() - 1000;
  wav.resize(keep);
  Followed f = follow_growing("follow_short.wav", wav, {.piece = 16000, .pause_ms = 10}, polling(200));
  EXPECT_EQ(f.status.code(), StatusCode::kCorruptFile) << f.status.to_string();
  EXPECT_NE(f.status.message().find("stopped growing at byte " + std::to_string(keep)), std::string::npos)
      << f.status.to_string();
  EXPECT_NE(f.status.message().find("ends at byte " + std::to_string(keep + 1000)), std::string::npos)
      << f.status.to_string();
}

TEST(AudioFollow, ShrinkingFileIsAnIoError) {
  const std::vector<uint8_t> wav = test::read_file(clip_path());
  // Half the file, then it is truncated to 100 bytes (the writer started over).
  std::vector<uint8_t> half(wav.begin(), wav.begin() + static_cast<long>(wav.size() / 2));
  Followed f = follow_growing("follow_shrink.wav", half, {.piece = 8000, .pause_ms = 10, .shrink_to = 100},
                              polling(1000));
  EXPECT_EQ(f.status.code(), StatusCode::kIoError) << f.status.to_string();
  EXPECT_NE(f.status.message().find("shrank to 100 bytes"), std::string::npos) << f.status.to_string();
}

TEST(AudioFollow, FileThatNeverGrowsEndsWithAStatus) {
  const std::string path = empty_file("follow_empty.wav");
  const audio::FollowOptions opt = polling(100);
  const Clock::time_point t0 = Clock::now();
  auto d = audio::StreamDecoder::open_follow(path, 16000, opt);
  EXPECT_EQ(d.status().code(), StatusCode::kCorruptFile) << d.status().to_string();
  EXPECT_GE(ms_since(t0), opt.idle_ms - 5);
  EXPECT_EQ(audio::StreamDecoder::open_follow(test::temp_path("follow_absent.wav"), 16000).status().code(),
            StatusCode::kNotFound);
  std::remove(path.c_str());
}

#endif  // OMNIRT_HAVE_FFMPEG

}  // namespace
}  // namespace omni
