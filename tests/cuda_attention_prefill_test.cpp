// Prefill attention (launch_attn_prefill): the flash kernel (tensor cores, f16 operands) and the
// tiled kernel (CUDA cores, f32) against ref::attention on awkward sizes: 1..333 queries, chunks
// at position 0 and after 50 cached positions, positions out of order, GQA 1:1 / 4:1 / 7:1,
// head_dim 16..256 (and 72, which must take the tiled kernel), window 0 / 32, softcap 0 / 50.
// The reference runs one query at a time at its own position, so it knows nothing of blocks or
// tiles. Outputs are poisoned (NaN) before each run; every element of the n_q rows is checked,
// and a block's worth of rows after them must stay poisoned. Bounds (relative L2): tiled 1e-5;
// flash 2e-3 (f16 rounding of q * scale and of the softmax weights; a host emulation of exactly
// that rounding gives 1.4e-4..6.1e-4 on these cases, docs/CUDA.md).
#if OMNIRT_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/ref/ops_ref.h"
#include "tests/cuda_test_util.h"

namespace omni {
namespace {

using test::DeviceArray;
using test::random_floats;

constexpr int kBlockRows = 64;  // queries per flash block: the padding checked untouched

struct PrefillCase {
  int64_t n_q, pos0, n_head, n_kv_head, head_dim, window;
  float softcap;
  float scale_mult;   // scale = scale_mult / sqrt(head_dim); 30 makes softcap 50 bite
  bool shuffled;      // positions pos0 .. pos0 + n_q - 1 in a random order
};

std::vector<uint16_t> random_f16(size_t n, uint32_t seed) {
  const std::vector<float> f = random_floats(n, seed);
  std::vector<uint16_t> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = f32_to_f16(f[i]);
  return h;
}

std::string describe(const PrefillCase& c) {
  return fmt("n_q %lld pos0 %lld heads %lld/%lld hd %lld window %lld softcap %g%s", (long long)c.n_q,
             (long long)c.pos0, (long long)c.n_head, (long long)c.n_kv_head, (long long)c.head_dim,
             (long long)c.window, double(c.softcap), c.shuffled ? " shuffled" : "");
}

// Relative L2 of got vs want over the first want.size() elements; every one must be finite.
// The rest of got (padding rows) must still hold the poison bytes.
::testing::AssertionResult check_rows(const std::vector<float>& got, const std::vector<float>& want, double tol,
                                      const std::string& what, double* rel_out) {
  double num = 0, den = 0, worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i]))
      return ::testing::AssertionFailure() << what << ": element " << i << " not written or not finite (" << got[i]
                                           << ", want " << want[i] << ")";
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * want[i];
    if (std::fabs(d) > worst) {
      worst = std::fabs(d);
      worst_i = i;
    }
  }
  for (size_t i = want.size(); i < got.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &got[i], sizeof(bits));
    if (bits != 0xFFFFFFFFu)
      return ::testing::AssertionFailure() << what << ": padding element " << i - want.size()
                                           << " after the last row was written (" << got[i] << ")";
  }
  const double rel = den == 0 ? std::sqrt(num) : std::sqrt(num / den);
  *rel_out = rel;
  if (rel > tol)
    return ::testing::AssertionFailure() << what << ": relative L2 error " << rel << " > " << tol << "; worst element "
                                         << worst_i << " got " << got[worst_i] << " want " << want[worst_i];
  return ::testing::AssertionSuccess();
}

// Restores the default kernel choice when a test ends, whatever happened.
struct KernelChoiceGuard {
  ~KernelChoiceGuard() { cuda::set_prefill_attn_kernel(cuda::PrefillAttnKernel::kFlash); }
};

void run_case(const PrefillCase& c, uint32_t seed) {
  const int64_t hd = c.head_dim, row = c.n_head * hd, kv_row = c.n_kv_head * hd;
  const int64_t n_kv = c.pos0 + c.n_q;
  std::vector<int32_t> pos(static_cast<size_t>(c.n_q));
  std::iota(pos.begin(), pos.end(), static_cast<int32_t>(c.pos0));
  if (c.shuffled) std::shuffle(pos.begin(), pos.end(), std::mt19937(seed));
  const std::vector<float> q = random_floats(static_cast<size_t>(c.n_q * row), seed + 1);
  const std::vector<uint16_t> k = random_f16(static_cast<size_t>(n_kv * kv_row), seed + 2);
  const std::vector<uint16_t> v = random_f16(k.size(), seed + 3);
  const float scale = c.scale_mult / std::sqrt(float(hd));

  std::vector<float> want(q.size());
  for (int64_t i = 0; i < c.n_q; ++i) {  // one query at a time at its own position
    AttentionParams ap;
    ap.n_q = 1;
    ap.n_head = c.n_head;
    ap.n_kv_head = c.n_kv_head;
    ap.head_dim = hd;
    ap.pos0 = pos[static_cast<size_t>(i)];
    ap.window = c.window;
    ap.scale = scale;
    ap.softcap = c.softcap;
    ap.kv_type = DType::kF16;
    ref::attention(ap, q.data() + i * row, k.data(), v.data(), want.data() + i * row);
  }

  DeviceArray<float> dq(q), dout(static_cast<size_t>((c.n_q + kBlockRows) * row));
  DeviceArray<uint16_t> dk(k), dv(v);
  DeviceArray<int32_t> dp(pos);
  cuda::AttnPrefillParams p;
  p.q = dq.get();
  p.k = dk.get();
  p.v = dv.get();
  p.pos = dp.get();
  p.out = dout.get();
  p.n_q = c.n_q;
  p.n_head = c.n_head;
  p.n_kv_head = c.n_kv_head;
  p.head_dim = hd;
  p.window = c.window;
  p.scale = scale;
  p.softcap = c.softcap;
  ASSERT_TRUE(cuda::check_params(p).ok()) << cuda::check_params(p).to_string();

  KernelChoiceGuard guard;
  for (const auto kernel : {cuda::PrefillAttnKernel::kFlash, cuda::PrefillAttnKernel::kTiled}) {
    cuda::set_prefill_attn_kernel(kernel);
    const bool flash = kernel == cuda::PrefillAttnKernel::kFlash;
    // The flash kernel needs head_dim % 16 == 0 (and sm_80+, which every GPU of the check has).
    EXPECT_EQ(cuda::attn_prefill_uses_flash(p), flash && hd % 16 == 0) << describe(c);
    dout.poison();
    OMNI_CUDA_OK(cuda::launch_attn_prefill(p, nullptr));
    const std::string what = fmt("%s %s", flash ? "flash" : "tiled", describe(c).c_str());
    double rel = 0;
    EXPECT_TRUE(check_rows(dout.download(), want, flash && hd % 16 == 0 ? 2e-3 : 1e-5, what, &rel));
    std::printf("  %s: relative L2 %.3g\n", what.c_str(), rel);
  }
}

TEST(CudaParams, PrefillAttnKernelSwitch) {
  KernelChoiceGuard guard;
  cuda::set_prefill_attn_kernel(cuda::PrefillAttnKernel::kTiled);
  EXPECT_EQ(cuda::prefill_attn_kernel(), cuda::PrefillAttnKernel::kTiled);
  cuda::AttnPrefillParams p;
  alignas(16) static float q[16], out[16];
  alignas(16) static uint16_t kv[16];
  static int32_t pos[1];
  p.q = q;
  p.k = kv;
  p.v = kv;
  p.pos = pos;
  p.out = out;
  p.n_q = 1;
  p.n_head = p.n_kv_head = 1;
  p.head_dim = 64;
  EXPECT_FALSE(cuda::attn_prefill_uses_flash(p));  // forced tiled
  cuda::set_prefill_attn_kernel(cuda::PrefillAttnKernel::kFlash);
  EXPECT_EQ(cuda::prefill_attn_kernel(), cuda::PrefillAttnKernel::kFlash);
  p.head_dim = 72;
  EXPECT_FALSE(cuda::attn_prefill_uses_flash(p));  // not a multiple of 16
  p.head_dim = 64;
  p.k = kv + 1;
  EXPECT_FALSE(cuda::attn_prefill_uses_flash(p));  // cache not 16-byte aligned
}

TEST(CudaAttentionPrefill, FlashAndTiledMatchReference) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  // n_q, pos0, heads, kv heads, head_dim, window, softcap, scale multiplier, shuffled
  const PrefillCase cases[] = {
      {1, 0, 4, 4, 64, 0, 0.0f, 2.0f, false},
      {7, 50, 8, 2, 128, 0, 0.0f, 2.0f, false},
      {17, 0, 7, 1, 256, 32, 0.0f, 2.0f, false},
      {64, 50, 4, 1, 64, 32, 50.0f, 30.0f, false},
      {100, 0, 8, 2, 128, 32, 50.0f, 30.0f, false},
      {333, 50, 7, 1, 128, 0, 0.0f, 2.0f, false},   // qwen2.5's 7:1 and head_dim
      {333, 0, 4, 4, 256, 0, 50.0f, 30.0f, false},  // gemma 2's head_dim and softcap
      {100, 50, 4, 1, 256, 32, 0.0f, 2.0f, false},
      {65, 0, 2, 2, 32, 0, 0.0f, 2.0f, false},
      {17, 50, 4, 2, 16, 0, 0.0f, 2.0f, false},
      {40, 7, 3, 1, 48, 0, 50.0f, 30.0f, false},    // an odd number of 16-wide k-steps
      {129, 50, 4, 2, 80, 32, 0.0f, 2.0f, true},    // positions out of order
      {37, 20, 4, 2, 72, 16, 0.0f, 2.0f, false},    // head_dim 72: the tiled kernel either way
  };
  uint32_t seed = 4000;
  for (const PrefillCase& c : cases) {
    SCOPED_TRACE(describe(c));
    run_case(c, seed);
    seed += 10;
  }
}

// A row that sees no key (here: position -1, which no caller passes) gives 0 on the flash path,
// never NaN, and the rows around it are unaffected.
TEST(CudaAttentionPrefill, FlashRowWithoutKeysIsZero) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  KernelChoiceGuard guard;
  cuda::set_prefill_attn_kernel(cuda::PrefillAttnKernel::kFlash);
  const int64_t n_q = 5, n_head = 4, n_kv_head = 2, hd = 64, row = n_head * hd, kv_row = n_kv_head * hd;
  const std::vector<int32_t> pos = {3, -1, 0, 4, 2};
  const std::vector<float> q = random_floats(static_cast<size_t>(n_q * row), 4200);
  const std::vector<uint16_t> k = random_f16(static_cast<size_t>(5 * kv_row), 4201);
  const std::vector<uint16_t> v = random_f16(k.size(), 4202);
  const float scale = 2.0f / std::sqrt(float(hd));
  std::vector<float> want(q.size(), 0.0f);
  for (int64_t i = 0; i < n_q; ++i) {
    if (pos[static_cast<size_t>(i)] < 0) continue;  // stays 0
    AttentionParams ap;
    ap.n_q = 1;
    ap.n_head = n_head;
    ap.n_kv_head = n_kv_head;
    ap.head_dim = hd;
    ap.pos0 = pos[static_cast<size_t>(i)];
    ap.scale = scale;
    ap.kv_type = DType::kF16;
    ref::attention(ap, q.data() + i * row, k.data(), v.data(), want.data() + i * row);
  }
  DeviceArray<float> dq(q), dout(static_cast<size_t>((n_q + kBlockRows) * row));
  DeviceArray<uint16_t> dk(k), dv(v);
  DeviceArray<int32_t> dp(pos);
  cuda::AttnPrefillParams p;
  p.q = dq.get();
  p.k = dk.get();
  p.v = dv.get();
  p.pos = dp.get();
  p.out = dout.get();
  p.n_q = n_q;
  p.n_head = n_head;
  p.n_kv_head = n_kv_head;
  p.head_dim = hd;
  p.scale = scale;
  ASSERT_TRUE(cuda::attn_prefill_uses_flash(p));
  dout.poison();
  OMNI_CUDA_OK(cuda::launch_attn_prefill(p, nullptr));
  const std::vector<float> got = dout.download();
  for (int64_t j = 0; j < row; ++j) ASSERT_EQ(got[static_cast<size_t>(row + j)], 0.0f) << "row 1 element " << j;
  double rel = 0;
  EXPECT_TRUE(check_rows(got, want, 2e-3, "flash, a row without keys", &rel));
}

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
