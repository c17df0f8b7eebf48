// The ViT on CUDA: the encoder ops (kernels/cuda/ops_encoder.h) against scalar double-precision
// host references on awkward sizes (outputs poisoned with NaN, every element checked), and the
// whole CudaViT against the CPU ViTEncoder (vit-tiny synthetic, f32 and bf16 weights, with and
// without a patch mask, at the trained and an interpolated grid) and against transformers'
// outputs committed by tools/make_vision_fixtures.py / make_vision_pool_fixtures.py (CLIP,
// SigLIP, Gemma 3 pooling, Idefics3 merge; f32 weights, so f16 GEMM operands). Bounds
// (docs/CUDA.md): f32 ops 1e-5 relative L2; whole encoder with bf16 or f16 GEMM operands 1e-2.
// Without a device the GPU tests skip with the driver's reason.
#include <gtest/gtest.h>

#include "runtime/model/cuda_vision.h"
#include "tests/cuda_test_util.h"  // empty without CUDA

namespace omni {
namespace {

// In every build: no CUDA (built without it, or no device) is a clean kUnsupported.
TEST(CudaViTNoDevice, CreateIsUnsupported) {
#if OMNIRT_HAVE_CUDA
  OMNI_CUDA_SKIP_WITH_DEVICE();
#endif
  vision::ViTWeights w;
  auto vit = CudaViT::create(w);
  ASSERT_FALSE(vit.ok());
  EXPECT_EQ(vit.status().code(), StatusCode::kUnsupported) << vit.status().to_string();
}

}  // namespace
}  // namespace omni

#if OMNIRT_HAVE_CUDA

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/ops_encoder.h"
#include "runtime/model/vision_loader.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"
#include "vision/vit/vit_encoder.h"

namespace omni {
namespace {

using test::close_rel;
using test::DeviceArray;
using test::random_floats;

// ---- parameter checks (no device needed) -------------------------------------------------

TEST(CudaEncoderParams, RejectBadValues) {
  float f = 0;
  cuda::LayerNormParams ln{&f, &f, &f, nullptr, 1, 1, 1e-5f};
  EXPECT_TRUE(cuda::check_params(ln).ok());
  ln.n = 0;
  EXPECT_EQ(cuda::check_params(ln).code(), StatusCode::kInvalidArgument);
  ln.n = 1;
  ln.w = nullptr;
  EXPECT_FALSE(cuda::check_params(ln).ok());
  cuda::BiasActParams ba{&f, nullptr, 2, 3, cuda::EncAct::kGeluTanh};
  EXPECT_TRUE(cuda::check_params(ba).ok());
  ba.rows = -1;
  EXPECT_FALSE(cuda::check_params(ba).ok());
  cuda::AttnFullParams at{&f, &f, &f, &f, 3, 4, 8, 2, 64, 512, 128, 512, 0.125f};
  EXPECT_TRUE(cuda::check_params(at).ok());
  at.n_kv_head = 3;  // 8 % 3
  EXPECT_NE(cuda::check_params(at).message().find("n_kv_head"), std::string::npos);
  at.n_kv_head = 2;
  at.head_dim = 129;
  EXPECT_NE(cuda::check_params(at).message().find("head_dim = 129"), std::string::npos);
  at.head_dim = 64;
  at.kv_stride = 127;
  EXPECT_FALSE(cuda::check_params(at).ok());
  at.kv_stride = 128;
  at.n_kv = 0;
  EXPECT_FALSE(cuda::check_params(at).ok());
  EXPECT_EQ(cuda::launch_attn_full(at, nullptr), cudaErrorInvalidValue);
  int32_t i = 0;
  cuda::PatchGatherParams pg{&f, &i, &f, 28, 28, 14, 2, 4};
  EXPECT_TRUE(cuda::check_params(pg).ok());
  pg.n_patch = 5;
  EXPECT_FALSE(cuda::check_params(pg).ok());
  cuda::MeanRowsParams mr{&f, &i, &i, &f, 0, 4};
  EXPECT_FALSE(cuda::check_params(mr).ok());
}

// ---- ops vs host references --------------------------------------------------------------

std::vector<float> ref_layer_norm(const std::vector<float>& x, const std::vector<float>& w,
                                  const std::vector<float>* b, int64_t rows, int64_t n, float eps) {
  std::vector<float> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * n;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += xr[i];
    mean /= double(n);
    for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    const double inv = 1.0 / std::sqrt(var / double(n) + eps);
    for (int64_t i = 0; i < n; ++i)
      y[size_t(r * n + i)] = float((xr[i] - mean) * inv * w[size_t(i)] + (b ? (*b)[size_t(i)] : 0.0));
  }
  return y;
}

TEST(CudaEncoderOps, LayerNorm) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  struct Case { int64_t rows, n; bool bias, in_place; float offset; };
  for (const Case& c : {Case{7, 1152, true, false, 0.0f}, Case{5, 37, true, true, 0.0f}, Case{3, 37, false, false, 0.0f},
                        Case{2, 4304, true, false, 8.0f}, Case{1, 1, true, false, 0.0f}}) {
    SCOPED_TRACE(testing::Message() << c.rows << " x " << c.n << (c.bias ? " bias" : "") << (c.in_place ? " in place" : ""));
    std::vector<float> x = random_floats(size_t(c.rows * c.n), 11, -2.0f, 2.0f);
    for (float& v : x) v += c.offset;  // a large mean: the two-pass variance keeps it
    const std::vector<float> w = random_floats(size_t(c.n), 12, 0.5f, 1.5f), b = random_floats(size_t(c.n), 13);
    DeviceArray<float> dx(x), dw(w), db(b), dy(x.size());
    dy.poison();
    cuda::LayerNormParams p{dx.get(), c.in_place ? dx.get() : dy.get(), dw.get(), c.bias ? db.get() : nullptr,
                            c.rows, c.n, 1e-6f};
    OMNI_CUDA_OK(cuda::launch_layer_norm(p, nullptr));
    const std::vector<float> got = c.in_place ? dx.download() : dy.download();
    EXPECT_TRUE(close_rel(got, ref_layer_norm(x, w, c.bias ? &b : nullptr, c.rows, c.n, 1e-6f), 1e-5, "layer_norm"));
  }
}

double ref_act(double x, cuda::EncAct a) {
  switch (a) {
    case cuda::EncAct::kGeluErf: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case cuda::EncAct::kGeluTanh: return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case cuda::EncAct::kQuickGelu: return x / (1 + std::exp(-1.702 * x));
    case cuda::EncAct::kSilu: return x / (1 + std::exp(-x));
    case cuda::EncAct::kNone: break;
  }
  return x;
}

TEST(CudaEncoderOps, BiasAct) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t rows = 3, n = 1001;
  const std::vector<float> x = random_floats(size_t(rows * n), 21, -5.0f, 5.0f), bias = random_floats(size_t(n), 22);
  for (cuda::EncAct a : {cuda::EncAct::kNone, cuda::EncAct::kGeluErf, cuda::EncAct::kGeluTanh, cuda::EncAct::kQuickGelu,
                         cuda::EncAct::kSilu}) {
    for (bool with_bias : {false, true}) {
      SCOPED_TRACE(testing::Message() << "act " << int(a) << (with_bias ? " bias" : ""));
      DeviceArray<float> dx(x), db(bias);
      cuda::BiasActParams p{dx.get(), with_bias ? db.get() : nullptr, rows, n, a};
      OMNI_CUDA_OK(cuda::launch_bias_act(p, nullptr));
      std::vector<float> want(x.size());
      for (size_t i = 0; i < x.size(); ++i) want[i] = float(ref_act(double(x[i]) + (with_bias ? bias[i % n] : 0.0), a));
      EXPECT_TRUE(close_rel(dx.download(), want, 1e-5, "bias_act"));
    }
  }
}

struct AttnCase {
  int64_t n_q, n_kv, n_head, n_kv_head, head_dim;
  int64_t q_stride, kv_stride, out_stride;  // 0: packed
  float scale;                              // 0: 1/sqrt(head_dim)
  bool fused;                               // q, k, v as column slices of one [n, 3 * width] buffer
};

// How run_attn_case computes: the exact flash kernel, or attn_full_fast with a scores scratch
// for every head at once or for `chunk_heads` heads (chunked calls).
struct AttnPath {
  bool fast = false;
  int64_t chunk_heads = 0;  // 0: all heads
};

// Bounds: exact 1e-5; fast (TF32 operands, f32 accumulation) 5e-3 relative L2. numpy with q, k,
// P, v rounded to TF32 on these cases gives 3.4e-4..4.5e-4 (round to nearest), 1.2e-3 for the
// peaky scale-2 case, and up to 1.9e-3 if the conversion truncated instead.
constexpr double kAttnFastTol = 5e-3;

void run_attn_case(const AttnCase& c, AttnPath path = {}) {
  const int64_t hd = c.head_dim, qw = c.n_head * hd, kw = c.n_kv_head * hd;
  const float scale = c.scale > 0 ? c.scale : 1.0f / std::sqrt(float(hd));
  int64_t qs = c.q_stride ? c.q_stride : qw, ks = c.kv_stride ? c.kv_stride : kw;
  const int64_t os = c.out_stride ? c.out_stride : qw;
  std::vector<float> qbuf, kbuf, vbuf;
  int64_t k_off = 0, v_off = 0;
  if (c.fused) {  // one buffer [n, qw + 2 kw + pad]; k and v start after q
    qs = ks = qw + 2 * kw + 3;
    qbuf = random_floats(size_t(std::max(c.n_q, c.n_kv) * qs), 31, -2.0f, 2.0f);
    k_off = qw;
    v_off = qw + kw;
  } else {
    qbuf = random_floats(size_t(c.n_q * qs), 31, -2.0f, 2.0f);
    kbuf = random_floats(size_t(c.n_kv * ks), 32, -2.0f, 2.0f);
    vbuf = random_floats(size_t(c.n_kv * ks), 33, -2.0f, 2.0f);
  }
  const std::vector<float>& kb = c.fused ? qbuf : kbuf;
  const std::vector<float>& vb = c.fused ? qbuf : vbuf;
  // Reference in double; out rows only hold values in their first qw floats.
  std::vector<float> want(size_t(c.n_q * os), 0.0f);
  std::vector<bool> written(want.size(), false);
  const int64_t group = c.n_head / c.n_kv_head;
  std::vector<double> s(size_t(c.n_kv));
  for (int64_t i = 0; i < c.n_q; ++i) {
    for (int64_t h = 0; h < c.n_head; ++h) {
      const int64_t kvh = h / group;
      double mx = -INFINITY;
      for (int64_t j = 0; j < c.n_kv; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < hd; ++d)
          dot += double(qbuf[size_t(i * qs + h * hd + d)]) * kb[size_t(j * ks + k_off + kvh * hd + d)];
        s[size_t(j)] = dot * scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (double& v : s) sum += (v = std::exp(v - mx));
      for (int64_t d = 0; d < hd; ++d) {
        double o = 0;
        for (int64_t j = 0; j < c.n_kv; ++j) o += s[size_t(j)] * vb[size_t(j * ks + v_off + kvh * hd + d)];
        want[size_t(i * os + h * hd + d)] = float(o / sum);
        written[size_t(i * os + h * hd + d)] = true;
      }
    }
  }
  DeviceArray<float> dq(qbuf), dk(c.fused ? std::vector<float>{0.0f} : kbuf), dv(c.fused ? std::vector<float>{0.0f} : vbuf);
  DeviceArray<float> dout(want.size());
  dout.poison();
  cuda::AttnFullParams p;
  p.q = dq.get();
  p.k = c.fused ? dq.get() + k_off : dk.get();
  p.v = c.fused ? dq.get() + v_off : dv.get();
  p.out = dout.get();
  p.n_q = c.n_q;
  p.n_kv = c.n_kv;
  p.n_head = c.n_head;
  p.n_kv_head = c.n_kv_head;
  p.head_dim = hd;
  p.q_stride = qs;
  p.kv_stride = ks;
  p.out_stride = os;
  p.scale = scale;
  if (path.fast) {
    auto blas = cuda::BlasHandle::create(nullptr);
    ASSERT_TRUE(blas.ok()) << blas.status().to_string();
    const int64_t heads = path.chunk_heads > 0 ? path.chunk_heads : c.n_head;
    // One float more than whole heads: the chunk is still whole heads.
    DeviceArray<float> scores(size_t(heads * c.n_q * c.n_kv + 1));
    scores.poison();
    const cuda::AttnFastParams fp{p, scores.get(), int64_t(scores.size())};
    const Status st = cuda::attn_full_fast(fp, *blas);
    ASSERT_TRUE(st.ok()) << st.to_string();
  } else {
    OMNI_CUDA_OK(cuda::launch_attn_full(p, nullptr));
  }
  std::vector<float> got = dout.download();
  // Gaps between output rows (out_stride > row) must stay untouched (poison = NaN).
  std::vector<float> got_rows, want_rows;
  for (size_t e = 0; e < got.size(); ++e) {
    if (written[e]) {
      got_rows.push_back(got[e]);
      want_rows.push_back(want[e]);
    } else {
      EXPECT_TRUE(std::isnan(got[e])) << "element " << e << " outside the output rows was written";
    }
  }
  if (path.fast) {
    std::printf("  attn_fast n_q %lld n_kv %lld heads %lld/%lld hd %lld chunk %lld: relative L2 %.3g\n",
                (long long)c.n_q, (long long)c.n_kv, (long long)c.n_head, (long long)c.n_kv_head, (long long)hd,
                (long long)path.chunk_heads, test::rel_l2(got_rows.data(), want_rows.data(), want_rows.size()));
    EXPECT_TRUE(close_rel(got_rows, want_rows, kAttnFastTol, "attn_fast (TF32)"));
  } else {
    EXPECT_TRUE(close_rel(got_rows, want_rows, 1e-5, "attn_full"));
  }
}

TEST(CudaEncoderOps, AttnFullSiglip384) {  // 27 x 27 patches, 16 heads of 72
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  run_attn_case({729, 729, 16, 16, 72, 0, 0, 0, 0.0f, false});
}

const AttnCase kAttnCases[] = {
    {5, 5, 4, 4, 64, 0, 0, 0, 0.0f, false},          // fewer queries and keys than a tile
    {40, 77, 8, 2, 128, 0, 0, 0, 0.0f, false},       // GQA, head_dim at the limit, partial tiles
    {33, 33, 3, 3, 40, 0, 0, 0, 0.0f, true},         // fused qkv slices, odd stride
    {70, 65, 6, 3, 17, 0, 0, 0, 0.0f, true},         // head_dim not a multiple of 4, GQA in slices
    {33, 100, 2, 1, 64, 200, 70, 150, 2.0f, false},  // explicit strides with gaps; peaky softmax
    {1, 1, 1, 1, 1, 0, 0, 0, 0.0f, false},
    {64, 1500, 6, 6, 64, 0, 0, 0, 0.0f, false},      // Whisper-base length of keys
};

void run_attn_cases(AttnPath path) {
  for (const AttnCase& c : kAttnCases) {
    SCOPED_TRACE(testing::Message() << "n_q " << c.n_q << " n_kv " << c.n_kv << " heads " << c.n_head << "/"
                                    << c.n_kv_head << " hd " << c.head_dim << (c.fused ? " fused" : ""));
    run_attn_case(c, path);
  }
}

TEST(CudaEncoderOps, AttnFullShapes) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  run_attn_cases({});
}

// The tensor-core path (attn_full_fast) against the same double references.
TEST(CudaEncoderOps, AttnFastSiglip384) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  run_attn_case({729, 729, 16, 16, 72, 0, 0, 0, 0.0f, false}, {true, 0});
  run_attn_case({729, 729, 16, 16, 72, 0, 0, 0, 0.0f, true}, {true, 3});  // fused slices, chunks 3+..+3+1
}

TEST(CudaEncoderOps, AttnFastShapes) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  run_attn_cases({true, 0});
  run_attn_cases({true, 1});  // one head per chunk
}

TEST(CudaEncoderParams, AttnFastRejectsBadValues) {
  float f = 0;
  cuda::AttnFastParams fp{{&f, &f, &f, &f, 3, 4, 8, 2, 64, 512, 128, 512, 0.125f}, &f, 12};
  EXPECT_TRUE(cuda::check_params(fp).ok());
  fp.scores_floats = 11;  // less than one head's 3 x 4
  EXPECT_NE(cuda::check_params(fp).message().find("11 floats"), std::string::npos);
  fp.scores_floats = 12;
  fp.scores = nullptr;
  EXPECT_FALSE(cuda::check_params(fp).ok());
  fp.scores = &f;
  fp.a.q_stride = int64_t(1) << 32;
  EXPECT_NE(cuda::check_params(fp).message().find("int range"), std::string::npos);
  fp.a.q_stride = 512;
  fp.a.head_dim = 129;  // the exact path's checks apply too
  EXPECT_FALSE(cuda::check_params(fp).ok());
  EXPECT_EQ(cuda::attn_fast_scores_floats(729, 729, 16, size_t(256) << 20), 16 * 729 * 729);
  EXPECT_EQ(cuda::attn_fast_scores_floats(1500, 1500, 12, size_t(4) * 1500 * 3072), 2 * 1500 * 1500);
  EXPECT_EQ(cuda::attn_fast_scores_floats(10000, 10000, 16, size_t(256) << 20), 0);
}

// ---- whole encoder ----------------------------------------------------------------------

std::string data(const std::string& name) { return test::source_path("tests/data/vision/" + name); }

vision::PixelTensor wave_pixels(int w, int h) {
  vision::PixelTensor px;
  px.width = w;
  px.height = h;
  px.chw.resize(size_t(3) * w * h);
  for (size_t i = 0; i < px.chw.size(); ++i) px.chw[i] = std::sin(0.1f * float(i)) + 0.3f * std::cos(0.037f * float(i));
  return px;
}

// CudaViT vs ViTEncoder on one image: hidden states (encode), adapter rows from the host
// hidden (adapt) and from the device (encode_adapt).
void compare_with_cpu(const vision::ViTWeights& w, const vision::PixelTensor& px, const vision::PatchMask* mask,
                      double tol, CudaViT* gpu) {
  vision::ViTEncoder cpu(w);
  ThreadPool pool(2);
  vision::ViTOutput want;
  ASSERT_TRUE(cpu.encode(pool, px, mask, &want).ok());
  std::vector<float> want_emb;
  int64_t want_width = 0;
  ASSERT_TRUE(cpu.adapt(pool, want, &want_emb, &want_width).ok());

  vision::ViTOutput got;
  Status st = gpu->encode(px, mask, &got);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(got.n_tokens, want.n_tokens);
  EXPECT_EQ(got.class_token, want.class_token);
  EXPECT_EQ(got.patches, want.patches);
  EXPECT_EQ(got.grid_w, want.grid_w);
  EXPECT_TRUE(close_rel(got.hidden, want.hidden, tol, "hidden"));
  std::vector<float> emb;
  int64_t width = 0;
  st = gpu->adapt(want, &emb, &width);  // from the CPU's hidden states: the adapter alone
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(width, want_width);
  EXPECT_TRUE(close_rel(emb, want_emb, tol, "adapt"));
  emb.assign(3, -1.0f);
  vision::ViTOutput meta;
  st = gpu->encode_adapt(px, mask, &emb, &width, &meta);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(width, want_width);
  EXPECT_EQ(meta.patches, want.patches);
  EXPECT_TRUE(close_rel(emb, want_emb, tol, "encode_adapt"));
}

TEST(CudaViT, MatchesCpuVitTiny) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (DType t : {DType::kF32, DType::kBF16, DType::kQ8_0}) {
    SCOPED_TRACE(dtype_name(t));
    const std::string path = test::temp_path(std::string("cuda_vit_tiny_") + dtype_name(t) + ".gguf");
    ASSERT_TRUE(create_synthetic_vision({"vit-tiny", t, 5}, path).ok());
    auto model = load_vision(path);
    std::remove(path.c_str());
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    const vision::ViTWeights& w = (*model)->weights;
    auto gpu = CudaViT::create(w);
    ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
    const vision::PixelTensor px = wave_pixels(32, 32);
    {
      SCOPED_TRACE("full");
      compare_with_cpu(w, px, nullptr, 1e-2, gpu->get());
    }
    {
      SCOPED_TRACE("dropped");
      vision::PatchMask mask = vision::PatchMask::keep_all(4, 4);
      mask.drop_pixel_rect(8, 5, 3, 20, 14);
      ASSERT_LT(mask.n_kept(), 16);
      compare_with_cpu(w, px, &mask, 1e-2, gpu->get());
    }
    {
      SCOPED_TRACE("interpolated 48 x 40 (a larger grid: scratch grows)");
      compare_with_cpu(w, wave_pixels(48, 43), nullptr, 1e-2, gpu->get());
    }
    {
      SCOPED_TRACE("back to 32 x 32");
      compare_with_cpu(w, px, nullptr, 1e-2, gpu->get());
    }
    // Bad input: same meaning as the CPU encoder's.
    vision::ViTOutput out;
    vision::PatchMask none = vision::PatchMask::keep_all(4, 4);
    std::fill(none.keep.begin(), none.keep.end(), uint8_t(0));
    EXPECT_EQ((*gpu)->encode(px, &none, &out).code(), StatusCode::kInvalidArgument);
    vision::PatchMask wrong = vision::PatchMask::keep_all(3, 4);
    EXPECT_EQ((*gpu)->encode(px, &wrong, &out).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ((*gpu)->encode(wave_pixels(7, 32), nullptr, &out).code(), StatusCode::kInvalidArgument);
  }
}

// The exact attention kernel stays selectable (CudaViTOptions::exact_attention).
TEST(CudaViT, ExactAttentionOption) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const std::string path = test::temp_path("cuda_vit_tiny_exact.gguf");
  ASSERT_TRUE(create_synthetic_vision({"vit-tiny", DType::kBF16, 7}, path).ok());
  auto model = load_vision(path);
  std::remove(path.c_str());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const vision::ViTWeights& w = (*model)->weights;
  CudaViTOptions opt;
  opt.exact_attention = true;
  auto gpu = CudaViT::create(w, 0, opt);
  ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
  compare_with_cpu(w, wave_pixels(32, 32), nullptr, 1e-2, gpu->get());
}

// The profile splits the GPU time by op class and adds up to about the whole.
TEST(CudaViT, ProfileSplitsStages) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const std::string path = test::temp_path("cuda_vit_tiny_prof.gguf");
  ASSERT_TRUE(create_synthetic_vision({"vit-tiny", DType::kBF16, 6}, path).ok());
  auto model = load_vision(path);
  std::remove(path.c_str());
  ASSERT_TRUE(model.ok());
  auto gpu = CudaViT::create((*model)->weights);
  ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
  (*gpu)->set_profiling(true);
  std::vector<float> emb;
  int64_t width = 0;
  ASSERT_TRUE((*gpu)->encode_adapt(wave_pixels(32, 32), nullptr, &emb, &width).ok());
  const CudaViTProfile& p = (*gpu)->last_profile();
  EXPECT_GT(p.gemm_ms, 0.0);
  EXPECT_GT(p.attn_ms, 0.0);
  EXPECT_GT(p.other_ms, 0.0);
  EXPECT_LE(p.gemm_ms + p.attn_ms + p.other_ms, p.total_ms * 1.01 + 0.01);
  EXPECT_GT((*gpu)->last_gpu_ms(), 0.0);
}

// Against transformers (CLIPVisionModel / SiglipVisionModel + LLaVA MLP; f32 weights).
TEST(CudaViT, MatchesTransformers) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  std::ifstream f(data("manifest.json"));
  const nlohmann::json cases = nlohmann::json::parse(f)["vit"];
  for (auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    auto model = load_vision(data(c["model"]));
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    const vision::ViTWeights& w = (*model)->weights;
    auto gpu = CudaViT::create(w);
    ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
    vision::PixelTensor px;
    px.width = c["width"];
    px.height = c["height"];
    px.chw = test::read_f32(data(c["pixels"]));
    const int64_t gw = px.width / w.hp.patch_size, gh = px.height / w.hp.patch_size;
    vision::PatchMask mask = vision::PatchMask::keep_all(gw, gh);
    if (c.contains("drop"))
      for (int i : c["drop"]) mask.keep[size_t(i)] = 0;
    vision::ViTOutput out;
    Status st = (*gpu)->encode(px, c.contains("drop") ? &mask : nullptr, &out);
    ASSERT_TRUE(st.ok()) << st.to_string();
    const std::string hidden = name == "clip_interpolated"     ? "vit_clip_interp_hidden.f32"
                               : name == "siglip_interpolated" ? "vit_siglip_interp_hidden.f32"
                                                               : "vit_" + name + "_hidden.f32";
    EXPECT_TRUE(close_rel(out.hidden, test::read_f32(data(hidden)), 1e-2, "hidden"));
    if (c.contains("adapted")) {
      std::vector<float> emb;
      int64_t width = 0;
      st = (*gpu)->encode_adapt(px, c.contains("drop") ? &mask : nullptr, &emb, &width);
      ASSERT_TRUE(st.ok()) << st.to_string();
      EXPECT_EQ(width, c["adapted"][1].get<int64_t>());
      EXPECT_TRUE(close_rel(emb, test::read_f32(data("vit_" + name + "_adapted.f32")), 1e-2, "adapted"));
    }
  }
}

// Gemma 3 pooling and Idefics3 merge, full and with dropped patches, against transformers'
// projector outputs, and against the CPU encoder.
TEST(CudaViT, PoolAndMergeAdapters) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  std::ifstream f(data("pool_manifest.json"));
  const nlohmann::json c = nlohmann::json::parse(f);
  vision::PixelTensor px;
  px.width = c["width"];
  px.height = c["height"];
  px.chw = test::read_f32(data(c["pixels"]));
  for (const char* kind : {"pool", "merge"}) {
    const bool pool = std::string(kind) == "pool";
    const nlohmann::json& m = pool ? c : c["merge"];
    auto model = load_vision(data(m["model"]));
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    const vision::ViTWeights& w = (*model)->weights;
    auto gpu = CudaViT::create(w);
    ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
    const int64_t g = px.width / w.hp.patch_size;
    for (const char* which : {"full", "dropped"}) {
      SCOPED_TRACE(testing::Message() << kind << " " << which);
      const bool drop = std::string(which) == "dropped";
      vision::PatchMask mask = vision::PatchMask::keep_all(g, g);
      if (drop)
        for (int i : c["drop"]) mask.keep[size_t(i)] = 0;
      std::vector<float> emb;
      int64_t width = 0;
      Status st = (*gpu)->encode_adapt(px, drop ? &mask : nullptr, &emb, &width);
      ASSERT_TRUE(st.ok()) << st.to_string();
      const std::vector<int> shape = m[which];
      EXPECT_EQ(width, shape[1]);
      ASSERT_EQ(emb.size(), size_t(shape[0]) * size_t(shape[1]));
      EXPECT_TRUE(close_rel(emb, test::read_f32(data(std::string(kind) + "_" + which + "_adapted.f32")), 1e-2,
                            "vs transformers"));
      compare_with_cpu(w, px, drop ? &mask : nullptr, 1e-2, gpu->get());
    }
  }
}

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
