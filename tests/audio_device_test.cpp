// Live audio without sound hardware: the SPSC ring under two threads (every sample arrives once,
// in order; overrun/underrun counted exactly), the file-backed capture/playback stand-ins end to
// end (what comes out equals what went in; the counters add up; a simulated unplug gives a
// status), config validation, and PortAudio's failure paths on a machine without devices.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "audio/io/decode.h"
#include "audio/io/device.h"
#include "audio/io/ring_buffer.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using audio::CaptureStream;
using audio::FileDeviceOptions;
using audio::SpscRing;
using audio::StreamConfig;

// A recognisable signal: sample i is a distinct value (exact in f32 below 2^24).
std::vector<float> ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 16777216) * (1.0f / 16777216.0f);
  return v;
}

TEST(AudioRing, TwoThreadsEverySampleOnceInOrder) {
  SpscRing ring(1000);
  EXPECT_EQ(ring.capacity(), 1024u);
  constexpr size_t kTotal = 3'000'000;
  std::thread producer([&] {
    std::mt19937 rng(1);
    std::vector<float> chunk(700);
    size_t next = 0;
    while (next < kTotal) {
      size_t n = std::min<size_t>(1 + rng() % chunk.size(), kTotal - next);
      for (size_t i = 0; i < n; ++i) chunk[i] = static_cast<float>(next + i);
      size_t done = 0;
      while (done < n) {
        done += ring.try_push(chunk.data() + done, n - done);
        if (done < n) std::this_thread::yield();
      }
      next += n;
    }
  });
  std::mt19937 rng(2);
  std::vector<float> out(900);
  size_t expected = 0;
  size_t mismatches = 0;
  while (expected < kTotal) {
    size_t k = ring.pop(out.data(), 1 + rng() % out.size());
    for (size_t i = 0; i < k; ++i) mismatches += out[i] != static_cast<float>(expected + i);
    expected += k;
    if (k == 0) std::this_thread::yield();
  }
  producer.join();
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(expected, kTotal);
  EXPECT_EQ(ring.size(), 0u);
  EXPECT_EQ(ring.overrun_samples(), 0u);  // try_push never drops
  EXPECT_EQ(ring.total_pushed(), kTotal);
}

TEST(AudioRing, OverrunAndUnderrunCountedExactly) {
  SpscRing ring(16);
  std::vector<float> in = ramp(40), out(40, -1.0f);
  EXPECT_EQ(ring.push(in.data(), 10), 10u);
  EXPECT_EQ(ring.push(in.data() + 10, 10), 6u);  // 4 dropped
  EXPECT_EQ(ring.overrun_samples(), 4u);
  EXPECT_EQ(ring.pop_or_silence(out.data(), 20), 16u);
  EXPECT_EQ(ring.underrun_samples(), 4u);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(out[i], in[i]);
  for (int i = 16; i < 20; ++i) EXPECT_EQ(out[i], 0.0f);
  // Wrap-around: positions past capacity land correctly.
  for (int round = 0; round < 5; ++round) {
    ASSERT_EQ(ring.push(in.data() + round, 11), 11u);
    ASSERT_EQ(ring.pop(out.data(), 11), 11u);
    for (int i = 0; i < 11; ++i) ASSERT_EQ(out[i], in[round + i]);
  }
  EXPECT_EQ(ring.pop(out.data(), 5), 0u);
  EXPECT_EQ(ring.push(nullptr, 0), 0u);
}

StreamConfig config(int rate = 16000, int period = 256, double ring_seconds = 2.0) {
  StreamConfig c;
  c.sample_rate = rate;
  c.frames_per_buffer = period;
  c.ring_seconds = ring_seconds;
  return c;
}

// Reads until the stand-in is at its end (or an error); returns the samples.
std::vector<float> read_all(CaptureStream& cap, Status* error) {
  std::vector<float> got, buf(500);
  for (int spins = 0; spins < 100000; ++spins) {
    auto n = cap.read(buf.data(), buf.size(), 100);
    if (!n.ok()) {
      *error = n.status();
      return got;
    }
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<long>(*n));
    if (*n == 0 && cap.at_end()) break;
  }
  return got;
}

TEST(AudioFileDevice, CaptureDeliversTheSourceExactly) {
  const std::vector<float> source = ramp(50'000);
  for (double speed : {0.0, 8.0}) {  // lossless, and paced like a device at 8x real time
    auto cap = audio::open_pcm_capture(source, config(), FileDeviceOptions{speed, 0});
    ASSERT_TRUE(cap.ok()) << cap.status().to_string();
    float x;
    EXPECT_EQ((*cap)->read(&x, 1, 0).status().code(), StatusCode::kWrongState);  // before start
    ASSERT_TRUE((*cap)->start().ok());
    Status error;
    std::vector<float> got = read_all(**cap, &error);
    ASSERT_TRUE(error.ok()) << error.to_string();
    EXPECT_EQ(got, source) << "speed " << speed;
    EXPECT_TRUE((*cap)->at_end());
    auto counters = (*cap)->counters();
    EXPECT_EQ(counters.frames, source.size());
    EXPECT_EQ(counters.overrun_samples, 0u);
    EXPECT_TRUE((*cap)->stop().ok());
    EXPECT_TRUE((*cap)->stop().ok());  // idempotent
  }
}

TEST(AudioFileDevice, SlowReaderOverrunsAndTheCountsAddUp) {
  const std::vector<float> source = ramp(40'000);
  // Ring of 4 periods (1024 samples); the device runs at 40x real time (~40 ms for 40k samples).
  auto cap = audio::open_pcm_capture(source, config(16000, 256, 0.064), FileDeviceOptions{40.0, 0});
  ASSERT_TRUE(cap.ok()) << cap.status().to_string();
  ASSERT_TRUE((*cap)->start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // not reading: the ring fills
  Status error;
  std::vector<float> got = read_all(**cap, &error);
  ASSERT_TRUE(error.ok()) << error.to_string();
  auto c = (*cap)->counters();
  EXPECT_EQ(c.frames, source.size());
  EXPECT_GT(c.overrun_samples, 0u);
  EXPECT_EQ(got.size() + c.overrun_samples, source.size());
  // What survived is the start of the source (the ring keeps the oldest, drops the newest).
  ASSERT_LE(got.size(), 1024u);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], source[i]) << i;
}

TEST(AudioFileDevice, UnpluggedMicrophoneGivesAStatus) {
  const std::vector<float> source = ramp(20'000);
  auto cap = audio::open_pcm_capture(source, config(), FileDeviceOptions{0.0, 5000});
  ASSERT_TRUE(cap.ok());
  ASSERT_TRUE((*cap)->start().ok());
  Status error;
  std::vector<float> got = read_all(**cap, &error);
  EXPECT_EQ(error.code(), StatusCode::kIoError) << error.to_string();
  EXPECT_NE(error.message().find("disconnect"), std::string::npos) << error.to_string();
  ASSERT_EQ(got.size(), 5000u);  // everything captured before the unplug is still delivered
  EXPECT_TRUE(std::equal(got.begin(), got.end(), source.begin()));
  float x;
  EXPECT_EQ((*cap)->read(&x, 1, 10).status().code(), StatusCode::kIoError);  // stays failed
  EXPECT_TRUE((*cap)->stop().ok());
}

TEST(AudioFileDevice, PlaybackPlaysWhatWasWritten) {
  const std::vector<float> pcm = ramp(30'000);
  auto play = audio::open_file_playback("", config(), FileDeviceOptions{0.0, 0});
  ASSERT_TRUE(play.ok()) << play.status().to_string();
  ASSERT_TRUE((*play)->start().ok());
  size_t written = 0;
  while (written < pcm.size()) {
    auto n = (*play)->write(pcm.data() + written, std::min<size_t>(3000, pcm.size() - written), 1000);
    ASSERT_TRUE(n.ok()) << n.status().to_string();
    written += *n;
  }
  ASSERT_TRUE((*play)->drain(5000).ok());
  ASSERT_TRUE((*play)->stop().ok());
  EXPECT_EQ((*play)->played(), pcm);
  EXPECT_EQ((*play)->counters().frames, pcm.size());
  EXPECT_EQ((*play)->counters().underrun_samples, 0u);
}

TEST(AudioFileDevice, StarvedSpeakerUnderrunsWithSilence) {
  auto play = audio::open_file_playback("", config(16000, 160), FileDeviceOptions{4.0, 0});
  ASSERT_TRUE(play.ok());
  ASSERT_TRUE((*play)->start().ok());
  // Nothing is written: wait (on a deadline, not a fixed sleep: a loaded machine may not run
  // the device thread for a while) until the device has played a few periods.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*play)->counters().frames < 3 * 160 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE((*play)->stop().ok());
  auto c = (*play)->counters();
  EXPECT_GT(c.frames, 0u);
  EXPECT_EQ(c.underrun_samples, c.frames);  // every period was silence
  EXPECT_TRUE((*play)->played().empty());
}

TEST(AudioFileDevice, PlaybackRejectsNonFiniteAndReportsUnplug) {
  auto play = audio::open_file_playback("", config(), FileDeviceOptions{0.0, 1000});
  ASSERT_TRUE(play.ok());
  std::vector<float> pcm(4000, 0.5f);
  pcm[123] = NAN;
  auto bad = (*play)->write(pcm.data(), pcm.size(), 10);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("sample 123 is NaN"), std::string::npos)
      << bad.status().to_string();
  pcm[123] = 0.5f;
  ASSERT_TRUE((*play)->start().ok());
  size_t written = 0;
  Status error;
  for (int i = 0; i < 1000 && error.ok(); ++i) {
    auto n = (*play)->write(pcm.data(), pcm.size(), 10);
    if (!n.ok()) error = n.status();
    else written += *n;
  }
  if (error.ok()) error = (*play)->drain(2000);
  EXPECT_EQ(error.code(), StatusCode::kIoError) << error.to_string();
  ASSERT_TRUE((*play)->stop().ok());
  EXPECT_EQ((*play)->played().size(), 1000u);
}

TEST(AudioFileDevice, BadConfigsAreRefusedWithTheValue) {
  struct Case { int rate, channels, period; double ring; const char* says; };
  for (Case c : {Case{0, 1, 256, 2, "0 Hz"}, Case{-8000, 1, 256, 2, "-8000"},
                 Case{384001, 1, 256, 2, "384001"}, Case{16000, 0, 256, 2, "channel count 0"},
                 Case{16000, 65, 256, 2, "65"}, Case{16000, 1, 0, 2, "frames_per_buffer 0"},
                 Case{16000, 1, 256, 0.001, "ring_seconds"}, Case{16000, 1, 256, NAN, "nan"}}) {
    StreamConfig cfg = config(c.rate, c.period, c.ring);
    cfg.channels = c.channels;
    auto cap = audio::open_pcm_capture(ramp(100), cfg, {});
    EXPECT_EQ(cap.status().code(), StatusCode::kInvalidArgument) << c.says;
    EXPECT_NE(cap.status().message().find(c.says), std::string::npos) << cap.status().to_string();
    auto play = audio::open_file_playback("", cfg, {});
    EXPECT_EQ(play.status().code(), StatusCode::kInvalidArgument) << c.says;
  }
  auto speed = audio::open_pcm_capture(ramp(100), config(), FileDeviceOptions{-1.0, 0});
  EXPECT_EQ(speed.status().code(), StatusCode::kInvalidArgument);
  std::vector<float> nan_source = ramp(100);
  nan_source[42] = INFINITY;
  auto nan_cap = audio::open_pcm_capture(nan_source, config(), {});
  EXPECT_NE(nan_cap.status().message().find("sample 42 is +Inf"), std::string::npos)
      << nan_cap.status().to_string();
}

#ifdef OMNIRT_HAVE_FFMPEG
TEST(AudioFileDevice, MicrophoneFromARealRecordingAndSpeakerToAFile) {
  const char* clip =
      "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav";
  if (!test::file_exists(clip)) GTEST_SKIP() << clip << " missing (pocketsphinx-testdata)";
  auto expected = audio::decode_file(clip, 16000);
  ASSERT_TRUE(expected.ok());
  auto cap = audio::open_file_capture(clip, config(), FileDeviceOptions{0.0, 0});
  ASSERT_TRUE(cap.ok()) << cap.status().to_string();
  ASSERT_TRUE((*cap)->start().ok());
  Status error;
  std::vector<float> heard = read_all(**cap, &error);
  ASSERT_TRUE(error.ok()) << error.to_string();
  EXPECT_EQ(heard, *expected);

  // Play it into a WAV file; reading that back gives the samples (16-bit PCM: exact here,
  // since they came from a 16-bit file).
  std::string out = test::temp_path("speaker.wav");
  auto play = audio::open_file_playback(out, config(), FileDeviceOptions{0.0, 0});
  ASSERT_TRUE(play.ok());
  ASSERT_TRUE((*play)->start().ok());
  size_t written = 0;
  while (written < heard.size()) {
    auto n = (*play)->write(heard.data() + written, heard.size() - written, 1000);
    ASSERT_TRUE(n.ok());
    written += *n;
  }
  ASSERT_TRUE((*play)->drain(5000).ok());
  ASSERT_TRUE((*play)->stop().ok());
  auto back = audio::decode_file(out, 16000);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, heard);
  std::remove(out.c_str());

  auto missing = audio::open_file_capture("/no/such/clip.wav", config(), {});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}
#endif

TEST(AudioPortAudio, NoDeviceOrNoSuchDeviceIsAStatus) {
  auto devices = audio::list_devices();
#ifdef OMNIRT_HAVE_PORTAUDIO
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  for (const auto& d : *devices) {
    std::printf("  device %d: '%s' (%s) in %d out %d, %.0f Hz\n", d.index, d.name.c_str(),
                d.host_api.c_str(), d.max_input_channels, d.max_output_channels,
                d.default_sample_rate);
  }
  StreamConfig cfg = config();
  cfg.device = "no device is called this 7f3a";
  auto cap = audio::open_capture(cfg);
  EXPECT_EQ(cap.status().code(), StatusCode::kNotFound) << cap.status().to_string();
  EXPECT_NE(cap.status().message().find("7f3a"), std::string::npos);
  cfg.device = "999";
  auto play = audio::open_playback(cfg);
  EXPECT_EQ(play.status().code(), StatusCode::kNotFound) << play.status().to_string();
  cfg.device = "";
  cfg.sample_rate = 0;
  EXPECT_EQ(audio::open_capture(cfg).status().code(), StatusCode::kInvalidArgument);
  if (devices->empty()) {  // CI: no sound hardware at all
    cfg.sample_rate = 16000;
    auto def = audio::open_capture(cfg);
    EXPECT_EQ(def.status().code(), StatusCode::kNotFound) << def.status().to_string();
  }
#else
  EXPECT_EQ(devices.status().code(), StatusCode::kUnsupported);
#endif
}

}  // namespace
}  // namespace omni
