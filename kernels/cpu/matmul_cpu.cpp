// Matrix multiply with quantized weights: y[t, o] = sum_i W[o, i] * x[t, i].
// Decode (n_tok == 1) is a matrix-vector product bound by weight bandwidth: each thread streams
// its rows once, decoding blocks in registers and FMA-ing them with x (which stays in L1).
// Prefill (n_tok > 1) decodes kTileRows rows into the thread's scratch once (16 x n_in f32, in
// L2) and multiplies that tile with every token, so weights are read from memory once per call.
#include <algorithm>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/ops_cpu.h"

namespace omni::cpu {
namespace {

constexpr int64_t kTileRows = 16;

}  // namespace

int64_t matmul_scratch_floats(int64_t n_in, int n_threads) {
  return kTileRows * n_in * std::max(1, n_threads);
}

void matmul_rows(DType wt, const void* w, int64_t row_begin, int64_t row_end, int64_t n_in,
                 const float* x, int64_t n_tok, int64_t y_stride, float* y, float* scratch) {
  const auto& k = detail::active_kernels();
  const int64_t row_bytes = dtype_row_bytes(wt, n_in);
  const auto* wp = static_cast<const uint8_t*>(w);
  if (n_tok == 1) {
    k.dot_rows(wt, wp + row_begin * row_bytes, row_bytes, row_end - row_begin, n_in, x, y + row_begin);
    return;
  }
  if (wt == DType::kF32) {
    k.gemm_f32(reinterpret_cast<const float*>(wp) + row_begin * n_in, row_end - row_begin, n_in, x,
               n_tok, y + row_begin, y_stride);
    return;
  }
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kTileRows) {
    const int64_t rows = std::min(kTileRows, row_end - r0);
    for (int64_t r = 0; r < rows; ++r) k.dequantize_row(wt, wp + (r0 + r) * row_bytes, scratch + r * n_in, n_in);
    k.gemm_f32(scratch, rows, n_in, x, n_tok, y + r0, y_stride);
  }
}

void matmul(ThreadPool& pool, DType wt, const void* w, int64_t n_out, int64_t n_in, const float* x,
            int64_t n_tok, float* y, float* scratch) {
  const int64_t grain = n_tok == 1 ? 8 : kTileRows;
  pool.parallel_for(n_out, grain, [&](int64_t b, int64_t e, int ti) {
    matmul_rows(wt, w, b, e, n_in, x, n_tok, n_out, y, scratch + ti * kTileRows * n_in);
  });
}

}  // namespace omni::cpu
