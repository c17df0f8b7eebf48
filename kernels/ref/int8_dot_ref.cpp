// Scalar reference of the int8-activation decode dot (see ops_ref.h): the oracle for
// kernels/cpu/int8_dot_*.cpp, which must equal it to f32 rounding.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/core/dtype.h"
#include "kernels/ref/ops_ref.h"

namespace omni::ref {
namespace {

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K block (ggml's get_scale_min_k4).
void scale_min_k4(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// The signed integer weights of a one-scale block (Q8_0: q; Q4_0: nibble - 8; Q5_0: q5 - 16;
// element j < 16 in the low nibble of qs[j], element j >= 16 in the high nibble of qs[j - 16]).
// Returns the f16 scale.
uint16_t block_ints(DType t, const uint8_t* blk, int* out) {
  if (t == DType::kQ8_0) {
    const auto& b = *reinterpret_cast<const BlockQ8_0*>(blk);
    for (int i = 0; i < kQK; ++i) out[i] = b.qs[i];
    return b.d;
  }
  if (t == DType::kQ4_0) {
    const auto& b = *reinterpret_cast<const BlockQ4_0*>(blk);
    for (int i = 0; i < kQK / 2; ++i) {
      out[i] = (b.qs[i] & 0xF) - 8;
      out[i + 16] = (b.qs[i] >> 4) - 8;
    }
    return b.d;
  }
  const auto& b = *reinterpret_cast<const BlockQ5_0*>(blk);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int i = 0; i < kQK / 2; ++i) {
    out[i] = ((b.qs[i] & 0xF) | (((qh >> i) & 1) << 4)) - 16;
    out[i + 16] = ((b.qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4)) - 16;
  }
  return b.d;
}

// A 32-value block's d = max|x| / 127, and *id = 1 / d (0 for an all-zero block).
float block_scale(const float* xb, float* id) {
  float amax = 0.0f;
  for (int i = 0; i < kQK; ++i) amax = std::fmax(amax, std::fabs(xb[i]));
  const float db = amax / 127.0f;
  *id = db != 0.0f ? 1.0f / db : 0.0f;
  return db;
}

}  // namespace

void quantize_act_q8(const float* x, int64_t n, int8_t* q, float* d, float* s) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    float id;
    const float db = block_scale(xb, &id);
    int32_t sum = 0;
    for (int i = 0; i < kQK; ++i) {
      const int v = static_cast<int>(std::nearbyint(xb[i] * id));
      q[b * kQK + i] = static_cast<int8_t>(v);
      sum += v;
    }
    d[b] = db;
    s[b] = db * static_cast<float>(sum);
  }
}

void quantize_act_q8x3(const float* x, int64_t n, int8_t* q, float* d, float* s) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    float id;
    const float db = block_scale(xb, &id);
    int32_t sum = 0;
    for (int i = 0; i < kQK; ++i) {
      // t - v1 and t2 - v2 are exact (Sterbenz), so each level holds the rounded residual of
      // the one before; the kernels compute the same three roundings.
      const float t = xb[i] * id;
      const float v1 = std::nearbyint(t);
      const float t2 = (t - v1) * 128.0f;
      const float v2 = std::nearbyint(t2);
      const float v3 = std::nearbyint((t2 - v2) * 128.0f);
      q[b * kQK + i] = static_cast<int8_t>(v1);
      q[n + b * kQK + i] = static_cast<int8_t>(v2);
      q[2 * n + b * kQK + i] = static_cast<int8_t>(v3);
      sum += kQ8x3Top * static_cast<int32_t>(v1) + 128 * static_cast<int32_t>(v2) + static_cast<int32_t>(v3);
    }
    d[b] = db / static_cast<float>(kQ8x3Top);
    s[b] = d[b] * static_cast<float>(sum);
  }
}

bool int8_dot_supported(DType t) {
  return t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ5_0 || t == DType::kQ4_K || t == DType::kQ5_K ||
         t == DType::kQ6_K;
}

namespace {
// The integer x of the dot: q itself (int8) or the three levels of quantize_act_q8x3 combined,
// 16384 * q1 + 128 * q2 + q3. Sums of weight times x are int64 (the combined x has 22 bits).
struct OneLevel {
  const int8_t* q;
  int64_t operator[](int64_t i) const { return q[i]; }
};
struct ThreeLevels {
  const int8_t* q;
  int64_t n;
  int64_t operator[](int64_t i) const { return kQ8x3Top * int64_t{q[i]} + 128 * int64_t{q[n + i]} + q[2 * n + i]; }
};

template <class X>
float dot_levels(DType t, const void* w_row, X q, const float* d, const float* s, int64_t n) {
  if (t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ5_0) {
    const auto* row = static_cast<const uint8_t*>(w_row);
    const int64_t bsize = dtype_traits(t).type_size;
    float acc = 0.0f;
    for (int64_t b = 0; b < n / kQK; ++b) {
      int wq[kQK];
      const float dw = f16_to_f32(block_ints(t, row + b * bsize, wq));
      int64_t isum = 0;
      for (int i = 0; i < kQK; ++i) isum += wq[i] * q[b * kQK + i];
      acc += (dw * d[b]) * static_cast<float>(isum);
    }
    return acc;
  }
  if (t == DType::kQ4_K || t == DType::kQ5_K) {
    // The two layouts differ only in qh (Q5_K: bit sb of qh[l] is the fifth bit of element l of
    // sub-block sb) and the block size.
    const bool q5 = t == DType::kQ5_K;
    const auto* row = static_cast<const uint8_t*>(w_row);
    const int64_t bsize = dtype_traits(t).type_size;
    float acc = 0.0f, bias = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      uint16_t dh, dminh;
      const uint8_t *scales, *qs_all, *qh = nullptr;
      if (q5) {
        const auto& blk = *reinterpret_cast<const BlockQ5_K*>(row + b * bsize);
        dh = blk.d, dminh = blk.dmin, scales = blk.scales, qs_all = blk.qs, qh = blk.qh;
      } else {
        const auto& blk = *reinterpret_cast<const BlockQ4_K*>(row + b * bsize);
        dh = blk.d, dminh = blk.dmin, scales = blk.scales, qs_all = blk.qs;
      }
      const float dw = f16_to_f32(dh), dmin = f16_to_f32(dminh);
      for (int sb = 0; sb < 8; ++sb) {
        int sc, m;
        scale_min_k4(scales, sb, &sc, &m);
        // Sub-block sb: nibbles of qs[32 * (sb / 2) + l], low for even sb, high for odd.
        const uint8_t* qs = qs_all + 32 * (sb / 2);
        const int64_t xo = b * kQK_K + 32 * sb;
        int64_t isum = 0;
        for (int l = 0; l < 32; ++l) {
          int v = (sb & 1) ? qs[l] >> 4 : qs[l] & 0xF;
          if (q5) v |= ((qh[l] >> sb) & 1) << 4;
          isum += v * q[xo + l];
        }
        const int64_t xb = b * 8 + sb;
        acc += (dw * static_cast<float>(sc) * d[xb]) * static_cast<float>(isum);
        bias += (dmin * static_cast<float>(m)) * s[xb];
      }
    }
    return acc - bias;
  }
  if (t == DType::kQ6_K) {
    // Per 32-value run r (one x block): isum_r = sum_l scale[16-group of l] * (q6_l - 32) * q_l,
    // an exact int32 (|.| <= 32 * 128 * 32 * 127 < 2^24), then one f32 product (d * d[r]).
    const auto* blocks = static_cast<const BlockQ6_K*>(w_row);
    float acc = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
      const BlockQ6_K& blk = blocks[b];
      const float dw = f16_to_f32(blk.d);
      for (int r = 0; r < 8; ++r) {
        // Run r = 32k + l within half h = r / 4, k = r % 4: nibble from ql[64h + 32(k & 1) + l]
        // (low for k < 2), top two bits from qh[32h + l] >> 2k; scale scales[8h + 2k + l / 16].
        const int h = r / 4, k = r % 4;
        const uint8_t* ql = blk.ql + 64 * h + 32 * (k & 1);
        const uint8_t* qh = blk.qh + 32 * h;
        const int8_t* sc = blk.scales + 8 * h + 2 * k;
        const int64_t xo = b * kQK_K + 32 * r;
        int64_t isum = 0;
        for (int l = 0; l < 32; ++l) {
          const int nib = k < 2 ? ql[l] & 0xF : ql[l] >> 4;
          const int v = (nib | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
          isum += sc[l / 16] * v * q[xo + l];
        }
        acc += (dw * d[b * 8 + r]) * static_cast<float>(isum);
      }
    }
    return acc;
  }
  return std::nanf("");
}
}  // namespace

float dot_int8(DType t, const void* w_row, const int8_t* q, const float* d, const float* s, int64_t n) {
  return dot_levels(t, w_row, OneLevel{q}, d, s, n);
}

float dot_int8x3(DType t, const void* w_row, const int8_t* q, const float* d, const float* s, int64_t n) {
  return dot_levels(t, w_row, ThreeLevels{q, n}, d, s, n);
}

}  // namespace omni::ref
