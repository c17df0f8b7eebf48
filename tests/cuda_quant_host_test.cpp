// The device decoders of kernels/cuda/quant_cuda.cuh compiled for the host (with host stand-ins
// for the few device intrinsics they use) and compared bit for bit with ref::dequantize_row.
// This checks the block indexing of every weight type on machines without a GPU; the GPU tests
// (cuda_test.cpp) check the same functions inside the kernels.
#if OMNIRT_HAVE_CUDA

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <gtest/gtest.h>
#include <vector_types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace omni::cuda {
template <class T>
T __ldg(const T* p) { return *p; }
inline float __fmul_rn(float a, float b) {
  volatile float r = a * b;  // one rounding, as the device intrinsic
  return r;
}
inline float __fsub_rn(float a, float b) {
  volatile float r = a - b;
  return r;
}
inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace omni::cuda

#pragma push_macro("__device__")
#pragma push_macro("__forceinline__")
#undef __device__
#undef __forceinline__
#define __device__
#define __forceinline__ inline
#include "kernels/cuda/quant_cuda.cuh"
#pragma pop_macro("__forceinline__")
#pragma pop_macro("__device__")

#include "kernels/ref/ops_ref.h"
#include "tests/cuda_test_util.h"

namespace omni {
namespace {

TEST(CudaQuantHost, Load8DecodesEveryTypeLikeTheReference) {
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                         DType::kQ5_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (DType t : types) {
    const int64_t n = 1280, rows = 3;  // 5 super-blocks, 40 small blocks per row
    const int64_t rb = dtype_row_bytes(t, n);
    std::vector<float> f(static_cast<size_t>(n * rows));
    for (float& x : f) x = dist(rng);
    std::vector<uint8_t> storage(static_cast<size_t>(rb * rows + 16));
    uint8_t* base = storage.data();
    while (reinterpret_cast<uintptr_t>(base) % 16) ++base;  // device rows start 16-byte aligned
    std::vector<float> want(f.size());
    for (int64_t r = 0; r < rows; ++r) {
      ref::quantize_row(t, f.data() + r * n, base + r * rb, n);
      ref::dequantize_row(t, base + r * rb, want.data() + r * n, n);
    }
    int bad = 0;
    const bool known = cuda::dispatch_weight_type(t, [&]<DType T>() {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < n / 8; ++k) {
          float got[8];
          cuda::Quant<T>::load8(base + r * rb, k, got);
          for (int i = 0; i < 8; ++i) {
            const float w = want[static_cast<size_t>(r * n + 8 * k + i)];
            if (got[i] != w && bad++ < 5)
              ADD_FAILURE() << dtype_name(t) << " row " << r << " octet " << k << " element " << i << ": got " << got[i]
                            << ", want " << w;
          }
        }
    });
    EXPECT_TRUE(known) << dtype_name(t);
    EXPECT_EQ(bad, 0) << dtype_name(t);
  }
}

// The exact integer-to-float conversion of the span kernels: every byte at every position.
TEST(CudaQuantHost, ByteToFloatIsExactForEveryByte) {
  int bad = 0;
  for (uint32_t v = 0; v < 256; ++v)
    for (int i = 0; i < 4; ++i) {
      const uint32_t u = (v << (8 * i)) | (0xA5u << (8 * ((i + 1) & 3)));  // other bytes must not leak in
      if (cuda::byte_to_f32(u, i, cuda::kMagicU8) != static_cast<float>(v)) ++bad;
      const int8_t s = static_cast<int8_t>(v);
      if (cuda::byte_to_f32(u ^ (0x80u << (8 * i)), i, cuda::kMagicS8) != static_cast<float>(s)) ++bad;
    }
  EXPECT_EQ(bad, 0);
}

// Stages span sp of a row as matvec_span does: 16-byte copies from the address rounded down to 16.
template <int kVecs>
cuda::SpanCopy stage_span(const uint8_t* row, int64_t row_bytes, int64_t span_bytes, int64_t sp,
                          uint4 (&st)[kVecs]) {
  const int64_t bytes = std::min(span_bytes, row_bytes - sp * span_bytes);
  const cuda::SpanCopy c = cuda::span_copy(reinterpret_cast<uintptr_t>(row + sp * span_bytes), bytes);
  EXPECT_LE(c.nvec, kVecs);
  std::memset(st, 0xFF, sizeof(st));  // stale bytes beyond the copy: NaN-like garbage
  std::memcpy(st, reinterpret_cast<const uint8_t*>(c.base), static_cast<size_t>(16 * c.nvec));
  return c;
}

// Q8_0 span decoding, emulating a warp on the staged copy: every weight (d * q) equals the
// reference's bit for bit, including rows that do not start 16-byte aligned (odd block counts),
// partial last spans; and the lane dot products summed equal ref::matmul within 1e-5.
TEST(CudaQuantHost, Q8_0SpanDecodeMatchesReference) {
  for (int64_t nb : {1, 3, 16, 17, 31, 37, 112}) {
    const int64_t n = 32 * nb, rows = 5, rb = dtype_row_bytes(DType::kQ8_0, n);
    const std::vector<float> f = test::random_floats(static_cast<size_t>(n * rows), 40 + static_cast<uint32_t>(nb));
    const std::vector<float> x = test::random_floats(static_cast<size_t>(n), 90 + static_cast<uint32_t>(nb));
    std::vector<uint8_t> storage(static_cast<size_t>(rb * rows + 64));
    uint8_t* base = storage.data();
    while (reinterpret_cast<uintptr_t>(base) % 16) ++base;
    std::vector<float> want(f.size()), want_y(static_cast<size_t>(rows)), got_y(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      ref::quantize_row(DType::kQ8_0, f.data() + r * n, base + r * rb, n);
      ref::dequantize_row(DType::kQ8_0, base + r * rb, want.data() + r * n, n);
    }
    ref::matmul(DType::kQ8_0, base, rows, n, x.data(), 1, want_y.data());
    int bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
      float lane_acc[32] = {};
      for (int64_t sp = 0; sp * 16 < nb; ++sp) {
        uint4 st[35];
        const cuda::SpanCopy c = stage_span(base + r * rb, rb, 544, sp, st);
        for (int lane = 0; lane < 32; ++lane) {
          if (sp * 16 + lane / 2 >= nb) continue;
          float d, q[16], xl[16];
          cuda::q8_0_span_decode(reinterpret_cast<const uint32_t*>(st), c.shift, lane, &d, q);
          for (int i = 0; i < 16; ++i) {
            const int64_t e = sp * 512 + 16 * lane + i;
            const float w = want[static_cast<size_t>(r * n + e)];
            xl[i] = x[static_cast<size_t>(e)];
            if (cuda::__fmul_rn(q[i], d) != w && bad++ < 5)
              ADD_FAILURE() << "nb " << nb << " row " << r << " element " << e << ": got " << q[i] << " * " << d
                            << ", want " << w;
          }
          lane_acc[lane] += cuda::q8_0_span_dot(reinterpret_cast<const uint32_t*>(st), c.shift, lane, xl);
        }
      }
      float y = 0.0f;
      for (float v : lane_acc) y += v;
      got_y[static_cast<size_t>(r)] = y;
    }
    EXPECT_EQ(bad, 0) << "nb " << nb;
    EXPECT_TRUE(test::close_rel(got_y, want_y, 1e-5, "q8_0 span dot nb " + std::to_string(nb)));
  }
}

// Q4_K: the pair scale/min selection (no indexing by j) and nibble decoding give the reference's
// weights d1 * q - m1 bit for bit; lane dots summed equal ref::matmul within 1e-5.
TEST(CudaQuantHost, Q4_KSpanDecodeMatchesReference) {
  for (int64_t nsb : {1, 3, 4, 5, 14, 74}) {
    const int64_t n = 256 * nsb, rows = 3, rb = dtype_row_bytes(DType::kQ4_K, n);
    std::vector<float> f = test::random_floats(static_cast<size_t>(n * rows), 60 + static_cast<uint32_t>(nsb));
    for (size_t i = 0; i < f.size(); i += 7) f[i] *= 9.0f;  // spread the 6-bit scales and mins
    const std::vector<float> x = test::random_floats(static_cast<size_t>(n), 70 + static_cast<uint32_t>(nsb));
    std::vector<uint8_t> storage(static_cast<size_t>(rb * rows + 32));
    uint8_t* base = storage.data();
    while (reinterpret_cast<uintptr_t>(base) % 16) ++base;
    std::vector<float> want(f.size()), want_y(static_cast<size_t>(rows)), got_y(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      ref::quantize_row(DType::kQ4_K, f.data() + r * n, base + r * rb, n);
      ref::dequantize_row(DType::kQ4_K, base + r * rb, want.data() + r * n, n);
    }
    ref::matmul(DType::kQ4_K, base, rows, n, x.data(), 1, want_y.data());
    int bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
      float lane_acc[32] = {};
      for (int64_t sp = 0; sp * 4 < nsb; ++sp) {
        uint4 st[37];
        const cuda::SpanCopy c = stage_span(base + r * rb, rb, 576, sp, st);
        EXPECT_EQ(c.shift, 0u);
        for (int lane = 0; lane < 32; ++lane) {
          if (sp * 4 + lane / 8 >= nsb) continue;
          const int j = (lane >> 1) & 3;
          const uint4 head = st[cuda::q4_k_span_head(lane)], qs = st[cuda::q4_k_span_qs(lane)];
          float dm[4], qa[16], qb[16], xa[16], xb[16], sxa = 0.0f, sxb = 0.0f;
          cuda::q4_k_lane_decode(head, qs, j, dm, qa, qb);
          for (int i = 0; i < 16; ++i) {
            const int64_t ea = sp * 1024 + cuda::q4_k_span_x(lane) + i, eb = ea + 32;
            const float wa = cuda::__fsub_rn(cuda::__fmul_rn(dm[0], qa[i]), dm[1]);
            const float wb = cuda::__fsub_rn(cuda::__fmul_rn(dm[2], qb[i]), dm[3]);
            if (wa != want[static_cast<size_t>(r * n + ea)] && bad++ < 5)
              ADD_FAILURE() << "nsb " << nsb << " row " << r << " element " << ea << ": got " << wa << ", want "
                            << want[static_cast<size_t>(r * n + ea)];
            if (wb != want[static_cast<size_t>(r * n + eb)] && bad++ < 5)
              ADD_FAILURE() << "nsb " << nsb << " row " << r << " element " << eb << ": got " << wb << ", want "
                            << want[static_cast<size_t>(r * n + eb)];
            xa[i] = x[static_cast<size_t>(ea)];
            xb[i] = x[static_cast<size_t>(eb)];
            sxa += xa[i];
            sxb += xb[i];
          }
          lane_acc[lane] += cuda::q4_k_lane_dot(head, qs, j, xa, xb, sxa, sxb);
        }
      }
      float y = 0.0f;
      for (float v : lane_acc) y += v;
      got_y[static_cast<size_t>(r)] = y;
    }
    EXPECT_EQ(bad, 0) << "nsb " << nsb;
    EXPECT_TRUE(test::close_rel(got_y, want_y, 1e-5, "q4_K span dot nsb " + std::to_string(nsb)));
  }
}

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
