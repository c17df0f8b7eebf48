// Scalar reference implementations of every op: the numerical oracle that SIMD and CUDA
// versions are tested against. Written for clarity, not speed. All activations are f32.
// Matrix convention (ggml's): a weight matrix W with n_out rows of n_in elements is stored
// row-major, each row encoded in the weight type (quantized rows are whole blocks).
#pragma once

#include <cstdint>

#include "kernels/core/dtype.h"

namespace omni {

enum class RopeStyle : int {
  kNormal = 0,  // llama: rotates adjacent pairs (x[2i], x[2i+1])
  kNeox = 2,    // qwen2, gemma: rotates (x[i], x[i + rot_dim/2])
};

// Decode-or-prefill attention over a contiguous KV cache for one sequence.
// Query i (0 <= i < n_q) sits at position pos0 + i and attends causally to positions
// [max(0, pos - window + 1), pos] (window <= 0: no window).
struct AttentionParams {
  int64_t n_q = 1;        // query tokens
  int64_t n_head = 0;     // query heads
  int64_t n_kv_head = 0;  // key/value heads (n_head % n_kv_head == 0, GQA)
  int64_t head_dim = 0;
  int64_t pos0 = 0;       // position of query 0; K/V hold positions [0, pos0 + n_q)
  int64_t window = 0;     // sliding window length in tokens, 0 = full causal
  float scale = 1.0f;     // applied to q·k
  float softcap = 0.0f;   // 0 = off; else logits = softcap * tanh(logits / softcap)
  DType kv_type = DType::kF32;  // kF32 or kF16
};

namespace ref {

// dst[0..n) = decoded src; n must be a multiple of the type's block size.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Encodes n floats (multiple of the block size) into dst; returns bytes written.
// Supported: F32, F16, BF16, Q8_0, Q4_0, Q5_0 (ggml's rounding, byte-identical to gguf-py),
// Q4_K, Q5_K, Q6_K (our own per-sub-block min/max quantizer); other types return 0.
int64_t quantize_row(DType t, const float* src, void* dst, int64_t n);
// sum_i decode(w)[i] * x[i], accumulated in double.
float dot(DType t, const void* w_row, const float* x, int64_t n);
// int8-activation decode path (llama.cpp-style, opt-in): x is quantised once per matvec into
// blocks of 32, x[i] ~= d[b] * q[i] with b = i / 32, d[b] = max|x in b| / 127, q[i] =
// nearbyint(x[i] * (1 / d[b])) in [-127, 127] (q = 0 where d = 0); s[b] = d[b] * sum of q in b.
// n must be a multiple of 32. q: n int8, d and s: n / 32 floats.
void quantize_act_q8(const float* x, int64_t n, int8_t* q, float* d, float* s);
// Three-level ("split") int8 activations, the default decode path for the 4- to 6-bit types:
// each block's x is quantised as above (q1, with t = x * (1 / d0), d0 = max / 127), then its
// rounding residual twice more at 128 steps per unit: q2 = nearbyint((t - q1) * 128), q3 =
// nearbyint(((t - q1) * 128 - q2) * 128), both in [-64, 64]. So x ~= d * Q with the integer
// Q = 16384 q1 + 128 q2 + q3 (22 bits) and d = d0 / 16384: an error of at most d0 / 32768 =
// max|x in block| * 2^-22 (int8 alone: max * 2^-8), while the dot still runs on int8 operands
// (three vpdpbusd per weight vector, combined by shifts in int32).
// q: 3n int8, level-major (q1[0..n), q2[0..n), q3[0..n)); d: n / 32 floats (d0 / 16384);
// s[b] = d[b] * sum of Q in b.
constexpr int32_t kQ8x3Top = 16384;
void quantize_act_q8x3(const float* x, int64_t n, int8_t* q, float* d, float* s);
// Weight types with an int8-activation dot: Q8_0, Q4_0, Q5_0, Q4_K, Q5_K and Q6_K.
bool int8_dot_supported(DType t);
// The int8 dot of one weight row with quantised x, defining the computation the SIMD kernels
// reproduce (to f32 rounding: they sum the same terms in another order):
//   Q8_0, Q4_0, Q5_0: sum_b (d_w[b] * d[b]) * isum_b, isum_b = sum of w_int * q over block b
//         (w_int the signed integer weight: q, nibble - 8, q5 - 16);
//   Q4_K: sum_s (d * sc_s * d[s]) * isum_s - sum_s (dmin * m_s) * s[s] over 32-value
//         sub-blocks s, isum_s = sum of nibble * q (integers, exact).
//   Q5_K: as Q4_K with the 5-bit q5 = nibble | fifth bit << 4 in place of the nibble;
//   Q6_K: sum_r (d * d[r]) * isum_r over 32-value runs r, isum_r = sum of sc * (q6 - 32) * q
//         with sc the int8 scale of the element's 16-value group (integers, exact).
// Accumulated in f32 in index order. NaN for unsupported types.
float dot_int8(DType t, const void* w_row, const int8_t* q, const float* d, const float* s, int64_t n);
// The same with the three-level x of quantize_act_q8x3: q_int replaced by Q (integer sums in
// int64, then the same f32 products).
float dot_int8x3(DType t, const void* w_row, const int8_t* q, const float* d, const float* s, int64_t n);

// y[t, o] = sum_i W[o, i] * x[t, i].  W: [n_out, n_in] of type wt; x: [n_tok, n_in]; y: [n_tok, n_out].
void matmul(DType wt, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tok,
            float* y);

// y = x / sqrt(mean(x^2) + eps) * (w ? w : 1), n elements. y may alias x.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
// Rotates the first rot_dim dims of each of n_heads heads ([n_heads, head_dim], in place)
// by position pos: theta_j = pos * freq_scale * freq_base^(-2j/rot_dim).
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos,
          float freq_base, float freq_scale, RopeStyle style);
void softmax(float* x, int64_t n);  // in place, numerically stable
void silu(float* x, int64_t n);      // x * sigmoid(x), in place
void gelu_tanh(float* x, int64_t n);  // 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))), in place
void gelu_erf(float* x, int64_t n);   // 0.5x(1+erf(x/sqrt(2))) (torch.nn.GELU()), in place
void mul(const float* a, const float* b, float* y, int64_t n);  // y = a*b, may alias
void add(const float* a, const float* b, float* y, int64_t n);  // y = a+b, may alias
void scale(float* x, float s, int64_t n);

// q: [n_q, n_head, head_dim] f32; k, v: [pos0 + n_q, n_kv_head, head_dim] of kv_type;
// out: [n_q, n_head, head_dim] f32.
void attention(const AttentionParams& p, const float* q, const void* k, const void* v, float* out);

}  // namespace ref
}  // namespace omni
