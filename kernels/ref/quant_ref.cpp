// Scalar encode/decode of every weight type. Decoding follows ggml's dequantize_row_* (and
// gguf-py's quants.py) operation by operation so the results are bit-exact: block scale
// products (d * sc, dmin * m) are rounded to f32 first, then multiplied by the quant.
// d*q - m must round twice, as ggml does: the kernels target is built with -ffp-contract=off.

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/ref/ops_ref.h"

namespace omni::ref {
namespace {

// 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
inline void k_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

inline void k_pack_scale_min(const int sc[8], const int m[8], uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

void dequant_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void dequant_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>((b[i].qs[j] & 0xF) - 8);
      y[j + kQK / 2] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
    }
  }
}

void dequant_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = f16_to_f32(b[i].d);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (b[i].qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
      const int hi = (b[i].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo - 16);
      y[j + kQK / 2] = d * static_cast<float>(hi - 16);
    }
  }
}

void dequant_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0; j < 8; j += 2, q += 32, y += 64) {
      int sc, m;
      k_scale_min(b[i].scales, j, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      k_scale_min(b[i].scales, j + 1, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[l + 32] = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void dequant_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0; j < 8; j += 2, q += 32, y += 64) {
      int sc, m;
      k_scale_min(b[i].scales, j, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      k_scale_min(b[i].scales, j + 1, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const int q1 = (q[l] & 0xF) | (((b[i].qh[l] >> j) & 1) << 4);
        const int q2 = (q[l] >> 4) | (((b[i].qh[l] >> (j + 1)) & 1) << 4);
        y[l] = d1 * static_cast<float>(q1) - m1;
        y[l + 32] = d2 * static_cast<float>(q2) - m2;
      }
    }
  }
}

void dequant_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d);
    for (int h = 0; h < 2; ++h, y += 128) {
      const uint8_t* ql = b[i].ql + 64 * h;
      const uint8_t* qh = b[i].qh + 32 * h;
      const int8_t* sc = b[i].scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = (d * static_cast<float>(sc[is + 0])) * static_cast<float>(q1);
        y[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
        y[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
        y[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
      }
    }
  }
}

// ---- quantizers --------------------------------------------------------------------------

void quant_q8_0(const float* x, BlockQ8_0* b, int64_t nb) {  // ggml's quantize_row_q8_0_ref
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void quant_q4_0(const float* x, BlockQ4_0* b, int64_t nb) {  // ggml's quantize_row_q4_0_ref
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quant_q5_0(const float* x, BlockQ5_0* b, int64_t nb) {  // ggml's quantize_row_q5_0_ref
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -16;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
      const int q1 = std::min(31, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 16.5f)));
      b[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

// Asymmetric k-quant of one 256-value super-block: per 32-value sub-block an affine grid
// [lo, hi] -> [0, qmax], then 6-bit scales/mins relative to the super-block's d / dmin. The
// values are re-quantized against the rounded scales so the stored grid is the one used.
void quant_k_affine(const float* x, int qmax, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales,
                    uint8_t q[kQK_K]) {
  float sub_scale[8], sub_min[8];  // value ≈ sub_scale * q - sub_min, sub_min >= 0
  for (int s = 0; s < 8; ++s) {
    float lo = 0, hi = 0;  // the grid always contains 0 (min clamped like ggml's)
    for (int l = 0; l < 32; ++l) {
      lo = std::min(lo, x[32 * s + l]);
      hi = std::max(hi, x[32 * s + l]);
    }
    sub_scale[s] = (hi - lo) / static_cast<float>(qmax);
    sub_min[s] = -lo;
  }
  float max_scale = 0, max_min = 0;
  for (int s = 0; s < 8; ++s) {
    max_scale = std::max(max_scale, sub_scale[s]);
    max_min = std::max(max_min, sub_min[s]);
  }
  const float d = f16_to_f32(f32_to_f16(max_scale / 63));
  const float dmin = f16_to_f32(f32_to_f16(max_min / 63));
  int sc[8], m[8];
  for (int s = 0; s < 8; ++s) {
    sc[s] = d > 0 ? std::clamp(static_cast<int>(std::lround(sub_scale[s] / d)), 0, 63) : 0;
    m[s] = dmin > 0 ? std::clamp(static_cast<int>(std::lround(sub_min[s] / dmin)), 0, 63) : 0;
  }
  *d_out = f32_to_f16(d);
  *dmin_out = f32_to_f16(dmin);
  k_pack_scale_min(sc, m, scales);
  for (int s = 0; s < 8; ++s) {
    const float step = d * static_cast<float>(sc[s]), off = dmin * static_cast<float>(m[s]);
    for (int l = 0; l < 32; ++l) {
      const float v = step > 0 ? (x[32 * s + l] + off) / step : 0.0f;
      q[32 * s + l] = static_cast<uint8_t>(std::clamp(static_cast<int>(std::lround(v)), 0, qmax));
    }
  }
}

void quant_q4_k(const float* x, BlockQ4_K* b, int64_t nb) {
  uint8_t q[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quant_k_affine(x, 15, &b[i].d, &b[i].dmin, b[i].scales, q);
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l)
        b[i].qs[32 * j + l] = static_cast<uint8_t>(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
  }
}

void quant_q5_k(const float* x, BlockQ5_K* b, int64_t nb) {
  uint8_t q[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quant_k_affine(x, 31, &b[i].d, &b[i].dmin, b[i].scales, q);
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) {
        const int q1 = q[64 * j + l], q2 = q[64 * j + 32 + l];
        b[i].qs[32 * j + l] = static_cast<uint8_t>((q1 & 0xF) | ((q2 & 0xF) << 4));
        b[i].qh[l] |= static_cast<uint8_t>(((q1 >> 4) << (2 * j)) | ((q2 >> 4) << (2 * j + 1)));
      }
  }
}

// Symmetric 6-bit: per 16-value sub-block scale = absmax / 31 (q in [-31, 31] of [-32, 31]),
// int8 sub-scales relative to d = max|scale| / 127.
void quant_q6_k(const float* x, BlockQ6_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float sub[16], max_sub = 0;
    for (int s = 0; s < 16; ++s) {
      float amax = 0;
      for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * s + l]));
      sub[s] = amax / 31;
      max_sub = std::max(max_sub, sub[s]);
    }
    const float d = f16_to_f32(f32_to_f16(max_sub / 127));
    b[i].d = f32_to_f16(d);
    uint8_t q[kQK_K];
    for (int s = 0; s < 16; ++s) {
      const int sc = d > 0 ? std::clamp(static_cast<int>(std::lround(sub[s] / d)), 0, 127) : 0;
      b[i].scales[s] = static_cast<int8_t>(sc);
      const float step = d * static_cast<float>(sc);
      for (int l = 0; l < 16; ++l) {
        const float v = step > 0 ? x[16 * s + l] / step : 0.0f;
        q[16 * s + l] = static_cast<uint8_t>(std::clamp(static_cast<int>(std::lround(v)), -32, 31) + 32);
      }
    }
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* qq = q + 128 * h;
        b[i].ql[64 * h + l] = static_cast<uint8_t>((qq[l] & 0xF) | ((qq[l + 64] & 0xF) << 4));
        b[i].ql[64 * h + l + 32] = static_cast<uint8_t>((qq[l + 32] & 0xF) | ((qq[l + 96] & 0xF) << 4));
        b[i].qh[32 * h + l] = static_cast<uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
                                                   ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
      }
  }
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
      return;
    }
    case DType::kQ8_0: return dequant_q8_0(static_cast<const BlockQ8_0*>(src), dst, n / kQK);
    case DType::kQ4_0: return dequant_q4_0(static_cast<const BlockQ4_0*>(src), dst, n / kQK);
    case DType::kQ5_0: return dequant_q5_0(static_cast<const BlockQ5_0*>(src), dst, n / kQK);
    case DType::kQ4_K: return dequant_q4_k(static_cast<const BlockQ4_K*>(src), dst, n / kQK_K);
    case DType::kQ5_K: return dequant_q5_k(static_cast<const BlockQ5_K*>(src), dst, n / kQK_K);
    case DType::kQ6_K: return dequant_q6_k(static_cast<const BlockQ6_K*>(src), dst, n / kQK_K);
    default:
      // Callers check dtype_traits(t).supported before computing; reaching here is a bug.
      for (int64_t i = 0; i < n; ++i) dst[i] = std::nanf("");
      return;
  }
}

int64_t quantize_row(DType t, const float* src, void* dst, int64_t n) {
  switch (t) {
    case DType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case DType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(src[i]);
      break;
    }
    case DType::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(src[i]);
      break;
    }
    case DType::kQ8_0: quant_q8_0(src, static_cast<BlockQ8_0*>(dst), n / kQK); break;
    case DType::kQ4_0: quant_q4_0(src, static_cast<BlockQ4_0*>(dst), n / kQK); break;
    case DType::kQ5_0: quant_q5_0(src, static_cast<BlockQ5_0*>(dst), n / kQK); break;
    case DType::kQ4_K: quant_q4_k(src, static_cast<BlockQ4_K*>(dst), n / kQK_K); break;
    case DType::kQ5_K: quant_q5_k(src, static_cast<BlockQ5_K*>(dst), n / kQK_K); break;
    case DType::kQ6_K: quant_q6_k(src, static_cast<BlockQ6_K*>(dst), n / kQK_K); break;
    default: return 0;
  }
  return dtype_row_bytes(t, n);
}

}  // namespace omni::ref
