// Synthetic vision presets (create -> load -> encode), and the benchmarks of issue 7, disabled
// by default (run with --gtest_also_run_disabled_tests --gtest_filter='*VisionBench*'):
//   encoding one 384x384 image at the siglip-so400m-384 shape on 2 threads;
//   decoding + preprocessing a 1080p 4:2:0 JPEG (as cameras write) on 1 thread (made from the
//   committed astro.png with the ffmpeg command).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "runtime/model/vision_loader.h"
#include "test_util.h"
#include "vision/io/image.h"
#include "vision/preprocess/preprocess.h"
#include "vision/vit/vit_encoder.h"

namespace omni::vision {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

TEST(VisionSynthetic, PresetsCreateLoadAndEncode) {
  EXPECT_EQ(synthetic_vision_presets(),
            (std::vector<std::string>{"vit-tiny", "siglip-so400m-384", "clip-vit-l-336"}));
  auto so400m = synthetic_vision_hparams("siglip-so400m-384");
  ASSERT_TRUE(so400m.ok());
  EXPECT_EQ(so400m->grid(), 27);
  EXPECT_EQ(so400m->n_embd, 1152);
  EXPECT_EQ(synthetic_vision_hparams("vit-huge").status().code(), StatusCode::kInvalidArgument);

  const std::string path = test::temp_path("vit_tiny.gguf");
  SyntheticVisionSpec spec{"vit-tiny", DType::kF16, 3};
  ASSERT_TRUE(create_synthetic_vision(spec, path).ok());
  auto model = load_vision(path);
  std::remove(path.c_str());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const ViTWeights& w = (*model)->weights;
  EXPECT_EQ(w.hp.n_proj_out, 64);
  PixelTensor px;
  px.width = px.height = 32;
  px.chw.resize(3 * 32 * 32);
  for (size_t i = 0; i < px.chw.size(); ++i) px.chw[i] = std::sin(0.1f * float(i));
  ViTEncoder enc(w);
  ThreadPool pool(2);
  ViTOutput out;
  ASSERT_TRUE(enc.encode(pool, px, nullptr, &out).ok());
  EXPECT_EQ(out.n_tokens, 17);
  std::vector<float> emb;
  int64_t n_out = 0;
  ASSERT_TRUE(enc.adapt(pool, out, &emb, &n_out).ok());
  EXPECT_EQ(n_out, 64);
  ASSERT_EQ(emb.size(), size_t(16 * 64));
  double sum_sq = 0;
  for (float v : emb) {
    ASSERT_TRUE(std::isfinite(v));
    sum_sq += double(v) * v;
  }
  EXPECT_GT(sum_sq, 0.0);
}

TEST(VisionBench, DISABLED_SiglipSo400m384TwoThreads) {
  const std::string path = test::temp_path("siglip_so400m.gguf");
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(create_synthetic_vision({"siglip-so400m-384", DType::kF16, 1}, path).ok());
  std::printf("create siglip-so400m-384 (f16): %.0f ms\n", ms_since(t0));
  auto model = load_vision(path);
  std::remove(path.c_str());  // mapped: the pages stay until unmapped
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  PixelTensor px;
  px.width = px.height = 384;
  px.chw.resize(3 * 384 * 384);
  for (size_t i = 0; i < px.chw.size(); ++i) px.chw[i] = std::sin(0.01f * float(i));
  ViTEncoder enc((*model)->weights);
  ThreadPool pool(2);
  ViTOutput out;
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(enc.encode(pool, px, nullptr, &out).ok());
    best = std::min(best, ms_since(t0));
  }
  EXPECT_EQ(out.n_tokens, 729);
  std::printf("encode 384x384, siglip-so400m-384 shape, f16 weights, 2 threads: %.1f ms (best of 3)\n",
              best);
}

TEST(VisionBench, DISABLED_Jpeg1080pDecodePreprocessOneThread) {
#ifdef OMNIRT_HAVE_FFMPEG
  const std::string jpg = test::temp_path("1080p.jpg");
  // OMNIRT_BENCH_IMAGE: another source picture (a real photo makes a more typical JPEG).
  const char* src = std::getenv("OMNIRT_BENCH_IMAGE");
  const std::string cmd = "ffmpeg -nostdin -v error -y -i " +
                          (src ? std::string(src) : test::source_path("tests/data/vision/astro.png")) +
                          " -vf scale=1920:1080:flags=bicubic -pix_fmt yuvj420p -q:v 3 " + jpg;
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "the ffmpeg command is needed";
  std::vector<uint8_t> bytes = test::read_file(jpg);
  std::remove(jpg.c_str());
  const PreprocessConfig cfg = PreprocessConfig::siglip(384);
  double best_dec = 1e30, best_all = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    auto img = decode_image_memory(bytes.data(), bytes.size());
    ASSERT_TRUE(img.ok()) << img.status().to_string();
    const double dec = ms_since(t0);
    auto t = preprocess(*img, cfg);
    ASSERT_TRUE(t.ok());
    best_dec = std::min(best_dec, dec);
    best_all = std::min(best_all, ms_since(t0));
  }
  std::printf("1080p JPEG (%zu bytes): decode %.1f ms, decode + SigLIP-384 preprocess %.1f ms "
              "(1 thread, best of 5)\n", bytes.size(), best_dec, best_all);
#else
  GTEST_SKIP() << "needs FFmpeg";
#endif
}

}  // namespace
}  // namespace omni::vision
