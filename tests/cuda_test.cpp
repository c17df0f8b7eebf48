// Backend consistency: every CUDA op against the scalar reference (kernels/ref) on random
// inputs of awkward sizes. Outputs are poisoned (NaN) before each run and every element is
// checked written. Bounds: ops computed in f32 from the same decoded weights 1e-5 (relative L2);
// GEMM with bf16 operands 1e-2, with f16 operands 2e-3. Without a device the GPU tests skip with the
// driver's reason; the parameter checks (CudaParams.*) run everywhere.
#if OMNIRT_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/dl_loader.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/ref/ops_ref.h"
#include "tests/cuda_test_util.h"

namespace omni {
namespace {

using test::close_rel;
using test::DeviceArray;
using test::random_floats;

const DType kAllWeightTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                                 DType::kQ5_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

// Random weights [n_out, n_in] encoded row by row in type t; `decoded` gets ref's decoding.
std::vector<uint8_t> make_weights(DType t, int64_t n_out, int64_t n_in, uint32_t seed, std::vector<float>* decoded) {
  const int64_t rb = dtype_row_bytes(t, n_in);
  std::vector<float> f = random_floats(static_cast<size_t>(n_out * n_in), seed);
  std::vector<uint8_t> bytes(static_cast<size_t>(rb * n_out));
  for (int64_t o = 0; o < n_out; ++o) ref::quantize_row(t, f.data() + o * n_in, bytes.data() + o * rb, n_in);
  if (decoded) {
    decoded->resize(f.size());
    for (int64_t o = 0; o < n_out; ++o) ref::dequantize_row(t, bytes.data() + o * rb, decoded->data() + o * n_in, n_in);
  }
  return bytes;
}

std::string case_name(DType t, int64_t n_out, int64_t n_in, int64_t n_tok) {
  return fmt("%s n_out=%lld n_in=%lld n_tok=%lld", dtype_name(t), (long long)n_out, (long long)n_in, (long long)n_tok);
}

// ---- parameter checks: no device needed --------------------------------------------------

// The run-time library search (no device needed): a library that exists nowhere is reported
// with every name tried, suffix by suffix, each directory in turn; a group that cannot all open
// is no success. libm opens from the loader's path on any Linux.
TEST(CudaParams, DlOpenFirstTriesEveryNameAndReportsEach) {
  auto none = cuda::dl_open_first({"libomnirt_no_such_lib"}, {".so.7", ".so"}, "Nothing");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kUnsupported);
  const std::string& m = none.status().message();
  EXPECT_EQ(m.rfind("Nothing not available: libomnirt_no_such_lib.so.7: ", 0), 0u) << m;
  size_t at = 0;
  for (const char* suffix : {".so.7", ".so"}) {
    for (const char* dir : {"", "/usr/local/cuda/lib64/", "/usr/local/cuda/targets/x86_64-linux/lib/",
                            "/usr/local/cuda/targets/sbsa-linux/lib/"}) {
      const std::string name = std::string(dir) + "libomnirt_no_such_lib" + suffix + ": ";
      const size_t p = m.find(name, at);
      ASSERT_NE(p, std::string::npos) << name << " missing or out of order in: " << m;
      at = p + name.size();
    }
  }
  auto half = cuda::dl_open_first({"libm", "libomnirt_no_such_lib"}, {".so.6"}, "Half");
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("libomnirt_no_such_lib.so.6: "), std::string::npos);
  auto libm = cuda::dl_open_first({"libm"}, {".so.6"}, "libm");
  ASSERT_TRUE(libm.ok()) << libm.status().to_string();
  ASSERT_EQ(libm->handles.size(), 1u);
  EXPECT_NE(libm->handles[0], nullptr);
  EXPECT_EQ(libm->paths[0], "libm.so.6");
}

TEST(CudaParams, LaunchersRejectBadShapesWithoutTouchingTheDevice) {
  float dummy[64] = {};
  cuda::MatvecParams mv;
  mv.w_type = DType::kQ4_K;
  mv.w = dummy;
  mv.x = dummy;
  mv.y = dummy + 32;
  mv.n_out = 4;
  mv.n_in = 100;  // not a multiple of 256
  mv.n_tok = 1;
  Status st = cuda::check_params(mv);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("n_in = 100"), std::string::npos) << st.message();
  EXPECT_EQ(cuda::launch_matvec(mv, nullptr), cudaErrorInvalidValue);
  mv.n_in = 256;
  mv.n_tok = 17;
  st = cuda::check_params(mv);
  EXPECT_NE(st.message().find("n_tok = 17"), std::string::npos) << st.message();
  mv.w_type = DType::kQ2_K;
  mv.n_tok = 1;
  EXPECT_EQ(cuda::check_params(mv).code(), StatusCode::kUnsupported);

  cuda::AttnDecodeParams ad;
  ad.q = dummy;
  ad.k = ad.v = reinterpret_cast<const uint16_t*>(dummy);
  ad.pos = reinterpret_cast<const int32_t*>(dummy);
  ad.out = ad.workspace = dummy;
  ad.n_head = 6;
  ad.n_kv_head = 4;  // not a divisor
  ad.head_dim = 64;
  ad.n_ctx = 16;
  st = cuda::check_params(ad);
  EXPECT_NE(st.message().find("n_kv_head = 4"), std::string::npos) << st.message();
  ad.n_kv_head = 2;
  ad.head_dim = 512;
  st = cuda::check_params(ad);
  EXPECT_NE(st.message().find("head_dim = 512"), std::string::npos) << st.message();
  EXPECT_EQ(cuda::launch_attn_decode(ad, nullptr), cudaErrorInvalidValue);

  cuda::RopeParams rp;
  rp.x = dummy;
  rp.pos = reinterpret_cast<const int32_t*>(dummy);
  rp.n_tok = rp.n_head = 1;
  rp.head_dim = 8;
  rp.rot_dim = 10;
  EXPECT_FALSE(cuda::check_params(rp).ok());
}

TEST(CudaBackend, NoDeviceIsACleanError) {
  auto n = cuda::device_count();
  if (n.ok()) {
    EXPECT_GE(*n, 1);
    auto info = cuda::device_info(0);
    ASSERT_TRUE(info.ok()) << info.status().to_string();
    std::printf("[ info ] device 0: %s, cc %d.%d, %d SMs, %.1f GiB (%.1f free), L2 %d KiB\n", info->name.c_str(),
                info->cc_major, info->cc_minor, info->sm_count, double(info->total_bytes) / (1 << 30),
                double(info->free_bytes) / (1 << 30), info->l2_bytes / 1024);
    EXPECT_EQ(cuda::device_info(*n).status().code(), StatusCode::kInvalidArgument);
  } else {
    EXPECT_EQ(n.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(n.status().message().find("no CUDA device"), std::string::npos) << n.status().message();
    EXPECT_EQ(cuda::DeviceArena::create(1024).status().code(), StatusCode::kUnsupported);
  }
}

TEST(CudaBackend, ArenaStreamsEventsPinnedBlas) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto arena = cuda::DeviceArena::create(1 << 20);
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  auto a = arena->alloc(100);
  auto b = arena->alloc(10, 512);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*a) % 256, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*b) % 512, 0u);
  EXPECT_GE(static_cast<uint8_t*>(*b) - static_cast<uint8_t*>(*a), 100);
  const size_t mark = arena->mark();
  auto too_big = arena->alloc(2 << 20);
  EXPECT_EQ(too_big.status().code(), StatusCode::kOutOfMemory);
  EXPECT_NE(too_big.status().message().find("need 2097152 bytes"), std::string::npos) << too_big.status().message();
  auto c = arena->alloc(1000);
  ASSERT_TRUE(c.ok());
  arena->rewind(mark);
  EXPECT_EQ(arena->used(), mark);

  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok()) << stream.status().to_string();
  auto pinned = cuda::PinnedBuffer::create(4096);
  ASSERT_TRUE(pinned.ok()) << pinned.status().to_string();
  for (int i = 0; i < 1024; ++i) pinned->as<float>()[i] = float(i);
  auto e0 = cuda::Event::create();
  auto e1 = cuda::Event::create();
  ASSERT_TRUE(e0.ok() && e1.ok());
  ASSERT_TRUE(e0->record(stream->get()).ok());
  OMNI_CUDA_OK(cudaMemcpyAsync(*c, pinned->data(), 4096, cudaMemcpyHostToDevice, stream->get()));
  OMNI_CUDA_OK(cudaMemsetAsync(pinned->data(), 0, 4096, stream->get()));
  OMNI_CUDA_OK(cudaMemcpyAsync(pinned->data(), *c, 4096, cudaMemcpyDeviceToHost, stream->get()));
  ASSERT_TRUE(e1->record(stream->get()).ok());
  ASSERT_TRUE(stream->synchronize().ok());
  for (int i = 0; i < 1024; ++i) ASSERT_EQ(pinned->as<float>()[i], float(i)) << i;
  auto ms = cuda::Event::elapsed_ms(*e0, *e1);
  ASSERT_TRUE(ms.ok()) << ms.status().to_string();
  EXPECT_GE(*ms, 0.0f);
  auto blas = cuda::BlasHandle::create(stream->get());
  ASSERT_TRUE(blas.ok()) << blas.status().to_string();
  EXPECT_NE(blas->blas(), nullptr);
  EXPECT_NE(blas->blas_lt(), nullptr);
}

// ---- matvec ------------------------------------------------------------------------------

struct MatvecCase {
  DType t;
  int64_t n_out, n_in;
};

std::vector<MatvecCase> matvec_cases() {
  std::vector<MatvecCase> cases;
  for (DType t : kAllWeightTypes) {
    const int64_t blk = dtype_traits(t).block_size;
    const int64_t unit = blk == 1 ? 8 : blk;
    cases.push_back({t, 37, unit * 3});        // fewer rows than a block of warps, odd count
    cases.push_back({t, 129, blk == 256 ? 1024 : 1312});  // row length not a multiple of 256 for small blocks
    cases.push_back({t, 63, 4096});  // few rows, long rows: split along the row (8 slices), odd row count
  }
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    cases.push_back({t, 33, 100});  // scalar path: n_in % 8 != 0
    cases.push_back({t, 5, 7});
  }
  return cases;
}

TEST(CudaMatvec, EveryWeightTypeMatchesReference) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  uint32_t seed = 1;
  for (const MatvecCase& c : matvec_cases()) {
    std::vector<float> wdec;
    const std::vector<uint8_t> w = make_weights(c.t, c.n_out, c.n_in, seed++, &wdec);
    DeviceArray<uint8_t> dw(w);
    for (int64_t n_tok : {1, 3, 16}) {
      const std::vector<float> x = random_floats(static_cast<size_t>(n_tok * c.n_in), seed++);
      std::vector<float> want(static_cast<size_t>(n_tok * c.n_out));
      ref::matmul(c.t, w.data(), c.n_out, c.n_in, x.data(), n_tok, want.data());
      DeviceArray<float> dx(x), dy(want.size());
      dy.poison();
      cuda::MatvecParams p;
      p.w_type = c.t;
      p.w = dw.get();
      p.x = dx.get();
      p.y = dy.get();
      p.n_out = c.n_out;
      p.n_in = c.n_in;
      p.n_tok = n_tok;
      ASSERT_TRUE(cuda::check_params(p).ok()) << cuda::check_params(p).to_string();
      OMNI_CUDA_OK(cuda::launch_matvec(p, nullptr));
      EXPECT_TRUE(close_rel(dy.download(), want, 1e-5, case_name(c.t, c.n_out, c.n_in, n_tok)));
    }
  }
}

TEST(CudaMatvec, BiasAndAccumulate) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (DType t : {DType::kQ8_0, DType::kBF16, DType::kQ6_K}) {
    const int64_t n_out = 70, n_in = 512, n_tok = 5;
    const std::vector<uint8_t> w = make_weights(t, n_out, n_in, 7, nullptr);
    const std::vector<float> x = random_floats(static_cast<size_t>(n_tok * n_in), 8);
    const std::vector<float> bias = random_floats(static_cast<size_t>(n_out), 9);
    const std::vector<float> y0 = random_floats(static_cast<size_t>(n_tok * n_out), 10);
    std::vector<float> want(y0.size());
    ref::matmul(t, w.data(), n_out, n_in, x.data(), n_tok, want.data());
    for (int64_t i = 0; i < n_tok * n_out; ++i) want[i] += bias[i % n_out] + y0[i];
    DeviceArray<uint8_t> dw(w);
    DeviceArray<float> dx(x), db(bias), dy(y0);
    cuda::MatvecParams p;
    p.w_type = t;
    p.w = dw.get();
    p.x = dx.get();
    p.y = dy.get();
    p.bias = db.get();
    p.accumulate = true;
    p.n_out = n_out;
    p.n_in = n_in;
    p.n_tok = n_tok;
    OMNI_CUDA_OK(cuda::launch_matvec(p, nullptr));
    EXPECT_TRUE(close_rel(dy.download(), want, 1e-5, std::string("bias+accumulate ") + dtype_name(t)));
  }
}

// Batched decode: 16 tokens in one launch equal each token alone within 1e-5 (2..16 tokens run on
// tensor cores with split bf16 operands, one token on CUDA cores: another rounding, ~1e-6), and a
// token's row does not depend on how many tokens share the launch (bit-equal).
TEST(CudaMatvec, BatchedEqualsSingleToken) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (DType t : {DType::kBF16, DType::kQ8_0, DType::kQ4_K}) {
    const int64_t n_out = 96, n_in = 768, n_tok = 16;
    const std::vector<uint8_t> w = make_weights(t, n_out, n_in, 11, nullptr);
    const std::vector<float> x = random_floats(static_cast<size_t>(n_tok * n_in), 12);
    DeviceArray<uint8_t> dw(w);
    DeviceArray<float> dx(x), dy(static_cast<size_t>(n_tok * n_out)), dy1(static_cast<size_t>(n_tok * n_out));
    dy.poison();
    dy1.poison();
    cuda::MatvecParams p;
    p.w_type = t;
    p.w = dw.get();
    p.n_out = n_out;
    p.n_in = n_in;
    p.x = dx.get();
    p.y = dy.get();
    p.n_tok = n_tok;
    OMNI_CUDA_OK(cuda::launch_matvec(p, nullptr));
    for (int64_t i = 0; i < n_tok; ++i) {
      p.x = dx.get() + i * n_in;
      p.y = dy1.get() + i * n_out;
      p.n_tok = 1;
      OMNI_CUDA_OK(cuda::launch_matvec(p, nullptr));
    }
    const std::vector<float> y16 = dy.download();
    EXPECT_TRUE(close_rel(y16, dy1.download(), 1e-5, std::string("batched vs single ") + dtype_name(t)));
    for (int64_t n_tok_small : {2, 9}) {
      dy.poison();
      p.x = dx.get();
      p.y = dy.get();
      p.n_tok = n_tok_small;
      OMNI_CUDA_OK(cuda::launch_matvec(p, nullptr));
      const std::vector<float> ys = dy.download();
      int64_t differ = 0;
      for (int64_t i = 0; i < n_tok_small * n_out; ++i) differ += std::memcmp(&ys[i], &y16[i], sizeof(float)) != 0;
      EXPECT_EQ(differ, 0) << dtype_name(t) << ": rows of a " << n_tok_small << "-token launch differ from the 16-token launch";
    }
  }
}

// Q8_0 / Q4_K kernels of generation 2 (the default: single-token row-span kernels, batched
// loads by 4- and 16-byte words) and generation 1 (OMNIRT_CUDA_MATVEC_V1=1, the previous
// kernels), 1 and 9 tokens, against ref::matmul on awkward shapes: one row, odd row counts, rows
// that do not start 4- or 16-byte aligned (Q8_0 with odd block counts), partial last spans, long
// rows split into 8 slices; bias and accumulate on every other case, NaN-poisoned output on the rest.
// Kernel switches of matvec.cu for a test: variant 0 generation 2 with its defaults, 1
// generation 2 with every alternative on (Q8_0 span kernel, batched Q8_0 word loads, 4 tiled
// steps in flight), 2 generation 1; restore() puts back what the process had.
struct MatvecSwitches {
  int generation = cuda::matvec_generation(), steps = cuda::matvec_tiled_steps();
  bool span = cuda::q8_0_span(), words = cuda::q8_0_mma_words();
  void restore() const {
    cuda::set_matvec_generation(generation);
    cuda::set_matvec_tiled_steps(steps);
    cuda::set_q8_0_span(span);
    cuda::set_q8_0_mma_words(words);
  }
};
void set_matvec_variant(int variant) {
  cuda::set_matvec_generation(variant == 2 ? 1 : 2);
  cuda::set_q8_0_span(variant == 1);
  cuda::set_q8_0_mma_words(variant == 1);
  cuda::set_matvec_tiled_steps(variant == 1 ? 4 : 1);
}

TEST(CudaMatvec, QuantizedGenerationsMatchReference) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const MatvecSwitches before;
  uint32_t seed = 500;
  const MatvecCase cases[] = {
      {DType::kQ8_0, 1, 32},   {DType::kQ8_0, 5, 96},      {DType::kQ8_0, 37, 32 * 17}, {DType::kQ8_0, 131, 32 * 31},
      {DType::kQ8_0, 9, 32 * 600}, {DType::kQ8_0, 260, 32 * 112}, {DType::kQ4_K, 1, 256},   {DType::kQ4_K, 3, 768},
      {DType::kQ4_K, 37, 256 * 5}, {DType::kQ4_K, 131, 256 * 14}, {DType::kQ4_K, 9, 256 * 74}, {DType::kQ4_K, 66, 256 * 9}};
  int i_case = 0;
  for (const MatvecCase& c : cases) {
    const std::vector<uint8_t> w = make_weights(c.t, c.n_out, c.n_in, seed++, nullptr);
    DeviceArray<uint8_t> dw(w);
    for (int64_t n_tok : {1, 9}) {
      const bool extras = (i_case++ % 2) == 1;
      const std::vector<float> x = random_floats(static_cast<size_t>(n_tok * c.n_in), seed++);
      const std::vector<float> bias = random_floats(static_cast<size_t>(c.n_out), seed++);
      const std::vector<float> y0 = random_floats(static_cast<size_t>(n_tok * c.n_out), seed++);
      std::vector<float> want(static_cast<size_t>(n_tok * c.n_out));
      ref::matmul(c.t, w.data(), c.n_out, c.n_in, x.data(), n_tok, want.data());
      if (extras)
        for (size_t i = 0; i < want.size(); ++i) want[i] += bias[i % static_cast<size_t>(c.n_out)] + y0[i];
      DeviceArray<float> dx(x), db(bias), dy(want.size());
      // Variants: 0 generation 2 with the defaults (Q8_0 one token: matvec_tiled, one step in
      // flight; batched Q8_0 by 2-byte loads), 1 generation 2 with the alternatives (Q8_0 span
      // kernel, batched Q8_0 word loads, 4 tiled steps), 2 generation 1.
      std::vector<float> got[3];
      for (int variant : {0, 1, 2}) {
        const int generation = variant == 2 ? 1 : 2;
        set_matvec_variant(variant);
        if (extras)
          dy.upload(y0);
        else
          dy.poison();
        cuda::MatvecParams p;
        p.w_type = c.t;
        p.w = dw.get();
        p.x = dx.get();
        p.y = dy.get();
        p.bias = extras ? db.get() : nullptr;
        p.accumulate = extras;
        p.n_out = c.n_out;
        p.n_in = c.n_in;
        p.n_tok = n_tok;
        OMNI_CUDA_OK(cuda::launch_matvec(p, nullptr));
        got[variant] = dy.download();
        EXPECT_TRUE(close_rel(got[variant], want, 1e-5,
                              case_name(c.t, c.n_out, c.n_in, n_tok) + (extras ? " bias+accumulate" : "") +
                                  " generation " + std::to_string(generation) + (variant == 1 ? " alternatives" : "")));
      }
      // Several tokens: the variants differ only in how the same bytes are loaded. One Q8_0
      // token without the span kernel: matvec_tiled, as generation 1.
      if (n_tok > 1 || c.t == DType::kQ8_0) {
        EXPECT_EQ(std::memcmp(got[0].data(), got[2].data(), got[0].size() * sizeof(float)), 0)
            << case_name(c.t, c.n_out, c.n_in, n_tok) << ": generations 1 and 2 differ";
      }
      if (n_tok > 1 || c.t == DType::kQ4_K) {
        EXPECT_EQ(std::memcmp(got[0].data(), got[1].data(), got[0].size() * sizeof(float)), 0)
            << case_name(c.t, c.n_out, c.n_in, n_tok) << ": the generation 2 alternatives differ";
      }
    }
  }
  before.restore();
}

// Decode FFN with the GLU in the matvec epilogue: launch_matvec_glu equals launch_matvecs
// (gate, up) + launch_glu bit for bit (fused kernel for plain and Q4_0/Q5_0/Q5_K/Q6_K rows on the
// vector path at generation 2; the unfused fallback elsewhere) and ref within 1e-5; NaN-poisoned
// outputs, odd row counts, 8-slice rows, both activations.
TEST(CudaMatvec, GluEpilogueEqualsMatvecsThenGlu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const MatvecSwitches before;
  uint32_t seed = 700;
  struct GluCase {
    DType t;
    int64_t n_out, n_in;
  };
  const GluCase cases[] = {{DType::kBF16, 37, 512},  {DType::kBF16, 301, 4096}, {DType::kF16, 129, 1312},
                           {DType::kF32, 33, 100},   {DType::kQ6_K, 67, 1024},  {DType::kQ5_0, 45, 4096},
                           {DType::kQ8_0, 77, 1312}, {DType::kQ4_K, 41, 2048}, {DType::kQ8_0, 45, 32 * 56},
                           {DType::kQ8_0, 67, 32 * 600}};  // Q8_0 rows of 56 and 600 blocks: 16-byte multiples
  int i_case = 0;
  for (const GluCase& c : cases) {
    const cuda::GluAct act = (i_case++ % 2) ? cuda::GluAct::kGeluTanh : cuda::GluAct::kSilu;
    const std::vector<uint8_t> wg = make_weights(c.t, c.n_out, c.n_in, seed++, nullptr);
    const std::vector<uint8_t> wu = make_weights(c.t, c.n_out, c.n_in, seed++, nullptr);
    const std::vector<float> x = random_floats(static_cast<size_t>(c.n_in), seed++);
    std::vector<float> g(static_cast<size_t>(c.n_out)), u(g.size()), want(g.size());
    ref::matmul(c.t, wg.data(), c.n_out, c.n_in, x.data(), 1, g.data());
    ref::matmul(c.t, wu.data(), c.n_out, c.n_in, x.data(), 1, u.data());
    for (size_t i = 0; i < g.size(); ++i) {
      const double v = g[i];
      const double a = act == cuda::GluAct::kSilu
                           ? v / (1.0 + std::exp(-v))
                           : 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
      want[i] = static_cast<float>(a * u[i]);
    }
    DeviceArray<uint8_t> dg(wg), du(wu);
    DeviceArray<float> dx(x), dy(g.size()), dtmp(g.size()), dy_sep(g.size()), dtmp_sep(g.size());
    const std::string name = case_name(c.t, c.n_out, c.n_in, 1) + (act == cuda::GluAct::kSilu ? " silu" : " gelu");
    std::vector<float> sep_of[3];
    // Variants as set_matvec_variant: 0 generation 2, 1 its alternatives, 2 generation 1.
    for (int variant : {0, 1, 2}) {
      const int generation = variant == 2 ? 1 : 2;
      set_matvec_variant(variant);
      const std::string vname = " generation " + std::to_string(generation) + (variant == 1 ? " alternatives" : "");
      dy.poison();
      dtmp.poison();
      dy_sep.poison();
      dtmp_sep.poison();
      cuda::MatvecGluParams p;
      p.w_type = c.t;
      p.gate = dg.get();
      p.up = du.get();
      p.x = dx.get();
      p.y = dy.get();
      p.tmp = dtmp.get();
      p.n_out = c.n_out;
      p.n_in = c.n_in;
      p.act = act;
      ASSERT_TRUE(cuda::check_params(p).ok()) << cuda::check_params(p).to_string();
      OMNI_CUDA_OK(cuda::launch_matvec_glu(p, nullptr));
      cuda::MatvecParams m[2];
      for (int i = 0; i < 2; ++i) {
        m[i].w_type = c.t;
        m[i].w = i == 0 ? dg.get() : du.get();
        m[i].x = dx.get();
        m[i].y = i == 0 ? dy_sep.get() : dtmp_sep.get();
        m[i].n_out = c.n_out;
        m[i].n_in = c.n_in;
        OMNI_CUDA_OK(cuda::launch_matvec(m[i], nullptr));
      }
      OMNI_CUDA_OK(cuda::launch_glu(cuda::GluParams{dy_sep.get(), dtmp_sep.get(), dy_sep.get(), c.n_out, act}, nullptr));
      const std::vector<float> got = dy.download(), sep = dy_sep.download();
      EXPECT_TRUE(close_rel(got, want, 1e-5, name + vname));
      int64_t differ = 0;
      for (size_t i = 0; i < got.size(); ++i) differ += std::memcmp(&got[i], &sep[i], sizeof(float)) != 0;
      EXPECT_EQ(differ, 0) << name << vname << ": fused GLU differs from matvecs + glu";
      sep_of[variant] = sep;
    }
    // Rows other than Q4_K: matvec_tiled at both generations; with 4 steps in flight (variant 1,
    // not Q8_0: span kernel there) it adds the same products in the same order.
    if (c.t != DType::kQ4_K) {
      EXPECT_EQ(std::memcmp(sep_of[2].data(), sep_of[0].data(), sep_of[2].size() * sizeof(float)), 0)
          << name << ": one-token matvec differs between generations";
    }
    if (c.t != DType::kQ4_K && c.t != DType::kQ8_0) {
      EXPECT_EQ(std::memcmp(sep_of[1].data(), sep_of[0].data(), sep_of[1].size() * sizeof(float)), 0)
          << name << ": one-token matvec differs between 1 and 4 tiled steps";
    }
    cuda::MatvecGluParams bad;
    bad.w_type = c.t;
    bad.gate = dg.get();
    bad.up = du.get();
    bad.x = dx.get();
    bad.y = dy.get();
    bad.tmp = dy.get();  // tmp must not alias y
    bad.n_out = c.n_out;
    bad.n_in = c.n_in;
    EXPECT_EQ(cuda::launch_matvec_glu(bad, nullptr), cudaErrorInvalidValue);
  }
  before.restore();
}

// q/k/v and gate/up fusion: one launch over up to 3 matrices equals each matrix's own launch bit
// for bit (same slicing per matrix), for one token (CUDA cores) and 16 (tensor cores), with biases;
// plain rows off the vector path (n_in % 8 != 0) fall back to one launch each.
TEST(CudaMatvec, FusedLaunchEqualsSeparateLaunches) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  uint32_t seed = 300;
  for (DType t : {DType::kBF16, DType::kQ8_0, DType::kQ4_K, DType::kF32}) {
    const int64_t n_in = t == DType::kF32 ? 100 : 512;
    const int64_t n_outs[3] = {300, 64, 37};
    for (int64_t n_tok : {1, 16}) {
      const std::vector<float> x = random_floats(static_cast<size_t>(n_tok * n_in), seed++);
      DeviceArray<float> dx(x);
      std::deque<DeviceArray<uint8_t>> dw;  // deque: DeviceArray does not move
      std::deque<DeviceArray<float>> db, dy, dy1;
      cuda::MatvecParams p[3];
      for (int i = 0; i < 3; ++i) {
        dw.emplace_back(make_weights(t, n_outs[i], n_in, seed++, nullptr));
        db.emplace_back(random_floats(static_cast<size_t>(n_outs[i]), seed++));
        dy.emplace_back(static_cast<size_t>(n_tok * n_outs[i]));
        dy1.emplace_back(static_cast<size_t>(n_tok * n_outs[i]));
        dy[i].poison();
        dy1[i].poison();
      }
      for (int i = 0; i < 3; ++i) {
        p[i].w_type = t;
        p[i].w = dw[i].get();
        p[i].x = dx.get();
        p[i].y = dy1[i].get();
        p[i].bias = i == 1 ? nullptr : db[i].get();
        p[i].n_out = n_outs[i];
        p[i].n_in = n_in;
        p[i].n_tok = n_tok;
        OMNI_CUDA_OK(cuda::launch_matvec(p[i], nullptr));
        p[i].y = dy[i].get();
      }
      OMNI_CUDA_OK(cuda::launch_matvecs(p, 3, nullptr));
      for (int i = 0; i < 3; ++i) {
        const std::vector<float> a = dy[i].download(), b = dy1[i].download();
        int64_t differ = 0;
        for (size_t e = 0; e < a.size(); ++e) differ += std::memcmp(&a[e], &b[e], sizeof(float)) != 0;
        EXPECT_EQ(differ, 0) << dtype_name(t) << " n_tok " << n_tok << " matrix " << i;
      }
      p[1].n_in = n_in - (t == DType::kF32 ? 4 : 32);  // widths must agree
      EXPECT_EQ(cuda::launch_matvecs(p, 3, nullptr), cudaErrorInvalidValue);
    }
  }
}

// ---- dequantize, GEMM, embedding ---------------------------------------------------------

TEST(CudaDequant, Bf16AndF16BitsEqualReferenceDecodeRounded) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  uint32_t seed = 100;
  for (const MatvecCase& c : matvec_cases()) {
    std::vector<float> wdec;
    const std::vector<uint8_t> w = make_weights(c.t, c.n_out, c.n_in, seed++, &wdec);
    DeviceArray<uint8_t> dw(w);
    DeviceArray<uint16_t> dd(wdec.size());
    for (bool to_f16 : {false, true}) {
      dd.poison();
      cuda::DequantBf16Params p{c.t, dw.get(), dd.get(), c.n_out, c.n_in, to_f16};
      OMNI_CUDA_OK(cuda::launch_dequant_bf16(p, nullptr));
      const std::vector<uint16_t> got = dd.download();
      auto want = [&](size_t i) { return to_f16 ? f32_to_f16(wdec[i]) : f32_to_bf16(wdec[i]); };
      size_t bad = 0, first = 0;
      for (size_t i = 0; i < got.size(); ++i)
        if (got[i] != want(i) && bad++ == 0) first = i;
      EXPECT_EQ(bad, 0u) << case_name(c.t, c.n_out, c.n_in, 0) << (to_f16 ? " f16" : " bf16") << ": first mismatch at "
                         << first << " got 0x" << std::hex << got[first] << " want 0x" << want(first) << std::dec
                         << " (decoded " << wdec[first] << ")";
    }
  }
}

TEST(CudaGemm, HalfPrecisionGemmWithinOperandBound) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.ok());
  auto blas = cuda::BlasHandle::create(stream->get());
  ASSERT_TRUE(blas.ok()) << blas.status().to_string();
  uint32_t seed = 200;
  for (DType t : kAllWeightTypes) {
    const int64_t blk = dtype_traits(t).block_size;
    const int64_t n_out = 70, n_in = blk == 256 ? 512 : 96, n_tok = 33;
    const double bound = t == DType::kBF16 ? 1e-2 : 2e-3;  // bf16 operands, else f16 (3 more bits)
    const std::vector<uint8_t> w = make_weights(t, n_out, n_in, seed++, nullptr);
    const std::vector<float> x = random_floats(static_cast<size_t>(n_tok * n_in), seed++);
    const std::vector<float> bias = random_floats(static_cast<size_t>(n_out), seed++);
    std::vector<float> want(static_cast<size_t>(n_tok * n_out));
    ref::matmul(t, w.data(), n_out, n_in, x.data(), n_tok, want.data());
    DeviceArray<uint8_t> dw(w);
    DeviceArray<float> dx(x), dy(want.size()), db(bias);
    DeviceArray<uint16_t> ws(static_cast<size_t>(n_out * n_in)), xs(static_cast<size_t>(n_tok * n_in));
    for (bool with_bias : {false, true}) {
      dy.poison();
      cuda::GemmParams p;
      p.w_type = t;
      p.w = dw.get();
      p.x = dx.get();
      p.y = dy.get();
      p.bias = with_bias ? db.get() : nullptr;
      p.n_out = n_out;
      p.n_in = n_in;
      p.n_tok = n_tok;
      p.w_scratch = ws.get();
      p.x_scratch = xs.get();
      const Status st = cuda::gemm_bf16(p, *blas);
      ASSERT_TRUE(st.ok()) << st.to_string();
      ASSERT_TRUE(stream->synchronize().ok());
      std::vector<float> w2 = want;
      if (with_bias)
        for (int64_t i = 0; i < n_tok * n_out; ++i) w2[i] += bias[i % n_out];
      EXPECT_TRUE(close_rel(dy.download(), w2, bound, "gemm " + case_name(t, n_out, n_in, n_tok)));
    }
    // accumulate: y = y0 + W x
    const std::vector<float> y0 = random_floats(want.size(), seed++);
    dy.upload(y0);
    cuda::GemmParams p;
    p.w_type = t;
    p.w = dw.get();
    p.x = dx.get();
    p.y = dy.get();
    p.accumulate = true;
    p.n_out = n_out;
    p.n_in = n_in;
    p.n_tok = n_tok;
    p.w_scratch = ws.get();
    p.x_scratch = xs.get();
    ASSERT_TRUE(cuda::gemm_bf16(p, *blas).ok());
    ASSERT_TRUE(stream->synchronize().ok());
    std::vector<float> w3 = want;
    for (size_t i = 0; i < w3.size(); ++i) w3[i] += y0[i];
    EXPECT_TRUE(close_rel(dy.download(), w3, bound, "gemm accumulate " + case_name(t, n_out, n_in, n_tok)));
  }
}

TEST(CudaEmbed, GatherDecodesRows) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  uint32_t seed = 300;
  for (DType t : kAllWeightTypes) {
    const int64_t blk = dtype_traits(t).block_size;
    for (int64_t n_embd : {blk == 1 ? int64_t(8) : blk, blk == 256 ? int64_t(768) : int64_t(96), blk == 1 ? int64_t(13) : 0}) {
      if (n_embd == 0) continue;
      const int64_t n_vocab = 50;
      std::vector<float> wdec;
      const std::vector<uint8_t> w = make_weights(t, n_vocab, n_embd, seed++, &wdec);
      const std::vector<int32_t> tokens = {0, 49, 7, 7, 23, 50 /* out of range: NaN row */};
      const int64_t n_tok = static_cast<int64_t>(tokens.size());
      DeviceArray<uint8_t> dw(w);
      DeviceArray<int32_t> dt(tokens);
      DeviceArray<float> dout(static_cast<size_t>(n_tok * n_embd));
      dout.poison();
      cuda::EmbedParams p;
      p.w_type = t;
      p.w = dw.get();
      p.tokens = dt.get();
      p.out = dout.get();
      p.n_vocab = n_vocab;
      p.n_embd = n_embd;
      p.n_tok = n_tok;
      p.scale = 1.5f;
      OMNI_CUDA_OK(cuda::launch_embed(p, nullptr));
      const std::vector<float> got = dout.download();
      std::vector<float> want(static_cast<size_t>((n_tok - 1) * n_embd));
      for (int64_t i = 0; i < n_tok - 1; ++i)
        for (int64_t j = 0; j < n_embd; ++j) want[i * n_embd + j] = wdec[tokens[i] * n_embd + j] * 1.5f;
      EXPECT_TRUE(close_rel(std::vector<float>(got.begin(), got.begin() + (n_tok - 1) * n_embd), want, 1e-6,
                            case_name(t, n_vocab, n_embd, n_tok)));
      for (int64_t j = 0; j < n_embd; ++j) EXPECT_TRUE(std::isnan(got[(n_tok - 1) * n_embd + j])) << "bad id row, " << j;
    }
  }
}

// ---- norm, rope, glu, add, scale, kv append ----------------------------------------------

TEST(CudaRmsNorm, PlainWeightedAndFusedResidual) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  for (int64_t n : {7, 1000, 3584, 4097}) {
    const int64_t rows = 5;
    const std::vector<float> x = random_floats(static_cast<size_t>(rows * n), 400 + n, -3.0f, 3.0f);
    const std::vector<float> r = random_floats(x.size(), 401 + n);
    const std::vector<float> w = random_floats(static_cast<size_t>(n), 402 + n, 0.5f, 1.5f);
    for (int variant = 0; variant < 3; ++variant) {  // 0: no weight, 1: weight, 2: weight + residual
      std::vector<float> sum = x, want(x.size());
      if (variant == 2) ref::add(x.data(), r.data(), sum.data(), rows * n);
      for (int64_t i = 0; i < rows; ++i)
        ref::rms_norm(sum.data() + i * n, variant ? w.data() : nullptr, want.data() + i * n, n, 1e-6f);
      DeviceArray<float> dx(x), dr(r), dw(w), dy(x.size());
      dy.poison();
      cuda::RmsNormParams p;
      p.x = dx.get();
      p.w = variant ? dw.get() : nullptr;
      p.residual = variant == 2 ? dr.get() : nullptr;
      p.x_sum_out = variant == 2 ? dx.get() : nullptr;  // in place, as the model does
      p.y = dy.get();
      p.rows = rows;
      p.n = n;
      p.eps = 1e-6f;
      OMNI_CUDA_OK(cuda::launch_rms_norm(p, nullptr));
      EXPECT_TRUE(close_rel(dy.download(), want, 1e-5, fmt("rms_norm n=%lld variant %d", (long long)n, variant)));
      if (variant == 2) {
        EXPECT_TRUE(close_rel(dx.download(), sum, 1e-7, "rms_norm residual sum"));
      }
    }
  }
}

TEST(CudaRope, NormalAndNeoxAtLargePositions) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const std::vector<int32_t> pos = {0, 1, 17, 4095, 100000};
  for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
    for (int64_t head_dim : {64, 128, 80}) {
      for (int64_t rot_dim : {head_dim, head_dim / 2}) {
        const int64_t n_tok = static_cast<int64_t>(pos.size()), n_head = 3;
        const std::vector<float> x = random_floats(static_cast<size_t>(n_tok * n_head * head_dim), 500 + head_dim);
        std::vector<float> want = x;
        for (int64_t t = 0; t < n_tok; ++t)
          ref::rope(want.data() + t * n_head * head_dim, n_head, head_dim, rot_dim, pos[t], 1e6f, 0.5f, style);
        DeviceArray<float> dx(x);
        DeviceArray<int32_t> dp(pos);
        cuda::RopeParams p;
        p.x = dx.get();
        p.pos = dp.get();
        p.n_tok = n_tok;
        p.n_head = n_head;
        p.head_dim = head_dim;
        p.rot_dim = rot_dim;
        p.freq_base = 1e6f;
        p.freq_scale = 0.5f;
        p.style = style;
        OMNI_CUDA_OK(cuda::launch_rope(p, nullptr));
        EXPECT_TRUE(close_rel(dx.download(), want, 1e-6,
                              fmt("rope style %d head_dim %lld rot_dim %lld", int(style), (long long)head_dim,
                                  (long long)rot_dim)));
      }
    }
  }
}

TEST(CudaGlu, SiluAndGeluTanhTimesUp) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t n = 18944 + 3;
  const std::vector<float> g = random_floats(static_cast<size_t>(n), 600, -6.0f, 6.0f);
  const std::vector<float> u = random_floats(static_cast<size_t>(n), 601);
  for (cuda::GluAct act : {cuda::GluAct::kSilu, cuda::GluAct::kGeluTanh}) {
    std::vector<float> want = g;
    if (act == cuda::GluAct::kSilu)
      ref::silu(want.data(), n);
    else
      ref::gelu_tanh(want.data(), n);
    ref::mul(want.data(), u.data(), want.data(), n);
    DeviceArray<float> dg(g), du(u), dout(static_cast<size_t>(n));
    dout.poison();
    cuda::GluParams p{dg.get(), du.get(), dout.get(), n, act};
    OMNI_CUDA_OK(cuda::launch_glu(p, nullptr));
    EXPECT_TRUE(close_rel(dout.download(), want, 1e-5, fmt("glu act %d", int(act))));
  }
}

TEST(CudaElementwise, AddScaleSoftcap) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t n = 1001;
  const std::vector<float> a = random_floats(static_cast<size_t>(n), 700, -50.0f, 50.0f);
  const std::vector<float> b = random_floats(static_cast<size_t>(n), 701);
  std::vector<float> sum(a.size()), scaled = a, capped(a.size());
  ref::add(a.data(), b.data(), sum.data(), n);
  ref::scale(scaled.data(), 0.25f, n);
  for (int64_t i = 0; i < n; ++i) capped[i] = static_cast<float>(30.0 * std::tanh(a[i] / 30.0));
  DeviceArray<float> da(a), db(b), dy(static_cast<size_t>(n));
  dy.poison();
  OMNI_CUDA_OK(cuda::launch_add({da.get(), db.get(), dy.get(), n}, nullptr));
  EXPECT_TRUE(close_rel(dy.download(), sum, 1e-7, "add"));
  dy.upload(a);
  OMNI_CUDA_OK(cuda::launch_scale({dy.get(), n, 0.25f, 0.0f}, nullptr));
  EXPECT_TRUE(close_rel(dy.download(), scaled, 1e-7, "scale"));
  dy.upload(a);
  OMNI_CUDA_OK(cuda::launch_scale({dy.get(), n, 1.0f, 30.0f}, nullptr));
  EXPECT_TRUE(close_rel(dy.download(), capped, 1e-6, "softcap"));
}

TEST(CudaKvAppend, WritesF16RowsAtPositions) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t row = 2 * 64 + 6, n_ctx = 40, n_tok = 3;
  const std::vector<float> src = random_floats(static_cast<size_t>(n_tok * row), 800, -70000.0f, 70000.0f);
  for (int64_t seq_stride : {int64_t(0), n_ctx * row}) {  // one sequence / one per token
    const std::vector<int32_t> pos = seq_stride ? std::vector<int32_t>{5, 0, 39} : std::vector<int32_t>{10, 11, 12};
    const int64_t n_seq = seq_stride ? n_tok : 1;
    DeviceArray<float> ds(src);
    DeviceArray<int32_t> dp(pos);
    DeviceArray<uint16_t> dc(static_cast<size_t>(n_seq * n_ctx * row));
    dc.poison();
    cuda::KvAppendParams p{ds.get(), dc.get(), dp.get(), n_tok, row, seq_stride, n_ctx};
    OMNI_CUDA_OK(cuda::launch_kv_append(p, nullptr));
    const std::vector<uint16_t> got = dc.download();
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t i = 0; i < row; ++i) {
        const size_t at = static_cast<size_t>(t * seq_stride + pos[t] * row + i);
        ASSERT_EQ(got[at], f32_to_f16(src[t * row + i])) << "token " << t << " elem " << i << " stride " << seq_stride;
      }
    size_t untouched = 0;
    for (uint16_t h : got) untouched += h == 0xFFFF;
    EXPECT_EQ(untouched, got.size() - static_cast<size_t>(n_tok * row)) << "kv_append wrote outside its rows";
  }
}

// The fused decode-step op: q and k rotated as ref::rope, the rotated k and v in the caches as
// f16 at their positions (out-of-range positions skipped), nothing else written.
TEST(CudaRopeKvAppend, RotatesQKAndAppendsF16Rows) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t n_tok = 3, n_head = 4, n_kv_head = 2, n_ctx = 40;
  uint32_t seed = 900;
  for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox})
    for (auto [head_dim, rot_dim] : {std::pair<int64_t, int64_t>{64, 64}, {80, 32}, {128, 0}})
      for (bool batched : {false, true}) {
        const int64_t row = n_kv_head * head_dim, seq_stride = batched ? n_ctx * row : 0;
        const std::vector<int32_t> pos = batched ? std::vector<int32_t>{5, 41, 39} : std::vector<int32_t>{10, 11, 12};
        const std::vector<float> q = random_floats(static_cast<size_t>(n_tok * n_head * head_dim), seed++);
        const std::vector<float> k = random_floats(static_cast<size_t>(n_tok * row), seed++);
        const std::vector<float> v = random_floats(static_cast<size_t>(n_tok * row), seed++);
        std::vector<float> want_q = q, want_k = k;
        for (int64_t t = 0; t < n_tok; ++t) {
          ref::rope(want_q.data() + t * n_head * head_dim, n_head, head_dim, rot_dim, pos[t], 1e6f, 0.5f, style);
          ref::rope(want_k.data() + t * row, n_kv_head, head_dim, rot_dim, pos[t], 1e6f, 0.5f, style);
        }
        const int64_t n_seq = batched ? n_tok : 1;
        DeviceArray<float> dq(q), dk(k), dv(v);
        DeviceArray<int32_t> dp(pos);
        DeviceArray<uint16_t> kc(static_cast<size_t>(n_seq * n_ctx * row)), vc(static_cast<size_t>(n_seq * n_ctx * row));
        kc.poison();
        vc.poison();
        cuda::RopeKvAppendParams p;
        p.q = dq.get();
        p.k = dk.get();
        p.v = dv.get();
        p.k_cache = kc.get();
        p.v_cache = vc.get();
        p.pos = dp.get();
        p.n_tok = n_tok;
        p.n_head = n_head;
        p.n_kv_head = n_kv_head;
        p.head_dim = head_dim;
        p.rot_dim = rot_dim;
        p.freq_base = 1e6f;
        p.freq_scale = 0.5f;
        p.style = style;
        p.seq_stride = seq_stride;
        p.n_ctx = n_ctx;
        ASSERT_TRUE(cuda::check_params(p).ok()) << cuda::check_params(p).to_string();
        OMNI_CUDA_OK(cuda::launch_rope_kv_append(p, nullptr));
        const std::string what = fmt("style %d head_dim %lld rot_dim %lld batched %d", int(style), (long long)head_dim,
                                     (long long)rot_dim, int(batched));
        const std::vector<float> got_k = dk.download();
        EXPECT_TRUE(close_rel(dq.download(), want_q, 1e-6, "q " + what));
        EXPECT_TRUE(close_rel(got_k, want_k, 1e-6, "k " + what));
        const std::vector<uint16_t> gk = kc.download(), gv = vc.download();
        size_t written = 0;
        for (int64_t t = 0; t < n_tok; ++t) {
          if (pos[t] >= n_ctx) continue;
          written += static_cast<size_t>(row);
          for (int64_t i = 0; i < row; ++i) {
            const size_t at = static_cast<size_t>(t * seq_stride + pos[t] * row + i);
            ASSERT_EQ(gk[at], f32_to_f16(got_k[t * row + i])) << what << " k token " << t << " elem " << i;
            ASSERT_EQ(gv[at], f32_to_f16(v[t * row + i])) << what << " v token " << t << " elem " << i;
          }
        }
        size_t untouched_k = 0, untouched_v = 0;
        for (uint16_t h : gk) untouched_k += h == 0xFFFF;
        for (uint16_t h : gv) untouched_v += h == 0xFFFF;
        EXPECT_EQ(untouched_k, gk.size() - written) << what << ": k cache written outside its rows";
        EXPECT_EQ(untouched_v, gv.size() - written) << what << ": v cache written outside its rows";
      }
}

// ---- attention ---------------------------------------------------------------------------

std::vector<uint16_t> random_f16(size_t n, uint32_t seed) {
  const std::vector<float> f = random_floats(n, seed);
  std::vector<uint16_t> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = f32_to_f16(f[i]);
  return h;
}

struct AttnCase {
  int64_t n_head, n_kv_head, head_dim, window;
  float softcap;
};

TEST(CudaAttention, DecodeSplitsMatchReferencePerSequence) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t n_ctx = 1100;  // 5 splits of 256
  const std::vector<int32_t> pos = {0, 300, 1099, 255, 256};
  const int64_t n_seq = static_cast<int64_t>(pos.size());
  for (const AttnCase& c : {AttnCase{8, 2, 64, 0, 0.0f}, AttnCase{4, 4, 128, 0, 0.0f}, AttnCase{6, 2, 80, 100, 0.0f},
                            AttnCase{2, 1, 256, 0, 20.0f}}) {
    const int64_t kv_row = c.n_kv_head * c.head_dim, seq_stride = n_ctx * kv_row;
    const std::vector<float> q = random_floats(static_cast<size_t>(n_seq * c.n_head * c.head_dim), 900);
    const std::vector<uint16_t> k = random_f16(static_cast<size_t>(n_seq * seq_stride), 901);
    const std::vector<uint16_t> v = random_f16(k.size(), 902);
    std::vector<float> want(q.size());
    for (int64_t s = 0; s < n_seq; ++s) {
      AttentionParams ap;
      ap.n_q = 1;
      ap.n_head = c.n_head;
      ap.n_kv_head = c.n_kv_head;
      ap.head_dim = c.head_dim;
      ap.pos0 = pos[s];
      ap.window = c.window;
      ap.scale = 1.0f / std::sqrt(float(c.head_dim)) * 3.0f;  // peaky enough that the max matters
      ap.softcap = c.softcap;
      ap.kv_type = DType::kF16;
      ref::attention(ap, q.data() + s * c.n_head * c.head_dim, k.data() + s * seq_stride, v.data() + s * seq_stride,
                     want.data() + s * c.n_head * c.head_dim);
    }
    DeviceArray<float> dq(q), dout(q.size());
    DeviceArray<uint16_t> dk(k), dv(v);
    DeviceArray<int32_t> dp(pos);
    DeviceArray<float> ws(static_cast<size_t>(cuda::attn_decode_workspace_floats(n_seq, c.n_head, c.head_dim, n_ctx)));
    dout.poison();
    ws.poison();
    cuda::AttnDecodeParams p;
    p.q = dq.get();
    p.k = dk.get();
    p.v = dv.get();
    p.pos = dp.get();
    p.out = dout.get();
    p.workspace = ws.get();
    p.n_seq = n_seq;
    p.n_head = c.n_head;
    p.n_kv_head = c.n_kv_head;
    p.head_dim = c.head_dim;
    p.n_ctx = n_ctx;
    p.seq_stride = seq_stride;
    p.window = c.window;
    p.scale = 1.0f / std::sqrt(float(c.head_dim)) * 3.0f;
    p.softcap = c.softcap;
    ASSERT_TRUE(cuda::check_params(p).ok()) << cuda::check_params(p).to_string();
    OMNI_CUDA_OK(cuda::launch_attn_decode(p, nullptr));
    EXPECT_TRUE(close_rel(dout.download(), want, 1e-5,
                          fmt("attn decode heads %lld/%lld hd %lld window %lld softcap %g", (long long)c.n_head,
                              (long long)c.n_kv_head, (long long)c.head_dim, (long long)c.window, double(c.softcap))));
  }
}

TEST(CudaAttention, PrefillTiledMatchesReference) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  // The f32 tiled kernel at its 1e-5 bound; the tensor-core default has its own test
  // (cuda_attention_prefill_test.cpp).
  struct Restore {
    cuda::PrefillAttnKernel prev = cuda::prefill_attn_kernel();
    ~Restore() { cuda::set_prefill_attn_kernel(prev); }
  } restore;
  cuda::set_prefill_attn_kernel(cuda::PrefillAttnKernel::kTiled);
  for (const AttnCase& c : {AttnCase{4, 2, 64, 0, 0.0f}, AttnCase{8, 1, 128, 0, 0.0f}, AttnCase{4, 2, 80, 16, 0.0f},
                            AttnCase{2, 2, 256, 0, 30.0f}}) {
    for (int64_t pos0 : {int64_t(0), int64_t(20)}) {
      const int64_t n_q = 37, n_kv = pos0 + n_q, kv_row = c.n_kv_head * c.head_dim;
      const std::vector<float> q = random_floats(static_cast<size_t>(n_q * c.n_head * c.head_dim), 1000);
      const std::vector<uint16_t> k = random_f16(static_cast<size_t>(n_kv * kv_row), 1001);
      const std::vector<uint16_t> v = random_f16(k.size(), 1002);
      std::vector<int32_t> pos(static_cast<size_t>(n_q));
      for (int64_t i = 0; i < n_q; ++i) pos[i] = static_cast<int32_t>(pos0 + i);
      AttentionParams ap;
      ap.n_q = n_q;
      ap.n_head = c.n_head;
      ap.n_kv_head = c.n_kv_head;
      ap.head_dim = c.head_dim;
      ap.pos0 = pos0;
      ap.window = c.window;
      ap.scale = 2.0f / std::sqrt(float(c.head_dim));
      ap.softcap = c.softcap;
      ap.kv_type = DType::kF16;
      std::vector<float> want(q.size());
      ref::attention(ap, q.data(), k.data(), v.data(), want.data());
      DeviceArray<float> dq(q), dout(q.size());
      DeviceArray<uint16_t> dk(k), dv(v);
      DeviceArray<int32_t> dp(pos);
      dout.poison();
      cuda::AttnPrefillParams p;
      p.q = dq.get();
      p.k = dk.get();
      p.v = dv.get();
      p.pos = dp.get();
      p.out = dout.get();
      p.n_q = n_q;
      p.n_head = c.n_head;
      p.n_kv_head = c.n_kv_head;
      p.head_dim = c.head_dim;
      p.window = c.window;
      p.scale = ap.scale;
      p.softcap = c.softcap;
      OMNI_CUDA_OK(cuda::launch_attn_prefill(p, nullptr));
      EXPECT_TRUE(close_rel(dout.download(), want, 1e-5,
                            fmt("attn prefill heads %lld/%lld hd %lld window %lld softcap %g pos0 %lld",
                                (long long)c.n_head, (long long)c.n_kv_head, (long long)c.head_dim, (long long)c.window,
                                double(c.softcap), (long long)pos0)));
    }
  }
}

// ---- sampling ----------------------------------------------------------------------------

TEST(CudaSampling, ArgmaxLowestIndexOfMaxIgnoresNaN) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t n = 152064 + 7, rows = 3;
  std::vector<float> x = random_floats(static_cast<size_t>(rows * n), 1100, -10.0f, 10.0f);
  x[0 * n + 5] = std::nanf("");
  x[0 * n + 90000] = 50.0f;                 // row 0: single max
  x[1 * n + 777] = 40.0f;                   // row 1: tie, lowest index wins
  x[1 * n + 150000] = 40.0f;
  x[2 * n + n - 1] = 30.0f;                 // row 2: max at the last element
  x[2 * n + 3] = std::nanf("");
  DeviceArray<float> dx(x);
  DeviceArray<int32_t> dout(static_cast<size_t>(rows));
  dout.poison();
  OMNI_CUDA_OK(cuda::launch_argmax({dx.get(), dout.get(), rows, n}, nullptr));
  const std::vector<int32_t> got = dout.download();
  EXPECT_EQ(got[0], 90000);
  EXPECT_EQ(got[1], 777);
  EXPECT_EQ(got[2], n - 1);
}

// Host version of launch_sample's documented rule, in double; returns the kept candidates
// (vocab ids, best first) and their cumulative probabilities after temperature.
void host_sample_set(const std::vector<float>& logits, int32_t top_k, float top_p, float min_p, float temp,
                     std::vector<int32_t>* ids, std::vector<double>* cdf) {
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  const int k = top_k > 0 && top_k < cuda::kSampleMaxTopK ? top_k : cuda::kSampleMaxTopK;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  order.resize(static_cast<size_t>(k));
  const double vmax = logits[order[0]];
  size_t kept = order.size();
  if (top_p < 1.0f) {
    double sum = 0, cum = 0;
    for (int32_t id : order) sum += std::exp(logits[id] - vmax);
    for (size_t r = 0; r < order.size(); ++r) {
      cum += std::exp(logits[order[r]] - vmax) / sum;
      if (cum >= top_p) {
        kept = r + 1;
        break;
      }
    }
  }
  if (min_p > 0.0f) {
    size_t r = 1;
    while (r < kept && logits[order[r]] >= vmax + std::log(min_p)) ++r;
    kept = r;
  }
  order.resize(kept);
  double sum = 0;
  for (int32_t id : order) sum += std::exp((logits[id] - vmax) / temp);
  ids->assign(order.begin(), order.end());
  cdf->clear();
  double cum = 0;
  for (int32_t id : order) cdf->push_back(cum += std::exp((logits[id] - vmax) / temp) / sum);
}

TEST(CudaSampling, TopKTopPMinPTemperatureFollowTheInverseCdf) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  const int64_t n = 50000;
  const std::vector<float> logits = random_floats(static_cast<size_t>(n), 1200, -8.0f, 8.0f);
  struct Cfg {
    int32_t k;
    float p, min_p, temp;
  };
  const std::vector<float> us = {0.0f, 0.1f, 0.37f, 0.5f, 0.81f, 0.999f};
  for (const Cfg& cfg : {Cfg{40, 1.0f, 0.0f, 1.0f}, Cfg{40, 0.9f, 0.0f, 0.7f}, Cfg{0, 0.95f, 0.05f, 0.8f},
                         Cfg{300, 1.0f, 0.0f, 2.0f}, Cfg{5, 0.5f, 0.0f, 1.5f}}) {
    std::vector<int32_t> ids;
    std::vector<double> cdf;
    host_sample_set(logits, cfg.k, cfg.p, cfg.min_p, cfg.temp, &ids, &cdf);
    const int64_t rows = static_cast<int64_t>(us.size());
    std::vector<float> all;
    for (int64_t r = 0; r < rows; ++r) all.insert(all.end(), logits.begin(), logits.end());
    DeviceArray<float> dl(all), du(us);
    DeviceArray<float> ws(static_cast<size_t>(cuda::sample_workspace_floats(rows, n)));
    DeviceArray<int32_t> dout(static_cast<size_t>(rows));
    dout.poison();
    cuda::SampleParams p;
    p.logits = dl.get();
    p.uniform = du.get();
    p.out = dout.get();
    p.workspace = ws.get();
    p.rows = rows;
    p.n = n;
    p.top_k = cfg.k;
    p.top_p = cfg.p;
    p.min_p = cfg.min_p;
    p.temperature = cfg.temp;
    OMNI_CUDA_OK(cuda::launch_sample(p, nullptr));
    const std::vector<int32_t> got = dout.download();
    for (int64_t r = 0; r < rows; ++r) {
      const auto it = std::find(ids.begin(), ids.end(), got[r]);
      ASSERT_NE(it, ids.end()) << "k=" << cfg.k << " p=" << cfg.p << " u=" << us[r] << ": token " << got[r]
                               << " is not among the " << ids.size() << " kept candidates";
      const size_t rank = static_cast<size_t>(it - ids.begin());
      const double lo = rank == 0 ? 0.0 : cdf[rank - 1], hi = cdf[rank];
      EXPECT_TRUE(us[r] >= lo - 1e-4 && us[r] <= hi + 1e-4)
          << "k=" << cfg.k << " p=" << cfg.p << " u=" << us[r] << ": picked rank " << rank << " covering [" << lo
          << ", " << hi << ")";
    }
  }
  // temperature <= 0: argmax
  DeviceArray<float> dl(logits), du(std::vector<float>{0.5f});
  DeviceArray<float> ws(static_cast<size_t>(cuda::sample_workspace_floats(1, n)));
  DeviceArray<int32_t> dout(1);
  cuda::SampleParams p;
  p.logits = dl.get();
  p.uniform = du.get();
  p.out = dout.get();
  p.workspace = ws.get();
  p.n = n;
  p.temperature = 0.0f;
  OMNI_CUDA_OK(cuda::launch_sample(p, nullptr));
  EXPECT_EQ(dout.download()[0], static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
}

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
