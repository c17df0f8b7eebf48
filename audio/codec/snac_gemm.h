// The SNAC decoder's 1x1 and transposed convolutions as one f32 GEMM over weights packed once
// into column panels: y[t, o] = sum_i W[o, i] * x[t, i] with x [T, n_in] and y [T, n_out]
// time-major (snac_ops.h). Activations are wide in time (up to 24064 steps) and narrow in
// channels (64..1024), so the kernel keeps 32 output channels x 12 steps of y in registers and
// per input channel loads 32 weights and broadcasts 12 activations: no horizontal sums, which
// the dot-product form (cpu::matmul_rows) pays once per output, a cost that dominates at 64 or
// 128 input channels. Each y[t, o] is one FMA chain over i in ascending order whatever the
// tiling or the thread split, so windows of a sequence (streaming) reproduce the whole decode.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/core/dtype.h"

namespace omni::audio::snac {

inline constexpr int64_t kPanelRows = 32;

// W [n_out, n_in] repacked as panels [ceil(n_out / 32)][n_in][32]: panel p holds rows
// [32p, 32p + 32) column by column; rows past n_out are zero.
struct PackedWeights {
  int64_t n_out = 0, n_in = 0;
  std::vector<float> panels;
  int64_t n_panels() const { return (n_out + kPanelRows - 1) / kPanelRows; }
};

// Whether packed_matmul runs on this CPU (AVX-512 selected) for weights of type t (f32, f16).
bool packed_matmul_supported(DType t);
// W [n_out, n_in] of type t (f32 or f16, values widened exactly) -> panels.
PackedWeights pack_weights(DType t, const void* w, int64_t n_out, int64_t n_in);
// y[t * y_stride + o] for o in the rows of panels [p0, p1) (clipped to n_out) and t in [0, T);
// x: [T, n_in]. Only call when packed_matmul_supported(). Does not allocate.
void packed_matmul(const PackedWeights& w, int64_t p0, int64_t p1, const float* x, int64_t T, float* y,
                   int64_t y_stride);

}  // namespace omni::audio::snac
