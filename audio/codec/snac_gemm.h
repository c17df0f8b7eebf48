// The SNAC decoder's 1x1 and transposed convolutions as one GEMM over weights packed once into
// column panels: y[t, o] = sum_i W[o, i] * x[t, i] with x [T, n_in] and y [T, n_out] time-major
// (snac_ops.h). Activations are wide in time (up to 24064 steps) and narrow in channels
// (64..1024), so the kernel keeps 32 output channels x 12 steps of y in registers and per input
// channel loads 32 weights and broadcasts 12 activations: no horizontal sums, which the
// dot-product form (cpu::matmul_rows) pays once per output, a cost that dominates at 64 or 128
// input channels. Each y[t, o] is one accumulation chain over i in ascending order whatever the
// tiling or the thread split, so windows of a sequence (streaming) reproduce the whole decode.
//
// Two panel types:
// - f32 (matrices stored f32, f16 or Q8_0, widened exactly): f32 FMAs, the reference's math.
// - bf16 (matrices stored bf16, on CPUs with AVX512_BF16): x is rounded to bf16 (nearest even)
//   and each pair of input channels is one `vdpbf16ps` step, twice the FMA rate. This is what
//   ggml does for BF16 weights (activations converted to the weights' type); the error is the
//   bf16 bound, not the f32 one (docs/CODEC.md).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/core/dtype.h"

namespace omni::audio::snac {

inline constexpr int64_t kPanelRows = 32;

// W [n_out, n_in] repacked as panels of 32 rows (rows past n_out are zero):
// f32:  panels      [n_panels][n_in][32]
// bf16: panels_bf16 [n_panels][n_pairs][32][2], element (o, i) at [i / 2][o][i % 2]
//       (input channels i = 2q, 2q + 1 share a 32-bit lane; an odd n_in is padded with a zero).
struct PackedWeights {
  int64_t n_out = 0, n_in = 0;
  bool bf16 = false;
  std::vector<float> panels;
  std::vector<uint16_t> panels_bf16;
  int64_t n_panels() const { return (n_out + kPanelRows - 1) / kPanelRows; }
  int64_t n_pairs() const { return (n_in + 1) / 2; }
  size_t bytes() const { return panels.size() * sizeof(float) + panels_bf16.size() * sizeof(uint16_t); }
};

// Whether packed_matmul runs on this CPU (AVX-512 selected) for weights of type t (f32, f16,
// bf16, q8_0).
bool packed_matmul_supported(DType t);
// Whether bf16 matrices get bf16 panels (AVX-512 selected and AVX512_BF16 present); else they
// are widened to f32 panels.
bool bf16_dot_supported();
// W [n_out, n_in] of type t -> panels (bf16 panels for t == kBF16 when bf16_dot_supported()).
PackedWeights pack_weights(DType t, const void* w, int64_t n_out, int64_t n_in);
// uint16 elements of scratch packed_matmul needs for T steps (0 for f32 panels).
int64_t packed_scratch_elems(const PackedWeights& w, int64_t T);
// y[t * y_stride + o] for o in the rows of panels [p0, p1) (clipped to n_out) and t in [0, T);
// x: [T, n_in]. Only call when packed_matmul_supported() (and, for bf16 panels,
// bf16_dot_supported()). scratch: packed_scratch_elems(w, T) elements. Does not allocate.
// Fused epilogue: with bias ([n_out]) y = W x + bias; with residual (laid out like y, may be y
// itself) y = residual + (W x [+ bias]), the sums in the order separate passes would take.
// y must not alias x.
void packed_matmul(const PackedWeights& w, int64_t p0, int64_t p1, const float* x, int64_t T, float* y,
                   int64_t y_stride, uint16_t* scratch, const float* bias = nullptr,
                   const float* residual = nullptr);

}  // namespace omni::audio::snac
