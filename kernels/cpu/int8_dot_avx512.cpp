// The int8-activation decode kernels for AVX512-VNNI: one vpdpbusd (256-bit, VL) per 32
// weights, Q4_0 / Q5_0 two blocks per 512-bit vpdpbusd. This file gets the AVX-512
// F/BW/VL/DQ flags and, for it alone, -mavx512vnni from kernels/CMakeLists.txt; the
// dispatcher (int8_dot.cpp) calls it after checking CPUID.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/prefetch.h"

namespace omni::cpu::detail {
namespace int8_vnni {
namespace {

inline __m256i dot_u8s8(__m256i a, __m256i b) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b); }
// vpdpbusd accumulates: shift the running sum left by 7 between the levels.
inline __m256i dot3_u8s8(__m256i a, __m256i b1, __m256i b2, __m256i b3) {
  const __m256i t = _mm256_slli_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b1), 7);
  return _mm256_dpbusd_epi32(_mm256_slli_epi32(_mm256_dpbusd_epi32(t, a, b2), 7), a, b3);
}
inline __m512i dot3_u8s8(__m512i a, __m512i b1, __m512i b2, __m512i b3) {
  const __m512i t = _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), a, b1), 7);
  return _mm512_dpbusd_epi32(_mm512_slli_epi32(_mm512_dpbusd_epi32(t, a, b2), 7), a, b3);
}
#include "kernels/cpu/int8_dot_impl.h"

// Q4_0 / Q5_0 two blocks per zmm (the shared 256-bit loop does one per ymm): 64 weights per
// vpdpbusd, the blocks' scales converted 4 at a time. The weights stay unsigned (nibble, or
// nibble | fifth bit << 4) and the offset (8 or 16) is folded into the accumulator vpdpbusd
// starts from: -offset * (the 4 x bytes of the lane), computed once per call for the whole of x
// (it does not depend on the row), so each int32 lane is exactly the sum of 4 terms
// (q - offset) * x of ref::dot_int8's isum (zmm has no vpsignb for the |w| x sign(w)q form).
// L = 3 levels: the offset term is -offset * (the lane's 4 combined Q), added after the chain
// (|lane| <= 4 * 31 * 2089216 < 2^31).

// Blocks b0, b1 as 64 unsigned bytes in element order: [b0 low nibbles | b0 high | b1 low | b1 high]:
// qs broadcast as [b0, b0, b1, b1] (128-bit lanes), lanes 1 and 3 shifted down by 4.
template <class Block>
inline __m512i nibbles64(const Block& b0, const Block& b1) {
  const __m512i z = _mm512_mask_broadcast_i32x4(
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0.qs))), 0xFF00,
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1.qs)));
  return _mm512_and_si512(_mm512_mask_srli_epi16(z, 0xFF00FF00u, z, 4), _mm512_set1_epi8(0x0F));
}
inline __m512i unsigned64(const BlockQ4_0& b0, const BlockQ4_0& b1) { return nibbles64(b0, b1); }
inline __m512i unsigned64(const BlockQ5_0& b0, const BlockQ5_0& b1) {
  uint32_t h0, h1;
  std::memcpy(&h0, b0.qh, 4);
  std::memcpy(&h1, b1.qh, 4);
  const __m512i n = nibbles64(b0, b1);
  return _mm512_mask_add_epi8(n, _cvtu64_mask64(h0 | (uint64_t{h1} << 32)), n, _mm512_set1_epi8(0x10));
}
template <class Block>
constexpr int kOffset = sizeof(Block) == sizeof(BlockQ4_0) ? 8 : 16;

// The offset lanes live on the stack: x of up to kMaxOffsetPairs * 64 values (32 KiB); longer
// rows take the shared 256-bit loop.
constexpr int64_t kMaxOffsetPairs = 512;

template <class Block, int L>
void dot_rows_d32_zmm(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
                      const float* d, float* y) {
  const int64_t nb = n_in / 32;
  if (nb / 2 > kMaxOffsetPairs) return dot_rows_d32<Block, L>(w, row_bytes, n_rows, n_in, q, d, y);
  alignas(64) int32_t neg_off[kMaxOffsetPairs * 16];
  const __m512i off = _mm512_set1_epi8(kOffset<Block>);
  auto dot64 = [&](__m512i a, int64_t at, __m512i acc) {  // x bytes [at, at + 64) of each level
    if constexpr (L == 1) {
      return _mm512_dpbusd_epi32(acc, a, _mm512_loadu_si512(q + at));
    } else {
      return _mm512_add_epi32(acc, dot3_u8s8(a, _mm512_loadu_si512(q + at), _mm512_loadu_si512(q + n_in + at),
                                             _mm512_loadu_si512(q + 2 * n_in + at)));
    }
  };
  for (int64_t p = 0; p < nb / 2; ++p)
    _mm512_store_si512(neg_off + 16 * p,
                       _mm512_sub_epi32(_mm512_setzero_si512(), dot64(off, 64 * p, _mm512_setzero_si512())));
  // Lanes 0-7 take the scale of the pair's first block, 8-15 the second's.
  const __m512i lo_idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i hi_idx = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  auto pair = [&](const Block* b, int64_t i, __m512 scale, __m512 acc) {
    const __m512i p = dot64(unsigned64(b[0], b[1]), 32 * i, _mm512_load_si512(neg_off + 8 * i));
    return _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(p), acc);
  };
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blk = reinterpret_cast<const Block*>(w + r * row_bytes);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
      prefetch_weights(blk + i);
      prefetch_weights(reinterpret_cast<const char*>(blk + i) + 64);
      // d_w * d_x of the 4 blocks, as in ref (one f32 product per block); the 4 f16 scales
      // gathered in a general register.
      const uint64_t dh = uint64_t{blk[i].d} | uint64_t{blk[i + 1].d} << 16 | uint64_t{blk[i + 2].d} << 32 |
                          uint64_t{blk[i + 3].d} << 48;
      const __m512 f = _mm512_castps128_ps512(
          _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<int64_t>(dh))), _mm_loadu_ps(d + i)));
      acc0 = pair(blk + i, i, _mm512_permutexvar_ps(lo_idx, f), acc0);
      acc1 = pair(blk + i + 2, i + 2, _mm512_permutexvar_ps(hi_idx, f), acc1);
    }
    // 0 to 3 blocks left: one ymm each, the shared loop's signed form.
    __m256 tail = _mm256_setzero_ps();
    for (; i < nb; ++i) {
      const __m256i p = dot_x_signed<L>(weights32(blk[i]), q + 32 * i, n_in);
      tail = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(blk[i].d) * d[i]), _mm256_cvtepi32_ps(p), tail);
    }
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + hsum8(tail);
  }
}

template <int L>
void dot_rows_vnni(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
                   const float* d, const float* s, float* y) {
  switch (t) {
    case DType::kQ4_0: return dot_rows_d32_zmm<BlockQ4_0, L>(w, row_bytes, n_rows, n_in, q, d, y);
    case DType::kQ5_0: return dot_rows_d32_zmm<BlockQ5_0, L>(w, row_bytes, n_rows, n_in, q, d, y);
    default: return dot_rows_levels<L>(t, w, row_bytes, n_rows, n_in, q, d, s, y);
  }
}

constexpr Int8Kernels kVnniTable = {quantize, dot_rows_vnni<1>, quantize3, dot_rows_vnni<3>};

}  // namespace
}  // namespace int8_vnni

const Int8Kernels& int8_avx512vnni_kernels() { return int8_vnni::kVnniTable; }

}  // namespace omni::cpu::detail
