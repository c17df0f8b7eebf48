// Helpers for the CUDA tests: skip without a device (or with one), device buffers that are poisoned (NaN /
// -1 bytes) before each run, and comparisons that report where and by how much a result is off.
#pragma once

#if OMNIRT_HAVE_CUDA

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_backend.h"

#define OMNI_CUDA_SKIP_WITHOUT_DEVICE()                                          \
  do {                                                                           \
    auto omni_n_dev_ = ::omni::cuda::device_count();                             \
    if (!omni_n_dev_.ok()) GTEST_SKIP() << omni_n_dev_.status().message();       \
  } while (0)

// For the tests of the no-device error path: they skip where a device exists.
#define OMNI_CUDA_SKIP_WITH_DEVICE()                                                \
  do {                                                                              \
    if (::omni::cuda::device_count().ok()) GTEST_SKIP() << "a CUDA device is present"; \
  } while (0)

#define OMNI_CUDA_OK(expr)                                                                       \
  do {                                                                                           \
    const cudaError_t omni_err_ = (expr);                                                        \
    ASSERT_EQ(omni_err_, cudaSuccess) << #expr << ": " << cudaGetErrorName(omni_err_) << ": "   \
                                      << cudaGetErrorString(omni_err_);                          \
  } while (0)

namespace omni::test {

// A device array freed at scope exit. Copies abort the test (ASSERT) on CUDA errors.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) {
    if (cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) p_ = nullptr;
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() {
    if (p_) cudaFree(p_);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    ASSERT_NE(p_, nullptr);
    ASSERT_EQ(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  // All bytes 0xFF: NaN for floats, -1 for ints.
  void poison() { ASSERT_EQ(cudaMemset(p_, 0xFF, n_ * sizeof(T)), cudaSuccess); }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Checks every element was written (no NaN/inf where the reference is finite) and that
// ||got - want|| / ||want|| <= tol; on failure prints the worst elements.
inline ::testing::AssertionResult close_rel(const std::vector<float>& got, const std::vector<float>& want, double tol,
                                            const std::string& what) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << what << ": size " << got.size() << " != " << want.size();
  double num = 0, den = 0, worst = 0;
  size_t worst_i = 0, n_bad = 0, first_bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isfinite(want[i]) && !std::isfinite(got[i])) {
      if (n_bad++ == 0) first_bad = i;
      continue;
    }
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * want[i];
    if (std::fabs(d) > worst) {
      worst = std::fabs(d);
      worst_i = i;
    }
  }
  if (n_bad > 0)
    return ::testing::AssertionFailure() << what << ": " << n_bad << " of " << got.size()
                                         << " elements not written or not finite; first at " << first_bad << " (got "
                                         << got[first_bad] << ", want " << want[first_bad] << ")";
  const double rel = den == 0 ? std::sqrt(num) : std::sqrt(num / den);
  if (rel > tol)
    return ::testing::AssertionFailure() << what << ": relative L2 error " << rel << " > " << tol << "; worst element "
                                         << worst_i << " got " << got[worst_i] << " want " << want[worst_i]
                                         << " (|diff| " << worst << ")";
  return ::testing::AssertionSuccess();
}

}  // namespace omni::test

#endif  // OMNIRT_HAVE_CUDA
