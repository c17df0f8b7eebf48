// The IsaKernels table for AVX-512 (F/BW/VL/DQ): one 512-bit register per 16 floats.
// The kernels target is compiled with -ffp-contract=off: dequantization is bit-exact, see isa_kernels_impl.h.

// GCC 12 flags the deliberately undefined source operand of its own AVX-512 intrinsics
// (_mm512_undefined_ps) once they are inlined; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/prefetch.h"

namespace omni::cpu::detail {
namespace avx512 {
namespace {

struct F16x {
  __m512 v;
};
inline F16x vzero() { return {_mm512_setzero_ps()}; }
inline F16x vset1(float f) { return {_mm512_set1_ps(f)}; }
inline F16x vload(const float* p) { return {_mm512_loadu_ps(p)}; }
inline void vstore(float* p, F16x a) { _mm512_storeu_ps(p, a.v); }
inline F16x vadd(F16x a, F16x b) { return {_mm512_add_ps(a.v, b.v)}; }
inline F16x vsub(F16x a, F16x b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline F16x vmul(F16x a, F16x b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline F16x vdiv(F16x a, F16x b) { return {_mm512_div_ps(a.v, b.v)}; }
inline F16x vmax(F16x a, F16x b) { return {_mm512_max_ps(a.v, b.v)}; }
inline F16x vmin(F16x a, F16x b) { return {_mm512_min_ps(a.v, b.v)}; }
inline F16x vfma(F16x a, F16x b, F16x c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline float vreduce(F16x a) { return _mm512_reduce_add_ps(a.v); }
inline F16x vround(F16x a) {
  return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
inline F16x vpow2i(F16x n) {  // 2^n for integral n in [-126, 127]
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127)), 23);
  return {_mm512_castsi512_ps(e)};
}
inline F16x vfrom_i8(__m128i b) { return {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b))}; }
inline F16x vfrom_u8(__m128i b) { return {_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b))}; }
inline F16x vload_f16(const uint16_t* p) {
  return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
}
inline F16x vload_bf16(const uint16_t* p) {
  const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(w, 16))};
}

// AVX-512BW/VL byte masks: a 16-bit mask becomes 16 bytes in one instruction.
#define OMNI_HAVE_MASK8 1
// GEMM register tile: 4 x 6 accumulators + 4 weight vectors + 1 x vector = 29 of 32 zmm.
constexpr int kGemmRows = 4, kGemmToks = 6;
#include "kernels/cpu/isa_kernels_impl.h"
#undef OMNI_HAVE_MASK8

}  // namespace
}  // namespace avx512

const IsaKernels& avx512_kernels() { return avx512::kTable; }

}  // namespace omni::cpu::detail
