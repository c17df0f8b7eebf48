// The int8-activation decode kernels for AVX2 (no VNNI): u8 x s8 products by vpmaddubsw
// (pairs to s16, no saturation for our operand ranges) and vpmaddwd with ones (to s32).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/prefetch.h"

namespace omni::cpu::detail {
namespace int8_avx2 {
namespace {

inline __m256i dot_u8s8(__m256i a, __m256i b) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
}
inline __m256i dot3_u8s8(__m256i a, __m256i b1, __m256i b2, __m256i b3) {
  const __m256i hi = _mm256_add_epi32(_mm256_slli_epi32(dot_u8s8(a, b1), 7), dot_u8s8(a, b2));
  return _mm256_add_epi32(_mm256_slli_epi32(hi, 7), dot_u8s8(a, b3));
}
#include "kernels/cpu/int8_dot_impl.h"

}  // namespace
}  // namespace int8_avx2

const Int8Kernels& int8_avx2_kernels() { return int8_avx2::kInt8Table; }

}  // namespace omni::cpu::detail
