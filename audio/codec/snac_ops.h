// The building blocks of the SNAC decoder, on activations stored time-major: x[t * C + c]
// ([T, C] row-major, one row per time step, channels contiguous — the layout cpu::matmul's
// x [n_tok, n_in] takes, so a 1x1 conv is one matmul and a transposed conv is one matmul plus
// an overlap-add). Each function is the PyTorch op it names with zero padding at both ends.
// Functions taking a ThreadPool split the time axis across it; none allocates.
#pragma once

#include <cstdint>

#include "kernels/core/dtype.h"
#include "kernels/core/thread_pool.h"

namespace omni::audio::snac {

// y = x + inv_alpha * sin(alpha * x)^2 per channel (Snake1d; inv_alpha = 1 / (alpha + 1e-9)).
// In place allowed (y == x). x, y: [T, C].
void snake(ThreadPool& pool, const float* x, float* y, int64_t T, int64_t C, const float* alpha,
           const float* inv_alpha);

// Depthwise Conv1d (groups = C), kernel k, dilation d, padding (k-1)*d/2 (same length).
// w: [k, C] (tap-major), bias: [C]. x, y: [T, C], y != x.
// With snake_alpha set, applies snake(alpha, inv_alpha) to each output row while it is in L1.
void depthwise_conv1d(ThreadPool& pool, const float* x, float* y, int64_t T, int64_t C,
                      const float* w, int k, int dilation, const float* bias,
                      const float* snake_alpha = nullptr, const float* snake_inv_alpha = nullptr);

// Serial forms over a range of rows, for work on time chunks that stay in cache.
// snake over n rows (in place allowed).
void snake_rows(const float* x, float* y, int64_t n, int64_t C, const float* alpha, const float* inv_alpha);
// Output rows [t0, t1) of depthwise_conv1d over a sequence of T steps, into y [t1 - t0, C]; x holds
// the input rows from x_first on (x[(t - x_first) * C]) and must cover every tap inside [0, T)
// that these rows read (taps outside [0, T) are the zero padding).
void depthwise_conv1d_rows(const float* x, int64_t x_first, float* y, int64_t t0, int64_t t1, int64_t T, int64_t C,
                           const float* w, int k, int dilation, const float* bias,
                           const float* snake_alpha = nullptr, const float* snake_inv_alpha = nullptr);

// y[t, c] += bias[c] for all t (bias may be null: no-op).
void add_bias(ThreadPool& pool, float* y, int64_t T, int64_t C, const float* bias);

// x[t, c] += y[t, c] + bias[c] (a residual branch whose last conv left its bias out).
void add_residual(ThreadPool& pool, float* x, const float* y, const float* bias, int64_t T, int64_t C);

// Overlap-add half of ConvTranspose1d(stride s, kernel k, padding p, output_padding so that
// the output has T_in * s steps): z [T_in, k * C_out] holds z[i, j * C_out + o] =
// sum_c x[i, c] W[c, o, j] (one matmul); y[i*s - p + j, o] = bias[o] + sum of the z that land
// there. y: [T_in * s, C_out].
void overlap_add(ThreadPool& pool, const float* z, int64_t T_in, int64_t C_out, int k, int s,
                 int p, const float* bias, float* y);

// Serial: output rows [t0, t1) of overlap_add into y (row t at y + t * C_out); z holds the
// input rows from z_first on and must cover the ones these outputs take (i in [t0/s - 1, t1/s]
// for kernel 2s, inside [0, T_in)).
void overlap_add_rows(const float* z, int64_t z_first, int64_t T_in, int64_t C_out, int k, int s, int p,
                      const float* bias, float* y, int64_t t0, int64_t t1);

// Serial form of add_scaled_rows.
void add_scaled_rows_serial(float* x, const float* h, const float* noise, int64_t T, int64_t C);

// x[t, c] += noise[t] * h[t, c] (NoiseBlock with h = linear(x)). In place on x.
void add_scaled_rows(ThreadPool& pool, float* x, const float* h, const float* noise, int64_t T,
                     int64_t C);

// Second half of Conv1d C -> 1 (kernel k, padding (k-1)/2) then tanh: z [T, k] holds
// z[t, j] = sum_c x[t, c] w[0, c, j] (one matmul); y[t] = tanh(bias + sum_j z[t - pad + j, j]).
void taps_to_mono_tanh(ThreadPool& pool, const float* z, int64_t T, int k, float bias, float* y);

// The noise value for position t (absolute, at that block's rate) of decoder block `block`:
// a standard normal from a counter-based generator, so any window of a sequence draws exactly
// what the whole sequence draws. Definition (tools/make_snac_fixtures.py repeats it):
//   key = seed * 0x9E3779B97F4A7C15 + (block + 1) * 0xD1B54A32D192ED03 + t   (mod 2^64)
//   r = splitmix64_finalizer(key); u1 = ((r >> 32) + 0.5) / 2^32; u2 = (r & 0xffffffff) / 2^32
//   noise = float(sqrt(-2 ln u1) * cos(2 pi u2))   (in double)
float noise_value(uint64_t seed, int block, int64_t t);

}  // namespace omni::audio::snac
