// Helpers shared by the test files: fixture paths, file reading and writing, JSON fixtures,
// random inputs, the CPU's ISAs, error metrics.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "kernels/cpu/ops_cpu.h"

namespace omni::test {

inline std::string source_path(const std::string& rel) { return std::string(OMNIRT_SOURCE_DIR) + "/" + rel; }

inline bool file_exists(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return f.good();
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Writes `bytes` to `path` (replacing it); false when the file cannot be written.
inline bool write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

inline nlohmann::json load_json(const std::string& path) {
  const std::vector<uint8_t> b = read_file(path);
  return nlohmann::json::parse(b.begin(), b.end());
}

// Whether the ffmpeg command-line tool runs here (tests that make their media with it).
inline bool have_ffmpeg_cli() {
  static const bool ok = std::system("ffmpeg -version >/dev/null 2>&1") == 0;
  return ok;
}

// n draws of N(0, sigma^2) from mt19937(seed).
inline std::vector<float> randn(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = g(rng);
  return v;
}

// The ISAs this CPU runs, scalar first; leaves the last (the best) selected.
inline std::vector<CpuIsa> cpu_isas() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (cpu::set_isa(isa)) out.push_back(isa);
  cpu::set_isa(out.back());
  return out;
}

inline std::vector<float> read_f32(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  std::vector<float> out(bytes.size() / 4);
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

// ||a - b||_2 / ||b||_2 over n elements (0 when both are zero).
inline double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  if (den == 0) return num == 0 ? 0 : INFINITY;
  return std::sqrt(num / den);
}

inline std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/omnirt_test_" + std::to_string(::getpid()) + "_" + name;
}

}  // namespace omni::test
