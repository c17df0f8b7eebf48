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

namespace omni::cpu::detail {
namespace int8_vnni {
namespace {

inline __m256i dot_u8s8(__m256i a, __m256i b) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b); }
#include "kernels/cpu/int8_dot_impl.h"

// Q4_0 / Q5_0 two blocks per zmm (the shared 256-bit loop does one per ymm): 64 weights per
// vpdpbusd, the blocks' scales converted 4 at a time. The weights stay unsigned (nibble, or
// nibble | fifth bit << 4) and the offset (8 or 16) is folded into the accumulator vpdpbusd
// starts from: -offset * (the 4 x bytes of the lane), computed once per call for the whole of x
// (it does not depend on the row), so each int32 lane is exactly the sum of 4 terms
// (q - offset) * x of ref::dot_int8's isum (zmm has no vpsignb for the |w| x sign(w)q form).

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

template <class Block>
void dot_rows_d32_zmm(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
                      const float* d, float* y) {
  const int64_t nb = n_in / 32;
  if (nb / 2 > kMaxOffsetPairs) return dot_rows_d32<Block>(w, row_bytes, n_rows, n_in, q, d, y);
  alignas(64) int32_t neg_off[kMaxOffsetPairs * 16];
  const __m512i off = _mm512_set1_epi8(kOffset<Block>);
  for (int64_t p = 0; p < nb / 2; ++p)
    _mm512_store_si512(neg_off + 16 * p, _mm512_sub_epi32(_mm512_setzero_si512(),
                                                          _mm512_dpbusd_epi32(_mm512_setzero_si512(), off,
                                                                              _mm512_loadu_si512(q + 64 * p))));
  // Lanes 0-7 take the scale of the pair's first block, 8-15 the second's.
  const __m512i lo_idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i hi_idx = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  auto pair = [&](const Block* b, int64_t i, __m512 scale, __m512 acc) {
    const __m512i p = _mm512_dpbusd_epi32(_mm512_load_si512(neg_off + 8 * i), unsigned64(b[0], b[1]),
                                          _mm512_loadu_si512(q + 32 * i));
    return _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(p), acc);
  };
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blk = reinterpret_cast<const Block*>(w + r * row_bytes);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
      _mm_prefetch(reinterpret_cast<const char*>(blk + i) + kPrefetchBytes, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(blk + i) + kPrefetchBytes + 64, _MM_HINT_T0);
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
      const __m256i wv = weights32(blk[i]);
      const __m256i p = dot_u8s8(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(load256(q + 32 * i), wv));
      tail = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(blk[i].d) * d[i]), _mm256_cvtepi32_ps(p), tail);
    }
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + hsum8(tail);
  }
}

// Q4_K / Q5_K two rows at a time, two 32-value sub-blocks per vpdpbusd zmm: the 32 qs bytes
// of run j broadcast to both halves, low nibbles (sub-block 2j) in the low half and high
// nibbles (2j + 1) in the high half, against the 64 contiguous x values of sub-blocks 2j, 2j + 1.
// Q4_K keeps the high nibbles in place (qs & 0xF0 = 16 * nibble, no shift; |lane| <= 4 * 240 *
// 128) and folds 1/16 into that sub-block's x scale: a power-of-two factor, so every f32 term
// is the one ref::dot_int8 forms, (d * sc_s) * d_x[s] times isum_s (the scaled copy is exact
// and so is the product's rounding). The 4 dot vectors of a row are reduced to one int32 per
// sub-block, which then sit in the order 0 2 4 6 1 3 5 7 (kSubOrder); the scales and x scales are
// put in that order instead of moving the sums. One zmm FMA per block and row applies
// [d * sc * d_x | dmin * m * s] to [isum | -1], so the min term needs no accumulator of its own.
constexpr int kSubOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// Bytes 0-7: the 6-bit scales in kSubOrder; bytes 8-15: the 6-bit mins in sub-block order, for
// the two blocks whose packed scales (12 bytes, and 4 bytes more that are not read into the
// result) sit in the two 128-bit lanes of v. ggml's get_scale_min_k4 per byte:
//   sc_o = s[o] & 63 (o < 4), (s[o + 4] & 15) | (s[o - 4] >> 6) << 4 (o >= 4);
//   m_o = s[o + 4] & 63 (o < 4), (s[o + 4] >> 4) | (s[o] >> 6) << 4 (o >= 4).
inline __m256i scales_mins_x2(__m256i v) {
  constexpr char z = static_cast<char>(0x80);  // pshufb: a zero byte
  const __m256i lo_idx = _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 2, 8, 10, 1, 3, 9, 11, 4, 5, 6, 7, z, z, z, z));
  const __m256i lo_mask = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(0x3F, 0x3F, 0x0F, 0x0F, 0x3F, 0x3F, 0x0F, 0x0F, 0x3F, 0x3F, 0x3F, 0x3F, 0, 0, 0, 0));
  const __m256i top_idx = _mm256_broadcastsi128_si256(_mm_setr_epi8(z, z, 0, 2, z, z, 1, 3, z, z, z, z, 4, 5, 6, 7));
  const __m256i nib_idx = _mm256_broadcastsi128_si256(_mm_setr_epi8(z, z, z, z, z, z, z, z, z, z, z, z, 8, 9, 10, 11));
  const __m256i lo = _mm256_and_si256(_mm256_shuffle_epi8(v, lo_idx), lo_mask);
  // Bits 6-7 to 4-5 (16-bit shift by 2: what crosses from the upper byte lands in bits 6-7, masked).
  const __m256i top = _mm256_srli_epi16(_mm256_shuffle_epi8(v, top_idx), 2);
  const __m256i nib = _mm256_srli_epi16(_mm256_shuffle_epi8(v, nib_idx), 4);  // high nibble down
  // lo | (top & 0x30) | (nib & 0x0F): ternary logic with the masks as the third operand.
  const __m256i t = _mm256_ternarylogic_epi32(lo, top, _mm256_set1_epi8(0x30), 0xF8);  // A | (B & C)
  return _mm256_ternarylogic_epi32(t, nib, _mm256_set1_epi8(0x0F), 0xF8);
}

// Row i's 4 dot vectors (16 lanes each: low half sub-block 2j, high half 2j + 1) to 4 lanes
// per 128-bit lane: lane k of the result holds [D0, D1, D2, D3 summed over 128-bit lane k].
inline __m512i sum4_per_lane(__m512i d0, __m512i d1, __m512i d2, __m512i d3) {
  const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(d0, d1), _mm512_unpackhi_epi32(d0, d1));
  const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(d2, d3), _mm512_unpackhi_epi32(d2, d3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
}

template <bool kQ5>
inline void prefetch_block(const char* pf) {
  _mm_prefetch(pf, _MM_HINT_T0);
  _mm_prefetch(pf + 64, _MM_HINT_T0);
  _mm_prefetch(pf + 128, _MM_HINT_T0);
  if constexpr (kQ5) _mm_prefetch(pf + 175, _MM_HINT_T0);  // 176-byte blocks
}

// y0, y1 = ref::dot_int8 of the rows at b0, b1 (nb blocks each).
template <class Block>
inline void dot_pair_k_affine(const Block* b0, const Block* b1, int64_t nb, const int8_t* q, const float* d,
                              const float* s, float* y0, float* y1) {
  constexpr bool kQ5 = sizeof(Block) == sizeof(BlockQ5_K);
  const __m512i nib_mask = _mm512_inserti64x4(_mm512_set1_epi8(0x0F), _mm256_set1_epi8(kQ5 ? 0x0F : 0xF0), 1);
  const __m512i sub_order = _mm512_setr_epi32(kSubOrder[0], kSubOrder[1], kSubOrder[2], kSubOrder[3], kSubOrder[4],
                                              kSubOrder[5], kSubOrder[6], kSubOrder[7], 0, 0, 0, 0, 0, 0, 0, 0);
  // x-scale factor per reordered lane: 1 for even sub-blocks, 1/16 for Q4_K's odd ones.
  const __m512 hi_scale = _mm512_setr_ps(1, 1, 1, 1, kQ5 ? 1 : 0.0625f, kQ5 ? 1 : 0.0625f, kQ5 ? 1 : 0.0625f,
                                         kQ5 ? 1 : 0.0625f, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i lanes01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i lanes23 = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m512 neg1 = _mm512_set1_ps(-1.0f);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const Block& r0 = b0[i];
    const Block& r1 = b1[i];
    prefetch_block<kQ5>(reinterpret_cast<const char*>(&r0) + kPrefetchBytes);
    prefetch_block<kQ5>(reinterpret_cast<const char*>(&r1) + kPrefetchBytes);
    // [d_x in kSubOrder (odd sub-blocks / 16 for Q4_K) | s]: shared by the two rows.
    const __m512 dx = _mm512_permutexvar_ps(sub_order, _mm512_castps256_ps512(_mm256_loadu_ps(d + 8 * i)));
    const __m512 xs = _mm512_insertf32x8(_mm512_mul_ps(dx, hi_scale), _mm256_loadu_ps(s + 8 * i), 1);
    const __m256i sm = scales_mins_x2(_mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(r1.scales),
                                                          reinterpret_cast<const __m128i*>(r0.scales)));
    // [d0, dmin0, d1, dmin1] -> [d x8 | dmin x8] per row.
    uint32_t h0, h1;
    std::memcpy(&h0, &r0.d, 4);
    std::memcpy(&h1, &r1.d, 4);
    const __m512 dd = _mm512_castps128_ps512(
        _mm_cvtph_ps(_mm_unpacklo_epi32(_mm_cvtsi32_si128(static_cast<int>(h0)), _mm_cvtsi32_si128(static_cast<int>(h1)))));
    const __m512 g0 = _mm512_mul_ps(
        _mm512_mul_ps(_mm512_permutexvar_ps(lanes01, dd), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(sm)))), xs);
    const __m512 g1 = _mm512_mul_ps(
        _mm512_mul_ps(_mm512_permutexvar_ps(lanes23, dd), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(sm, 1)))), xs);
    const int8_t* qx = q + kQK_K * i;
    __m512i hb0 = _mm512_setzero_si512(), hb1 = _mm512_setzero_si512();
    if constexpr (kQ5) {
      hb0 = _mm512_broadcast_i64x4(load256(r0.qh));
      hb1 = _mm512_broadcast_i64x4(load256(r1.qh));
    }
    __m512i p0[4], p1[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512i xv = _mm512_loadu_si512(qx + 64 * j);
      __m512i w0 = _mm512_broadcast_i64x4(load256(r0.qs + 32 * j));
      __m512i w1 = _mm512_broadcast_i64x4(load256(r1.qs + 32 * j));
      if constexpr (kQ5) {
        // High half: the high nibbles moved down; fifth bit: bit 2j of qh[l] (low half) or
        // 2j + 1 (high half) adds 16.
        w0 = _mm512_and_si512(_mm512_mask_srli_epi16(w0, 0xFFFF0000u, w0, 4), nib_mask);
        w1 = _mm512_and_si512(_mm512_mask_srli_epi16(w1, 0xFFFF0000u, w1, 4), nib_mask);
        const __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << (2 * j))),
                                               _mm256_set1_epi8(static_cast<char>(1 << (2 * j + 1))), 1);
        const __m512i sixteen = _mm512_set1_epi8(0x10);
        w0 = _mm512_mask_or_epi32(w0, 0xFFFF, w0, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(hb0, bit), sixteen));
        w1 = _mm512_mask_or_epi32(w1, 0xFFFF, w1, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(hb1, bit), sixteen));
      } else {
        w0 = _mm512_and_si512(w0, nib_mask);
        w1 = _mm512_and_si512(w1, nib_mask);
      }
      p0[j] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w0, xv);
      p1[j] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w1, xv);
    }
    const __m512i u0 = sum4_per_lane(p0[0], p0[1], p0[2], p0[3]);
    const __m512i u1 = sum4_per_lane(p1[0], p1[1], p1[2], p1[3]);
    // 128-bit lanes 0, 1 of u hold sub-blocks 0 2 4 6, lanes 2, 3 sub-blocks 1 3 5 7:
    // [row 0 lane 0 + 1, row 0 lane 2 + 3, row 1 lane 0 + 1, row 1 lane 2 + 3].
    const __m512 isum = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_shuffle_i64x2(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                                                            _mm512_shuffle_i64x2(u0, u1, _MM_SHUFFLE(3, 1, 3, 1))));
    acc0 = _mm512_fmadd_ps(g0, _mm512_mask_mov_ps(isum, 0xFF00, neg1), acc0);
    acc1 = _mm512_fmadd_ps(g1, _mm512_shuffle_f32x4(isum, neg1, _MM_SHUFFLE(3, 2, 3, 2)), acc1);
  }
  *y0 = _mm512_reduce_add_ps(acc0);
  *y1 = _mm512_reduce_add_ps(acc1);
}

template <class Block>
void dot_rows_k_affine_zmm(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
                           const float* d, const float* s, float* y) {
  const int64_t nb = n_in / kQK_K;
  auto row = [&](int64_t r) { return reinterpret_cast<const Block*>(w + r * row_bytes); };
  int64_t r = 0;
  for (; r + 2 <= n_rows; r += 2) dot_pair_k_affine(row(r), row(r + 1), nb, q, d, s, y + r, y + r + 1);
  if (r < n_rows) {  // an odd last row: paired with itself
    float unused;
    dot_pair_k_affine(row(r), row(r), nb, q, d, s, y + r, &unused);
  }
}

void dot_rows_vnni(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
                   const float* d, const float* s, float* y) {
  switch (t) {
    case DType::kQ4_0: return dot_rows_d32_zmm<BlockQ4_0>(w, row_bytes, n_rows, n_in, q, d, y);
    case DType::kQ5_0: return dot_rows_d32_zmm<BlockQ5_0>(w, row_bytes, n_rows, n_in, q, d, y);
    case DType::kQ4_K: return dot_rows_k_affine_zmm<BlockQ4_K>(w, row_bytes, n_rows, n_in, q, d, s, y);
    case DType::kQ5_K: return dot_rows_k_affine_zmm<BlockQ5_K>(w, row_bytes, n_rows, n_in, q, d, s, y);
    default: return dot_rows(t, w, row_bytes, n_rows, n_in, q, d, s, y);
  }
}

constexpr Int8Kernels kVnniTable = {quantize, dot_rows_vnni};

}  // namespace
}  // namespace int8_vnni

const Int8Kernels& int8_avx512vnni_kernels() { return int8_vnni::kVnniTable; }

}  // namespace omni::cpu::detail
