// ISA selection (CPUID + OMNIRT_CPU_ISA) and the element-wise ops of kernels/cpu/ops_cpu.h.
#include "kernels/cpu/ops_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "kernels/cpu/isa_kernels.h"

namespace omni {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// Features that not every compiler's __builtin_cpu_supports knows (clang 14 lacks "f16c"
// and "avx512bf16"), read from CPUID directly.
bool cpuid_has_f16c() {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}
bool cpuid_has_avx512bf16() {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5)) != 0;
}
#endif

bool isa_available(CpuIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_has_f16c();
  switch (isa) {
    case CpuIsa::kScalar: return true;
    case CpuIsa::kAvx2: return avx2;
    case CpuIsa::kAvx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return isa == CpuIsa::kScalar;
#endif
}

CpuIsa detect_isa() {
  CpuIsa best = isa_available(CpuIsa::kAvx512) ? CpuIsa::kAvx512
                : isa_available(CpuIsa::kAvx2) ? CpuIsa::kAvx2
                                               : CpuIsa::kScalar;
  // The override may only lower the ISA: asking for one the CPU lacks keeps the best one.
  if (const char* env = std::getenv("OMNIRT_CPU_ISA")) {
    for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512})
      if (std::strcmp(env, cpu_isa_name(isa)) == 0 && isa_available(isa)) best = isa;
  }
  return best;
}

std::atomic<int>& selected_isa() {
  static std::atomic<int> isa{static_cast<int>(detect_isa())};
  return isa;
}

}  // namespace

CpuIsa cpu_isa() { return static_cast<CpuIsa>(selected_isa().load(std::memory_order_relaxed)); }

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
  }
  return "unknown";
}

const char* cpu_features_string() {
  static char buf[256];
  static std::once_flag once;
  std::call_once(once, [] {
    size_t len = 0;
    auto append = [&](const char* word) {
      const size_t w = std::strlen(word);
      if (len + w + 2 >= sizeof buf) return;
      if (len) buf[len++] = ' ';
      std::memcpy(buf + len, word, w);
      len += w;
      buf[len] = 0;
    };
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
#define OMNI_FEATURE(name) \
  if (__builtin_cpu_supports(name)) append(name);
    OMNI_FEATURE("sse4.2") OMNI_FEATURE("avx") OMNI_FEATURE("avx2") OMNI_FEATURE("fma")
    if (cpuid_has_f16c()) append("f16c");
    OMNI_FEATURE("avx512f") OMNI_FEATURE("avx512bw") OMNI_FEATURE("avx512vl")
    OMNI_FEATURE("avx512dq") OMNI_FEATURE("avx512vnni")
    if (cpuid_has_avx512bf16()) append("avx512bf16");
#undef OMNI_FEATURE
#endif
  });
  return buf;
}

namespace cpu {
namespace detail {

const IsaKernels& active_kernels() {
  switch (cpu_isa()) {
    case CpuIsa::kAvx512: return avx512_kernels();
    case CpuIsa::kAvx2: return avx2_kernels();
    case CpuIsa::kScalar: break;
  }
  return scalar_kernels();
}

}  // namespace detail

bool set_isa(CpuIsa isa) {
  if (!isa_available(isa)) return false;
  selected_isa().store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  detail::active_kernels().dequantize_row(t, src, dst, n);
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  const auto& k = detail::active_kernels();
  const float ms = k.sum_squares(x, n) / static_cast<float>(n);
  k.scale_mul(x, w, 1.0f / std::sqrt(ms + eps), y, n);
}

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos,
          float freq_base, float freq_scale, RopeStyle style) {
  rope_qk(x, n_heads, nullptr, 0, head_dim, rot_dim, pos, freq_base, freq_scale, style);
}

void rope_qk(float* q, int64_t n_q_heads, float* k, int64_t n_k_heads, int64_t head_dim, int64_t rot_dim,
             int64_t pos, float freq_base, float freq_scale, RopeStyle style) {
  // Angles in double (pos * freq can reach 1e5 rad); cos/sin computed once for all heads of q
  // and k.
  constexpr int64_t kMaxPairs = 512;
  float cs[kMaxPairs], sn[kMaxPairs];
  const int64_t half = rot_dim / 2;
  for (int64_t j0 = 0; j0 < half; j0 += kMaxPairs) {
    const int64_t j1 = std::min(half, j0 + kMaxPairs);
    for (int64_t j = j0; j < j1; ++j) {
      const double theta = static_cast<double>(pos) * freq_scale *
                           std::pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(j) / rot_dim);
      cs[j - j0] = static_cast<float>(std::cos(theta));
      sn[j - j0] = static_cast<float>(std::sin(theta));
    }
    for (int64_t h = 0; h < n_q_heads + n_k_heads; ++h) {
      float* v = h < n_q_heads ? q + h * head_dim : k + (h - n_q_heads) * head_dim;
      if (style == RopeStyle::kNeox) {
        for (int64_t j = j0; j < j1; ++j) {  // contiguous halves: the compiler vectorises this
          const float a = v[j], b = v[j + half], c = cs[j - j0], s = sn[j - j0];
          v[j] = a * c - b * s;
          v[j + half] = a * s + b * c;
        }
      } else {
        for (int64_t j = j0; j < j1; ++j) {
          const float a = v[2 * j], b = v[2 * j + 1], c = cs[j - j0], s = sn[j - j0];
          v[2 * j] = a * c - b * s;
          v[2 * j + 1] = a * s + b * c;
        }
      }
    }
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const float mx = *std::max_element(x, x + n);
  const auto& k = detail::active_kernels();
  const float sum = k.exp_shift_sum(x, mx, n);
  k.scale(x, 1.0f / sum, n);
}

void silu(float* x, int64_t n) { detail::active_kernels().silu(x, n); }
void gelu_tanh(float* x, int64_t n) { detail::active_kernels().gelu_tanh(x, n); }
void gelu_erf(float* x, int64_t n) { detail::active_kernels().gelu_erf(x, n); }
void mul(const float* a, const float* b, float* y, int64_t n) { detail::active_kernels().mul(a, b, y, n); }
void add(const float* a, const float* b, float* y, int64_t n) { detail::active_kernels().add(a, b, y, n); }
void scale(float* x, float s, int64_t n) { detail::active_kernels().scale(x, s, n); }

int64_t argmax(const float* x, int64_t n) {
  if (n <= 0) return -1;
  if (std::isnan(x[0])) return 0;  // as std::max_element: nothing compares greater than a NaN first
  // Pass 1: the largest non-NaN value, in 16 lanes ("a > b ? a : b" keeps b on a NaN, and
  // compiles to maxps); pass 2: its first index.
  constexpr int kLanes = 16;
  float lane[kLanes];
  for (float& l : lane) l = x[0];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  float m = lane[0];
  for (int j = 1; j < kLanes; ++j) m = lane[j] > m ? lane[j] : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (i = 0; i < n; ++i)
    if (x[i] == m) return i;
  return 0;  // not reached: m is one of x
}

}  // namespace cpu
}  // namespace omni
