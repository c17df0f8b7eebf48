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
