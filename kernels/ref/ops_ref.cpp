// Scalar reference ops: straightforward loops, double accumulation where a sum is involved.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ref/ops_ref.h"

namespace omni::ref {

float dot(DType t, const void* w_row, const float* x, int64_t n) {
  // Decode one block at a time into a stack buffer (every block size divides 256).
  const DTypeTraits& tr = dtype_traits(t);
  const int64_t chunk = tr.block_size == 1 ? 256 : tr.block_size;
  const int64_t chunk_bytes = chunk / tr.block_size * tr.type_size;
  const auto* p = static_cast<const uint8_t*>(w_row);
  float buf[256];
  double acc = 0;
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t len = std::min(chunk, n - i);
    dequantize_row(t, p + i / chunk * chunk_bytes, buf, len);
    for (int64_t j = 0; j < len; ++j) acc += static_cast<double>(buf[j]) * x[i + j];
  }
  return static_cast<float>(acc);
}

void matmul(DType wt, const void* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tok,
            float* y) {
  const int64_t row_bytes = dtype_row_bytes(wt, n_in);
  const auto* wp = static_cast<const uint8_t*>(w);
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t o = 0; o < n_out; ++o) y[t * n_out + o] = dot(wt, wp + o * row_bytes, x + t * n_in, n_in);
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i] * inv * (w ? w[i] : 1.0f));
}

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos,
          float freq_base, float freq_scale, RopeStyle style) {
  const int64_t half = rot_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t j = 0; j < half; ++j) {
      const double theta = static_cast<double>(pos) * freq_scale *
                           std::pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(j) / rot_dim);
      const double c = std::cos(theta), s = std::sin(theta);
      const int64_t i0 = style == RopeStyle::kNeox ? j : 2 * j;
      const int64_t i1 = style == RopeStyle::kNeox ? j + half : 2 * j + 1;
      const double a = v[i0], b = v[i1];
      v[i0] = static_cast<float>(a * c - b * s);
      v[i1] = static_cast<float>(a * s + b * c);
    }
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - mx) / sum);
}

void silu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    x[i] = static_cast<float>(v / (1.0 + std::exp(-v)));
  }
}

void gelu_erf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    x[i] = static_cast<float>(0.5 * v * std::erfc(-v / std::sqrt(2.0)));
  }
}

void gelu_tanh(float* x, int64_t n) {
  const double k = std::sqrt(2.0 / M_PI);
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    x[i] = static_cast<float>(0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v))));
  }
}

void mul(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}
void add(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
void scale(float* x, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void attention(const AttentionParams& p, const float* q, const void* k, const void* v, float* out) {
  const int64_t group = p.n_head / p.n_kv_head;
  const int64_t kv_row = p.n_kv_head * p.head_dim;  // elements per position
  auto kv_at = [&](const void* base, int64_t pos, int64_t kvh, int64_t d) -> double {
    const int64_t idx = pos * kv_row + kvh * p.head_dim + d;
    if (p.kv_type == DType::kF16) return f16_to_f32(static_cast<const uint16_t*>(base)[idx]);
    return static_cast<const float*>(base)[idx];
  };
  std::vector<double> score;
  for (int64_t i = 0; i < p.n_q; ++i) {
    const int64_t pos = p.pos0 + i;
    const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
    for (int64_t h = 0; h < p.n_head; ++h) {
      const int64_t kvh = h / group;
      const float* qv = q + (i * p.n_head + h) * p.head_dim;
      score.assign(static_cast<size_t>(pos - lo + 1), 0.0);
      double mx = -INFINITY;
      for (int64_t j = lo; j <= pos; ++j) {
        double s = 0;
        for (int64_t d = 0; d < p.head_dim; ++d) s += qv[d] * kv_at(k, j, kvh, d);
        s *= p.scale;
        if (p.softcap > 0) s = p.softcap * std::tanh(s / p.softcap);
        score[static_cast<size_t>(j - lo)] = s;
        mx = std::max(mx, s);
      }
      double sum = 0;
      for (double& s : score) sum += (s = std::exp(s - mx));
      float* o = out + (i * p.n_head + h) * p.head_dim;
      for (int64_t d = 0; d < p.head_dim; ++d) {
        double acc = 0;
        for (int64_t j = lo; j <= pos; ++j) acc += score[static_cast<size_t>(j - lo)] * kv_at(v, j, kvh, d);
        o[d] = static_cast<float>(acc / sum);
      }
    }
  }
}

}  // namespace omni::ref
