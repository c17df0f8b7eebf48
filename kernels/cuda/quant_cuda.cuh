// Device-side decoding of GGUF weight rows, 8 consecutive elements ("an octet") at a time:
// Quant<T>::load8(row, k, w) writes decode(row)[8k .. 8k+8) to w. Row layouts follow
// kernels/core/dtype.h; the arithmetic follows kernels/ref/quant_ref.cpp step by step (scale
// products rounded to f32 first, no fused multiply-add) so results match the reference exactly.
// Alignment: rows start 16-byte aligned (true for whole-block K-quant rows and for f16/bf16/f32
// rows of n % 8 == 0 when the matrix base is); 34/18/22/210-byte blocks are read with 2-byte loads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/core/dtype.h"

// nvcc's loop unrolling; nothing elsewhere (tests compile these decoders for the host too).
#if defined(__CUDACC__)
#define OMNI_UNROLL _Pragma("unroll")
#else
#define OMNI_UNROLL
#endif

namespace omni::cuda {

__device__ __forceinline__ float half_bits_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) { return __uint_as_float(h << 16); }
__device__ __forceinline__ uint16_t ld_u16(const uint8_t* p) { return __ldg(reinterpret_cast<const uint16_t*>(p)); }

// 8 bytes at a 2-byte aligned address.
__device__ __forceinline__ void ld_8bytes_a2(const uint8_t* p, uint8_t b[8]) {
OMNI_UNROLL
  for (int i = 0; i < 4; ++i) {
    const uint16_t v = ld_u16(p + 2 * i);
    b[2 * i] = static_cast<uint8_t>(v & 0xFF);
    b[2 * i + 1] = static_cast<uint8_t>(v >> 8);
  }
}
// 8 bytes at an 8-byte aligned address.
__device__ __forceinline__ void ld_8bytes_a8(const uint8_t* p, uint8_t b[8]) {
  const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
OMNI_UNROLL
  for (int i = 0; i < 4; ++i) {
    b[i] = static_cast<uint8_t>(v.x >> (8 * i));
    b[4 + i] = static_cast<uint8_t>(v.y >> (8 * i));
  }
}

// 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block (ref: k_scale_min).
__device__ __forceinline__ void k_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = __ldg(s + j) & 63;
    *m = __ldg(s + j + 4) & 63;
  } else {
    *sc = (__ldg(s + j + 4) & 0xF) | ((__ldg(s + j - 4) >> 6) << 4);
    *m = (__ldg(s + j + 4) >> 4) | ((__ldg(s + j) >> 6) << 4);
  }
}

template <DType T>
struct Quant;

template <>
struct Quant<DType::kF32> {
  static constexpr int kBlockElems = 1, kBlockBytes = 4;
  __device__ __forceinline__ static void load8(const uint8_t* row, int64_t k, float w[8]) {
    const float4* p = reinterpret_cast<const float4*>(row) + 2 * k;
    const float4 a = __ldg(p), b = __ldg(p + 1);
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
  }
  __device__ __forceinline__ static float load1(const uint8_t* row, int64_t i) {
    return __ldg(reinterpret_cast<const float*>(row) + i);
  }
};

template <>
struct Quant<DType::kF16> {
  static constexpr int kBlockElems = 1, kBlockBytes = 2;
  __device__ __forceinline__ static void load8(const uint8_t* row, int64_t k, float w[8]) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(row) + k);
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
OMNI_UNROLL
    for (int i = 0; i < 4; ++i) {
      w[2 * i] = half_bits_to_f32(static_cast<uint16_t>(u[i] & 0xFFFF));
      w[2 * i + 1] = half_bits_to_f32(static_cast<uint16_t>(u[i] >> 16));
    }
  }
  __device__ __forceinline__ static float load1(const uint8_t* row, int64_t i) {
    return half_bits_to_f32(__ldg(reinterpret_cast<const uint16_t*>(row) + i));
  }
};

template <>
struct Quant<DType::kBF16> {
  static constexpr int kBlockElems = 1, kBlockBytes = 2;
  __device__ __forceinline__ static void load8(const uint8_t* row, int64_t k, float w[8]) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(row) + k);
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
OMNI_UNROLL
    for (int i = 0; i < 4; ++i) {
      w[2 * i] = __uint_as_float(u[i] << 16);
      w[2 * i + 1] = __uint_as_float(u[i] & 0xFFFF0000u);
    }
  }
  __device__ __forceinline__ static float load1(const uint8_t* row, int64_t i) {
    return bf16_bits_to_f32(__ldg(reinterpret_cast<const uint16_t*>(row) + i));
  }
};

// value = d * q, 4 octets per 34-byte block.
template <>
struct Quant<DType::kQ8_0> {
  static constexpr int kBlockElems = 32, kBlockBytes = 34;
  __device__ __forceinline__ static void load8(const uint8_t* row, int64_t k, float w[8]) {
    const uint8_t* blk = row + (k >> 2) * kBlockBytes;
    const int j = static_cast<int>(k & 3);
    const float d = half_bits_to_f32(ld_u16(blk));
    uint8_t b[8];
    ld_8bytes_a2(blk + 2 + 8 * j, b);
OMNI_UNROLL
    for (int i = 0; i < 8; ++i) w[i] = __fmul_rn(static_cast<float>(static_cast<int8_t>(b[i])), d);
  }
};

// value = d * (nibble - 8); octets 0,1 are the low nibbles of qs[0..16), octets 2,3 the high.
template <>
struct Quant<DType::kQ4_0> {
  static constexpr int kBlockElems = 32, kBlockBytes = 18;
  __device__ __forceinline__ static void load8(const uint8_t* row, int64_t k, float w[8]) {
    const uint8_t* blk = row + (k >> 2) * kBlockBytes;
    const int j = static_cast<int>(k & 3);
    const float d = half_bits_to_f32(ld_u16(blk));
    uint8_t b[8];
    ld_8bytes_a2(blk + 2 + 8 * (j & 1), b);
    const int shift = j >= 2 ? 4 : 0;
OMNI_UNROLL
    for (int i = 0; i < 8; ++i) w[i] = __fmul_rn(d, static_cast<float>(((b[i] >> shift) & 0xF) - 8));
  }
};

// value = d * (q5 - 16); the fifth bits of octet j are byte j of qh.
template <>
struct Quant<DType::kQ5_0> {
  static constexpr int kBlockElems = 32, kBlockBytes = 22;
  __device__ __forceinline__ static void load8(const uint8_t* row, int64_t k, float w[8]) {
    const uint8_t* blk = row + (k >> 2) * kBlockBytes;
    const int j = static_cast<int>(k & 3);
    const float d = half_bits_to_f32(ld_u16(blk));
    const int qh = __ldg(blk + 2 + j);
    uint8_t b[8];
    ld_8bytes_a2(blk + 6 + 8 * (j & 1), b);
    const int shift = j >= 2 ? 4 : 0;
OMNI_UNROLL
    for (int i = 0; i < 8; ++i) {
      const int q = ((b[i] >> shift) & 0xF) | (((qh >> i) & 1) << 4);
      w[i] = __fmul_rn(d, static_cast<float>(q - 16));
    }
  }
};

// 32 octets per 144-byte super-block; octet kk covers sub-block s = kk/4, bytes qs[32*(s/2) + 8*(kk%4) ..+8),
// low nibbles for even s, high for odd. value = (d*sc) * q - (dmin*m).
template <>
struct Quant<DType::kQ4_K> {
  static constexpr int kBlockElems = 256, kBlockBytes = 144;
  __device__ __forceinline__ static void load8(const uint8_t* row, int64_t k, float w[8]) {
    const uint8_t* blk = row + (k >> 5) * kBlockBytes;
    const int kk = static_cast<int>(k & 31), s = kk >> 2, l0 = 8 * (kk & 3);
    const float d = half_bits_to_f32(ld_u16(blk)), dmin = half_bits_to_f32(ld_u16(blk + 2));
    int sc, m;
    k_scale_min(blk + 4, s, &sc, &m);
    const float d1 = __fmul_rn(d, static_cast<float>(sc)), m1 = __fmul_rn(dmin, static_cast<float>(m));
    uint8_t b[8];
    ld_8bytes_a8(blk + 16 + 32 * (s >> 1) + l0, b);
    const int shift = (s & 1) ? 4 : 0;
OMNI_UNROLL
    for (int i = 0; i < 8; ++i) w[i] = __fsub_rn(__fmul_rn(d1, static_cast<float>((b[i] >> shift) & 0xF)), m1);
  }
};

// As Q4_K with the fifth bit of element l of sub-block s in bit s of qh[l].
template <>
struct Quant<DType::kQ5_K> {
  static constexpr int kBlockElems = 256, kBlockBytes = 176;
  __device__ __forceinline__ static void load8(const uint8_t* row, int64_t k, float w[8]) {
    const uint8_t* blk = row + (k >> 5) * kBlockBytes;
    const int kk = static_cast<int>(k & 31), s = kk >> 2, l0 = 8 * (kk & 3);
    const float d = half_bits_to_f32(ld_u16(blk)), dmin = half_bits_to_f32(ld_u16(blk + 2));
    int sc, m;
    k_scale_min(blk + 4, s, &sc, &m);
    const float d1 = __fmul_rn(d, static_cast<float>(sc)), m1 = __fmul_rn(dmin, static_cast<float>(m));
    uint8_t qs[8], qh[8];
    ld_8bytes_a8(blk + 48 + 32 * (s >> 1) + l0, qs);
    ld_8bytes_a8(blk + 16 + l0, qh);
    const int shift = (s & 1) ? 4 : 0;
OMNI_UNROLL
    for (int i = 0; i < 8; ++i) {
      const int q = ((qs[i] >> shift) & 0xF) | (((qh[i] >> s) & 1) << 4);
      w[i] = __fsub_rn(__fmul_rn(d1, static_cast<float>(q)), m1);
    }
  }
};

// 210-byte super-block: ql[128], qh[64], scales[16] (int8), d. Octet kk: half h = kk/16, within
// the half r = 8*(kk%16), quarter g = r/32, l0 = r%32: low/high nibble (g >= 2) of
// ql[64h + 32(g&1) + l], bits 2g..2g+1 of qh[32h + l], scale scales[8h + l0/16 + 2g].
template <>
struct Quant<DType::kQ6_K> {
  static constexpr int kBlockElems = 256, kBlockBytes = 210;
  __device__ __forceinline__ static void load8(const uint8_t* row, int64_t k, float w[8]) {
    const uint8_t* blk = row + (k >> 5) * kBlockBytes;
    const int kk = static_cast<int>(k & 31), h = kk >> 4, r = 8 * (kk & 15), g = r >> 5, l0 = r & 31;
    const float d = half_bits_to_f32(ld_u16(blk + 208));
    const int sc = static_cast<int8_t>(__ldg(blk + 192 + 8 * h + (l0 >> 4) + 2 * g));
    const float ds = __fmul_rn(d, static_cast<float>(sc));
    uint8_t ql[8], qh[8];
    ld_8bytes_a2(blk + 64 * h + 32 * (g & 1) + l0, ql);
    ld_8bytes_a2(blk + 128 + 32 * h + l0, qh);
    const int shift = g >= 2 ? 4 : 0;
OMNI_UNROLL
    for (int i = 0; i < 8; ++i) {
      const int q = (((ql[i] >> shift) & 0xF) | (((qh[i] >> (2 * g)) & 3) << 4)) - 32;
      w[i] = __fmul_rn(ds, static_cast<float>(q));
    }
  }
};

// ---- single-token Q8_0 / Q4_K from a row span staged in shared memory (matvec.cu) ----------
// A warp copies a contiguous span of a row (16 Q8_0 blocks = 544 bytes, or 4 Q4_K super-blocks =
// 576 bytes) into shared memory with aligned 16-byte copies, starting at the row address rounded
// down to 16 bytes (`shift` bytes before the span); then each lane decodes its own 16 (Q8_0) or
// 32 (Q4_K) weights from there. Integers become floats exactly without the conversion units
// (quarter rate on sm_80/90): PRMT puts the byte under the exponent of 2^23, giving the f32
// 2^23 + byte, and one subtraction removes the 2^23 (int8: XOR 0x80 first, subtract 2^23 + 128).
// Everything here is also compiled for the host by tests/cuda_quant_host_test.cpp.

// __byte_perm and __funnelshift_r on the device, their definitions on the host.
__device__ __forceinline__ uint32_t prmt(uint32_t x, uint32_t y, uint32_t sel) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(x, y, sel);
#else
  const uint64_t v = (static_cast<uint64_t>(y) << 32) | x;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<uint32_t>((v >> (8 * ((sel >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return r;
#endif
}
__device__ __forceinline__ uint32_t funnel_r(uint32_t lo, uint32_t hi, uint32_t n) {  // n in [0, 31]
#if defined(__CUDA_ARCH__)
  return __funnelshift_r(lo, hi, n);
#else
  return static_cast<uint32_t>(((static_cast<uint64_t>(hi) << 32) | lo) >> n);
#endif
}

// Byte i (0..3) of u as the f32 2^23 + byte, minus `bias` (exact for bias 2^23 or 2^23 + 128).
__device__ __forceinline__ float byte_to_f32(uint32_t u, int i, float bias) {
  return __uint_as_float(prmt(u, 0x4B000000u, 0x7440u | static_cast<uint32_t>(i))) - bias;
}
constexpr float kMagicU8 = 8388608.0f;   // 2^23: unsigned bytes
constexpr float kMagicS8 = 8388736.0f;   // 2^23 + 128: int8 after XOR 0x80

// Where a warp's 16-byte copies of a span start: `addr` rounded down to 16, `shift` = addr % 16,
// `nvec` copies cover [addr, addr + bytes).
struct SpanCopy {
  uint64_t base;
  uint32_t shift;
  int nvec;
};
__device__ __forceinline__ SpanCopy span_copy(uint64_t addr, int64_t bytes) {
  const uint32_t shift = static_cast<uint32_t>(addr & 15);
  return SpanCopy{addr - shift, shift, static_cast<int>((shift + bytes + 15) >> 4)};
}

// Q8_0 span: 16 blocks of 34 bytes; lane l takes half l % 2 of block l / 2, i.e. elements
// 16 l .. 16 l + 15 of the span. `words` is the staged copy, the span's first block at byte
// `shift`. Writes the block's d and the 16 int8 as exact floats (d * q is the reference weight).
__device__ __forceinline__ void q8_0_span_decode(const uint32_t* words, uint32_t shift, int lane, float* d,
                                                 float (&q)[16]) {
  const uint32_t off = shift + 34u * static_cast<uint32_t>(lane >> 1);  // even
  *d = half_bits_to_f32(static_cast<uint16_t>(words[off >> 2] >> (8 * (off & 3))));
  const uint32_t qo = off + 2 + 16u * static_cast<uint32_t>(lane & 1);
  const uint32_t i0 = qo >> 2, sh = 8 * (qo & 3);
  uint32_t v[5];
OMNI_UNROLL
  for (int k = 0; k < 5; ++k) v[k] = words[i0 + k];
OMNI_UNROLL
  for (int k = 0; k < 4; ++k) {
    const uint32_t u = funnel_r(v[k], v[k + 1], sh) ^ 0x80808080u;
OMNI_UNROLL
    for (int i = 0; i < 4; ++i) q[4 * k + i] = byte_to_f32(u, i, kMagicS8);
  }
}

// d * sum(q x) over the lane's 16 weights: the reference's sum(d q x) in another order (d * q is
// exact in f32, 11 x 8 bits).
__device__ __forceinline__ float q8_0_span_dot(const uint32_t* words, uint32_t shift, int lane, const float (&x)[16]) {
  float d, q[16];
  q8_0_span_decode(words, shift, lane, &d, q);
  float s = q[0] * x[0];
OMNI_UNROLL
  for (int i = 1; i < 16; ++i) s = fmaf(q[i], x[i], s);
  return d * s;
}

// Scales and mins of sub-blocks 2j and 2j+1 of a Q4_K super-block (ref k_scale_min) from header
// words 1..3 (bytes 4..15), without indexing by j: sc and mn hold sub-block 2j in bits 0..7 and
// 2j+1 in bits 8..15.
__device__ __forceinline__ void q4_k_scale_min_pair(uint32_t h1, uint32_t h2, uint32_t h3, int j, uint32_t* sc,
                                                    uint32_t* mn) {
  const uint32_t sh = 16u * static_cast<uint32_t>(j & 1);
  const uint32_t y = (h1 >> sh) & 0xFFFFu, z = (h2 >> sh) & 0xFFFFu, w = (h3 >> sh) & 0xFFFFu;
  const bool low = j < 2;
  *sc = low ? (y & 0x3F3Fu) : ((w & 0x0F0Fu) | ((y >> 2) & 0x3030u));
  *mn = low ? (z & 0x3F3Fu) : (((w >> 4) & 0x0F0Fu) | ((z >> 2) & 0x3030u));
}

// Q4_K lane: the super-block's 16-byte header `head` and 16 bytes `qs` = qs[32 j + 16 m ..) hold
// elements 16 m .. 16 m + 15 of sub-blocks 2j (low nibbles: qa) and 2j+1 (high nibbles: qb) as
// exact floats; dm = {d1 of 2j, m1 of 2j, d1 of 2j+1, m1 of 2j+1} rounded as the reference
// (weight = d1 * q - m1).
__device__ __forceinline__ void q4_k_lane_decode(uint4 head, uint4 qs, int j, float (&dm)[4], float (&qa)[16],
                                                 float (&qb)[16]) {
  const float d = half_bits_to_f32(static_cast<uint16_t>(head.x & 0xFFFF));
  const float dmin = half_bits_to_f32(static_cast<uint16_t>(head.x >> 16));
  uint32_t sc, mn;
  q4_k_scale_min_pair(head.y, head.z, head.w, j, &sc, &mn);
  dm[0] = __fmul_rn(d, byte_to_f32(sc, 0, kMagicU8));
  dm[1] = __fmul_rn(dmin, byte_to_f32(mn, 0, kMagicU8));
  dm[2] = __fmul_rn(d, byte_to_f32(sc, 1, kMagicU8));
  dm[3] = __fmul_rn(dmin, byte_to_f32(mn, 1, kMagicU8));
  const uint32_t u[4] = {qs.x, qs.y, qs.z, qs.w};
OMNI_UNROLL
  for (int k = 0; k < 4; ++k) {
    const uint32_t lo = u[k] & 0x0F0F0F0Fu, hi = (u[k] >> 4) & 0x0F0F0F0Fu;
OMNI_UNROLL
    for (int i = 0; i < 4; ++i) {
      qa[4 * k + i] = byte_to_f32(lo, i, kMagicU8);
      qb[4 * k + i] = byte_to_f32(hi, i, kMagicU8);
    }
  }
}

// Q4_K span: 4 super-blocks of 144 bytes (always 16-byte aligned: shift 0); lane l takes
// super-block l / 8, j = (l / 2) % 4, m = l % 2. Offsets of the lane's x runs inside the span
// (sub-block 2j: xa; 2j+1: xa + 32) and of its two 16-byte values inside the staged copy:
__device__ __forceinline__ int q4_k_span_x(int lane) {
  return 256 * (lane >> 3) + 64 * ((lane >> 1) & 3) + 16 * (lane & 1);
}
__device__ __forceinline__ int q4_k_span_head(int lane) { return 9 * (lane >> 3); }
__device__ __forceinline__ int q4_k_span_qs(int lane) { return 9 * (lane >> 3) + 1 + 2 * ((lane >> 1) & 3) + (lane & 1); }

// (d1a sum(qa xa) - m1a sum(xa)) + (d1b sum(qb xb) - m1b sum(xb)), the sums of x given: the
// reference's sum((d1 q - m1) x) in another order (a few ulps per sub-block).
__device__ __forceinline__ float q4_k_lane_dot(uint4 head, uint4 qs, int j, const float (&xa)[16],
                                               const float (&xb)[16], float sxa, float sxb) {
  float dm[4], qa[16], qb[16];
  q4_k_lane_decode(head, qs, j, dm, qa, qb);
  float sa = qa[0] * xa[0], sb = qb[0] * xb[0];
OMNI_UNROLL
  for (int i = 1; i < 16; ++i) {
    sa = fmaf(qa[i], xa[i], sa);
    sb = fmaf(qb[i], xb[i], sb);
  }
  return (dm[0] * sa - dm[1] * sxa) + (dm[2] * sb - dm[3] * sxb);
}

// Calls f.template operator()<T>() for the runtime type t; false for types without a kernel.
template <class F>
bool dispatch_weight_type(DType t, F&& f) {
  switch (t) {
    case DType::kF32: f.template operator()<DType::kF32>(); return true;
    case DType::kF16: f.template operator()<DType::kF16>(); return true;
    case DType::kBF16: f.template operator()<DType::kBF16>(); return true;
    case DType::kQ8_0: f.template operator()<DType::kQ8_0>(); return true;
    case DType::kQ4_0: f.template operator()<DType::kQ4_0>(); return true;
    case DType::kQ5_0: f.template operator()<DType::kQ5_0>(); return true;
    case DType::kQ4_K: f.template operator()<DType::kQ4_K>(); return true;
    case DType::kQ5_K: f.template operator()<DType::kQ5_K>(); return true;
    case DType::kQ6_K: f.template operator()<DType::kQ6_K>(); return true;
    default: return false;
  }
}

constexpr bool is_plain_type(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace omni::cuda
