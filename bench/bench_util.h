// Shared by the CPU benchmarks (bench/*.cpp): reproducible random inputs.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace omni::bench {

// n standard-normal floats from a fixed seed.
inline std::vector<float> randn(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = g(rng);
  return v;
}

}  // namespace omni::bench
