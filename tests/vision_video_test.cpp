// Video frames (vision/io/video.h) on clips the ffmpeg command-line tool makes here from the
// committed astro.png (80 x 56): 2 s of the picture then 2 s of it flipped upside down, at
// 5 fps (frames at 0, 0.2, ..., 3.8 s). The lossless clip (FFV1, RGB) must give, frame for
// frame, the pixels the image decoder gives for the PNG (flipped for t >= 2 s); the H.264 clip
// (4:2:0, lossy) the same times and pixels within a few levels. Sampling counts and times follow
// video.h's rule. Tests skip with the reason when ffmpeg or FFmpeg support is absent.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "test_util.h"
#include "vision/io/image.h"
#include "vision/io/video.h"

namespace omni::vision {
namespace {

std::string data(const std::string& name) { return test::source_path("tests/data/vision/" + name); }

// The clip `name` (made once per process); empty when ffmpeg failed.
std::string clip(const std::string& name, const std::string& codec_args) {
  const std::string out = test::temp_path(name);
  std::ifstream probe(out);
  if (probe.good()) return out;
  const std::string png = data("astro.png");
  const std::string cmd =
      "ffmpeg -nostdin -v error -y -loop 1 -framerate 5 -t 2 -i '" + png +
      "' -loop 1 -framerate 5 -t 2 -i '" + png +
      "' -filter_complex '[1:v]vflip[f];[0:v][f]concat=n=2:v=1[v]' -map '[v]' -r 5 " +
      codec_args + " '" + out + "'";
  return std::system(cmd.c_str()) == 0 ? out : "";
}
std::string lossless_clip() { return clip("astro_ffv1.mkv", "-c:v ffv1 -pix_fmt bgr0"); }
std::string h264_clip() {
  return clip("astro_h264.mp4", "-c:v libx264 -pix_fmt yuv420p -crf 10 -g 10 -bf 2");
}

Image flipped(const Image& img) {
  Image f = img;
  const size_t row = size_t(img.width) * 3;
  for (int y = 0; y < img.height; ++y)
    std::memcpy(f.rgb.data() + size_t(y) * row, img.rgb.data() + size_t(img.height - 1 - y) * row, row);
  return f;
}

double mean_abs_diff(const Image& a, const Image& b) {
  double s = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) s += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return s / double(a.rgb.size());
}

class VisionVideo : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef OMNIRT_HAVE_FFMPEG
    GTEST_SKIP() << "built without FFmpeg: video decoding returns kUnsupported";
#endif
    if (!test::have_ffmpeg_cli()) GTEST_SKIP() << "the ffmpeg command-line tool is not installed (makes the clips)";
    auto img = decode_image_file(data("astro.png"));
    ASSERT_TRUE(img.ok()) << img.status().to_string();
    picture_ = *img;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    for (const char* f : {"astro_ffv1.mkv", "astro_h264.mp4", "tone.wav"})
      std::filesystem::remove(test::temp_path(f), ec);
  }
  Image picture_;
};

std::vector<double> times(const Video& v) {
  std::vector<double> t;
  for (const VideoFrame& f : v.frames) t.push_back(f.time_s);
  return t;
}

void expect_times(const Video& v, const std::vector<double>& want) {
  std::vector<double> got = times(v);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "frame " << i;
}

TEST_F(VisionVideo, LosslessClipFramesEqualTheImageDecoder) {
  const std::string path = lossless_clip();
  ASSERT_FALSE(path.empty()) << "ffmpeg could not make the FFV1 clip";
  VideoOptions o;  // 1 fps, at most 8
  auto v = decode_video_file(path, o);
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  expect_times(*v, {0, 1, 2, 3});
  EXPECT_NEAR(v->stream_fps, 5.0, 1e-9);
  EXPECT_NEAR(v->duration_s, 4.0, 0.05);
  const Image flip = flipped(picture_);
  for (const VideoFrame& f : v->frames) {
    SCOPED_TRACE(f.time_s);
    ASSERT_EQ(f.image.width, 80);
    ASSERT_EQ(f.image.height, 56);
    EXPECT_EQ(f.image.rgb, f.time_s < 2 ? picture_.rgb : flip.rgb);
  }
}

TEST_F(VisionVideo, SamplingRateAndFrameCap) {
  const std::string path = lossless_clip();
  ASSERT_FALSE(path.empty());
  VideoOptions o;
  // 2 fps: samples 0, 0.5, 1, ... take the first frame at or after each: 0.6 for 0.5.
  o.fps = 2;
  auto v = decode_video_file(path, o);
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  expect_times(*v, {0, 0.6, 1.0, 1.6, 2.0, 2.6, 3.0, 3.6});
  // Above the clip's rate: each frame once, capped.
  o.fps = 100;
  o.max_frames = 8;
  v = decode_video_file(path, o);
  ASSERT_TRUE(v.ok());
  expect_times(*v, {0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4});
  // The cap stops decoding early.
  o.fps = 1;
  o.max_frames = 2;
  v = decode_video_file(path, o);
  ASSERT_TRUE(v.ok());
  expect_times(*v, {0, 1});
  EXPECT_LE(v->frames_decoded, 6);
  // A rate below one frame per clip: the first frame only.
  o.fps = 0.1;
  o.max_frames = 8;
  v = decode_video_file(path, o);
  ASSERT_TRUE(v.ok());
  expect_times(*v, {0});
}

TEST_F(VisionVideo, H264ClipTimesAndPixels) {
  const std::string path = h264_clip();
  if (path.empty()) GTEST_SKIP() << "ffmpeg has no libx264 encoder here";
  VideoOptions o;
  o.fps = 1;
  auto v = decode_video_file(path, o);
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  expect_times(*v, {0, 1, 2, 3});  // B-frames: decode order differs, times do not
  const Image flip = flipped(picture_);
  for (const VideoFrame& f : v->frames) {
    const double own = mean_abs_diff(f.image, f.time_s < 2 ? picture_ : flip);
    const double other = mean_abs_diff(f.image, f.time_s < 2 ? flip : picture_);
    std::printf("[h264 t=%.1f] mean |diff| %.2f levels (vs the other picture %.1f)\n", f.time_s,
                own, other);
    EXPECT_LT(own, 4.0);  // 4:2:0 chroma and crf 10
    EXPECT_GT(other, 4 * own);
  }
  // The same bytes from memory.
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto m = decode_video_memory(bytes.data(), bytes.size(), o, "clip");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_EQ(m->frames.size(), v->frames.size());
  for (size_t i = 0; i < m->frames.size(); ++i) EXPECT_EQ(m->frames[i].image.rgb, v->frames[i].image.rgb);
}

TEST_F(VisionVideo, StillImageIsOneFrame) {
  auto v = decode_video_file(data("astro.png"));
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  ASSERT_EQ(v->frames.size(), 1u);
  EXPECT_EQ(v->frames[0].image.rgb, picture_.rgb);
}

TEST_F(VisionVideo, BmpCarriesFramePixelsExactly) {
  // Odd width (row padding) and the real picture.
  Image odd;
  odd.width = 5;
  odd.height = 3;
  for (int i = 0; i < 45; ++i) odd.rgb.push_back(uint8_t(i * 37 + 11));
  for (const Image* img : {&odd, &picture_}) {
    std::vector<uint8_t> bmp = encode_bmp(*img);
    auto back = decode_image_memory(bmp.data(), bmp.size(), {}, "bmp");
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->width, img->width);
    EXPECT_EQ(back->height, img->height);
    EXPECT_EQ(back->rgb, img->rgb);
  }
  EXPECT_TRUE(encode_bmp(Image{}).empty());
}

// Playlists name other files: the bytes given are all a decoder may read, so it opens nothing
// else and a playlist decodes to no frame (fuzz_video reached the HLS demuxer; an ffconcat list
// read a file from the working directory before MediaDecoder refused io_open).
TEST_F(VisionVideo, PlaylistOpensNothingOutsideTheBytes) {
  const std::string dir = test::temp_path("hls");
  const std::string seg = dir + "_seg.ts";
  ASSERT_EQ(std::system(("ffmpeg -nostdin -v error -y -loop 1 -framerate 5 -t 1 -i '" +
                         data("astro.png") + "' -vf scale=32:24 -c:v mpeg2video -f mpegts '" +
                         seg + "'").c_str()), 0);
  auto direct = decode_video_file(seg);
  ASSERT_TRUE(direct.ok()) << direct.status().to_string();  // the segment itself decodes
  const std::string list = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n" +
                           seg + "\n#EXT-X-ENDLIST\n";
  auto v = decode_video_memory(reinterpret_cast<const uint8_t*>(list.data()), list.size(), {},
                               "list.m3u8");
  EXPECT_FALSE(v.ok()) << v->frames.size() << " frames read through the playlist";
  EXPECT_EQ(v.status().code(), StatusCode::kCorruptFile) << v.status().to_string();
  // ffconcat: relative names are "safe" to its demuxer; a copy of the segment in the working
  // directory under a relative name must not be read either.
  const std::string rel = "omnirt_playlist_test_" + std::to_string(::getpid()) + ".ts";
  ASSERT_TRUE(test::write_file(rel, test::read_file(seg)));
  const std::string concat = "ffconcat version 1.0\nfile " + rel + "\n";
  auto c = decode_video_memory(reinterpret_cast<const uint8_t*>(concat.data()), concat.size(), {},
                               "list.ffconcat");
  EXPECT_FALSE(c.ok()) << c->frames.size() << " frames read through the concat list";
  EXPECT_EQ(c.status().code(), StatusCode::kCorruptFile) << c.status().to_string();
  std::remove(rel.c_str());
  std::remove(seg.c_str());
}

TEST_F(VisionVideo, BadInput) {
  VideoOptions o;
  EXPECT_EQ(decode_video_file(test::temp_path("no_such.mp4")).status().code(), StatusCode::kNotFound);
  const uint8_t garbage[] = "this is no video at all, just some words in a buffer.......";
  auto g = decode_video_memory(garbage, sizeof(garbage), o, "garbage");
  EXPECT_EQ(g.status().code(), StatusCode::kCorruptFile) << g.status().to_string();
  EXPECT_EQ(decode_video_memory(garbage, 0, o, "empty").status().code(), StatusCode::kCorruptFile);
  o.fps = 0;
  auto r = decode_video_memory(garbage, sizeof(garbage), o, "x");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("fps 0"), std::string::npos) << r.status().to_string();
  o.fps = 1;
  o.max_frames = 0;
  EXPECT_EQ(decode_video_memory(garbage, sizeof(garbage), o, "x").status().code(),
            StatusCode::kInvalidArgument);
  o.max_frames = 8;

  // Audio only.
  const std::string wav = test::temp_path("tone.wav");
  ASSERT_EQ(std::system(("ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=440:duration=0.5 '" +
                         wav + "'").c_str()), 0);
  auto a = decode_video_file(wav, o);
  EXPECT_EQ(a.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(a.status().message().find("no video stream"), std::string::npos) << a.status().to_string();

  // Bomb limit: the clip is 80 x 56 = 4480 pixels.
  const std::string path = lossless_clip();
  ASSERT_FALSE(path.empty());
  o.limits.max_pixels = 4000;
  auto b = decode_video_file(path, o);
  EXPECT_EQ(b.status().code(), StatusCode::kOutOfRange) << b.status().to_string();
  o.limits = DecodeOptions{};
  o.max_total_bytes = 3 * 80 * 56 * 3;  // three frames' pixels: the fourth is refused
  auto tb = decode_video_file(path, o);
  EXPECT_EQ(tb.status().code(), StatusCode::kOutOfRange) << tb.status().to_string();
  EXPECT_NE(tb.status().message().find("4 frames of 80 x 56"), std::string::npos) << tb.status().to_string();
  o.max_total_bytes = VideoOptions{}.max_total_bytes;
  o.limits.max_file_bytes = 1000;
  EXPECT_EQ(decode_video_file(path, o).status().code(), StatusCode::kOutOfRange);
  o.limits = DecodeOptions{};

  // Truncated: every cut gives the frames before it, or kCorruptFile; never a crash.
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  o.fps = 100;
  o.max_frames = 100;
  for (size_t cut : {size_t(10), size_t(200), bytes.size() / 3, bytes.size() * 2 / 3}) {
    auto t = decode_video_memory(bytes.data(), cut, o, "cut");
    if (t.ok()) {
      EXPECT_LT(t->frames.size(), 20u) << cut;
    } else {
      EXPECT_EQ(t.status().code(), StatusCode::kCorruptFile) << cut << ": " << t.status().to_string();
    }
  }
}

}  // namespace
}  // namespace omni::vision
