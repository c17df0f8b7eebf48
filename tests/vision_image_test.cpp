// Image decoding and preprocessing against independent references (tools/make_vision_fixtures.py):
// Pillow's decoded pixels for PNG/BMP/GIF/WebP/JPEG crops of a real photo, and the tensors
// transformers' CLIPImageProcessorPil / SiglipImageProcessorPil make from the same pixels.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "vision/io/image.h"
#include "vision/preprocess/preprocess.h"

namespace omni::vision {
namespace {

std::string data(const std::string& name) { return test::source_path("tests/data/vision/" + name); }

nlohmann::json manifest() {
  return test::load_json(data("manifest.json"));
}

Image raw_image(const std::string& name, int w, int h) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb = test::read_file(data(name));
  return img;
}

#ifdef OMNIRT_HAVE_FFMPEG

TEST(VisionImage, DecodesEveryFormatLikePillow) {
  auto m = manifest();
  for (auto& [name, info] : m["images"].items()) {
    SCOPED_TRACE(name);
    auto img = decode_image_file(data(name));
    ASSERT_TRUE(img.ok()) << img.status().to_string();
    ASSERT_EQ(img->width, info["width"].get<int>());
    ASSERT_EQ(img->height, info["height"].get<int>());
    std::vector<uint8_t> ref = test::read_file(data(name + ".rgb"));
    ASSERT_EQ(ref.size(), img->rgb.size());
    int max_diff = 0;
    double sum_diff = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      int d = std::abs(int(ref[i]) - int(img->rgb[i]));
      max_diff = std::max(max_diff, d);
      sum_diff += d;
    }
    if (info["lossy"].get<bool>()) {
      // Another decoder (IDCT, chroma upsampling, YUV -> RGB rounding) than libjpeg / libwebp.
      EXPECT_LE(sum_diff / ref.size(), 2.0);
      EXPECT_LE(max_diff, 40);
    } else {
      EXPECT_EQ(max_diff, 0);
    }
  }
}

TEST(VisionImage, FileAndMemoryAgree) {
  std::vector<uint8_t> bytes = test::read_file(data("astro.jpg"));
  auto a = decode_image_memory(bytes.data(), bytes.size());
  auto b = decode_image_file(data("astro.jpg"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->rgb, b->rgb);
}

TEST(VisionImage, BadInputsGiveClearStatuses) {
  struct Case {
    const char* file;
    StatusCode code;
    const char* says;
  };
  const Case cases[] = {
      {"bad_truncated.png", StatusCode::kCorruptFile, "bad_truncated.png"},
      {"bad_truncated.jpg", StatusCode::kCorruptFile, "bad_truncated.jpg"},
      {"bad_garbage.bin", StatusCode::kCorruptFile, "not a recognised image"},
      {"bad_zero_size.png", StatusCode::kCorruptFile, ""},
      {"bad_bomb.png", StatusCode::kOutOfRange, "60000 x 60000"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    auto img = decode_image_file(data(c.file));
    ASSERT_FALSE(img.ok());
    EXPECT_FALSE(img.status().message().empty());
    if (c.code == StatusCode::kOutOfRange) {
      EXPECT_EQ(img.status().code(), c.code) << img.status().to_string();
    } else {
      // A truncated or zero-size header may be refused by the demuxer or by the decoder.
      EXPECT_TRUE(img.status().code() == StatusCode::kCorruptFile ||
                  img.status().code() == StatusCode::kUnsupported)
          << img.status().to_string();
    }
    EXPECT_NE(img.status().message().find(c.says), std::string::npos) << img.status().to_string();
  }
  auto missing = decode_image_file(data("no_such_image.png"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto empty = decode_image_memory(nullptr, 0);
  EXPECT_EQ(empty.status().code(), StatusCode::kCorruptFile);
  // The bomb limit applies to real images too.
  DecodeOptions small;
  small.max_pixels = 1000;
  auto limited = decode_image_file(data("astro.png"), small);
  EXPECT_EQ(limited.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(limited.status().message().find("80 x 56"), std::string::npos);
}

#else

TEST(VisionImage, WithoutFfmpegSaysSo) {
  auto img = decode_image_file(data("astro.png"));
  EXPECT_EQ(img.status().code(), StatusCode::kUnsupported);
}

#endif

TEST(VisionPreprocess, MatchesTransformersProcessors) {
  auto m = manifest();
  for (auto& [name, c] : m["preprocess"].items()) {
    SCOPED_TRACE(name);
    Image src = c.contains("source") ? raw_image(c["source"], c["width"], c["height"])
                                     : raw_image("astro.png.rgb", 80, 56);
    PreprocessConfig cfg;
    if (c["kind"] == "clip") {
      cfg = PreprocessConfig::clip(c["size"]);
      cfg.crop_w = cfg.crop_h = c["crop"];
    } else {
      cfg = PreprocessConfig::siglip(0);
      cfg.resize_w = c["width"];
      cfg.resize_h = c["height"];
      cfg.filter = c["filter"] == "bilinear" ? Resample::kBilinear : Resample::kBicubic;
    }
    auto t = preprocess(src, cfg);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    std::vector<int> shape = c["shape"];
    ASSERT_EQ(shape[1], t->height);
    ASSERT_EQ(shape[2], t->width);
    std::vector<float> ref = test::read_f32(data("pre_" + name + ".f32"));
    ASSERT_EQ(ref.size(), t->chw.size());
    // Within one 8-bit level, in normalised units: 1/255 / std per channel.
    const size_t plane = size_t(t->width) * t->height;
    int n_off = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double tol = 1.0 / 255.0 / cfg.std[i / plane] + 1e-5;
      const double d = std::fabs(double(ref[i]) - t->chw[i]);
      ASSERT_LE(d, tol) << "element " << i;
      if (d > 1e-5) ++n_off;
    }
    // Pillow's integer arithmetic is reproduced exactly: no element is even one level off.
    EXPECT_EQ(n_off, 0);
  }
}

// Pillow's resize at large factors (wide kernels, several 24-byte blocks per pixel), both
// directions at once, on a noise image computed here as the fixture script does.
TEST(VisionPreprocess, ResizeMatchesPillow) {
  auto m = manifest();
  for (auto& c : m["resize"]) {
    SCOPED_TRACE(c["file"].get<std::string>());
    Image img;
    img.width = c["width"];
    img.height = c["height"];
    img.rgb.resize(size_t(img.width) * img.height * 3);
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          const uint32_t v = (uint32_t(x) * 73856093u) ^ (uint32_t(y) * 19349663u) ^
                             (uint32_t(ch) * 83492791u);
          img.rgb[(size_t(y) * img.width + x) * 3 + ch] = uint8_t((v >> 7) & 255);
        }
    auto out = resize(img, c["out_width"], c["out_height"],
                      c["filter"] == "bilinear" ? Resample::kBilinear : Resample::kBicubic);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    std::vector<uint8_t> ref = test::read_file(data(c["file"]));
    ASSERT_EQ(out->rgb.size(), ref.size());
    size_t n_diff = 0;
    int max_diff = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      n_diff += ref[i] != out->rgb[i];
      max_diff = std::max(max_diff, std::abs(int(ref[i]) - int(out->rgb[i])));
    }
    // Where Pillow ran its horizontal pass first (as we do), bit-identical; where it chose the
    // vertical one first, the 8-bit rounding between passes differs by at most one level.
    if (c["horizontal_first"].get<bool>()) {
      EXPECT_EQ(n_diff, 0u);
    }
    EXPECT_LE(max_diff, 1);
  }
}

TEST(VisionPreprocess, CropPadsAndRejectsBadValues) {
  Image img = raw_image("astro.png.rgb", 80, 56);
  auto big = center_crop(img, 84, 60);  // 2 px of black on each side
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->pixel(0, 0)[0], 0);
  EXPECT_EQ(big->pixel(2, 2)[1], img.pixel(0, 0)[1]);
  EXPECT_EQ(resize(img, 0, 10, Resample::kBicubic).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(resize(Image{}, 10, 10, Resample::kBicubic).status().code(),
            StatusCode::kInvalidArgument);
  PreprocessConfig cfg = PreprocessConfig::clip(0);
  EXPECT_EQ(preprocess(img, cfg).status().code(), StatusCode::kInvalidArgument);
  cfg = PreprocessConfig::siglip(32);
  cfg.std[1] = 0;
  auto bad = preprocess(img, cfg);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("std[1]"), std::string::npos);
  int w, h;
  shortest_edge_size(640, 480, 224, &w, &h);
  EXPECT_EQ(w, 298);  // int(224 * 640 / 480) = int(298.67)
  EXPECT_EQ(h, 224);
}

}  // namespace
}  // namespace omni::vision
