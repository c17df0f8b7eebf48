// Element types and quantized block layouts, bit-compatible with ggml's (llama.cpp) so that GGUF
// files made for llama.cpp load unchanged. Ids are ggml_type values as stored in GGUF.
#pragma once

#include <cstddef>
#include <cstdint>

namespace omni {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

constexpr int kQK = 32;    // elements per Q4_0 / Q8_0 block
constexpr int kQK_K = 256;  // elements per k-quant super-block
constexpr int kKScaleSize = 12;

// d: f16 scale; value = d * q, q in [-128, 127].  34 bytes per 32 values.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// value = d * (nibble - 8); low nibbles hold elements 0..15, high nibbles 16..31.  18 bytes.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// value = d * (q5 - 16), q5 = nibble | (bit from qh) << 4; low nibbles hold elements 0..15,
// high nibbles 16..31; bit j of qh (little-endian u32) is the fifth bit of element j.  22 bytes.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// 8 sub-blocks of 32; 6-bit scale and min per sub-block packed in `scales`;
// value = d * sc * q - dmin * m, q a nibble.  144 bytes per 256 values.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
// As Q4_K plus a fifth bit per value in qh.  176 bytes per 256 values.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 sub-blocks of 16, int8 scales; value = d * scale * (q6 - 32).  210 bytes per 256 values.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};

static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

struct DTypeTraits {
  const char* name;     // ggml's name: "f32", "q4_K", ...
  int64_t block_size;   // elements per block (1 for plain types)
  int64_t type_size;    // bytes per block
  bool supported;       // omnirt can compute with weights of this type
};

// Traits for a GGUF type id; nullptr for ids that are not ggml types at all.
const DTypeTraits* dtype_traits(uint32_t id);
inline const DTypeTraits& dtype_traits(DType t) { return *dtype_traits(static_cast<uint32_t>(t)); }
inline const char* dtype_name(DType t) { return dtype_traits(t).name; }
// Bytes needed for one row of n elements; -1 if n is not a multiple of the block size.
int64_t dtype_row_bytes(DType t, int64_t n);
// Parses "f32", "F16", "q4_k", "Q8_0", ... (case-insensitive). Returns false on unknown names.
bool dtype_from_name(const char* name, DType* out);

// IEEE half and bfloat16 conversions (round to nearest even; NaN preserved).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f);

}  // namespace omni
