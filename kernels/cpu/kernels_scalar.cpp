// The portable IsaKernels table: plain loops, used on CPUs without AVX2 and as a test baseline.
#include <cmath>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/ref/ops_ref.h"

namespace omni::cpu::detail {
namespace {

void dot_rows(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
              const float* x, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = ref::dot(t, w + r * row_bytes, x, n_in);
}

void gemm_f32(const float* w, int64_t n_rows, int64_t n_in, const float* x, int64_t n_tok, float* y,
              int64_t y_stride) {
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t r = 0; r < n_rows; ++r) {
      float s = 0;
      for (int64_t i = 0; i < n_in; ++i) s += w[r * n_in + i] * x[t * n_in + i];
      y[t * y_stride + r] = s;
    }
}

inline float kv_elem(const void* p, bool f16, int64_t i) {
  return f16 ? f16_to_f32(static_cast<const uint16_t*>(p)[i]) : static_cast<const float*>(p)[i];
}
float dot_kv(const float* q, const void* k, bool kv_f16, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += q[i] * kv_elem(k, kv_f16, i);
  return s;
}
void axpy_kv(float a, const void* v, bool kv_f16, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * kv_elem(v, kv_f16, i);
}
void attn_scores(const float* q, int64_t G, const void* k, int64_t kv_stride, bool kv_f16, int64_t n, int64_t hd,
                 float* s, int64_t s_stride) {
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j = 0; j < n; ++j)
      s[g * s_stride + j] = dot_kv(q + g * hd, static_cast<const uint8_t*>(k) + j * kv_stride, kv_f16, hd);
}
void attn_values(const float* p, int64_t p_stride, int64_t G, const void* v, int64_t kv_stride, bool kv_f16, int64_t n,
                 int64_t hd, float* o, int64_t o_stride) {
  for (int64_t g = 0; g < G; ++g) {
    float* og = o + g * o_stride;
    for (int64_t d = 0; d < hd; ++d) og[d] = 0.0f;
    for (int64_t j = 0; j < n; ++j)
      axpy_kv(p[g * p_stride + j], static_cast<const uint8_t*>(v) + j * kv_stride, kv_f16, og, hd);
  }
}
float sum_squares(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}
void scale_mul(const float* x, const float* w, float s, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s * (w ? w[i] : 1.0f);
}
float exp_shift_sum(float* x, float shift, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - shift));
  return s;
}
void gelu_tanh(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  }
}
void silu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}
void gelu_erf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

constexpr IsaKernels kTable = {dot_rows, ref::dequantize_row, gemm_f32, dot_kv, axpy_kv, attn_scores, attn_values,
                               sum_squares, scale_mul, ref::mul, ref::add, ref::scale,
                               exp_shift_sum, silu, gelu_tanh, gelu_erf};

}  // namespace

const IsaKernels& scalar_kernels() { return kTable; }

}  // namespace omni::cpu::detail
