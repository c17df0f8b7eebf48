// The device decoders of kernels/cuda/quant_cuda.cuh compiled for the host (with host stand-ins
// for the few device intrinsics they use) and compared bit for bit with ref::dequantize_row.
// This checks the block indexing of every weight type on machines without a GPU; the GPU tests
// (cuda_test.cpp) check the same functions inside the kernels.
#if OMNIRT_HAVE_CUDA

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <gtest/gtest.h>
#include <vector_types.h>

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

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
