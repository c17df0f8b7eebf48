// Internal: the int8-activation decode loops (ref::quantize_act_q8 / ref::dot_int8 in SIMD),
// written once over 256-bit vectors. Included (inside a namespace) by int8_dot_avx2.cpp and
// int8_dot_avx512.cpp, which first define
//   dot_u8s8(a, b): 8 int32 lanes, lane k = sum of a[4k + j] * b[4k + j] (a unsigned, b signed)
// as vpmaddubsw + vpmaddwd (AVX2; no saturation here: |a| <= 128, |b| <= 127) or vpdpbusd
// (AVX512-VNNI + VL), and
//   dot3_u8s8(a, b1, b2, b3) = (dot(a, b1) << 14) + (dot(a, b2) << 7) + dot(a, b3),
// the dot with the three-level x of ref::quantize_act_q8x3 (Q = 16384 q1 + 128 q2 + q3).
// One 32-value block of x is one ymm of int8. Every loop is a template over L, the number of
// x levels (1: ref::dot_int8; 3: ref::dot_int8x3, each level's q n_in bytes after the last).

#define OMNI_INLINE inline __attribute__((always_inline))

OMNI_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
OMNI_INLINE int32_t hsum8i(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}
OMNI_INLINE __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Weight streams are prefetched as in the f32 decode path (prefetch.h).

// One 32-value block of x into v[4]; returns d = max|x| / 127 and sets *id = 1 / d (0 for an
// all-zero block): the same amax, division and reciprocal as ref::quantize_act_q8.
OMNI_INLINE float load_block_scale(const float* xb, __m256* v, float* id) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(xb + 8 * k);
  __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                           _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float db = _mm_cvtss_f32(m4) / 127.0f;
  *id = db != 0.0f ? 1.0f / db : 0.0f;
  return db;
}

// Bit-identical to ref::quantize_act_q8: cvtps_epi32 rounds to nearest even like nearbyint in
// the default rounding mode.
void quantize(const float* x, int64_t n, int8_t* q, float* d, float* s) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    __m256 v[4];
    float id;
    const float db = load_block_scale(xb, v, &id);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i i[4];
    for (int k = 0; k < 4; ++k) i[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], vid));
    const int32_t sum = hsum8i(_mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3])));
    // packs interleave 128-bit lanes: bytes come out as dwords 0 4 1 5 2 6 3 7.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * b),
                        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    d[b] = db;
    s[b] = db * static_cast<float>(sum);
  }
}

// Three-level quantiser, bit-identical to ref::quantize_act_q8x3 (the residuals are exact in
// f32, so the three roundings are the same operations as the scalar code's).
void quantize3(const float* x, int64_t n, int8_t* q, float* d, float* s) {
  const __m256 k128 = _mm256_set1_ps(128.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  auto store = [&](int8_t* dst, const __m256i* i) {
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_permutevar8x32_epi32(p, order));
  };
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    __m256 v[4];
    float id;
    const float db = load_block_scale(xb, v, &id);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i i1[4], i2[4], i3[4];
    __m256i sum = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      const __m256 t = _mm256_mul_ps(v[k], vid);
      i1[k] = _mm256_cvtps_epi32(t);
      const __m256 t2 = _mm256_mul_ps(_mm256_sub_ps(t, _mm256_cvtepi32_ps(i1[k])), k128);
      i2[k] = _mm256_cvtps_epi32(t2);
      i3[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_sub_ps(t2, _mm256_cvtepi32_ps(i2[k])), k128));
      sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_slli_epi32(i1[k], 14),
                                                   _mm256_add_epi32(_mm256_slli_epi32(i2[k], 7), i3[k])));
    }
    store(q + 32 * b, i1);
    store(q + n + 32 * b, i2);
    store(q + 2 * n + 32 * b, i3);
    d[b] = db / 16384.0f;
    s[b] = d[b] * static_cast<float>(hsum8i(sum));
  }
}

// x of one 32-value block meeting 32 unsigned weights a: L = 1 or 3 levels, stride n apart.
template <int L>
OMNI_INLINE __m256i dot_x(__m256i a, const int8_t* q, int64_t n) {
  if constexpr (L == 1) {
    return dot_u8s8(a, load256(q));
  } else {
    return dot3_u8s8(a, load256(q), load256(q + n), load256(q + 2 * n));
  }
}
// Signed weights w: |w| (unsigned; -128 stays 0x80 = 128) times sign(w) applied to each level.
template <int L>
OMNI_INLINE __m256i dot_x_signed(__m256i w, const int8_t* q, int64_t n) {
  const __m256i a = _mm256_sign_epi8(w, w);
  if constexpr (L == 1) {
    return dot_u8s8(a, _mm256_sign_epi8(load256(q), w));
  } else {
    return dot3_u8s8(a, _mm256_sign_epi8(load256(q), w), _mm256_sign_epi8(load256(q + n), w),
                     _mm256_sign_epi8(load256(q + 2 * n), w));
  }
}

// The 32 signed weights of a one-scale block, as int8 in element order.
OMNI_INLINE __m256i weights32(const BlockQ8_0& b) { return load256(b.qs); }
OMNI_INLINE __m256i nibbles32(const uint8_t* qs) {  // low nibbles: elements 0..15, high: 16..31
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}
OMNI_INLINE __m256i weights32(const BlockQ4_0& b) { return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8)); }
OMNI_INLINE __m256i weights32(const BlockQ5_0& b) {
  // Byte j = 0x10 where bit j of qh (little-endian u32) is set: broadcast byte j / 8 to the 8
  // bytes of group j / 8, set every bit but bit j % 8, compare with all-ones.
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(qh)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
                                        _mm256_set1_epi64x(-1));
  const __m256i q5 = _mm256_or_si256(nibbles32(b.qs), _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
  return _mm256_sub_epi8(q5, _mm256_set1_epi8(16));
}

// One-scale blocks (Q8_0, Q4_0, Q5_0): |w| (unsigned) times sign(w) * q; a -128 weight stays
// 0x80 = 128 unsigned, correctly. Two accumulators, two blocks per step. L = 3: each int32
// lane is at most 4 * 128 * (127 * 16384 + 64 * 128 + 64) < 2^31.
template <class Block, int L>
void dot_rows_d32(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
                  const float* d, float* y) {
  const int64_t nb = n_in / 32;
  auto block = [&](const Block& b, int64_t i, __m256 acc) {
    const __m256i p = dot_x_signed<L>(weights32(b), q + 32 * i, n_in);
    return _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(b.d) * d[i]), _mm256_cvtepi32_ps(p), acc);
  };
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blk = reinterpret_cast<const Block*>(w + r * row_bytes);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
      prefetch_weights(blk + i);
      acc0 = block(blk[i], i, acc0);
      acc1 = block(blk[i + 1], i + 1, acc1);
    }
    if (i < nb) acc0 = block(blk[i], i, acc0);
    y[r] = hsum8(_mm256_add_ps(acc0, acc1));
  }
}

// Lane k of the result = the sum of the 8 lanes of p[k] (int32; exact for our operands).
// hadd pairs neighbours within 128-bit halves: two levels leave [p0..p3 over lanes 0-3 |
// p0..p3 over lanes 4-7] (likewise p4..p7), and the halves are added across.
OMNI_INLINE __m256i sum_lanes8x8(__m256i p0, __m256i p1, __m256i p2, __m256i p3, __m256i p4, __m256i p5,
                                 __m256i p6, __m256i p7) {
  const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
  const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p4, p5), _mm256_hadd_epi32(p6, p7));
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

// The 8 scales (bytes 0-7) and 8 mins (bytes 8-15) of a Q4_K / Q5_K block, 6 bits each
// (ggml's kmask unpacking of the 12 packed bytes).
OMNI_INLINE __m128i scales_mins_k4(const uint8_t* packed) {
  constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  uint32_t u[4];
  std::memcpy(u, packed, 12);
  u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
  const uint32_t m03 = u[1] & kmask1;
  u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
  u[2] = m03;
  u[0] &= kmask1;
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
}

// Q4_K / Q5_K: each 32-byte run of qs holds sub-block 2j (low nibbles) and 2j + 1 (high
// nibbles), so one nibble vector meets one ymm of x. The 8 sub-blocks' int32 dots are reduced
// to one vector of isum_s (sum_lanes8x8), converted once and scaled by d * sc_s * d_x[s] in one
// FMA per block: the same f32 terms as ref::dot_int8. The min term is a per-sub-block f32
// product with s (sum of x), accumulated separately. Q5_K ORs in bit 4 from qh: bit sb of
// qh[l] belongs to element l of sub-block sb. L = 3: a lane is at most 4 * 31 * (127 * 16384 +
// 64 * 128 + 64) and a sub-block's 8 lanes sum to under 2^31 (Q5_K: 2.07e9), so sum_lanes8x8
// stays exact.
template <class Block, int L>
void dot_rows_k_affine(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
                       const float* d, const float* s, float* y) {
  constexpr bool kQ5 = sizeof(Block) == sizeof(BlockQ5_K);
  const int64_t nb = n_in / kQK_K;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blk = reinterpret_cast<const Block*>(w + r * row_bytes);
    __m256 acc = _mm256_setzero_ps(), bias = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
      const Block& b = blk[i];
      const char* pf = reinterpret_cast<const char*>(&b);
      prefetch_weights(pf);
      prefetch_weights(pf + 64);
      prefetch_weights(pf + 128);
      if constexpr (kQ5) prefetch_weights(pf + 175);  // 176-byte blocks
      const __m128i sc_m = scales_mins_k4(b.scales);
      const __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sc_m));
      const __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sc_m, 8)));
      bias = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b.dmin)), mf), _mm256_loadu_ps(s + 8 * i), bias);
      const int8_t* qx = q + kQK_K * i;
      // Q5_K: hcur = qh >> 2j (16-bit shifts; bits 0-1 of every byte stay that byte's own).
      __m256i hcur = _mm256_setzero_si256();
      if constexpr (kQ5) hcur = load256(b.qh);
      __m256i p[8];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m256i qv = load256(b.qs + 32 * j);
        __m256i lo = _mm256_and_si256(qv, low4), hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), low4);
        if constexpr (kQ5) {
          const __m256i bit4 = _mm256_set1_epi8(0x10);
          lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hcur, 4), bit4));  // bit 2j -> 4
          hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hcur, 3), bit4));  // bit 2j + 1 -> 4
          hcur = _mm256_srli_epi16(hcur, 2);
        }
        p[2 * j] = dot_x<L>(lo, qx + 64 * j, n_in);
        p[2 * j + 1] = dot_x<L>(hi, qx + 64 * j + 32, n_in);
      }
      const __m256i isum = sum_lanes8x8(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
      const __m256 f = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b.d)), scf), _mm256_loadu_ps(d + 8 * i));
      acc = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(isum), acc);
    }
    y[r] = hsum8(acc) - hsum8(bias);
  }
}

// Q6_K: per 32-value run (one ymm of x) the unsigned q6 (0..63) meets x in one dot_u8s8 and
// the -32 offset is a second one with 32s (no saturation: 2 * 63 * 127 < 2^15); each int32 lane
// covers 4 elements of one 16-value scale group, so lanes 0-3 take the run's first int8 scale
// and lanes 4-7 its second (vpmulld, exact: |lane| <= 4 * 32 * 127 * 128 < 2^24), then one f32
// FMA with d * d_x per run. L = 3: the lanes (|.| <= 4 * 63 * 2089216 < 2^30) would overflow
// times the scale, so they are converted first and scaled in f32 (ref: to f32 rounding).
template <int L>
void dot_rows_q6_k(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
                   const float* d, float* y) {
  const int64_t nb = n_in / kQK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30), k32 = _mm256_set1_epi8(32);
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(w + r * row_bytes);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
      const BlockQ6_K& b = blk[i];
      const char* pf = reinterpret_cast<const char*>(&b);
      prefetch_weights(pf);
      prefetch_weights(pf + 64);
      prefetch_weights(pf + 128);
      prefetch_weights(pf + 209);  // 210-byte blocks
      const __m256 f = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b.d)), _mm256_loadu_ps(d + 8 * i));
      const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
      const __m256i sc32[2] = {_mm256_cvtepi8_epi32(sc8), _mm256_cvtepi8_epi32(_mm_srli_si128(sc8, 8))};
      const int8_t* qx = q + kQK_K * i;
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = load256(b.ql + 64 * h), ql1 = load256(b.ql + 64 * h + 32), qh = load256(b.qh + 32 * h);
        // Run k of the half: nibbles of ql0 / ql1 (low for k < 2), bits 2k..2k+1 of qh moved
        // to bits 4-5 (16-bit shifts; the masked bits never cross a byte).
        const __m256i w6[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)),
            _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2))};
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
          const int8_t* xk = qx + 128 * h + 32 * k;
          const __m256i p = _mm256_sub_epi32(dot_x<L>(w6[k], xk, n_in), dot_x<L>(k32, xk, n_in));
          const __m256i sc = _mm256_permutevar8x32_epi32(
              sc32[h], _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1));
          const __m256 g = _mm256_permutevar8x32_ps(f, _mm256_set1_epi32(4 * h + k));
          __m256 pf32;
          if constexpr (L == 1) {
            pf32 = _mm256_cvtepi32_ps(_mm256_mullo_epi32(p, sc));
          } else {
            pf32 = _mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_cvtepi32_ps(sc));
          }
          if (k & 1)
            acc1 = _mm256_fmadd_ps(g, pf32, acc1);
          else
            acc0 = _mm256_fmadd_ps(g, pf32, acc0);
        }
      }
    }
    y[r] = hsum8(_mm256_add_ps(acc0, acc1));
  }
}

template <int L>
void dot_rows_levels(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
                     const float* d, const float* s, float* y) {
  switch (t) {
    case DType::kQ8_0: return dot_rows_d32<BlockQ8_0, L>(w, row_bytes, n_rows, n_in, q, d, y);
    case DType::kQ4_0: return dot_rows_d32<BlockQ4_0, L>(w, row_bytes, n_rows, n_in, q, d, y);
    case DType::kQ5_0: return dot_rows_d32<BlockQ5_0, L>(w, row_bytes, n_rows, n_in, q, d, y);
    case DType::kQ4_K: return dot_rows_k_affine<BlockQ4_K, L>(w, row_bytes, n_rows, n_in, q, d, s, y);
    case DType::kQ5_K: return dot_rows_k_affine<BlockQ5_K, L>(w, row_bytes, n_rows, n_in, q, d, s, y);
    case DType::kQ6_K: return dot_rows_q6_k<L>(w, row_bytes, n_rows, n_in, q, d, y);
    default:
      for (int64_t r = 0; r < n_rows; ++r) y[r] = __builtin_nanf("");
      return;
  }
}
void dot_rows(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
              const float* d, const float* s, float* y) {
  dot_rows_levels<1>(t, w, row_bytes, n_rows, n_in, q, d, s, y);
}
void dot_rows3(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const int8_t* q,
               const float* d, const float* s, float* y) {
  dot_rows_levels<3>(t, w, row_bytes, n_rows, n_in, q, d, s, y);
}

constexpr Int8Kernels kInt8Table = {quantize, dot_rows, quantize3, dot_rows3};

#undef OMNI_INLINE
