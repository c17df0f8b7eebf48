// The ViT encoder, adapter and patch dropping against transformers' CLIPVisionModel /
// SiglipVisionModel (tiny random configs, float64) and a LLaVA MLP projector, loaded from
// llama.cpp-style mmproj GGUF files written by tools/make_vision_fixtures.py.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/model/vision_loader.h"
#include "test_util.h"
#include "vision/vit/vit_encoder.h"

namespace omni::vision {
namespace {

std::string data(const std::string& name) { return test::source_path("tests/data/vision/" + name); }

nlohmann::json vit_cases() {
  return test::load_json(data("manifest.json"))["vit"];
}

PixelTensor pixels(const nlohmann::json& c) {
  PixelTensor px;
  px.width = c["width"];
  px.height = c["height"];
  px.chw = test::read_f32(data(c["pixels"]));
  return px;
}

PatchMask mask_for(const nlohmann::json& c, int64_t gw, int64_t gh) {
  PatchMask m = PatchMask::keep_all(gw, gh);
  for (int i : c["drop"]) m.keep[static_cast<size_t>(i)] = 0;
  return m;
}

TEST(VisionViT, LoadsMmprojHparams) {
  auto clip = load_vision(data("clip_tiny.gguf"));
  ASSERT_TRUE(clip.ok()) << clip.status().to_string();
  const ViTHParams& hp = (*clip)->weights.hp;
  EXPECT_EQ(hp.n_embd, 64);
  EXPECT_EQ(hp.n_layer, 2);  // 3 in the model; the converter keeps feature layer -2
  EXPECT_EQ(hp.act, ViTActivation::kQuickGelu);
  EXPECT_EQ(hp.projector, ProjectorType::kMlp);
  EXPECT_EQ(hp.n_proj_out, 80);
  EXPECT_FALSE((*clip)->weights.class_embd.empty());
  EXPECT_NEAR(hp.image_std[2], 0.27577711f, 1e-7);
  auto sig = load_vision(data("siglip_tiny.gguf"));
  ASSERT_TRUE(sig.ok()) << sig.status().to_string();
  EXPECT_EQ((*sig)->weights.hp.act, ViTActivation::kGeluTanh);
  EXPECT_TRUE((*sig)->weights.class_embd.empty());
  EXPECT_FALSE((*sig)->weights.post_ln.w.empty());
  EXPECT_NEAR((*sig)->weights.hp.eps, 1e-6f, 1e-12);
}

TEST(VisionViT, MatchesTransformers) {
  auto cases = vit_cases();
  ThreadPool pool(2);
  for (auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    auto model = load_vision(data(c["model"]));
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    const ViTWeights& w = (*model)->weights;
    ViTEncoder enc(w);
    PixelTensor px = pixels(c);
    const int64_t gw = px.width / w.hp.patch_size, gh = px.height / w.hp.patch_size;
    PatchMask mask;
    if (c.contains("drop")) mask = mask_for(c, gw, gh);
    ViTOutput out;
    Status st = enc.encode(pool, px, c.contains("drop") ? &mask : nullptr, &out);
    ASSERT_TRUE(st.ok()) << st.to_string();
    std::vector<float> ref = test::read_f32(data(name == "clip_interpolated" ? "vit_clip_interp_hidden.f32"
                                                 : name == "siglip_interpolated" ? "vit_siglip_interp_hidden.f32"
                                                 : "vit_" + name + "_hidden.f32"));
    std::vector<int> shape = c["hidden"];
    ASSERT_EQ(out.n_tokens, shape[0]);
    ASSERT_EQ(out.n_embd, shape[1]);
    ASSERT_EQ(out.hidden.size(), ref.size());
    EXPECT_LT(test::rel_l2(out.hidden.data(), ref.data(), ref.size()), 1e-4);
    if (c.contains("adapted")) {
      std::vector<float> emb;
      int64_t n_out = 0;
      ASSERT_TRUE(enc.adapt(pool, out, &emb, &n_out).ok());
      std::vector<float> ref_a = test::read_f32(data("vit_" + name + "_adapted.f32"));
      std::vector<int> ashape = c["adapted"];
      ASSERT_EQ(n_out, ashape[1]);
      ASSERT_EQ(emb.size(), ref_a.size());
      EXPECT_LT(test::rel_l2(emb.data(), ref_a.data(), ref_a.size()), 1e-4);
    }
  }
}

// A remainder smaller than a patch (right, bottom) is ignored, as by the stride-p conv.
TEST(VisionViT, RemainderPixelsAreIgnored) {
  auto cases = vit_cases();
  const auto& c = cases["siglip_full"];
  auto model = load_vision(data(c["model"]));
  ASSERT_TRUE(model.ok());
  PixelTensor px = pixels(c), wide;
  wide.width = px.width + 5;
  wide.height = px.height + 7;
  wide.chw.assign(size_t(3) * wide.width * wide.height, 9.0f);
  for (int ch = 0; ch < 3; ++ch)
    for (int y = 0; y < px.height; ++y)
      for (int x = 0; x < px.width; ++x)
        wide.chw[(size_t(ch) * wide.height + y) * wide.width + x] =
            px.chw[(size_t(ch) * px.height + y) * px.width + x];
  ViTEncoder enc((*model)->weights);
  ThreadPool pool(1);
  ViTOutput out;
  ASSERT_TRUE(enc.encode(pool, wide, nullptr, &out).ok());
  std::vector<float> ref = test::read_f32(data("vit_siglip_full_hidden.f32"));
  ASSERT_EQ(out.hidden.size(), ref.size());
  EXPECT_LT(test::rel_l2(out.hidden.data(), ref.data(), ref.size()), 1e-4);
}

// Dropping patches is not painting them black: kept tokens see different context.
TEST(VisionViT, DroppingDiffersFromBlackPainting) {
  auto cases = vit_cases();
  const auto& c = cases["siglip_dropped"];
  auto model = load_vision(data(c["model"]));
  ASSERT_TRUE(model.ok());
  const ViTWeights& w = (*model)->weights;
  ViTEncoder enc(w);
  ThreadPool pool(1);
  PixelTensor px = pixels(c);
  const int64_t p = w.hp.patch_size, gw = px.width / p, gh = px.height / p;
  PatchMask mask = mask_for(c, gw, gh);
  ViTOutput dropped;
  ASSERT_TRUE(enc.encode(pool, px, &mask, &dropped).ok());
  // Black (0 in RGB) after normalisation: -mean / std.
  PixelTensor painted = px;
  for (int64_t i = 0; i < gw * gh; ++i) {
    if (mask.keep[i]) continue;
    const int64_t gy = i / gw, gx = i % gw;
    for (int ch = 0; ch < 3; ++ch)
      for (int64_t y = 0; y < p; ++y)
        for (int64_t x = 0; x < p; ++x)
          painted.chw[(ch * px.height + gy * p + y) * px.width + gx * p + x] =
              -w.hp.image_mean[ch] / w.hp.image_std[ch];
  }
  ViTOutput black;
  ASSERT_TRUE(enc.encode(pool, painted, nullptr, &black).ok());
  ASSERT_EQ(dropped.patches.size(), size_t(dropped.n_tokens));
  std::vector<float> black_kept;
  for (int32_t idx : dropped.patches)
    black_kept.insert(black_kept.end(), black.hidden.begin() + idx * w.hp.n_embd,
                      black.hidden.begin() + (idx + 1) * w.hp.n_embd);
  ASSERT_EQ(black_kept.size(), dropped.hidden.size());
  EXPECT_GT(test::rel_l2(black_kept.data(), dropped.hidden.data(), black_kept.size()), 1e-2);
  // And keeping every patch through a mask equals no mask.
  PatchMask all = PatchMask::keep_all(gw, gh);
  ViTOutput a, b;
  ASSERT_TRUE(enc.encode(pool, px, &all, &a).ok());
  ASSERT_TRUE(enc.encode(pool, px, nullptr, &b).ok());
  EXPECT_EQ(a.hidden, b.hidden);
}

TEST(VisionViT, BadInputsAndFiles) {
  auto model = load_vision(data("siglip_tiny.gguf"));
  ASSERT_TRUE(model.ok());
  ViTEncoder enc((*model)->weights);
  ThreadPool pool(1);
  PixelTensor px;
  px.width = 7;  // less than one patch
  px.height = 32;
  px.chw.assign(3 * 7 * 32, 0.f);
  ViTOutput out;
  Status st = enc.encode(pool, px, nullptr, &out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("7 x 32"), std::string::npos) << st.to_string();
  px.width = 32;
  px.chw.assign(3 * 32 * 32, 0.f);
  PatchMask none = PatchMask::keep_all(4, 4);
  std::fill(none.keep.begin(), none.keep.end(), 0);
  st = enc.encode(pool, px, &none, &out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("drops every patch"), std::string::npos);
  PatchMask wrong = PatchMask::keep_all(3, 4);
  EXPECT_EQ(enc.encode(pool, px, &wrong, &out).code(), StatusCode::kInvalidArgument);
  PatchMask rect = PatchMask::keep_all(4, 4);
  rect.drop_pixel_rect(8, 9, 0, 17, 8);  // x 9..16 touches patch columns 1 and 2 of row 0
  EXPECT_EQ(rect.n_kept(), 14);
  EXPECT_EQ(rect.keep[1], 0);
  EXPECT_EQ(rect.keep[2], 0);

  // A language-model file is not a vision encoder; a missing tensor is named.
  auto lm = load_vision(test::source_path("tests/data/vision/manifest.json"));
  EXPECT_FALSE(lm.ok());
  gguf::GgufWriter wr;
  wr.add_string("general.architecture", "clip");
  wr.add_u32("clip.vision.image_size", 32);
  wr.add_u32("clip.vision.patch_size", 8);
  wr.add_u32("clip.vision.embedding_length", 64);
  wr.add_u32("clip.vision.feed_forward_length", 128);
  wr.add_u32("clip.vision.block_count", 1);
  wr.add_u32("clip.vision.attention.head_count", 5);
  std::vector<uint8_t> bytes = wr.to_bytes();
  auto f = gguf::GgufFile::from_memory(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok());
  auto bad = load_vision(std::move(*f));
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(bad.status().message().find("head_count"), std::string::npos) << bad.status().to_string();
  wr.add_u32("clip.vision.attention.head_count", 4);
  bytes = wr.to_bytes();
  f = gguf::GgufFile::from_memory(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok());
  bad = load_vision(std::move(*f));
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(bad.status().message().find("v.patch_embd.weight"), std::string::npos);
  wr.add_string("general.architecture", "llama");
  bytes = wr.to_bytes();
  f = gguf::GgufFile::from_memory(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(load_vision(std::move(*f)).status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace omni::vision
