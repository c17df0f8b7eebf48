#include "audio/whisper/whisper_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "audio/codec/snac_gemm.h"
#include "kernels/cpu/ops_cpu.h"

namespace omni::audio::whisper {
namespace {

enum Slot : size_t { kMatmul = 0, kIm2col = 1, kHeadQ = 2, kScores = 3, kHeadOut = 4 };

}  // namespace

void layer_norm(ThreadPool& pool, const float* x, const WhisperLayerNorm& ln, float* y,
                int64_t n_tok, int64_t d) {
  pool.parallel_for(n_tok, 4, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      const float* xt = x + t * d;
      float* yt = y + t * d;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < d; ++i) mean += xt[i];
      mean /= static_cast<double>(d);
      for (int64_t i = 0; i < d; ++i) var += (xt[i] - mean) * (xt[i] - mean);
      const float inv = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(d) + 1e-5));
      const float m = static_cast<float>(mean);
      for (int64_t i = 0; i < d; ++i) yt[i] = (xt[i] - m) * inv * ln.w[i] + ln.b[i];
    }
  });
}

void gelu_erf(ThreadPool& pool, float* x, int64_t n) {
  pool.parallel_for(n, 4096, [&](int64_t b, int64_t e, int) { cpu::gelu_erf(x + b, e - b); });
}

void linear(ThreadPool& pool, const WhisperLinear& l, const float* x, int64_t n_tok, float* y,
            Scratch& scratch) {
  const int64_t n_in = l.w.n_in, n_out = l.w.n_out;
  float* s = scratch.get(kMatmul, static_cast<size_t>(cpu::matmul_scratch_floats(n_in, pool.n_threads())));
  cpu::matmul(pool, l.w.type, l.w.data, n_out, n_in, x, n_tok, y, s);
  if (l.b.empty()) return;
  pool.parallel_for(n_tok, 8, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) cpu::add(y + t * n_out, l.b.data(), y + t * n_out, n_out);
  });
}

void conv1d(ThreadPool& pool, const WhisperConv& c, const float* x, int64_t n_in_t, int stride,
            float* y, Scratch& scratch) {
  const int64_t n_out_t = (n_in_t - 1) / stride + 1, k = c.kernel, cin = c.n_in;
  const int64_t row = k * cin;
  // col[t, j * cin + i] = x[stride * t + j - 1, i] (zero outside [0, n_in_t)).
  float* col = scratch.get(kIm2col, static_cast<size_t>(n_out_t * row));
  pool.parallel_for(n_out_t, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      for (int64_t j = 0; j < k; ++j) {
        const int64_t src = stride * t + j - (k - 1) / 2;
        float* dst = col + t * row + j * cin;
        if (src < 0 || src >= n_in_t) std::memset(dst, 0, static_cast<size_t>(cin) * sizeof(float));
        else std::memcpy(dst, x + src * cin, static_cast<size_t>(cin) * sizeof(float));
      }
    }
  });
  float* s = scratch.get(kMatmul, static_cast<size_t>(cpu::matmul_scratch_floats(row, pool.n_threads())));
  cpu::matmul(pool, DType::kF32, c.w.data(), c.n_out, row, col, n_out_t, y, s);
  pool.parallel_for(n_out_t, 8, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) cpu::add(y + t * c.n_out, c.b.data(), y + t * c.n_out, c.n_out);
  });
}

void split_heads(const float* k, const float* v, int64_t n_k, int64_t n_head, int64_t head_dim,
                 float* k_heads, float* vt_heads) {
  const int64_t d = n_head * head_dim;
  for (int64_t h = 0; h < n_head; ++h) {
    float* kh = k_heads + h * n_k * head_dim;
    float* vh = vt_heads + h * head_dim * n_k;
    for (int64_t t = 0; t < n_k; ++t) {
      std::memcpy(kh + t * head_dim, k + t * d + h * head_dim, static_cast<size_t>(head_dim) * sizeof(float));
      for (int64_t i = 0; i < head_dim; ++i) vh[i * n_k + t] = v[t * d + h * head_dim + i];
    }
  }
}

void attention_full(ThreadPool& pool, const float* q, int64_t n_q, const float* k_heads,
                    const float* vt_heads, int64_t n_k, int64_t n_head, int64_t head_dim,
                    float* out, Scratch& scratch) {
  const int64_t d = n_head * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  float* qh = scratch.get(kHeadQ, static_cast<size_t>(n_q * head_dim));
  float* scores = scratch.get(kScores, static_cast<size_t>(n_q * n_k));
  float* oh = scratch.get(kHeadOut, static_cast<size_t>(n_q * head_dim));
  float* s = scratch.get(kMatmul, static_cast<size_t>(cpu::matmul_scratch_floats(std::max(n_k, head_dim),
                                                                               pool.n_threads())));
  // Packing costs a pass over k_h per head: worth it for the encoder's many queries, not for a
  // decoder step's one (whose cross-attention comes here with n_q = the new tokens).
  const bool packed = n_q >= 64 && snac::packed_matmul_supported(DType::kF32);
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t t = 0; t < n_q; ++t)
      for (int64_t i = 0; i < head_dim; ++i) qh[t * head_dim + i] = q[t * d + h * head_dim + i] * scale;
    // scores [n_q, n_k] = q_h k_h^T: k_h [n_k, D] plays the weight matrix. The contraction is
    // only head_dim long, so the dot-product GEMM pays a horizontal sum per score; the
    // outer-product kernel of the SNAC codec has none (k_h packed into 32-key panels, each panel
    // against all queries): BM_WhisperAttention/1500 32.4 -> 27.6 ms (docs/WHISPER.md).
    const float* kh = k_heads + h * n_k * head_dim;
    if (packed) {
      const snac::PackedWeights pw = snac::pack_weights(DType::kF32, kh, n_k, head_dim);
      pool.parallel_for(pw.n_panels(), 1, [&](int64_t p0, int64_t p1, int) {
        snac::packed_matmul(pw, p0, p1, qh, n_q, scores, n_k, nullptr);
      });
    } else {
      cpu::matmul(pool, DType::kF32, kh, n_k, head_dim, qh, n_q, scores, s);
    }
    pool.parallel_for(n_q, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) cpu::softmax(scores + t * n_k, n_k);
    });
    // out_h [n_q, D] = P v_h: v_h^T [D, n_k] plays the weight matrix.
    cpu::matmul(pool, DType::kF32, vt_heads + h * head_dim * n_k, head_dim, n_k, scores, n_q, oh, s);
    for (int64_t t = 0; t < n_q; ++t)
      std::memcpy(out + t * d + h * head_dim, oh + t * head_dim, static_cast<size_t>(head_dim) * sizeof(float));
  }
}

void attention_few(ThreadPool& pool, const float* q, int64_t n_q, const float* k_heads,
                   const float* vt_heads, int64_t n_k, int64_t n_head, int64_t head_dim,
                   float* out, Scratch& scratch) {
  const int64_t d = n_head * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  float* qh = scratch.get(kHeadQ, static_cast<size_t>(n_head * n_q * head_dim));
  float* scores = scratch.get(kScores, static_cast<size_t>(n_head * n_q * n_k));
  float* oh = scratch.get(kHeadOut, static_cast<size_t>(n_head * n_q * head_dim));
  pool.parallel_for(n_head, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t h = b; h < e; ++h) {
      float* qv = qh + h * n_q * head_dim;
      for (int64_t t = 0; t < n_q; ++t)
        for (int64_t i = 0; i < head_dim; ++i) qv[t * head_dim + i] = q[t * d + h * head_dim + i] * scale;
      float* p = scores + h * n_q * n_k;
      // p [n_q, n_k] = q_h k_h^T, then o_h [n_q, D] = P v_h, on this thread (f32 rows need no scratch).
      cpu::matmul_rows(DType::kF32, k_heads + h * n_k * head_dim, 0, n_k, head_dim, qv, n_q, n_k, p, nullptr);
      for (int64_t t = 0; t < n_q; ++t) cpu::softmax(p + t * n_k, n_k);
      float* o = oh + h * n_q * head_dim;
      cpu::matmul_rows(DType::kF32, vt_heads + h * head_dim * n_k, 0, head_dim, n_k, p, n_q, head_dim, o, nullptr);
      for (int64_t t = 0; t < n_q; ++t)
        std::memcpy(out + t * d + h * head_dim, o + t * head_dim, static_cast<size_t>(head_dim) * sizeof(float));
    }
  });
}

}  // namespace omni::audio::whisper
