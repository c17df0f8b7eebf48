// Gemma 3's pooling adapter (llama.cpp projector "gemma3") against transformers'
// Gemma3MultiModalProjector over a tiny random SiglipVisionModel, loaded from the mmproj GGUF
// tools/make_vision_pool_fixtures.py writes (soft_emb_norm stored as 1 + w, the projection as
// torch's [d_vision, d_text]). Patch dropping with pooling: a window averages its kept patches
// and a window with none kept is dropped (the fixture computes that rule in torch).
// The merge adapter (Idefics3 / SmolVLM, projector "idefics3") against transformers'
// Idefics3Connector (pixel shuffle, Linear); with dropped patches, a window missing any patch
// yields no token (the fixture: NaN rows through the connector's own shuffle).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/model/vision_loader.h"
#include "test_util.h"
#include "vision/vit/vit_encoder.h"

namespace omni::vision {
namespace {

std::string data(const std::string& name) { return test::source_path("tests/data/vision/" + name); }

nlohmann::json manifest() {
  return test::load_json(data("pool_manifest.json"));
}

TEST(VisionPool, LoadsGemma3Projector) {
  auto m = load_vision(data("pool_gemma3.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const ViTWeights& w = (*m)->weights;
  EXPECT_EQ(w.hp.projector, ProjectorType::kGemma3Pool);
  EXPECT_EQ(w.hp.pool_kernel, 2);
  EXPECT_EQ(w.hp.n_proj_out, 48);
  EXPECT_EQ(w.mm_soft_emb_norm.size(), 64u);
  EXPECT_EQ(w.mm_input_proj.size(), 64u * 48u);
}

TEST(VisionPool, MatchesTransformersFullAndDropped) {
  const nlohmann::json c = manifest();
  auto m = load_vision(data(c["model"]));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ViTEncoder enc((*m)->weights);
  ThreadPool pool(2);
  PixelTensor px;
  px.width = c["width"];
  px.height = c["height"];
  px.chw = test::read_f32(data(c["pixels"]));
  for (const char* which : {"full", "dropped"}) {
    SCOPED_TRACE(which);
    PatchMask mask = PatchMask::keep_all(8, 8);
    const bool drop = std::string(which) == "dropped";
    if (drop) for (int i : c["drop"]) mask.keep[size_t(i)] = 0;
    ViTOutput out;
    Status st = enc.encode(pool, px, drop ? &mask : nullptr, &out);
    ASSERT_TRUE(st.ok()) << st.to_string();
    std::vector<float> embeds;
    int64_t width = 0;
    st = enc.adapt(pool, out, &embeds, &width);
    ASSERT_TRUE(st.ok()) << st.to_string();
    std::vector<int> shape = c[which];
    std::vector<float> ref = test::read_f32(data(std::string("pool_") + which + "_adapted.f32"));
    ASSERT_EQ(width, shape[1]);
    ASSERT_EQ(int64_t(embeds.size()), int64_t(shape[0]) * shape[1]);  // 16 tokens; 15 dropped
    const double err = test::rel_l2(embeds.data(), ref.data(), ref.size());
    EXPECT_LT(err, 1e-4);
    std::printf("[pool %s] %d tokens x %d, rel L2 %.2e\n", which, shape[0], shape[1], err);
  }
}

TEST(VisionPool, MergeMatchesIdefics3Connector) {
  const nlohmann::json c = manifest();
  const nlohmann::json& mc = c["merge"];
  auto m = load_vision(data(mc["model"]));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const ViTWeights& w = (*m)->weights;
  EXPECT_EQ(w.hp.projector, ProjectorType::kIdefics3Merge);
  EXPECT_EQ(w.hp.pool_kernel, 2);
  EXPECT_EQ(w.hp.n_proj_out, 48);
  ViTEncoder enc(w);
  ThreadPool pool(2);
  PixelTensor px;
  px.width = c["width"];
  px.height = c["height"];
  px.chw = test::read_f32(data(c["pixels"]));
  for (const char* which : {"full", "dropped"}) {
    SCOPED_TRACE(which);
    PatchMask mask = PatchMask::keep_all(8, 8);
    const bool drop = std::string(which) == "dropped";
    if (drop) for (int i : c["drop"]) mask.keep[size_t(i)] = 0;
    ViTOutput out;
    ASSERT_TRUE(enc.encode(pool, px, drop ? &mask : nullptr, &out).ok());
    std::vector<float> embeds;
    int64_t width = 0;
    Status st = enc.adapt(pool, out, &embeds, &width);
    ASSERT_TRUE(st.ok()) << st.to_string();
    std::vector<int> shape = mc[which];
    std::vector<float> ref = test::read_f32(data(std::string("merge_") + which + "_adapted.f32"));
    ASSERT_EQ(width, shape[1]);
    ASSERT_EQ(int64_t(embeds.size()), int64_t(shape[0]) * shape[1]);  // 16 tokens; 13 dropped
    const double err = test::rel_l2(embeds.data(), ref.data(), ref.size());
    EXPECT_LT(err, 1e-4);
    std::printf("[merge %s] %d tokens x %d, rel L2 %.2e\n", which, shape[0], shape[1], err);
  }
  // One dropped patch in every window: nothing left.
  PatchMask mask = PatchMask::keep_all(8, 8);
  for (int y = 0; y < 8; y += 2)
    for (int x = 0; x < 8; x += 2) mask.keep[size_t(y * 8 + x)] = 0;
  ViTOutput out;
  ASSERT_TRUE(enc.encode(pool, px, &mask, &out).ok());
  std::vector<float> embeds;
  int64_t width = 0;
  Status st = enc.adapt(pool, out, &embeds, &width);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("no merge window"), std::string::npos) << st.to_string();
}

TEST(VisionPool, BadInputs) {
  auto m = load_vision(data("pool_gemma3.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ViTEncoder enc((*m)->weights);
  ThreadPool pool(1);
  // An 8 x 8 pixel image: a 1 x 1 grid, smaller than the 2 x 2 window.
  PixelTensor px;
  px.width = px.height = 8;
  px.chw.assign(3 * 8 * 8, 0.1f);
  ViTOutput out;
  ASSERT_TRUE(enc.encode(pool, px, nullptr, &out).ok());
  std::vector<float> embeds;
  int64_t width = 0;
  Status st = enc.adapt(pool, out, &embeds, &width);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("smaller than the 2 x 2"), std::string::npos) << st.to_string();
  // Patches kept only outside whole windows (a 24 x 16 image: 3 x 2 grid, column 2 is cut).
  px.width = 24;
  px.height = 16;
  px.chw.assign(3 * 24 * 16, 0.1f);
  PatchMask mask = PatchMask::keep_all(3, 2);
  for (int i : {0, 1, 3, 4}) mask.keep[size_t(i)] = 0;
  ASSERT_TRUE(enc.encode(pool, px, &mask, &out).ok());
  st = enc.adapt(pool, out, &embeds, &width);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("every pooling window"), std::string::npos) << st.to_string();
}

}  // namespace
}  // namespace omni::vision
