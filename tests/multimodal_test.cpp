// Images in a session (issue 7, item 4): the multimodal prompt (markers -> token and image
// chunks), the embedding cache, the C API's image entry points and `omnirt generate --image`.
// References: the same ViT + adapter + Context::eval / eval_embeddings calls made by hand around
// the tokens (placement and order); Gemma 3's wrap token ids read from the real GGUF by the
// `gguf` package (tools/make_multimodal_fixtures.py); the cache counters and the ViT run count.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "include/omnirt.h"
#include "include/omnirt.hpp"
#include "runtime/model/context.h"
#include "runtime/model/gguf.h"
#include "runtime/model/model.h"
#include "runtime/model/multimodal.h"
#include "runtime/model/synthetic.h"
#include "runtime/model/vision_loader.h"
#include "test_util.h"
#include "tests/cli_test_util.h"
#include "vision/io/image.h"
#include "vision/io/video.h"
#include "vision/preprocess/preprocess.h"
#include "vision/vit/vit_encoder.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::run_cli;

constexpr int64_t kBackboneEmbd = 256;  // the tiny synthetic backbone's n_embd

std::string astro() { return test::source_path("tests/data/vision/astro.png"); }

// vit-tiny with its adapter projecting to `width`, as an mmproj file.
void write_mmproj(const std::string& path, int64_t width, uint64_t seed) {
  gguf::GgufWriter w;
  w.add_string("general.architecture", "clip");
  w.add_bool("omnirt.synthetic", true);
  ASSERT_TRUE(add_synthetic_vision(w, "vit-tiny", width, DType::kF16, seed).ok());
  ASSERT_TRUE(w.write(path).ok());
}

class MultimodalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_path("multimodal"));
    fs::create_directories(*dir_);
    ASSERT_TRUE(create_synthetic_model({"llama", "tiny", DType::kF16, 11}, model_path()).ok());
    write_mmproj(mmproj_path(), kBackboneEmbd, 5);
    write_mmproj(mmproj64_path(), 64, 5);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }
  void SetUp() override {
#ifndef OMNIRT_HAVE_FFMPEG
    GTEST_SKIP() << "built without FFmpeg: these tests decode images";
#endif
  }
  static std::string model_path() { return *dir_ + "/tiny_llama.gguf"; }
  static std::string mmproj_path() { return *dir_ + "/mmproj_256.gguf"; }
  static std::string mmproj64_path() { return *dir_ + "/mmproj_64.gguf"; }
  static std::string* dir_;
};
std::string* MultimodalTest::dir_ = nullptr;

// The prompt builder + eval_chunks equal the hand-made sequence: tokens of the text before the
// marker, the ViT + adapter rows of the image (decoded and preprocessed here, CLIP style, as
// the vit-tiny preset is), then the tokens after it.
TEST_F(MultimodalTest, ImagePlacedAtItsMarkerEqualsHandMadeSequence) {
  auto model = Model::load(model_path());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  auto vis = load_vision(mmproj_path());
  ASSERT_TRUE(vis.ok()) << vis.status().to_string();
  const vision::ViTWeights& weights = (*vis)->weights;  // the encoder shares them
  auto enc = ImageEncoder::create(std::move(vis).value(), nullptr, mmproj_path(), kBackboneEmbd);
  ASSERT_TRUE(enc.ok()) << enc.status().to_string();
  const std::vector<uint8_t> bytes = test::read_file(astro());
  auto rows = (*enc)->encode(bytes.data(), bytes.size(), 2);
  ASSERT_TRUE(rows.ok()) << rows.status().to_string();
  ASSERT_EQ((*rows)->n_rows, 16);  // 32 px / patch 8 = 4 x 4 patches, class token dropped
  ASSERT_EQ((*rows)->n_embd, kBackboneEmbd);

  // The reference rows: decode, CLIP preprocessing at 32 px with the CLIP mean/std, ViT, adapter.
  auto img = vision::decode_image_file(astro());
  ASSERT_TRUE(img.ok());
  vision::PreprocessConfig pc = vision::PreprocessConfig::clip(32);
  auto px = vision::preprocess(*img, pc);
  ASSERT_TRUE(px.ok());
  vision::ViTEncoder vit(weights);
  ThreadPool pool(1);
  vision::ViTOutput out;
  ASSERT_TRUE(vit.encode(pool, *px, nullptr, &out).ok());
  std::vector<float> ref_rows;
  int64_t width = 0;
  ASSERT_TRUE(vit.adapt(pool, out, &ref_rows, &width).ok());
  ASSERT_EQ(width, kBackboneEmbd);
  ASSERT_EQ(ref_rows.size(), (*rows)->data.size());
  EXPECT_LT(test::rel_l2((*rows)->data.data(), ref_rows.data(), ref_rows.size()), 1e-6);

  const Tokenizer& tok = (*model)->tokenizer();
  auto chunks = build_multimodal_prompt(tok, image_wrap_tokens(**model),
                                        "Look: <__image__> what is it?", {*rows}, true, false);
  ASSERT_TRUE(chunks.ok()) << chunks.status().to_string();
  ASSERT_EQ(chunks->size(), 3u);
  EXPECT_TRUE((*chunks)[1].rows != nullptr);

  ContextParams cp;
  cp.n_ctx = 128;
  cp.n_threads = 1;
  auto a = Context::create(**model, cp);
  auto b = Context::create(**model, cp);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(eval_chunks(**a, *chunks).ok());

  auto before = tok.encode("Look: ", tok.add_bos(), false);
  auto after = tok.encode(" what is it?", false, false);
  ASSERT_TRUE(before.ok() && after.ok());
  if (tok.add_bos() && tok.bos() >= 0) {
    ASSERT_EQ((*before)[0], tok.bos());
  }
  ASSERT_TRUE((*b)->eval(*before, false).ok());
  ASSERT_TRUE((*b)->eval_embeddings(ref_rows.data(), 16, false).ok());
  ASSERT_TRUE((*b)->eval(*after, false).ok());
  ASSERT_EQ((*a)->n_past(), (*b)->n_past());
  EXPECT_EQ((*a)->n_past(), int64_t(before->size() + 16 + after->size()));
  const int64_t n_vocab = (*model)->hparams().n_vocab;
  EXPECT_LT(test::rel_l2((*a)->last_logits(), (*b)->last_logits(), size_t(n_vocab)), 1e-5);

  // Order matters: the image before all the text is another sequence.
  auto c = Context::create(**model, cp);
  ASSERT_TRUE(c.ok());
  auto first = build_multimodal_prompt(tok, {}, "Look:  what is it?", {*rows}, true, false);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(eval_chunks(**c, *first).ok());
  EXPECT_GT(test::rel_l2((*c)->last_logits(), (*b)->last_logits(), size_t(n_vocab)), 1e-3);
}

TEST_F(MultimodalTest, PromptBuilderChunksAndMarkerCount) {
  auto model = Model::load(model_path());
  ASSERT_TRUE(model.ok());
  const Tokenizer& tok = (*model)->tokenizer();
  auto r = std::make_shared<EmbeddingRows>();
  r->n_rows = 2;
  r->n_embd = 4;
  r->data.assign(8, 0.5f);
  std::shared_ptr<const EmbeddingRows> img = r;
  EXPECT_EQ(count_image_markers("a <__image__> b <__image__>"), 2u);
  EXPECT_EQ(count_image_markers("<__image_> <__IMAGE__>"), 0u);
  // Two markers, one image: a clear error naming both counts.
  auto bad = build_multimodal_prompt(tok, {}, "a <__image__> b <__image__>", {img}, false, false);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("2 image markers"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("1 image was"), std::string::npos) << bad.status().message();
  // Wrap tokens (as Gemma 3 has) go around each image; adjacent images each get their pair.
  auto wrapped = build_multimodal_prompt(tok, {7, 9}, "<__image__><__image__>x", {img, img}, false,
                                         false);
  ASSERT_TRUE(wrapped.ok());
  ASSERT_EQ(wrapped->size(), 5u);
  EXPECT_EQ((*wrapped)[0].tokens, std::vector<int32_t>{7});
  EXPECT_EQ((*wrapped)[1].rows, img);
  EXPECT_EQ((*wrapped)[2].tokens, (std::vector<int32_t>{9, 7}));
  EXPECT_EQ((*wrapped)[3].rows, img);
  auto x = tok.encode("x", false, false);
  ASSERT_TRUE(x.ok());
  std::vector<int32_t> tail{9};
  tail.insert(tail.end(), x->begin(), x->end());
  EXPECT_EQ((*wrapped)[4].tokens, tail);
  // Width other than the backbone's: refused before anything is evaluated.
  ContextParams cp;
  cp.n_ctx = 64;
  cp.n_threads = 1;
  auto ctx = Context::create(**model, cp);
  ASSERT_TRUE(ctx.ok());
  Status st = eval_chunks(**ctx, *wrapped);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("width 4"), std::string::npos) << st.message();
  EXPECT_EQ((*ctx)->n_past(), 0);
}

TEST(EmbeddingCache, LeastRecentlyUsedWithinItsByteBound) {
  auto rows = [](float v) {
    auto r = std::make_shared<EmbeddingRows>();
    r->n_rows = 4;
    r->n_embd = 4;
    r->data.assign(16, v);  // 64 bytes
    return std::shared_ptr<const EmbeddingRows>(r);
  };
  EmbeddingCache cache(160);  // two entries fit, three do not
  EmbeddingKey k1, k2, k3;
  hash128("one", 3, 0, k1.image);
  hash128("two", 3, 0, k2.image);
  hash128("three", 5, 0, k3.image);
  EXPECT_NE(k1.image[0], k2.image[0]);
  EXPECT_EQ(cache.find(k1), nullptr);
  cache.insert(k1, rows(1));
  cache.insert(k2, rows(2));
  ASSERT_NE(cache.find(k1), nullptr);  // k1 now the most recent
  cache.insert(k3, rows(3));           // evicts k2
  EXPECT_EQ(cache.find(k2), nullptr);
  ASSERT_NE(cache.find(k3), nullptr);
  EXPECT_EQ(cache.find(k1)->data[0], 1.0f);
  EmbeddingCacheStats s = cache.stats();
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(s.bytes, 128u);
  auto big = std::make_shared<EmbeddingRows>();
  big->n_rows = 1;
  big->n_embd = 100;
  big->data.assign(100, 0.f);  // 400 bytes: larger than the bound, not kept
  EmbeddingKey k4;
  hash128("four", 4, 0, k4.image);
  cache.insert(k4, big);
  EXPECT_EQ(cache.find(k4), nullptr);
  EXPECT_EQ(cache.stats().entries, 2u);
}

// The second use of an image runs no encoder: the same rows come back, the ViT run count and
// the encode time do not move. Other bytes, or a patch mask, are other keys.
TEST_F(MultimodalTest, SameImageIsEncodedOnce) {
  auto vis = load_vision(mmproj_path());
  ASSERT_TRUE(vis.ok());
  auto enc = ImageEncoder::create(std::move(vis).value(), nullptr, mmproj_path(), kBackboneEmbd);
  ASSERT_TRUE(enc.ok());
  ImageEncoder& e = **enc;
  const std::vector<uint8_t> png = test::read_file(astro());
  const std::vector<uint8_t> bmp = test::read_file(test::source_path("tests/data/vision/astro.bmp"));
  ImageEncodeInfo info;
  auto r1 = e.encode(png.data(), png.size(), 1, nullptr, &info);
  ASSERT_TRUE(r1.ok());
  EXPECT_FALSE(info.cached);
  EXPECT_EQ(e.n_encodes(), 1u);
  const double ms = e.total_encode_ms();
  std::vector<uint8_t> copy = png;  // other memory, same bytes
  auto r2 = e.encode(copy.data(), copy.size(), 1, nullptr, &info);
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(info.cached);
  EXPECT_EQ(info.encode_ms, 0.0);
  EXPECT_EQ(r2->get(), r1->get());
  EXPECT_EQ(e.n_encodes(), 1u);
  EXPECT_EQ(e.total_encode_ms(), ms);
  auto r3 = e.encode(bmp.data(), bmp.size(), 1, nullptr, &info);
  ASSERT_TRUE(r3.ok());
  EXPECT_FALSE(info.cached);
  EXPECT_EQ(e.n_encodes(), 2u);
  vision::PatchMask mask = vision::PatchMask::keep_all(4, 4);
  mask.keep[5] = 0;
  auto r4 = e.encode(png.data(), png.size(), 1, &mask, &info);
  ASSERT_TRUE(r4.ok());
  EXPECT_FALSE(info.cached);
  EXPECT_EQ((*r4)->n_rows, 15);
  EXPECT_EQ(e.n_encodes(), 3u);
  EmbeddingCacheStats s = e.cache_stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.entries, 3u);
  // A corrupt image is an error and caches nothing.
  const std::vector<uint8_t> junk = test::read_file(test::source_path("tests/data/vision/bad_garbage.bin"));
  auto bad = e.encode(junk.data(), junk.size(), 1);
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(e.cache_stats().entries, 3u);
}

// Decoded pixels equal the same pixels given as a lossless file (PNG, and the BMP of the same
// crop), to the bit, with or without a patch mask; they are cached under their own key.
TEST_F(MultimodalTest, EncodeImageEqualsTheLosslessFile) {
  auto vis = load_vision(mmproj_path());
  ASSERT_TRUE(vis.ok());
  auto enc = ImageEncoder::create(std::move(vis).value(), nullptr, mmproj_path(), kBackboneEmbd);
  ASSERT_TRUE(enc.ok());
  ImageEncoder& e = **enc;
  const std::vector<uint8_t> png = test::read_file(astro());
  const std::vector<uint8_t> bmp = test::read_file(test::source_path("tests/data/vision/astro.bmp"));
  auto img = vision::decode_image_memory(png.data(), png.size(), {}, "astro");
  ASSERT_TRUE(img.ok()) << img.status().to_string();
  vision::PatchMask mask = vision::PatchMask::keep_all(4, 4);
  mask.keep[5] = 0;
  const vision::PatchMask* const masks[] = {nullptr, &mask};
  for (const vision::PatchMask* m : masks) {
    auto from_png = e.encode(png.data(), png.size(), 2, m);
    ASSERT_TRUE(from_png.ok()) << from_png.status().to_string();
    ImageEncodeInfo info;
    auto from_pixels = e.encode_image(*img, 2, m, &info);
    ASSERT_TRUE(from_pixels.ok()) << from_pixels.status().to_string();
    EXPECT_FALSE(info.cached);  // not the PNG's entry: pixels have their own key
    EXPECT_EQ((*from_pixels)->n_rows, (*from_png)->n_rows);
    EXPECT_EQ((*from_pixels)->n_embd, (*from_png)->n_embd);
    EXPECT_EQ((*from_pixels)->data, (*from_png)->data);
    if (m == nullptr) {
      auto bmp_img = vision::decode_image_memory(bmp.data(), bmp.size(), {}, "astro.bmp");
      ASSERT_TRUE(bmp_img.ok());
      ASSERT_TRUE(bmp_img->rgb == img->rgb);  // the fixtures hold one crop as PNG and BMP
      auto from_bmp = e.encode(bmp.data(), bmp.size(), 2);
      ASSERT_TRUE(from_bmp.ok());
      EXPECT_EQ((*from_pixels)->data, (*from_bmp)->data);
    }
    const uint64_t runs = e.n_encodes();
    vision::Image copy = *img;  // other memory, same pixels
    auto again = e.encode_image(copy, 2, m, &info);
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(info.cached);
    EXPECT_EQ(again->get(), from_pixels->get());
    EXPECT_EQ(e.n_encodes(), runs);
  }
  // The same bytes as another shape are another image.
  vision::Image reshaped = *img;
  std::swap(reshaped.width, reshaped.height);
  ImageEncodeInfo info;
  ASSERT_TRUE(e.encode_image(reshaped, 1, nullptr, &info).ok());
  EXPECT_FALSE(info.cached);
  // Bad pixels: wrong byte count, zero size, beyond the decoder's limits; nothing cached.
  const size_t entries = e.cache_stats().entries;
  vision::Image short_rgb = *img;
  short_rgb.rgb.pop_back();
  EXPECT_EQ(e.encode_image(short_rgb, 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.encode_image(vision::Image{}, 1).status().code(), StatusCode::kCorruptFile);
  vision::Image wide;
  wide.width = 70000;
  wide.height = 1;
  wide.rgb.resize(size_t(wide.width) * 3);
  EXPECT_EQ(e.encode_image(wide, 1).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(e.cache_stats().entries, entries);
}

TEST_F(MultimodalTest, EncoderWidthMustBeTheBackbones) {
  auto vis = load_vision(mmproj64_path());
  ASSERT_TRUE(vis.ok());
  auto enc = ImageEncoder::create(std::move(vis).value(), nullptr, mmproj64_path(), kBackboneEmbd);
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(enc.status().message().find("width 64"), std::string::npos) << enc.status().message();
  EXPECT_NE(enc.status().message().find("is 256"), std::string::npos) << enc.status().message();
}

// add_synthetic_vision: any projection width, and a preset without a projector gains one; the
// component inside a non-clip file (as an omni model file holds it) loads through the
// non-owning loader and encodes to that width.
void check_component(const char* preset, int64_t width, bool run_encoder) {
  gguf::GgufWriter w;
  w.add_string("general.architecture", "qwen2");  // as an omni file: the backbone's
  Status made = add_synthetic_vision(w, preset, width, DType::kQ8_0, 1);
  ASSERT_TRUE(made.ok()) << preset << " " << width << ": " << made.to_string();
  auto bytes = w.to_bytes();
  auto file = gguf::GgufFile::from_memory(bytes.data(), bytes.size());
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_TRUE(has_vision_component(**file));
  auto v = load_vision(**file);
  ASSERT_TRUE(v.ok()) << preset << ": " << v.status().to_string();
  EXPECT_EQ((*v)->file, nullptr);
  EXPECT_EQ((*v)->weights.hp.projector, vision::ProjectorType::kMlp);
  EXPECT_EQ((*v)->weights.hp.n_proj_out, width);
  if (run_encoder) {
    const int64_t size = (*v)->weights.hp.image_size;
    vision::ViTEncoder enc((*v)->weights);
    ThreadPool pool(2);
    vision::PixelTensor px;
    px.width = px.height = int(size);
    px.chw.assign(size_t(3 * size * size), 0.25f);
    vision::ViTOutput out;
    ASSERT_TRUE(enc.encode(pool, px, nullptr, &out).ok());
    std::vector<float> e;
    int64_t n = 0;
    ASSERT_TRUE(enc.adapt(pool, out, &e, &n).ok());
    EXPECT_EQ(n, width);
    const int64_t g = (*v)->weights.hp.grid();
    EXPECT_EQ(e.size(), size_t(g * g * width));
  }
  // The owning loader still wants an mmproj (general.architecture = clip).
  auto owned = load_vision(std::move(file).value());
  EXPECT_EQ(owned.status().code(), StatusCode::kUnsupported);
}

TEST(SyntheticVision, ComponentWithAnyWidthInsideAnotherFile) {
  check_component("vit-tiny", 96, true);
  check_component("vit-tiny", 200, true);  // not a multiple of the q8_0 block: f16 fallback
  gguf::GgufWriter w;
  EXPECT_EQ(add_synthetic_vision(w, "vit-huge", 64, DType::kF16, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(add_synthetic_vision(w, "vit-tiny", -1, DType::kF16, 1).code(), StatusCode::kInvalidArgument);
  gguf::GgufWriter plain;
  plain.add_string("general.architecture", "llama");
  auto bytes = plain.to_bytes();
  auto file = gguf::GgufFile::from_memory(bytes.data(), bytes.size());
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE(has_vision_component(**file));
  EXPECT_EQ(load_vision(**file).status().code(), StatusCode::kUnsupported);
}

// The real-shaped SigLIP (no projector of its own: it gains one) at two widths. ~30 s of
// random weights each (400 M parameters), so off by default:
//   --gtest_also_run_disabled_tests --gtest_filter='*SiglipComponent*'
TEST(SyntheticVision, DISABLED_SiglipComponentAnyWidth) {
  check_component("siglip-so400m-384", 640, false);
  check_component("siglip-so400m-384", 896, false);
}

// Gemma 3 wraps images in <start_of_image> ... <end_of_image>: ids from the real tokenizer,
// as the gguf package reads them.
TEST(MultimodalGemma3, WrapTokensFromTheRealVocabulary) {
  const std::string path = test::source_path("models/gemma-3-270m-q4_k_m.gguf");
  if (!test::file_exists(path)) GTEST_SKIP() << path << " is not installed (tools/setup.sh)";
  std::ifstream jf(test::source_path("tests/data/vision/gemma3_image_tokens.json"));
  const nlohmann::json ref = nlohmann::json::parse(jf);
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const ImageWrapTokens w = image_wrap_tokens(**model);
  EXPECT_EQ(w.begin, ref["start_of_image"].get<int>());
  EXPECT_EQ(w.end, ref["end_of_image"].get<int>());
  auto r = std::make_shared<EmbeddingRows>();
  r->n_rows = 1;
  r->n_embd = (*model)->hparams().n_embd;
  r->data.assign(size_t(r->n_embd), 0.f);
  auto chunks = build_multimodal_prompt((*model)->tokenizer(), w, "<__image__>", {r}, true, true);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 3u);
  EXPECT_EQ((*chunks)[0].tokens,
            (std::vector<int32_t>{ref["bos"].get<int>(), ref["start_of_image"].get<int>()}));
  EXPECT_EQ((*chunks)[2].tokens, std::vector<int32_t>{ref["end_of_image"].get<int>()});
}

// ---- C API ---------------------------------------------------------------------------------

struct CModel {
  omni_model* m = nullptr;
  omni_engine* e = nullptr;
  omni_session* s = nullptr;
  ~CModel() {
    omni_session_destroy(s);
    omni_engine_destroy(e);
    omni_model_destroy(m);
  }
};

std::vector<float> logits_of(omni_session* s) {
  const float* l = nullptr;
  int32_t n = 0;
  if (omni_session_logits(s, &l, &n) != OMNI_OK) return {};
  return std::vector<float>(l, l + n);
}

// A session on the fixture's model with its projector, one thread, greedy.
void open_with_vision(CModel* c, const std::string& model, const std::string& mmproj) {
  omni_model_params mp = omni_model_default_params();
  mp.mmproj_path = mmproj.c_str();
  ASSERT_EQ(omni_model_load(model.c_str(), &mp, &c->m), OMNI_OK) << omni_last_error();
  omni_engine_params ep = omni_engine_default_params();
  ep.n_threads = 1;
  ASSERT_EQ(omni_engine_create(&ep, &c->e), OMNI_OK);
  omni_session_params sp = omni_session_default_params();
  sp.n_ctx = 256;
  sp.temperature = 0;
  ASSERT_EQ(omni_session_create(c->e, c->m, &sp, &c->s), OMNI_OK) << omni_last_error();
}

// Pixels in (any stride) equal the same image given as its file: the file path is the reference.
TEST_F(MultimodalTest, CApiRgbPixelsEqualTheImageFile) {
  const std::vector<uint8_t> png = test::read_file(astro());
  auto img = vision::decode_image_memory(png.data(), png.size(), {}, "astro");
  ASSERT_TRUE(img.ok()) << img.status().to_string();
  CModel a, b, c;
  open_with_vision(&a, model_path(), mmproj_path());
  open_with_vision(&b, model_path(), mmproj_path());
  open_with_vision(&c, model_path(), mmproj_path());
  ASSERT_EQ(omni_session_append_text(a.s, "see", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  ASSERT_EQ(omni_session_append_image(a.s, png.data(), png.size(), 0), OMNI_OK) << omni_last_error();
  ASSERT_EQ(omni_session_append_text(b.s, "see", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  ASSERT_EQ(omni_session_append_image_rgb(b.s, img->rgb.data(), img->width, img->height,
                                          size_t(img->width) * 3, 0),
            OMNI_OK) << omni_last_error();
  // Rows 5 bytes longer than the pixels, the padding poisoned.
  const size_t stride = size_t(img->width) * 3 + 5;
  std::vector<uint8_t> padded(stride * size_t(img->height), 0xEE);
  for (int y = 0; y < img->height; ++y) {
    std::memcpy(padded.data() + size_t(y) * stride, img->pixel(0, y), size_t(img->width) * 3);
  }
  ASSERT_EQ(omni_session_append_text(c.s, "see", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  ASSERT_EQ(omni_session_append_image_rgb(c.s, padded.data(), img->width, img->height, stride, 0),
            OMNI_OK) << omni_last_error();
  EXPECT_GT(omni_session_n_tokens(a.s), 4);
  EXPECT_EQ(omni_session_n_tokens(b.s), omni_session_n_tokens(a.s));
  EXPECT_EQ(omni_session_n_tokens(c.s), omni_session_n_tokens(a.s));
  const std::vector<float> la = logits_of(a.s);
  ASSERT_FALSE(la.empty());
  EXPECT_EQ(logits_of(b.s), la);
  EXPECT_EQ(logits_of(c.s), la);
  // The C++ helper: packed rows by default.
  CModel d;
  open_with_vision(&d, model_path(), mmproj_path());
  ASSERT_EQ(omni_session_append_text(d.s, "see", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  EXPECT_FALSE(omnirt::append_image_rgb(d.s, img->rgb.data(), img->width, img->height, 0, 0));
  EXPECT_EQ(logits_of(d.s), la);
}

TEST_F(MultimodalTest, CApiRgbAndVideoBadInputLeaveTheSessionAsItWas) {
  CModel c;
  open_with_vision(&c, model_path(), mmproj_path());
  ASSERT_EQ(omni_session_append_text(c.s, "hello", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  const int32_t n0 = omni_session_n_tokens(c.s);
  const std::vector<float> l0 = logits_of(c.s);
  ASSERT_FALSE(l0.empty());
  auto unchanged = [&](const char* what) {
    EXPECT_EQ(omni_session_n_tokens(c.s), n0) << what;
    EXPECT_EQ(logits_of(c.s), l0) << what;
  };
  auto says = [](const char* text) {
    EXPECT_NE(std::string(omni_last_error()).find(text), std::string::npos) << omni_last_error();
  };
  std::vector<uint8_t> px(64 * 64 * 3, 100);
  EXPECT_EQ(omni_session_append_image_rgb(nullptr, px.data(), 64, 64, 192, 0), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_append_image_rgb(c.s, nullptr, 64, 64, 192, 0), OMNI_ERR_INVALID_ARGUMENT);
  says("rgb is NULL");
  EXPECT_EQ(omni_session_append_image_rgb(c.s, px.data(), 0, 64, 192, 0), OMNI_ERR_INVALID_ARGUMENT);
  says("width 0");
  EXPECT_EQ(omni_session_append_image_rgb(c.s, px.data(), 64, -3, 192, 0), OMNI_ERR_INVALID_ARGUMENT);
  says("height -3");
  EXPECT_EQ(omni_session_append_image_rgb(c.s, px.data(), 64, 64, 191, 0), OMNI_ERR_INVALID_ARGUMENT);
  says("stride 191");
  EXPECT_EQ(omni_session_append_image_rgb(c.s, px.data(), 64, 64, 192, 0x40u), OMNI_ERR_INVALID_ARGUMENT);
  // Beyond the limits: refused before a byte of the (here far too small) buffer is read.
  EXPECT_EQ(omni_session_append_image_rgb(c.s, px.data(), 65536, 1, 65536 * 3, 0), OMNI_ERR_OUT_OF_RANGE);
  says("65536");
  EXPECT_EQ(omni_session_append_image_rgb(c.s, px.data(), 9000, 9000, 27000, 0), OMNI_ERR_OUT_OF_RANGE);
  unchanged("rgb");
  EXPECT_EQ(omni_session_append_video_file(nullptr, "x.mkv", 1, 8, 0), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_append_video_file(c.s, nullptr, 1, 8, 0), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_append_video_file(c.s, "x.mkv", 0, 8, 0), OMNI_ERR_INVALID_ARGUMENT);
  says("fps 0");
  EXPECT_EQ(omni_session_append_video_file(c.s, "x.mkv", 1, 0, 0), OMNI_ERR_INVALID_ARGUMENT);
  says("max_frames 0");
  EXPECT_EQ(omni_session_append_video_file(c.s, "x.mkv", 1, 8, 0x40u), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_append_video_file(c.s, (*dir_ + "/none.mkv").c_str(), 1, 8, 0),
            OMNI_ERR_NOT_FOUND);
  EXPECT_EQ(omni_session_append_video_file(c.s, astro().c_str(), 1, 8, 0), OMNI_OK)
      << omni_last_error();  // a still image is a one-frame video
  EXPECT_GT(omni_session_n_tokens(c.s), n0);
  // Wrong order: a system message waiting for its user message.
  CModel w;
  open_with_vision(&w, model_path(), mmproj_path());
  if (omni_session_append_chat(w.s, "system", "be brief") == OMNI_OK) {
    EXPECT_EQ(omni_session_append_image_rgb(w.s, px.data(), 64, 64, 192, 0), OMNI_ERR_WRONG_STATE);
    EXPECT_EQ(omni_session_append_video_file(w.s, astro().c_str(), 1, 8, 0), OMNI_ERR_WRONG_STATE);
    EXPECT_EQ(omni_session_n_tokens(w.s), 0);
  }
  // No vision encoder.
  CModel n;
  ASSERT_EQ(omni_model_load(model_path().c_str(), nullptr, &n.m), OMNI_OK);
  ASSERT_EQ(omni_engine_create(nullptr, &n.e), OMNI_OK);
  ASSERT_EQ(omni_session_create(n.e, n.m, nullptr, &n.s), OMNI_OK);
  EXPECT_EQ(omni_session_append_image_rgb(n.s, px.data(), 64, 64, 192, 0), OMNI_ERR_UNSUPPORTED);
  says("no vision encoder");
  EXPECT_EQ(omni_session_append_video_file(n.s, astro().c_str(), 1, 8, 0), OMNI_ERR_UNSUPPORTED);
  EXPECT_EQ(omni_session_n_tokens(n.s), 0);
}

// The video entry equals its frames (decoded by vision/io, the reference) given as images.
TEST_F(MultimodalTest, CApiVideoFileEqualsItsFramesAsImages) {
  if (!test::have_ffmpeg_cli()) GTEST_SKIP() << "the ffmpeg command-line tool makes the clip";
  const std::string clip = *dir_ + "/capi_astro.mkv";
  ASSERT_EQ(std::system(("ffmpeg -nostdin -v error -y -loop 1 -framerate 5 -t 2 -i '" + astro() +
                         "' -vf 'hue=h=t*90' -r 5 -c:v ffv1 -pix_fmt bgr0 '" + clip + "'").c_str()), 0);
  vision::VideoOptions vo;
  vo.fps = 2;
  vo.max_frames = 3;
  auto video = vision::decode_video_file(clip, vo);
  ASSERT_TRUE(video.ok()) << video.status().to_string();
  ASSERT_EQ(video->frames.size(), 3u);
  std::vector<std::vector<uint8_t>> bmps;
  std::vector<omni_image> images;
  for (const auto& f : video->frames) bmps.push_back(vision::encode_bmp(f.image));
  for (const auto& b : bmps) images.push_back(omni_image{b.data(), b.size()});
  CModel a, b;
  open_with_vision(&a, model_path(), mmproj_path());
  open_with_vision(&b, model_path(), mmproj_path());
  ASSERT_EQ(omni_session_append_prompt(a.s, "x", images.data(), images.size(), OMNI_TOKENIZE_ADD_BOS),
            OMNI_OK) << omni_last_error();
  ASSERT_EQ(omni_session_append_video_file(b.s, clip.c_str(), 2, 3, OMNI_TOKENIZE_ADD_BOS), OMNI_OK)
      << omni_last_error();
  ASSERT_EQ(omni_session_append_text(b.s, "x", 0), OMNI_OK);
  EXPECT_EQ(omni_session_n_tokens(b.s), omni_session_n_tokens(a.s));
  const std::vector<float> la = logits_of(a.s);
  ASSERT_FALSE(la.empty());
  EXPECT_EQ(logits_of(b.s), la);
}

TEST_F(MultimodalTest, CApiBadInputLeavesTheSessionAsItWas) {
  CModel c;
  ASSERT_EQ(omni_model_load(model_path().c_str(), nullptr, &c.m), OMNI_OK) << omni_last_error();
  EXPECT_EQ(omni_model_has_vision(c.m), 0);
  omni_engine_params ep = omni_engine_default_params();
  ep.n_threads = 1;
  ASSERT_EQ(omni_engine_create(&ep, &c.e), OMNI_OK);
  omni_session_params sp = omni_session_default_params();
  sp.n_ctx = 64;
  sp.temperature = 0;
  ASSERT_EQ(omni_session_create(c.e, c.m, &sp, &c.s), OMNI_OK);
  ASSERT_EQ(omni_session_append_text(c.s, "hello", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  const int32_t n0 = omni_session_n_tokens(c.s);
  const std::vector<float> l0 = logits_of(c.s);
  ASSERT_FALSE(l0.empty());
  auto unchanged = [&] {
    EXPECT_EQ(omni_session_n_tokens(c.s), n0);
    EXPECT_EQ(logits_of(c.s), l0);
  };
  const std::vector<uint8_t> png = test::read_file(astro());

  // No vision encoder yet.
  EXPECT_EQ(omni_session_append_image(c.s, png.data(), png.size(), 0), OMNI_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(omni_last_error()).find("no vision encoder"), std::string::npos);
  unchanged();
  omni_vision_stats vs;
  vs.struct_size = sizeof vs;
  EXPECT_EQ(omni_model_vision_stats(c.m, &vs), OMNI_ERR_UNSUPPORTED);
  // Missing file, width mismatch: the model stays without vision.
  EXPECT_EQ(omni_model_load_mmproj(c.m, (*dir_ + "/none.gguf").c_str()), OMNI_ERR_NOT_FOUND);
  EXPECT_EQ(omni_model_load_mmproj(c.m, mmproj64_path().c_str()), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(omni_last_error()).find("width 64"), std::string::npos) << omni_last_error();
  EXPECT_EQ(omni_model_has_vision(c.m), 0);
  // Attached after the session was created: the session sees it.
  ASSERT_EQ(omni_model_load_mmproj(c.m, mmproj_path().c_str()), OMNI_OK) << omni_last_error();
  EXPECT_EQ(omni_model_has_vision(c.m), 1);
  EXPECT_EQ(omni_model_load_mmproj(c.m, mmproj_path().c_str()), OMNI_ERR_WRONG_STATE);

  for (const char* bad : {"bad_garbage.bin", "bad_truncated.png", "bad_zero_size.png"}) {
    const std::vector<uint8_t> b = test::read_file(test::source_path(std::string("tests/data/vision/") + bad));
    EXPECT_EQ(omni_session_append_image(c.s, b.data(), b.size(), 0), OMNI_ERR_CORRUPT_FILE) << bad;
    unchanged();
  }
  const std::vector<uint8_t> bomb = test::read_file(test::source_path("tests/data/vision/bad_bomb.png"));
  EXPECT_EQ(omni_session_append_image(c.s, bomb.data(), bomb.size(), 0), OMNI_ERR_OUT_OF_RANGE);
  unchanged();
  EXPECT_EQ(omni_session_append_image(c.s, nullptr, 0, 0), OMNI_ERR_CORRUPT_FILE);
  EXPECT_EQ(omni_session_append_image(c.s, png.data(), png.size(), 4u), OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(omni_session_append_image_file(c.s, "/nonexistent/x.png", 0), OMNI_ERR_NOT_FOUND);
  unchanged();
  // Marker count != image count; an image that does not fit (16 rows, 64 - n0 free... made
  // smaller below).
  const omni_image one{png.data(), png.size()};
  EXPECT_EQ(omni_session_append_prompt(c.s, "<__image__> and <__image__>", &one, 1, 0),
            OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(omni_last_error()).find("2 image markers"), std::string::npos);
  unchanged();
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += " a";
  EXPECT_EQ(omni_session_append_prompt(c.s, long_text.c_str(), &one, 1, 0), OMNI_ERR_OUT_OF_RANGE);
  unchanged();
  // And then it works: 16 rows more.
  ASSERT_EQ(omni_session_append_image(c.s, png.data(), png.size(), 0), OMNI_OK) << omni_last_error();
  EXPECT_EQ(omni_session_n_tokens(c.s), n0 + 16);
  EXPECT_NE(logits_of(c.s), l0);
  ASSERT_EQ(omni_model_vision_stats(c.m, &vs), OMNI_OK);
  EXPECT_EQ(vs.encodes, 1u);  // the failed prompts above encoded it once, then hit the cache
  EXPECT_GE(vs.cache_hits, 2u);
  EXPECT_EQ(vs.image_size, 32);
  EXPECT_EQ(vs.n_image_embd, kBackboneEmbd);
}

// The C API result equals the C++ path (prompt builder + eval_chunks) on the same input.
TEST_F(MultimodalTest, CApiPromptEqualsTheRuntimePath) {
  CModel c;
  omni_model_params mp = omni_model_default_params();
  const std::string mm = mmproj_path();
  mp.mmproj_path = mm.c_str();
  ASSERT_EQ(omni_model_load(model_path().c_str(), &mp, &c.m), OMNI_OK) << omni_last_error();
  ASSERT_EQ(omni_model_has_vision(c.m), 1);
  ASSERT_EQ(omni_engine_create(nullptr, &c.e), OMNI_OK);
  omni_session_params sp = omni_session_default_params();
  sp.n_ctx = 128;
  sp.n_threads = 1;
  ASSERT_EQ(omni_session_create(c.e, c.m, &sp, &c.s), OMNI_OK);
  const std::vector<uint8_t> png = test::read_file(astro());
  const omni_image img{png.data(), png.size()};
  ASSERT_EQ(omni_session_append_prompt(c.s, "Look: <__image__> what is it?", &img, 1,
                                       OMNI_TOKENIZE_ADD_BOS), OMNI_OK) << omni_last_error();
  const std::vector<float> got = logits_of(c.s);

  auto model = Model::load(model_path());
  auto vis = load_vision(mmproj_path());
  ASSERT_TRUE(model.ok() && vis.ok());
  auto enc = ImageEncoder::create(std::move(vis).value(), nullptr, mmproj_path(), kBackboneEmbd);
  ASSERT_TRUE(enc.ok());
  auto rows = (*enc)->encode(png.data(), png.size(), 1);
  ASSERT_TRUE(rows.ok());
  auto chunks = build_multimodal_prompt((*model)->tokenizer(), {}, "Look: <__image__> what is it?",
                                        {*rows}, true, false);
  ASSERT_TRUE(chunks.ok());
  ContextParams cp;
  cp.n_ctx = 128;
  cp.n_threads = 1;
  auto ctx = Context::create(**model, cp);
  ASSERT_TRUE(ctx.ok());
  ASSERT_TRUE(eval_chunks(**ctx, *chunks).ok());
  ASSERT_EQ(got.size(), size_t((*model)->hparams().n_vocab));
  EXPECT_LT(test::rel_l2(got.data(), (*ctx)->last_logits(), got.size()), 1e-6);
  EXPECT_EQ(omni_session_n_tokens(c.s), int32_t((*ctx)->n_past()));
}

// A chat message with an image on a Gemma-templated model: the image opens the user turn of
// Gemma's published format, "<start_of_turn>user\n" [image] "what?<end_of_turn>\n<start_of_turn>model\n"
// (the tiny vocabulary has no <start_of_image>, so no wrap), evaluated as one input.
TEST_F(MultimodalTest, ChatMessageWithAnImage) {
  const std::string gemma = *dir_ + "/tiny_gemma3.gguf";
  ASSERT_TRUE(create_synthetic_model({"gemma3", "tiny", DType::kF16, 7}, gemma).ok());
  CModel c;
  omni_model_params mp = omni_model_default_params();
  const std::string mm = mmproj_path();
  mp.mmproj_path = mm.c_str();
  ASSERT_EQ(omni_model_load(gemma.c_str(), &mp, &c.m), OMNI_OK) << omni_last_error();
  ASSERT_EQ(omni_engine_create(nullptr, &c.e), OMNI_OK);
  omni_session_params sp = omni_session_default_params();
  sp.n_ctx = 128;
  sp.n_threads = 1;
  ASSERT_EQ(omni_session_create(c.e, c.m, &sp, &c.s), OMNI_OK);
  const std::vector<uint8_t> png = test::read_file(astro());
  const omni_image img{png.data(), png.size()};
  EXPECT_EQ(omni_session_append_chat_images(c.s, "assistant", "x", &img, 1), OMNI_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(omni_session_append_chat_images(c.s, "user", "what?", &img, 1), OMNI_OK) << omni_last_error();
  const std::vector<float> got = logits_of(c.s);

  auto model = Model::load(gemma);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(image_wrap_tokens(**model).begin, -1);
  const Tokenizer& tok = (*model)->tokenizer();
  auto before = tok.encode("<start_of_turn>user\n", true, true);
  auto after = tok.encode("what?<end_of_turn>\n<start_of_turn>model\n", false, true);
  ASSERT_TRUE(before.ok() && after.ok());
  auto vis = load_vision(mmproj_path());
  ASSERT_TRUE(vis.ok());
  auto enc = ImageEncoder::create(std::move(vis).value(), nullptr, "ref", kBackboneEmbd);
  ASSERT_TRUE(enc.ok());
  auto rows = (*enc)->encode(png.data(), png.size(), 1);
  ASSERT_TRUE(rows.ok());
  ContextParams cp;
  cp.n_ctx = 128;
  cp.n_threads = 1;
  auto ctx = Context::create(**model, cp);
  ASSERT_TRUE(ctx.ok());
  ASSERT_TRUE((*ctx)->eval(*before, false).ok());
  ASSERT_TRUE((*ctx)->eval_embeddings((*rows)->data.data(), (*rows)->n_rows, false).ok());
  ASSERT_TRUE((*ctx)->eval(*after, false).ok());
  EXPECT_EQ(omni_session_n_tokens(c.s), int32_t((*ctx)->n_past()));
  ASSERT_EQ(got.size(), size_t((*model)->hparams().n_vocab));
  EXPECT_LT(test::rel_l2(got.data(), (*ctx)->last_logits(), got.size()), 1e-6);
  // The turn is open for generate(), as after a text message.
  EXPECT_EQ(omni_session_generate(c.s, 2, nullptr, nullptr), OMNI_OK);
}

// omnirt.hpp's helpers: a model with its projector, a prompt with an image; errors are values.
TEST_F(MultimodalTest, CppHelpers) {
  omnirt::Error err;
  auto model = omnirt::load_model_with_mmproj(model_path().c_str(), mmproj_path().c_str(), &err);
  ASSERT_TRUE(model) << err.message;
  EXPECT_EQ(omni_model_has_vision(model.get()), 1);
  auto engine = omnirt::create_engine(nullptr, &err);
  auto session = omnirt::create_session(engine.get(), model.get(), nullptr, &err);
  ASSERT_TRUE(session) << err.message;
  const std::vector<uint8_t> png = test::read_file(astro());
  EXPECT_FALSE(omnirt::append_prompt(session.get(), "see <__image__>", {omnirt::image_view(png)}));
  size_t n_text = 0;
  ASSERT_EQ(omni_tokenize(model.get(), "see ", OMNI_TOKENIZE_ADD_BOS, nullptr, 0, &n_text),
            OMNI_ERR_OUT_OF_RANGE);  // a size query
  EXPECT_EQ(omni_session_n_tokens(session.get()), int32_t(n_text) + 16);  // + 4 x 4 patch rows
  err = omnirt::append_prompt(session.get(), "<__image__>", {});
  EXPECT_EQ(err.status, OMNI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(err.message.find("1 image marker"), std::string::npos) << err.message;
  auto bad = omnirt::load_model_with_mmproj(model_path().c_str(), mmproj64_path().c_str(), &err);
  EXPECT_FALSE(bad);
  EXPECT_EQ(err.status, OMNI_ERR_INVALID_ARGUMENT);
}

// ---- CLI -----------------------------------------------------------------------------------

// Writes `src` (a model file) plus a vit-tiny vision component of the backbone's width to
// `dst`: an omni model file. Metadata values are re-encoded as GGUF stores them.
void encode_value(const gguf::Value& v, std::vector<uint8_t>* b) {
  auto put = [b](const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b->insert(b->end(), c, c + n);
  };
  using VT = gguf::ValueType;
  switch (v.type) {
    case VT::kU8: case VT::kI8: case VT::kBool: { uint8_t x = uint8_t(v.scalar.u); put(&x, 1); break; }
    case VT::kU16: case VT::kI16: { uint16_t x = uint16_t(v.scalar.u); put(&x, 2); break; }
    case VT::kU32: case VT::kI32: { uint32_t x = uint32_t(v.scalar.u); put(&x, 4); break; }
    case VT::kU64: case VT::kI64: put(&v.scalar.u, 8); break;
    case VT::kF32: { float x = float(v.scalar.f); put(&x, 4); break; }
    case VT::kF64: put(&v.scalar.f, 8); break;
    case VT::kString: { uint64_t n = v.str.size(); put(&n, 8); put(v.str.data(), v.str.size()); break; }
    case VT::kArray: {
      uint32_t et = uint32_t(v.elem_type);
      put(&et, 4);
      put(&v.n_elems, 8);
      if (v.elem_type == VT::kString) {
        for (std::string_view e : v.strings) {
          uint64_t n = e.size();
          put(&n, 8);
          put(e.data(), e.size());
        }
      } else if (!v.elements.empty()) {
        for (const gguf::Value& e : v.elements) encode_value(e, b);
      } else {
        static const size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        put(v.raw, size_t(v.n_elems) * kSize[et]);
      }
      break;
    }
  }
}

void write_omni_file(const std::string& src, const std::string& dst, uint64_t vision_seed) {
  auto f = gguf::GgufFile::open(src);
  ASSERT_TRUE(f.ok());
  gguf::GgufWriter w;
  for (const gguf::KeyValue& kv : (*f)->metadata()) {
    if (kv.key == "general.alignment") continue;
    std::vector<uint8_t> b;
    encode_value(kv.value, &b);
    w.add_raw(kv.key, kv.value.type, std::move(b));
  }
  for (const gguf::TensorInfo& t : (*f)->tensors()) {
    ASSERT_TRUE(w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data,
                             t.n_bytes).ok());
  }
  ASSERT_TRUE(add_synthetic_vision(w, "vit-tiny", kBackboneEmbd, DType::kF16, vision_seed).ok());
  ASSERT_TRUE(w.write(dst).ok());
}

TEST_F(MultimodalTest, CliGenerateWithImagesIsDeterministicAtTemperatureZero) {
  const std::string base = "generate --model " + model_path() + " --temp 0 -n 8 --threads 1 ";
  const std::string args = base + "--mmproj " + mmproj_path() + " --image " + astro() +
                           " --prompt 'Look: <__image__> what is it?'";
  CliResult a = run_cli(args, *dir_);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.err.find("images: 1, encoded 1"), std::string::npos) << a.err;
  CliResult b = run_cli(args, *dir_);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  // Without a marker the image goes first; twice the same image is encoded once.
  CliResult c = run_cli(base + "--mmproj " + mmproj_path() + " --image " + astro() + " --image " +
                        astro() + " --prompt 'two'", *dir_);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.err.find("images: 2, encoded 1"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("cache hits 1"), std::string::npos) << c.err;
  // Bad input: clear messages, exit 1.
  CliResult d = run_cli(base + "--image " + astro() + " --prompt x", *dir_);
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_NE(d.err.find("--mmproj"), std::string::npos) << d.err;
  CliResult e = run_cli(base + "--mmproj " + mmproj64_path() + " --image " + astro() + " --prompt x", *dir_);
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_NE(e.err.find("width 64"), std::string::npos) << e.err;
  CliResult f = run_cli(base + "--mmproj " + mmproj_path() + " --image " + astro() +
                        " --prompt '<__image__><__image__>'", *dir_);
  EXPECT_EQ(f.exit_code, 1);
  EXPECT_NE(f.err.find("2 image markers"), std::string::npos) << f.err;
  CliResult g = run_cli(base + "--mmproj " + mmproj_path() + " --image " +
                        test::source_path("tests/data/vision/bad_truncated.png") + " --prompt x", *dir_);
  EXPECT_EQ(g.exit_code, 1);
  EXPECT_NE(g.err.find("image 0"), std::string::npos) << g.err;
  CliResult h = run_cli(base + "--mmproj " + mmproj_path() + " --image /nonexistent.png --prompt x", *dir_);
  EXPECT_EQ(h.exit_code, 1);
  EXPECT_NE(h.err.find("/nonexistent.png"), std::string::npos) << h.err;

  // An omni model file (the same backbone and the same vision weights in one file) needs no
  // --mmproj and gives the same tokens.
  const std::string omni = *dir_ + "/omni_tiny.gguf";
  write_omni_file(model_path(), omni, 5);  // the seed of mmproj_path()
  CliResult o = run_cli("generate --model " + omni + " --temp 0 -n 8 --threads 1 --image " + astro() +
                        " --prompt 'Look: <__image__> what is it?'", *dir_);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, a.out);
  CModel c2;
  ASSERT_EQ(omni_model_load(omni.c_str(), nullptr, &c2.m), OMNI_OK) << omni_last_error();
  EXPECT_EQ(omni_model_has_vision(c2.m), 1);
  EXPECT_EQ(omni_model_load_mmproj(c2.m, mmproj_path().c_str()), OMNI_ERR_WRONG_STATE);
}

// --video: the frames of a lossless clip (made here by the ffmpeg CLI from astro.png: 2 s of
// it, then 2 s flipped, 5 fps) at 1 fps are 4 images; the tokens equal those of the same
// pictures given as --image files (the flipped one a PNG made by ffmpeg's vflip), at the
// marker and before the text.
TEST_F(MultimodalTest, CliGenerateVideoEqualsItsFramesAsImages) {
  if (std::system("ffmpeg -version >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "the ffmpeg command-line tool is not installed (makes the clip)";
  }
  const std::string clip = *dir_ + "/astro.mkv", flip = *dir_ + "/astro_flip.png";
  const std::string png = astro();
  ASSERT_EQ(std::system(("ffmpeg -nostdin -v error -y -loop 1 -framerate 5 -t 2 -i '" + png +
                         "' -loop 1 -framerate 5 -t 2 -i '" + png +
                         "' -filter_complex '[1:v]vflip[f];[0:v][f]concat=n=2:v=1[v]' -map '[v]' "
                         "-r 5 -c:v ffv1 -pix_fmt bgr0 '" + clip + "'").c_str()), 0);
  ASSERT_EQ(std::system(("ffmpeg -nostdin -v error -y -i '" + png + "' -vf vflip '" + flip + "'").c_str()), 0);
  const std::string base = "generate --model " + model_path() + " --temp 0 -n 8 --threads 1 --mmproj " +
                           mmproj_path() + " ";
  CliResult v = run_cli(base + "--video " + clip + " --fps 1 --prompt 'See <__video__> now'", *dir_);
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.err.find("video: 4 frames (80 x 56) at 1 fps, t = 0.00 .. 3.00 s"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("images: 4, encoded 2"), std::string::npos) << v.err;  // 2 distinct frames
  const std::string four = " --image " + png + " --image " + png + " --image " + flip + " --image " + flip;
  CliResult i = run_cli(base + four + " --prompt 'See <__image__><__image__><__image__><__image__> now'", *dir_);
  ASSERT_EQ(i.exit_code, 0) << i.err;
  EXPECT_EQ(v.out, i.out);
  // An --image before the video's marker, and no markers at all (images, then frames, first).
  CliResult m = run_cli(base + "--image " + flip + " --video " + clip +
                        " --max-frames 2 --prompt 'A <__image__> B <__video__> C'", *dir_);
  CliResult mi = run_cli(base + "--image " + flip + " --image " + png + " --image " + png +
                         " --prompt 'A <__image__> B <__image__><__image__> C'", *dir_);
  ASSERT_EQ(m.exit_code, 0) << m.err;
  ASSERT_EQ(mi.exit_code, 0) << mi.err;
  EXPECT_EQ(m.out, mi.out);
  CliResult n = run_cli(base + "--video " + clip + " --prompt 'plain'", *dir_);
  CliResult ni = run_cli(base + four + " --prompt 'plain'", *dir_);
  ASSERT_EQ(n.exit_code, 0) << n.err;
  EXPECT_EQ(n.out, ni.out);
  // Errors.
  CliResult e1 = run_cli(base + "--video " + clip + " --prompt '<__image__> x'", *dir_);
  EXPECT_EQ(e1.exit_code, 1);
  EXPECT_NE(e1.err.find("<__video__>"), std::string::npos) << e1.err;
  CliResult e2 = run_cli(base + "--prompt 'x <__video__>'", *dir_);
  EXPECT_EQ(e2.exit_code, 1);
  EXPECT_NE(e2.err.find("no --video"), std::string::npos) << e2.err;
  CliResult e3 = run_cli(base + "--video " + clip + " --fps 0 --prompt x", *dir_);
  EXPECT_EQ(e3.exit_code, 1);
  EXPECT_NE(e3.err.find("fps 0"), std::string::npos) << e3.err;
  CliResult e4 = run_cli(base + "--video " + png + ".missing --prompt x", *dir_);
  EXPECT_EQ(e4.exit_code, 1);
  EXPECT_NE(e4.err.find("no such file"), std::string::npos) << e4.err;
}

}  // namespace
}  // namespace omni
