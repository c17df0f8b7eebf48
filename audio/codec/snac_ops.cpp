#include "audio/codec/snac_ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/ops_cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace omni::audio::snac {
namespace {

// Time steps per parallel chunk: enough work per thread hand-off, small enough to balance.
int64_t grain_for(int64_t C) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)); }

// sin(z)^2 for |z| < 1e4: sin^2 has period pi, so reduce by n = round(z / pi) (pi split in two
// parts, Cody-Waite) to r in [-pi/2, pi/2], then an odd degree-9 polynomial fitted to sin on
// that interval (minimax, Lawson iterations; max error 1.5e-7 evaluated in float, the same as
// the degree-15 Taylor series it replaced, which is float-rounding bound too). Branch-free so
// the loop vectorises; callers redo larger |z| with std::sin.
#define OMNI_SNAC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

inline float sin2_reduced(float z) {
  constexpr float kInvPi = 0.318309886183790671538f;
  constexpr float kPiHi = 3.14159274101257324219f;   // float(pi)
  constexpr float kPiLo = -8.74227800037248297e-08f;  // pi - float(pi)
  constexpr float kRound = 12582912.0f;                // 1.5 * 2^23: rounds to an integer
  const float n = (z * kInvPi + kRound) - kRound;
  const float r = (z - n * kPiHi) - n * kPiLo;
  const float r2 = r * r;
  float s = 2.5904885205818573e-06f;
  s = s * r2 - 0.00019800897280219942f;
  s = s * r2 + 0.008332899771630764f;
  s = s * r2 - 0.16666647791862488f;
  s = s * r2 + 1.0f;
  const float sn = s * r;
  return sn * sn;
}

OMNI_SNAC_CLONES
bool snake_row(const float* x, float* y, int64_t C, const float* alpha, const float* inv_alpha) {
  int big = 0;  // an integer OR reduction vectorises (a float max would not without fast-math)
  for (int64_t c = 0; c < C; ++c) {
    const float z = alpha[c] * x[c];
    big |= !(std::fabs(z) < 1e4f);  // also catches NaN
    y[c] = x[c] + inv_alpha[c] * sin2_reduced(z);
  }
  return big != 0;
}

// One output row: yr[c] = bias[c] + sum over the taps in range of w[j][c] * x[t - pad + j*d][c],
// in tap order.
OMNI_SNAC_CLONES
void dw_row_generic(const float* const* xs, const float* const* ws, int n, float* yr, int64_t C, const float* bias) {
  for (int64_t c = 0; c < C; ++c) yr[c] = bias ? bias[c] : 0.0f;
  for (int m = 0; m < n; ++m)
    for (int64_t c = 0; c < C; ++c) yr[c] += ws[m][c] * xs[m][c];
}

#if defined(__x86_64__)
// The same sums with 64 channels held in four zmm across the taps: one store per output
// instead of a load and a store per tap.
__attribute__((target("avx512f,fma"))) void dw_row_avx512(const float* const* xs, const float* const* ws, int n,
                                                          float* yr, int64_t C, const float* bias) {
  int64_t c = 0;
  for (; c + 64 <= C; c += 64) {
    __m512 a0 = bias ? _mm512_loadu_ps(bias + c) : _mm512_setzero_ps();
    __m512 a1 = bias ? _mm512_loadu_ps(bias + c + 16) : _mm512_setzero_ps();
    __m512 a2 = bias ? _mm512_loadu_ps(bias + c + 32) : _mm512_setzero_ps();
    __m512 a3 = bias ? _mm512_loadu_ps(bias + c + 48) : _mm512_setzero_ps();
    for (int m = 0; m < n; ++m) {
      const float* xm = xs[m] + c;
      const float* wm = ws[m] + c;
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(wm), _mm512_loadu_ps(xm), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(wm + 16), _mm512_loadu_ps(xm + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(wm + 32), _mm512_loadu_ps(xm + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(wm + 48), _mm512_loadu_ps(xm + 48), a3);
    }
    _mm512_storeu_ps(yr + c, a0);
    _mm512_storeu_ps(yr + c + 16, a1);
    _mm512_storeu_ps(yr + c + 32, a2);
    _mm512_storeu_ps(yr + c + 48, a3);
  }
  for (; c < C; c += 16) {
    const __mmask16 k = static_cast<__mmask16>(C - c >= 16 ? 0xFFFF : (1u << (C - c)) - 1);
    __m512 a = bias ? _mm512_maskz_loadu_ps(k, bias + c) : _mm512_setzero_ps();
    for (int m = 0; m < n; ++m)
      a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, ws[m] + c), _mm512_maskz_loadu_ps(k, xs[m] + c), a);
    _mm512_mask_storeu_ps(yr + c, k, a);
  }
}
#endif

// x holds the sequence's rows from x_first on.
void dw_row(const float* x, int64_t x_first, float* yr, int64_t t, int64_t T, int64_t C, const float* w, int k,
            int dilation, const float* bias) {
  constexpr int kMaxTaps = 16;  // the decoder's convs have 7
  const int64_t pad = int64_t(k - 1) * dilation / 2;
  if (k > kMaxTaps) {  // longer kernels: one pass per tap, same sums in the same order
    for (int64_t c = 0; c < C; ++c) yr[c] = bias ? bias[c] : 0.0f;
    for (int j = 0; j < k; ++j) {
      const int64_t ts = t - pad + int64_t(j) * dilation;
      if (ts < 0 || ts >= T) continue;
      const float* xr = x + (ts - x_first) * C;
      const float* wj = w + int64_t(j) * C;
      for (int64_t c = 0; c < C; ++c) yr[c] += wj[c] * xr[c];
    }
    return;
  }
  const float* xs[kMaxTaps];
  const float* ws[kMaxTaps];
  int n = 0;
  for (int j = 0; j < k; ++j) {
    const int64_t ts = t - pad + int64_t(j) * dilation;
    if (ts < 0 || ts >= T) continue;
    xs[n] = x + (ts - x_first) * C;
    ws[n] = w + int64_t(j) * C;
    ++n;
  }
#if defined(__x86_64__)
  if (cpu_isa() == CpuIsa::kAvx512) return dw_row_avx512(xs, ws, n, yr, C, bias);
#endif
  dw_row_generic(xs, ws, n, yr, C, bias);
}

OMNI_SNAC_CLONES
void add_row(float* y, const float* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a[i];
}

OMNI_SNAC_CLONES
void add2_row(float* y, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a[i] + b[i];
}

OMNI_SNAC_CLONES
void axpy_row(float* y, float a, const float* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * h[i];
}

// One row of snake; in place allowed.
void snake_one(const float* xr, float* yr, int64_t C, const float* alpha, const float* inv_alpha) {
  if (!snake_row(xr, yr, C, alpha, inv_alpha)) return;
  for (int64_t c = 0; c < C; ++c) {  // rare: huge activations, exact reduction
    const float s = std::sin(alpha[c] * xr[c]);
    yr[c] = xr[c] + inv_alpha[c] * (s * s);
  }
}

}  // namespace

void snake_rows(const float* x, float* y, int64_t n, int64_t C, const float* alpha, const float* inv_alpha) {
  for (int64_t t = 0; t < n; ++t) snake_one(x + t * C, y + t * C, C, alpha, inv_alpha);
}

void depthwise_conv1d_rows(const float* x, int64_t x_first, float* y, int64_t t0, int64_t t1, int64_t T, int64_t C,
                           const float* w, int k, int dilation, const float* bias, const float* snake_alpha,
                           const float* snake_inv_alpha) {
  for (int64_t t = t0; t < t1; ++t) {
    float* yr = y + (t - t0) * C;
    dw_row(x, x_first, yr, t, T, C, w, k, dilation, bias);
    if (snake_alpha) snake_one(yr, yr, C, snake_alpha, snake_inv_alpha);
  }
}

void snake(ThreadPool& pool, const float* x, float* y, int64_t T, int64_t C, const float* alpha,
           const float* inv_alpha) {
  pool.parallel_for(T, grain_for(C), [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) snake_one(x + t * C, y + t * C, C, alpha, inv_alpha);
  });
}

void depthwise_conv1d(ThreadPool& pool, const float* x, float* y, int64_t T, int64_t C,
                      const float* w, int k, int dilation, const float* bias,
                      const float* snake_alpha, const float* snake_inv_alpha) {
  pool.parallel_for(T, grain_for(C), [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      float* yr = y + t * C;
      dw_row(x, 0, yr, t, T, C, w, k, dilation, bias);
      if (snake_alpha) snake_one(yr, yr, C, snake_alpha, snake_inv_alpha);
    }
  });
}

void add_bias(ThreadPool& pool, float* y, int64_t T, int64_t C, const float* bias) {
  if (!bias) return;
  pool.parallel_for(T, grain_for(C), [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) add_row(y + t * C, bias, C);
  });
}

void add_residual(ThreadPool& pool, float* x, const float* y, const float* bias, int64_t T, int64_t C) {
  pool.parallel_for(T, grain_for(C), [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) add2_row(x + t * C, y + t * C, bias, C);
  });
}

void overlap_add_rows(const float* z, int64_t z_first, int64_t T_in, int64_t C_out, int k, int s, int p,
                      const float* bias, float* y, int64_t t0, int64_t t1) {
  const int64_t zc = int64_t(k) * C_out;
  for (int64_t t = t0; t < t1; ++t) {
    float* yr = y + t * C_out;
    for (int64_t o = 0; o < C_out; ++o) yr[o] = bias ? bias[o] : 0.0f;
    // Inputs i with j = t + p - i*s in [0, k).
    const int64_t num_hi = t + p, num_lo = t + p - (k - 1);
    int64_t i_lo = num_lo <= 0 ? -((-num_lo) / s) : (num_lo + s - 1) / s;
    int64_t i_hi = num_hi / s;  // num_hi >= 0
    i_lo = std::max<int64_t>(i_lo, 0);
    i_hi = std::min<int64_t>(i_hi, T_in - 1);
    for (int64_t i = i_lo; i <= i_hi; ++i) {
      const int64_t j = t + p - i * s;
      add_row(yr, z + (i - z_first) * zc + j * C_out, C_out);
    }
  }
}

void overlap_add(ThreadPool& pool, const float* z, int64_t T_in, int64_t C_out, int k, int s,
                 int p, const float* bias, float* y) {
  pool.parallel_for(T_in * s, grain_for(C_out), [&](int64_t b, int64_t e, int) {
    overlap_add_rows(z, 0, T_in, C_out, k, s, p, bias, y, b, e);
  });
}

void add_scaled_rows_serial(float* x, const float* h, const float* noise, int64_t T, int64_t C) {
  for (int64_t t = 0; t < T; ++t) axpy_row(x + t * C, noise[t], h + t * C, C);
}

void add_scaled_rows(ThreadPool& pool, float* x, const float* h, const float* noise, int64_t T,
                     int64_t C) {
  pool.parallel_for(T, grain_for(C), [&](int64_t b, int64_t e, int) {
    add_scaled_rows_serial(x + b * C, h + b * C, noise + b, e - b, C);
  });
}

void taps_to_mono_tanh(ThreadPool& pool, const float* z, int64_t T, int k, float bias, float* y) {
  const int64_t pad = (k - 1) / 2;
  pool.parallel_for(T, 1024, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      float acc = bias;
      for (int j = 0; j < k; ++j) {
        const int64_t ts = t - pad + j;
        if (ts >= 0 && ts < T) acc += z[ts * k + j];
      }
      y[t] = std::tanh(acc);
    }
  });
}

float noise_value(uint64_t seed, int block, int64_t t) {
  uint64_t r = seed * 0x9E3779B97F4A7C15ull + uint64_t(block + 1) * 0xD1B54A32D192ED03ull + uint64_t(t);
  r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
  r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
  r ^= r >> 31;
  const double u1 = (double(r >> 32) + 0.5) / 4294967296.0;
  const double u2 = double(r & 0xffffffffull) / 4294967296.0;
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

}  // namespace omni::audio::snac
