// Internal: the per-ISA inner loops behind kernels/cpu/ops_cpu.h. One table per instruction set
// (scalar, AVX2+FMA+F16C, AVX-512); the drivers in ops_cpu.cpp / matmul_cpu.cpp /
// attention_cpu.cpp pick a table once and do threading, tiling and scratch management.
// None of these functions allocates.
#pragma once

#include <cstdint>

#include "kernels/core/dtype.h"

namespace omni::cpu::detail {

struct IsaKernels {
  // y[r] = dot(row r, x) for r in [0, n_rows); rows are row_bytes apart, n_in elements each
  // (whole blocks for quantized types). Weights are decoded in registers, x stays f32.
  void (*dot_rows)(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
                   const float* x, float* y);
  // Bit-exact decode (same operation order as ggml / gguf-py).
  void (*dequantize_row)(DType t, const void* src, float* dst, int64_t n);
  // y[t * y_stride + r] = dot(w[r, :], x[t, :]) for an f32 tile w: [n_rows, n_in] and
  // x: [n_tok, n_in].
  void (*gemm_f32)(const float* w, int64_t n_rows, int64_t n_in, const float* x, int64_t n_tok,
                   float* y, int64_t y_stride);
  // Attention inner loops: kv_f16 selects f16 (else f32) storage for k / v.
  float (*dot_kv)(const float* q, const void* k, bool kv_f16, int64_t n);
  void (*axpy_kv)(float a, const void* v, bool kv_f16, float* y, int64_t n);  // y += a * v
  // One query position's G heads (q_g = q + g * hd) that share a KV head, against n rows of K or V
  // (row j at kv + j * kv_stride bytes): each row is read and converted once for all G.
  // s[g * s_stride + j] = q_g . k_j
  void (*attn_scores)(const float* q, int64_t G, const void* k, int64_t kv_stride, bool kv_f16, int64_t n,
                      int64_t hd, float* s, int64_t s_stride);
  // o[g * o_stride + d] = sum_j p[g * p_stride + j] * v_j[d] (o overwritten)
  void (*attn_values)(const float* p, int64_t p_stride, int64_t G, const void* v, int64_t kv_stride, bool kv_f16,
                      int64_t n, int64_t hd, float* o, int64_t o_stride);
  float (*sum_squares)(const float* x, int64_t n);
  void (*scale_mul)(const float* x, const float* w, float s, float* y, int64_t n);  // y = x*s*(w?w:1)
  void (*mul)(const float* a, const float* b, float* y, int64_t n);
  void (*add)(const float* a, const float* b, float* y, int64_t n);
  void (*scale)(float* x, float s, int64_t n);
  // In-place x = exp(x - shift), returns the sum (softmax's numerator and denominator).
  float (*exp_shift_sum)(float* x, float shift, int64_t n);
  void (*silu)(float* x, int64_t n);
  void (*gelu_tanh)(float* x, int64_t n);
  void (*gelu_erf)(float* x, int64_t n);
};

// The int8-activation decode path (opt-in, see ops_cpu.h matvec_int8): x quantised once per
// call as in ref::quantize_act_q8 (bit-identical), then integer dot products per block with
// f32 scales; results equal ref::dot_int8 to f32 rounding.
struct Int8Kernels {
  void (*quantize)(const float* x, int64_t n, int8_t* q, float* d, float* s);
  // y[r] = ref::dot_int8(t, row r, q, d, s, n_in) for r in [0, n_rows); t is Q8_0, Q4_0, Q5_0, Q4_K, Q5_K or Q6_K.
  void (*dot_rows)(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
                   const int8_t* q, const float* d, const float* s, float* y);
  // The three-level x (ref::quantize_act_q8x3, bit-identical; q is 3 * n bytes) and its rows:
  // y[r] = ref::dot_int8x3(t, row r, q, d, s, n_in) to f32 rounding.
  void (*quantize3)(const float* x, int64_t n, int8_t* q, float* d, float* s);
  void (*dot_rows3)(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
                    const int8_t* q, const float* d, const float* s, float* y);
};
const Int8Kernels& int8_avx2_kernels();        // avx2 + fma + f16c: vpmaddubsw + vpmaddwd
const Int8Kernels& int8_avx512vnni_kernels();  // also avx512f/bw/vl + avx512vnni: vpdpbusd
// The table for cpu_isa() (AVX-512 without VNNI takes the AVX2 one; scalar: the ref code).
const Int8Kernels& active_int8_kernels();

const IsaKernels& scalar_kernels();
const IsaKernels& avx2_kernels();    // only call when the CPU has avx2, fma, f16c
const IsaKernels& avx512_kernels();  // only call when the CPU has avx512f/bw/vl/dq
// The table for the ISA selected by cpu_isa() / cpu::set_isa.
const IsaKernels& active_kernels();

}  // namespace omni::cpu::detail
