// Internal: the body of one IsaKernels table, written once over a "16 floats" vector type.
// Included (inside a namespace) by kernels_avx2.cpp and kernels_avx512.cpp, which first define
// F16x and its primitives: vzero vset1 vload vstore vadd vsub vmul vdiv vfma vmax vmin vreduce
// vround vpow2i vfrom_i8 vfrom_u8 (the 16 bytes of an __m128i) vload_f16 vload_bf16.
// The including file is compiled with fp-contract=off: d * q - m must round twice to match
// ggml bit for bit; the dot products use explicit FMA (vfma).
// Shapes: a block's 16-value groups are passed to a sink(F16x values, int offset_in_block).

#define OMNI_INLINE inline __attribute__((always_inline))

OMNI_INLINE __m128i lo_nibbles(__m128i q) { return _mm_and_si128(q, _mm_set1_epi8(0x0F)); }
OMNI_INLINE __m128i hi_nibbles(__m128i q) {
  return _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0F));
}
OMNI_INLINE __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
OMNI_INLINE float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// Software prefetch of the decode weight streams, n_lines lines from p: see prefetch.h.
OMNI_INLINE void prefetch_lines(const void* p, int n_lines) {
  for (int l = 0; l < n_lines; ++l) prefetch_weights(static_cast<const char*>(p) + 64 * l);
}

// 0x10 in byte i where bit i of the 16-bit mask is set (the fifth bit of Q5 quants).
OMNI_INLINE __m128i bits_to_0x10(uint32_t bits16) {
#if defined(OMNI_HAVE_MASK8)
  return _mm_maskz_mov_epi8(static_cast<__mmask16>(bits16), _mm_set1_epi8(0x10));  // one op
#else
  const __m128i b = _mm_shuffle_epi8(_mm_cvtsi32_si128(static_cast<int>(bits16)),
                                     _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  const __m128i sel = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(b, sel), sel), _mm_set1_epi8(0x10));
#endif
}

template <class Sink>
OMNI_INLINE void decode_block(const BlockQ8_0& b, Sink&& sink) {
  const F16x d = vset1(half_to_float(b.d));
  sink(vmul(vfrom_i8(load128(b.qs)), d), 0);
  sink(vmul(vfrom_i8(load128(b.qs + 16)), d), 16);
}

template <class Sink>
OMNI_INLINE void decode_block(const BlockQ4_0& b, Sink&& sink) {
  const F16x d = vset1(half_to_float(b.d));
  const __m128i q = load128(b.qs), eight = _mm_set1_epi8(8);
  sink(vmul(d, vfrom_i8(_mm_sub_epi8(lo_nibbles(q), eight))), 0);
  sink(vmul(d, vfrom_i8(_mm_sub_epi8(hi_nibbles(q), eight))), 16);
}

template <class Sink>
OMNI_INLINE void decode_block(const BlockQ5_0& b, Sink&& sink) {
  const F16x d = vset1(half_to_float(b.d));
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  const __m128i q = load128(b.qs), sixteen = _mm_set1_epi8(16);
  const __m128i q0 = _mm_or_si128(lo_nibbles(q), bits_to_0x10(qh & 0xFFFF));
  const __m128i q1 = _mm_or_si128(hi_nibbles(q), bits_to_0x10(qh >> 16));
  sink(vmul(d, vfrom_i8(_mm_sub_epi8(q0, sixteen))), 0);
  sink(vmul(d, vfrom_i8(_mm_sub_epi8(q1, sixteen))), 16);
}

OMNI_INLINE void k_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K and Q5_K share the layout of nibbles and scales; Q5_K adds qh (bit s of qh[l] is the
// fifth bit of element l of sub-block s).
template <bool kHasQh, class Sink>
OMNI_INLINE void decode_k_affine(uint16_t dh, uint16_t dminh, const uint8_t* scales,
                                 const uint8_t* qs, const uint8_t* qh, Sink&& sink) {
  const float d = half_to_float(dh), dmin = half_to_float(dminh);
  const __m128i qh0 = kHasQh ? load128(qh) : _mm_setzero_si128();
  const __m128i qh1 = kHasQh ? load128(qh + 16) : _mm_setzero_si128();
  for (int j = 0; j < 4; ++j) {
    const __m128i qa = load128(qs + 32 * j), qb = load128(qs + 32 * j + 16);
    for (int half = 0; half < 2; ++half) {
      const int s = 2 * j + half;
      int sc, m;
      k_scale_min(scales, s, &sc, &m);
      const F16x vd = vset1(d * static_cast<float>(sc)), vm = vset1(dmin * static_cast<float>(m));
      __m128i a = half ? hi_nibbles(qa) : lo_nibbles(qa);
      __m128i b = half ? hi_nibbles(qb) : lo_nibbles(qb);
      if (kHasQh) {
        const __m128i bit = _mm_set1_epi8(static_cast<char>(1 << s));
        const __m128i ten = _mm_set1_epi8(0x10);
        a = _mm_or_si128(a, _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(qh0, bit), bit), ten));
        b = _mm_or_si128(b, _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(qh1, bit), bit), ten));
      }
      sink(vsub(vmul(vd, vfrom_u8(a)), vm), 64 * j + 32 * half);
      sink(vsub(vmul(vd, vfrom_u8(b)), vm), 64 * j + 32 * half + 16);
    }
  }
}

template <class Sink>
OMNI_INLINE void decode_block(const BlockQ4_K& b, Sink&& sink) {
  decode_k_affine<false>(b.d, b.dmin, b.scales, b.qs, nullptr, sink);
}
template <class Sink>
OMNI_INLINE void decode_block(const BlockQ5_K& b, Sink&& sink) {
  decode_k_affine<true>(b.d, b.dmin, b.scales, b.qs, b.qh, sink);
}

template <class Sink>
OMNI_INLINE void decode_block(const BlockQ6_K& b, Sink&& sink) {
  const float d = half_to_float(b.d);
  const __m128i low4 = _mm_set1_epi8(0x0F), low2 = _mm_set1_epi8(0x03), off = _mm_set1_epi8(32);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    for (int k = 0; k < 4; ++k) {
      for (int g = 0; g < 2; ++g) {
        const __m128i l = load128(ql + 32 * (k & 1) + 16 * g);
        const __m128i nib = k < 2 ? _mm_and_si128(l, low4) : _mm_and_si128(_mm_srli_epi16(l, 4), low4);
        const __m128i hb = _mm_and_si128(_mm_srli_epi16(load128(qh + 16 * g), 2 * k), low2);
        const __m128i q = _mm_sub_epi8(_mm_or_si128(nib, _mm_slli_epi16(hb, 4)), off);
        const F16x vd = vset1(d * static_cast<float>(b.scales[8 * h + 2 * k + g]));
        sink(vmul(vd, vfrom_i8(q)), 128 * h + 32 * k + 16 * g);
      }
    }
  }
}

template <class Block, int kBlockElems>
void dot_rows_blocks(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
                     const float* x, float* y) {
  const int64_t nb = n_in / kBlockElems;
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks = reinterpret_cast<const Block*>(w + r * row_bytes);
    F16x acc0 = vzero(), acc1 = vzero();
    for (int64_t i = 0; i < nb; ++i) {
      const float* xb = x + i * kBlockElems;
      prefetch_lines(blocks + i, (static_cast<int>(sizeof(Block)) + 63) / 64);
      decode_block(blocks[i], [&](F16x v, int o) {
        if (o & 16) {
          acc1 = vfma(v, vload(xb + o), acc1);
        } else {
          acc0 = vfma(v, vload(xb + o), acc0);
        }
      });
    }
    y[r] = vreduce(vadd(acc0, acc1));
  }
}

// Blocks of 32 with one scale d (Q8_0, Q4_0, Q5_0): q . x summed in f32 first, then one FMA
// with d per block (d factored out: one multiply less per 16 weights than decode-then-FMA).
OMNI_INLINE F16x block_qx(const BlockQ8_0& b, const float* xb) {
  return vfma(vfrom_i8(load128(b.qs + 16)), vload(xb + 16), vmul(vfrom_i8(load128(b.qs)), vload(xb)));
}
OMNI_INLINE F16x block_qx(const BlockQ4_0& b, const float* xb) {
  const __m128i q = load128(b.qs), eight = _mm_set1_epi8(8);
  return vfma(vfrom_i8(_mm_sub_epi8(hi_nibbles(q), eight)), vload(xb + 16),
              vmul(vfrom_i8(_mm_sub_epi8(lo_nibbles(q), eight)), vload(xb)));
}
OMNI_INLINE F16x block_qx(const BlockQ5_0& b, const float* xb) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  const __m128i q = load128(b.qs), sixteen = _mm_set1_epi8(16);
  const __m128i q0 = _mm_or_si128(lo_nibbles(q), bits_to_0x10(qh & 0xFFFF));
  const __m128i q1 = _mm_or_si128(hi_nibbles(q), bits_to_0x10(qh >> 16));
  return vfma(vfrom_i8(_mm_sub_epi8(q1, sixteen)), vload(xb + 16),
              vmul(vfrom_i8(_mm_sub_epi8(q0, sixteen)), vload(xb)));
}

// One row at a time: a single sequential stream per thread. (Interleaving two rows that share
// x loads measured 2.5x slower from DRAM on Zen 4: the two streams, 1-2 KiB apart in the same
// page, defeat the hardware prefetcher.) Two accumulators hide the FMA latency.
template <class Block>
void dot_rows_d32(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const float* x,
                  float* y) {
  const int64_t nb = n_in / kQK;
  int64_t r = 0;
  for (; r < n_rows; ++r) {
    const auto* b0 = reinterpret_cast<const Block*>(w + r * row_bytes);
    F16x a0 = vzero(), a1 = vzero();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
      prefetch_lines(b0 + i, 1);  // two blocks: 44-68 bytes
      a0 = vfma(vset1(half_to_float(b0[i].d)), block_qx(b0[i], x + i * kQK), a0);
      a1 = vfma(vset1(half_to_float(b0[i + 1].d)), block_qx(b0[i + 1], x + (i + 1) * kQK), a1);
    }
    if (i < nb) a0 = vfma(vset1(half_to_float(b0[i].d)), block_qx(b0[i], x + i * kQK), a0);
    y[r] = vreduce(vadd(a0, a1));
  }
}

// Q4_K / Q5_K rows, mins factored out of the inner loop:
//   sum_i (d sc_s q_i - dmin m_s) x_i = sum_s [ d sc_s (q . x)_s - dmin m_s xsum_s ],
// with xsum_s (the sum of x over 32-value sub-block s) computed once and shared by all rows.
// Saves a multiply and a subtract per 16 weights over decode-then-FMA.
template <bool kHasQh, class Block>
void dot_rows_k_affine(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
                       const float* x, float* y) {
  constexpr int64_t kMaxSub = 1024;  // rows up to 32768 wide; wider rows take the plain path
  const int64_t nsub = n_in / 32, nb = n_in / kQK_K;
  if (nsub > kMaxSub) return dot_rows_blocks<Block, kQK_K>(w, row_bytes, n_rows, n_in, x, y);
  float xsum[kMaxSub];
  for (int64_t s = 0; s < nsub; ++s) xsum[s] = vreduce(vadd(vload(x + 32 * s), vload(x + 32 * s + 16)));
  const __m128i ten = _mm_set1_epi8(0x10);
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks = reinterpret_cast<const Block*>(w + r * row_bytes);
    F16x acc0 = vzero(), acc1 = vzero();
    float bias = 0;
    for (int64_t i = 0; i < nb; ++i) {
      const Block& b = blocks[i];
      prefetch_lines(blocks + i, (static_cast<int>(sizeof(Block)) + 63) / 64);
      const float d = half_to_float(b.d), dmin = half_to_float(b.dmin);
      int sc[8], m[8];
      for (int s = 0; s < 8; ++s) k_scale_min(b.scales, s, &sc[s], &m[s]);
      __m128i qh0 = _mm_setzero_si128(), qh1 = _mm_setzero_si128();
      if constexpr (kHasQh) {
        qh0 = load128(b.qh);
        qh1 = load128(b.qh + 16);
      }
      const float* xb = x + i * kQK_K;
      for (int j = 0; j < 4; ++j) {
        const __m128i qa = load128(b.qs + 32 * j), qb = load128(b.qs + 32 * j + 16);
        for (int half = 0; half < 2; ++half) {
          const int s = 2 * j + half;
          __m128i lo = half ? hi_nibbles(qa) : lo_nibbles(qa);
          __m128i hi = half ? hi_nibbles(qb) : lo_nibbles(qb);
          if constexpr (kHasQh) {
            const __m128i bit = _mm_set1_epi8(static_cast<char>(1 << s));
            lo = _mm_or_si128(lo, _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(qh0, bit), bit), ten));
            hi = _mm_or_si128(hi, _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(qh1, bit), bit), ten));
          }
          const F16x qx = vfma(vfrom_u8(hi), vload(xb + 32 * s + 16), vmul(vfrom_u8(lo), vload(xb + 32 * s)));
          if (half) {
            acc1 = vfma(vset1(d * static_cast<float>(sc[s])), qx, acc1);
          } else {
            acc0 = vfma(vset1(d * static_cast<float>(sc[s])), qx, acc0);
          }
          bias += dmin * static_cast<float>(m[s]) * xsum[8 * i + s];
        }
      }
    }
    y[r] = vreduce(vadd(acc0, acc1)) - bias;
  }
}

template <class Block, int kBlockElems>
void dequant_blocks(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / kBlockElems; ++i) {
    float* yb = dst + i * kBlockElems;
    decode_block(blocks[i], [&](F16x v, int o) { vstore(yb + o, v); });
  }
}

// Plain element types: F16x loader and scalar decoder for the tail.
struct F32Elems {
  using T = float;
  static OMNI_INLINE F16x load(const float* p) { return vload(p); }
  static OMNI_INLINE float one(float v) { return v; }
};
struct F16Elems {
  using T = uint16_t;
  static OMNI_INLINE F16x load(const uint16_t* p) { return vload_f16(p); }
  static OMNI_INLINE float one(uint16_t v) { return half_to_float(v); }
};
struct BF16Elems {
  using T = uint16_t;
  static OMNI_INLINE F16x load(const uint16_t* p) { return vload_bf16(p); }
  static OMNI_INLINE float one(uint16_t v) { return bf16_to_f32(v); }
};

template <class E>
OMNI_INLINE float dot_plain(const typename E::T* w, const float* x, int64_t n) {
  F16x acc0 = vzero(), acc1 = vzero();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = vfma(E::load(w + i), vload(x + i), acc0);
    acc1 = vfma(E::load(w + i + 16), vload(x + i + 16), acc1);
  }
  for (; i + 16 <= n; i += 16) acc0 = vfma(E::load(w + i), vload(x + i), acc0);
  float s = vreduce(vadd(acc0, acc1));
  for (; i < n; ++i) s += E::one(w[i]) * x[i];
  return s;
}

template <class E>
void dot_rows_plain(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
                    const float* x, float* y) {
  for (int64_t r = 0; r < n_rows; ++r)
    y[r] = dot_plain<E>(reinterpret_cast<const typename E::T*>(w + r * row_bytes), x, n_in);
}

template <class E>
void dequant_plain(const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const typename E::T*>(src);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vstore(dst + i, E::load(p + i));
  for (; i < n; ++i) dst[i] = E::one(p[i]);
}

void dot_rows(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
              const float* x, float* y) {
  switch (t) {
    case DType::kF32: return dot_rows_plain<F32Elems>(w, row_bytes, n_rows, n_in, x, y);
    case DType::kF16: return dot_rows_plain<F16Elems>(w, row_bytes, n_rows, n_in, x, y);
    case DType::kBF16: return dot_rows_plain<BF16Elems>(w, row_bytes, n_rows, n_in, x, y);
    case DType::kQ8_0: return dot_rows_d32<BlockQ8_0>(w, row_bytes, n_rows, n_in, x, y);
    case DType::kQ4_0: return dot_rows_d32<BlockQ4_0>(w, row_bytes, n_rows, n_in, x, y);
    case DType::kQ5_0: return dot_rows_d32<BlockQ5_0>(w, row_bytes, n_rows, n_in, x, y);
    case DType::kQ4_K: return dot_rows_k_affine<false, BlockQ4_K>(w, row_bytes, n_rows, n_in, x, y);
    case DType::kQ5_K: return dot_rows_k_affine<true, BlockQ5_K>(w, row_bytes, n_rows, n_in, x, y);
    case DType::kQ6_K: return dot_rows_blocks<BlockQ6_K, kQK_K>(w, row_bytes, n_rows, n_in, x, y);
    default:
      for (int64_t r = 0; r < n_rows; ++r) y[r] = __builtin_nanf("");
      return;
  }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::kF32: return dequant_plain<F32Elems>(src, dst, n);
    case DType::kF16: return dequant_plain<F16Elems>(src, dst, n);
    case DType::kBF16: return dequant_plain<BF16Elems>(src, dst, n);
    case DType::kQ8_0: return dequant_blocks<BlockQ8_0, kQK>(src, dst, n);
    case DType::kQ4_0: return dequant_blocks<BlockQ4_0, kQK>(src, dst, n);
    case DType::kQ5_0: return dequant_blocks<BlockQ5_0, kQK>(src, dst, n);
    case DType::kQ4_K: return dequant_blocks<BlockQ4_K, kQK_K>(src, dst, n);
    case DType::kQ5_K: return dequant_blocks<BlockQ5_K, kQK_K>(src, dst, n);
    case DType::kQ6_K: return dequant_blocks<BlockQ6_K, kQK_K>(src, dst, n);
    default:
      for (int64_t i = 0; i < n; ++i) dst[i] = __builtin_nanf("");
      return;
  }
}

// Register-tiled micro-kernel: R rows x T tokens of dot products, R*T accumulators held in
// registers across the whole of n_in; per 16-element step R + T vector loads feed R*T FMAs
// (4 x 6: 10 loads for 24 FMAs with AVX-512, FMA-bound). Each accumulator is reduced once at
// the end; elements past the last multiple of 16 are added in scalar.
template <int R, int T>
OMNI_INLINE void gemm_tile(const float* w, int64_t n_in, const float* x, float* y, int64_t y_stride) {
  const int64_t n16 = n_in / 16 * 16;
  F16x acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = vzero();
  for (int64_t i = 0; i < n16; i += 16) {
    F16x wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = vload(w + r * n_in + i);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const F16x xv = vload(x + t * n_in + i);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = vfma(wv[r], xv, acc[r][t]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      float s = vreduce(acc[r][t]);
      for (int64_t i = n16; i < n_in; ++i) s += w[r * n_in + i] * x[t * n_in + i];
      y[t * y_stride + r] = s;
    }
}

// Tokens outer, rows inner: the R-row slices of the (L1/L2-resident) weight tile are reused
// across every token block, and T tokens of x across every row slice.
void gemm_f32(const float* w, int64_t n_rows, int64_t n_in, const float* x, int64_t n_tok, float* y,
              int64_t y_stride) {
  constexpr int R = kGemmRows, T = kGemmToks;
  int64_t t = 0;
  for (; t + T <= n_tok; t += T) {
    int64_t r = 0;
    for (; r + R <= n_rows; r += R) gemm_tile<R, T>(w + r * n_in, n_in, x + t * n_in, y + t * y_stride + r, y_stride);
    for (; r < n_rows; ++r) gemm_tile<1, T>(w + r * n_in, n_in, x + t * n_in, y + t * y_stride + r, y_stride);
  }
  for (; t < n_tok; ++t) {
    int64_t r = 0;
    for (; r + R <= n_rows; r += R) gemm_tile<R, 1>(w + r * n_in, n_in, x + t * n_in, y + t * y_stride + r, y_stride);
    for (; r < n_rows; ++r) gemm_tile<1, 1>(w + r * n_in, n_in, x + t * n_in, y + t * y_stride + r, y_stride);
  }
}

float dot_kv(const float* q, const void* k, bool kv_f16, int64_t n) {
  return kv_f16 ? dot_plain<F16Elems>(static_cast<const uint16_t*>(k), q, n)
                : dot_plain<F32Elems>(static_cast<const float*>(k), q, n);
}

template <class E>
OMNI_INLINE void axpy_plain(float a, const typename E::T* v, float* y, int64_t n) {
  const F16x va = vset1(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vstore(y + i, vfma(va, E::load(v + i), vload(y + i)));
  for (; i < n; ++i) y[i] += a * E::one(v[i]);
}

void axpy_kv(float a, const void* v, bool kv_f16, float* y, int64_t n) {
  if (kv_f16) {
    axpy_plain<F16Elems>(a, static_cast<const uint16_t*>(v), y, n);
  } else {
    axpy_plain<F32Elems>(a, static_cast<const float*>(v), y, n);
  }
}

// Grouped attention (IsaKernels::attn_scores / attn_values), up to 4 heads per pass: each K / V
// row is loaded and converted once per pass; the values' 32-wide output chunks of the 4 heads
// stay in registers over all n rows. K rows are prefetched as weight rows are (prefetch.h); the
// values' strided pass prefetches the same 64 bytes 16 rows ahead into L2. (Gemma 3 270M at
// 4,096 positions, 2 threads, Intel VM of session 9: decode 79.5-80.3 -> 83.8-84.6 tok/s.)
template <int GN, class E>
void scores_tile(const float* q, const uint8_t* k, int64_t kv_stride, int64_t n, int64_t hd, float* s,
                 int64_t s_stride) {
  const int64_t hv = hd / 16 * 16;
  for (int64_t j = 0; j < n; ++j) {
    const auto* kj = reinterpret_cast<const typename E::T*>(k + j * kv_stride);
    prefetch_lines(kj, static_cast<int>((hd * static_cast<int64_t>(sizeof(typename E::T)) + 63) / 64));
    F16x acc[GN];
    for (int g = 0; g < GN; ++g) acc[g] = vzero();
    for (int64_t d = 0; d < hv; d += 16) {
      const F16x kv = E::load(kj + d);
      for (int g = 0; g < GN; ++g) acc[g] = vfma(vload(q + g * hd + d), kv, acc[g]);
    }
    for (int g = 0; g < GN; ++g) {
      float r = vreduce(acc[g]);
      for (int64_t d = hv; d < hd; ++d) r += q[g * hd + d] * E::one(kj[d]);
      s[g * s_stride + j] = r;
    }
  }
}

template <int GN, class E>
void values_tile(const float* p, int64_t p_stride, const uint8_t* v, int64_t kv_stride, int64_t n, int64_t hd,
                 float* o, int64_t o_stride) {
  int64_t d = 0;
  for (; d + 32 <= hd; d += 32) {
    F16x acc[GN][2];
    for (int g = 0; g < GN; ++g) acc[g][0] = acc[g][1] = vzero();
    for (int64_t j = 0; j < n; ++j) {
      const auto* vj = reinterpret_cast<const typename E::T*>(v + j * kv_stride) + d;
      _mm_prefetch(reinterpret_cast<const char*>(vj) + 16 * kv_stride, _MM_HINT_T1);
      const F16x v0 = E::load(vj), v1 = E::load(vj + 16);
      for (int g = 0; g < GN; ++g) {
        const F16x pg = vset1(p[g * p_stride + j]);
        acc[g][0] = vfma(pg, v0, acc[g][0]);
        acc[g][1] = vfma(pg, v1, acc[g][1]);
      }
    }
    for (int g = 0; g < GN; ++g) {
      vstore(o + g * o_stride + d, acc[g][0]);
      vstore(o + g * o_stride + d + 16, acc[g][1]);
    }
  }
  for (; d < hd; ++d) {  // head dims that are not a multiple of 32
    for (int g = 0; g < GN; ++g) {
      float r = 0.0f;
      for (int64_t j = 0; j < n; ++j)
        r += p[g * p_stride + j] * E::one(reinterpret_cast<const typename E::T*>(v + j * kv_stride)[d]);
      o[g * o_stride + d] = r;
    }
  }
}

template <class E>
void attn_scores_e(const float* q, int64_t G, const uint8_t* k, int64_t kv_stride, int64_t n, int64_t hd, float* s,
                   int64_t s_stride) {
  for (int64_t g0 = 0; g0 < G; g0 += 4) {
    const float* qg = q + g0 * hd;
    float* sg = s + g0 * s_stride;
    switch (G - g0 < 4 ? G - g0 : 4) {
      case 1: scores_tile<1, E>(qg, k, kv_stride, n, hd, sg, s_stride); break;
      case 2: scores_tile<2, E>(qg, k, kv_stride, n, hd, sg, s_stride); break;
      case 3: scores_tile<3, E>(qg, k, kv_stride, n, hd, sg, s_stride); break;
      default: scores_tile<4, E>(qg, k, kv_stride, n, hd, sg, s_stride); break;
    }
  }
}
template <class E>
void attn_values_e(const float* p, int64_t p_stride, int64_t G, const uint8_t* v, int64_t kv_stride, int64_t n,
                   int64_t hd, float* o, int64_t o_stride) {
  for (int64_t g0 = 0; g0 < G; g0 += 4) {
    const float* pg = p + g0 * p_stride;
    float* og = o + g0 * o_stride;
    switch (G - g0 < 4 ? G - g0 : 4) {
      case 1: values_tile<1, E>(pg, p_stride, v, kv_stride, n, hd, og, o_stride); break;
      case 2: values_tile<2, E>(pg, p_stride, v, kv_stride, n, hd, og, o_stride); break;
      case 3: values_tile<3, E>(pg, p_stride, v, kv_stride, n, hd, og, o_stride); break;
      default: values_tile<4, E>(pg, p_stride, v, kv_stride, n, hd, og, o_stride); break;
    }
  }
}

void attn_scores(const float* q, int64_t G, const void* k, int64_t kv_stride, bool kv_f16, int64_t n, int64_t hd,
                 float* s, int64_t s_stride) {
  const auto* kb = static_cast<const uint8_t*>(k);
  if (kv_f16) {
    attn_scores_e<F16Elems>(q, G, kb, kv_stride, n, hd, s, s_stride);
  } else {
    attn_scores_e<F32Elems>(q, G, kb, kv_stride, n, hd, s, s_stride);
  }
}
void attn_values(const float* p, int64_t p_stride, int64_t G, const void* v, int64_t kv_stride, bool kv_f16, int64_t n,
                 int64_t hd, float* o, int64_t o_stride) {
  const auto* vb = static_cast<const uint8_t*>(v);
  if (kv_f16) {
    attn_values_e<F16Elems>(p, p_stride, G, vb, kv_stride, n, hd, o, o_stride);
  } else {
    attn_values_e<F32Elems>(p, p_stride, G, vb, kv_stride, n, hd, o, o_stride);
  }
}

float sum_squares(const float* x, int64_t n) {
  F16x acc0 = vzero(), acc1 = vzero();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const F16x a = vload(x + i), b = vload(x + i + 16);
    acc0 = vfma(a, a, acc0);
    acc1 = vfma(b, b, acc1);
  }
  for (; i + 16 <= n; i += 16) {
    const F16x a = vload(x + i);
    acc0 = vfma(a, a, acc0);
  }
  float s = vreduce(vadd(acc0, acc1));
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

void scale_mul(const float* x, const float* w, float s, float* y, int64_t n) {
  const F16x vs = vset1(s);
  int64_t i = 0;
  if (w) {
    for (; i + 16 <= n; i += 16) vstore(y + i, vmul(vmul(vload(x + i), vs), vload(w + i)));
    for (; i < n; ++i) y[i] = x[i] * s * w[i];
  } else {
    for (; i + 16 <= n; i += 16) vstore(y + i, vmul(vload(x + i), vs));
    for (; i < n; ++i) y[i] = x[i] * s;
  }
}

void mul(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vstore(y + i, vmul(vload(a + i), vload(b + i)));
  for (; i < n; ++i) y[i] = a[i] * b[i];
}
void add(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vstore(y + i, vadd(vload(a + i), vload(b + i)));
  for (; i < n; ++i) y[i] = a[i] + b[i];
}
void scale(float* x, float s, int64_t n) {
  const F16x vs = vset1(s);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vstore(x + i, vmul(vload(x + i), vs));
  for (; i < n; ++i) x[i] *= s;
}

// exp(x) to ~2 ulp for x in [-87.3, 88.3] (inputs outside are clamped): x = n ln2 + r,
// |r| <= ln2/2, Cephes' degree-6 polynomial for e^r, times 2^n built in the exponent field.
OMNI_INLINE F16x vexp(F16x x) {
  x = vmin(vmax(x, vset1(-87.3f)), vset1(88.3f));
  const F16x n = vround(vmul(x, vset1(1.44269504088896341f)));
  F16x r = vfma(n, vset1(-0.693359375f), x);
  r = vfma(n, vset1(2.12194440e-4f), r);
  F16x p = vset1(1.9875691500e-4f);
  p = vfma(p, r, vset1(1.3981999507e-3f));
  p = vfma(p, r, vset1(8.3334519073e-3f));
  p = vfma(p, r, vset1(4.1665795894e-2f));
  p = vfma(p, r, vset1(1.6666665459e-1f));
  p = vfma(p, r, vset1(5.0000001201e-1f));
  p = vfma(p, vmul(r, r), vadd(r, vset1(1.0f)));
  return vmul(p, vpow2i(n));
}

float exp_shift_sum(float* x, float shift, int64_t n) {
  const F16x vs = vset1(shift);
  F16x acc = vzero();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const F16x e = vexp(vsub(vload(x + i), vs));
    vstore(x + i, e);
    acc = vadd(acc, e);
  }
  float s = vreduce(acc);
  for (; i < n; ++i) s += (x[i] = std::exp(x[i] - shift));
  return s;
}

// silu(x) = x / (1 + e^-x); gelu_tanh(x) = x / (1 + e^(-2u)), u = sqrt(2/pi)(x + 0.044715 x^3),
// which is 0.5 x (1 + tanh u) rewritten with one exp.
void silu(float* x, int64_t n) {
  const F16x one = vset1(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const F16x v = vload(x + i);
    vstore(x + i, vdiv(v, vadd(one, vexp(vsub(vzero(), v)))));
  }
  for (; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void gelu_tanh(float* x, int64_t n) {
  const F16x one = vset1(1.0f), k = vset1(-2.0f * 0.7978845608028654f), c = vset1(0.044715f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const F16x v = vload(x + i);
    const F16x u = vmul(k, vfma(vmul(c, v), vmul(v, v), v));
    vstore(x + i, vdiv(v, vadd(one, vexp(u))));
  }
  for (; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  }
}

// gelu_erf(x) = 0.5 x (1 + erf(x / sqrt 2)) = max(x, 0) - h, h = 0.5 |x| erfc(|x| / sqrt 2) >= 0
// (one form for both signs, no cancellation for x < 0). erfc(z) for z >= 0 by Abramowitz and
// Stegun 7.1.26: t = 1 / (1 + p z), erfc(z) = t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-z^2),
// absolute error <= 1.5e-7; so |error| <= 0.75e-7 |x| plus f32 rounding (libm's erf per element
// was 4.8% of a Whisper transcription's time). |x| enters h clamped to 16, where h is below
// 1e-37 (so +inf gives +inf, not inf * 0); the clamp keeps a NaN (min returns its second
// operand when one is NaN), so NaN stays NaN.
void gelu_erf(float* x, int64_t n) {
  const F16x half = vset1(0.5f), one = vset1(1.0f), r2 = vset1(0.70710678118654752f), p = vset1(0.3275911f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const F16x v = vload(x + i);
    const F16x a = vmin(vset1(16.0f), vmax(v, vsub(vzero(), v)));
    const F16x z = vmul(a, r2);
    const F16x t = vdiv(one, vfma(p, z, one));
    F16x q = vset1(1.061405429f);
    q = vfma(q, t, vset1(-1.453152027f));
    q = vfma(q, t, vset1(1.421413741f));
    q = vfma(q, t, vset1(-0.284496736f));
    q = vfma(q, t, vset1(0.254829592f));
    const F16x erfc = vmul(vmul(q, t), vexp(vmul(vsub(vzero(), z), z)));
    vstore(x + i, vsub(vmax(v, vzero()), vmul(vmul(half, a), erfc)));
  }
  for (; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

constexpr IsaKernels kTable = {dot_rows, dequantize_row, gemm_f32, dot_kv, axpy_kv, attn_scores, attn_values, sum_squares,
                               scale_mul, mul, add, scale, exp_shift_sum, silu, gelu_tanh, gelu_erf};

#undef OMNI_INLINE
