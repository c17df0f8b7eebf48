// The IsaKernels table for AVX2 + FMA + F16C: two 256-bit registers per 16 floats.
// The kernels target is compiled with -ffp-contract=off: dequantization is bit-exact, see isa_kernels_impl.h.

#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/prefetch.h"

namespace omni::cpu::detail {
namespace avx2 {
namespace {

struct F16x {
  __m256 a, b;  // elements 0..7, 8..15
};
inline F16x vzero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline F16x vset1(float f) { return {_mm256_set1_ps(f), _mm256_set1_ps(f)}; }
inline F16x vload(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline void vstore(float* p, F16x x) {
  _mm256_storeu_ps(p, x.a);
  _mm256_storeu_ps(p + 8, x.b);
}
inline F16x vadd(F16x x, F16x y) { return {_mm256_add_ps(x.a, y.a), _mm256_add_ps(x.b, y.b)}; }
inline F16x vsub(F16x x, F16x y) { return {_mm256_sub_ps(x.a, y.a), _mm256_sub_ps(x.b, y.b)}; }
inline F16x vmul(F16x x, F16x y) { return {_mm256_mul_ps(x.a, y.a), _mm256_mul_ps(x.b, y.b)}; }
inline F16x vdiv(F16x x, F16x y) { return {_mm256_div_ps(x.a, y.a), _mm256_div_ps(x.b, y.b)}; }
inline F16x vmax(F16x x, F16x y) { return {_mm256_max_ps(x.a, y.a), _mm256_max_ps(x.b, y.b)}; }
inline F16x vmin(F16x x, F16x y) { return {_mm256_min_ps(x.a, y.a), _mm256_min_ps(x.b, y.b)}; }
inline F16x vfma(F16x x, F16x y, F16x z) {
  return {_mm256_fmadd_ps(x.a, y.a, z.a), _mm256_fmadd_ps(x.b, y.b, z.b)};
}
inline float vreduce(F16x x) {
  const __m256 s = _mm256_add_ps(x.a, x.b);
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
inline F16x vround(F16x x) {
  constexpr int kMode = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  return {_mm256_round_ps(x.a, kMode), _mm256_round_ps(x.b, kMode)};
}
inline __m256 pow2i8(__m256 n) {
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_castsi256_ps(e);
}
inline F16x vpow2i(F16x n) { return {pow2i8(n.a), pow2i8(n.b)}; }
inline F16x vfrom_i8(__m128i v) {
  return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)),
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)))};
}
inline F16x vfrom_u8(__m128i v) {
  return {_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)),
          _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)))};
}
inline F16x vload_f16(const uint16_t* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline __m256 bf16x8(const uint16_t* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
inline F16x vload_bf16(const uint16_t* p) { return {bf16x8(p), bf16x8(p + 8)}; }

// GEMM register tile: 2 x 2 accumulators of two ymm each + 2 weight + 1 x = 14 of 16 ymm.
constexpr int kGemmRows = 2, kGemmToks = 2;
#include "kernels/cpu/isa_kernels_impl.h"

}  // namespace
}  // namespace avx2

const IsaKernels& avx2_kernels() { return avx2::kTable; }

}  // namespace omni::cpu::detail
