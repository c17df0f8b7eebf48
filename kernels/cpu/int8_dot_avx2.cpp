// The int8-activation decode kernels for AVX2 (no VNNI): u8 x s8 products by vpmaddubsw
// (pairs to s16, no saturation for our operand ranges) and vpmaddwd with ones (to s32).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/isa_kernels.h"

namespace omni::cpu::detail {
namespace int8_avx2 {
namespace {

inline __m256i dot_u8s8(__m256i a, __m256i b) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
}
#include "kernels/cpu/int8_dot_impl.h"

}  // namespace
}  // namespace int8_avx2

const Int8Kernels& int8_avx2_kernels() { return int8_avx2::kInt8Table; }

}  // namespace omni::cpu::detail
