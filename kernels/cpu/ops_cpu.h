// Fast CPU implementations of the ops in kernels/ref/ops_ref.h (same semantics, same argument
// conventions), with AVX2 / AVX-512 code paths chosen once at run time from CPUID.
// Kernels that take a ThreadPool split their work across it; others run on the calling thread.
// None of them allocates.
#pragma once

#include <cstdint>

#include "kernels/core/dtype.h"
#include "kernels/core/thread_pool.h"
#include "kernels/ref/ops_ref.h"

namespace omni {

enum class CpuIsa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
// Best ISA this CPU and this build support (overridable with OMNIRT_CPU_ISA=scalar|avx2|avx512).
CpuIsa cpu_isa();
const char* cpu_isa_name(CpuIsa isa);
// "avx2 fma f16c avx512f avx512bw ..." as detected, for `omnirt --version`.
const char* cpu_features_string();

namespace cpu {

// Force an ISA (tests run every path the machine has). Returns false if unavailable.
bool set_isa(CpuIsa isa);

void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// y[t, o] = sum_i W[o, i] * x[t, i], parallel over output rows. Activations stay f32; weights
// are decoded in registers (no quantization of x), so results match ref::matmul to f32 rounding.
// scratch: at least matmul_scratch_floats(n_in, n_threads) floats (used when n_tok > 1).
int64_t matmul_scratch_floats(int64_t n_in, int n_threads);
void matmul(ThreadPool& pool, DType wt, const void* w, int64_t n_out, int64_t n_in, const float* x,
            int64_t n_tok, float* y, float* scratch);
// Rows per chunk for a decode matrix-vector product on ThreadPool::parallel_for_balanced (as
// matmul, matvec_int8 and matvec_int8x3 use): ~64 KiB of weights (a long sequential stream for
// the prefetchers), at most an eighth of one thread's share (so that small matrices balance
// too), a multiple of `grain`.
int64_t matvec_chunk_rows(int64_t row_bytes, int64_t n_rows, int n_threads, int64_t grain);
// Like matmul, for one row range [row_begin, row_end) only and one thread (building block).
// w and y are the whole matrix and output (as for matmul): reads rows [row_begin, row_end) of W
// and writes y[t * y_stride + o] for those o and t < n_tok only.
// scratch: at least matmul_scratch_floats(n_in, 1) floats (used when n_tok > 1).
void matmul_rows(DType wt, const void* w, int64_t row_begin, int64_t row_end, int64_t n_in,
                 const float* x, int64_t n_tok, int64_t y_stride, float* y, float* scratch);

// Decode (one token) with int8 activations, opt-in (ContextParams::int8_activations): x is
// quantised once per call (ref::quantize_act_q8: blocks of 32, int8) and each row is an integer
// dot product per block (vpdpbusd with AVX512-VNNI, vpmaddubsw with AVX2) scaled in f32:
// y[o] = ref::dot_int8(wt, row o, quantised x) to f32 rounding, which differs from the f32
// path by x's 8-bit rounding (~1e-3 relative, see docs/KERNELS.md).
// Returns false and does nothing when wt has no int8 path (ref::int8_dot_supported), n_in is
// not a multiple of the block, or scratch_bytes < matvec_int8_scratch_bytes(n_in): the caller
// then takes matmul. scratch holds the quantised x (no allocation here).
int64_t matvec_int8_scratch_bytes(int64_t n_in);
bool matvec_int8(ThreadPool& pool, DType wt, const void* w, int64_t n_out, int64_t n_in,
                 const float* x, float* y, void* scratch, int64_t scratch_bytes);
// The same with x in three int8 levels (ref::quantize_act_q8x3: x ~= d * (16384 q1 + 128 q2 +
// q3), error <= max|x in block| * 2^-22): y[o] = ref::dot_int8x3(wt, row o, x's levels) to f32
// rounding. Three vpdpbusd per weight vector instead of one, for f32-grade results; the
// decode step's default for the weight types where it is faster than the f32 path
// (int8x3_decode_faster). Same refusals and scratch as matvec_int8.
bool matvec_int8x3(ThreadPool& pool, DType wt, const void* w, int64_t n_out, int64_t n_in,
                   const float* x, float* y, void* scratch, int64_t scratch_bytes);
// Whether OMNIRT_INT8_DOT=1 is set in the environment (read once): a quick opt-in for tries.
bool int8_dot_env();
// Whether matvec_int8x3 beats the f32 decode loops for wt on this machine's kernels
// (bench/int8_bench.cpp, docs/KERNELS.md): Q4_K, Q5_K and Q6_K with the AVX512-VNNI or AVX2
// table; Q4_0 and Q5_0 with AVX512-VNNI only (AVX2's one-block loop is slower than f32 there);
// not Q8_0 (equal speed), nor the scalar table.
bool int8x3_decode_faster(DType wt);
// Whether OMNIRT_DECODE_F32=1 is set (read once): decode matvecs stay on the f32 loops.
bool decode_f32_env();

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos,
          float freq_base, float freq_scale, RopeStyle style);
// rope() of a token's queries (n_q_heads) and keys (n_k_heads) at the same position: the angles
// are computed once for both (the same values, so the same results as two rope() calls).
void rope_qk(float* q, int64_t n_q_heads, float* k, int64_t n_k_heads, int64_t head_dim, int64_t rot_dim,
             int64_t pos, float freq_base, float freq_scale, RopeStyle style);
void softmax(float* x, int64_t n);
void silu(float* x, int64_t n);
void gelu_tanh(float* x, int64_t n);
void gelu_erf(float* x, int64_t n);  // 0.5 x (1 + erf(x / sqrt 2)); |error| <= 1e-7 |x| + f32 rounding
void mul(const float* a, const float* b, float* y, int64_t n);
void add(const float* a, const float* b, float* y, int64_t n);
void scale(float* x, float s, int64_t n);
// Index of the first largest element, exactly as std::max_element (NaNs are never picked,
// except a NaN at index 0, which is returned); -1 for n <= 0. Vectorised: greedy decoding's
// argmax over a 262144-entry vocabulary.
int64_t argmax(const float* x, int64_t n);

// scratch: at least attention_scratch_floats(p, n_threads) floats (scores, per thread).
int64_t attention_scratch_floats(const AttentionParams& p, int n_threads);
void attention(ThreadPool& pool, const AttentionParams& p, const float* q, const void* k,
               const void* v, float* out, float* scratch);

}  // namespace cpu
}  // namespace omni
