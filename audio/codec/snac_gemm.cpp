#include "audio/codec/snac_gemm.h"

#include <algorithm>
#include <array>
#include <utility>

#include "kernels/cpu/ops_cpu.h"

#if defined(__x86_64__)
// GCC 12 flags the deliberately undefined operand of its own AVX-512 intrinsics once inlined
// (as kernels/cpu/kernels_avx512.cpp notes).
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

namespace omni::audio::snac {
namespace {

#if defined(__x86_64__)
#define OMNI_SNAC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

// Steps per register tile: 12 x 2 accumulators + 2 weight vectors + 1 broadcast = 27 zmm.
constexpr int kTileSteps = 12;

// One panel (32 output channels, `rows` of them real) times T steps of x.
template <int T>
OMNI_SNAC_AVX512 void panel_tile(const float* panel, int64_t n_in, const float* x, float* y, int64_t y_stride,
                                 int64_t rows) {
  __m512 acc0[T], acc1[T];
#pragma GCC unroll 12
  for (int t = 0; t < T; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < n_in; ++i) {
    const __m512 w0 = _mm512_loadu_ps(panel + i * kPanelRows);
    const __m512 w1 = _mm512_loadu_ps(panel + i * kPanelRows + 16);
#pragma GCC unroll 12
    for (int t = 0; t < T; ++t) {
      const __m512 xb = _mm512_set1_ps(x[t * n_in + i]);
      acc0[t] = _mm512_fmadd_ps(w0, xb, acc0[t]);
      acc1[t] = _mm512_fmadd_ps(w1, xb, acc1[t]);
    }
  }
  if (rows == kPanelRows) {
#pragma GCC unroll 12
    for (int t = 0; t < T; ++t) {
      _mm512_storeu_ps(y + t * y_stride, acc0[t]);
      _mm512_storeu_ps(y + t * y_stride + 16, acc1[t]);
    }
    return;
  }
  const __mmask16 m0 = static_cast<__mmask16>(rows >= 16 ? 0xFFFF : (1u << rows) - 1);
  const __mmask16 m1 = static_cast<__mmask16>(rows <= 16 ? 0 : (1u << (rows - 16)) - 1);
#pragma GCC unroll 12
  for (int t = 0; t < T; ++t) {
    _mm512_mask_storeu_ps(y + t * y_stride, m0, acc0[t]);
    _mm512_mask_storeu_ps(y + t * y_stride + 16, m1, acc1[t]);
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, float*, int64_t, int64_t);
template <size_t... I>
constexpr std::array<TileFn, sizeof...(I)> tiles(std::index_sequence<I...>) {
  return {&panel_tile<int(I) + 1>...};
}
constexpr auto kTiles = tiles(std::make_index_sequence<kTileSteps>{});  // [T - 1]
#endif

}  // namespace

bool packed_matmul_supported(DType t) {
#if defined(__x86_64__)
  return (t == DType::kF32 || t == DType::kF16) && cpu_isa() == CpuIsa::kAvx512;
#else
  (void)t;
  return false;
#endif
}

PackedWeights pack_weights(DType t, const void* w, int64_t n_out, int64_t n_in) {
  PackedWeights p;
  p.n_out = n_out;
  p.n_in = n_in;
  p.panels.assign(static_cast<size_t>(p.n_panels() * n_in * kPanelRows), 0.0f);
  for (int64_t o = 0; o < n_out; ++o) {
    float* dst = p.panels.data() + (o / kPanelRows) * n_in * kPanelRows + o % kPanelRows;
    for (int64_t i = 0; i < n_in; ++i) {
      const float v = t == DType::kF16 ? f16_to_f32(static_cast<const uint16_t*>(w)[o * n_in + i])
                                       : static_cast<const float*>(w)[o * n_in + i];
      dst[i * kPanelRows] = v;
    }
  }
  return p;
}

void packed_matmul(const PackedWeights& w, int64_t p0, int64_t p1, const float* x, int64_t T, float* y,
                   int64_t y_stride) {
#if defined(__x86_64__)
  const int64_t n_in = w.n_in;
  for (int64_t p = p0; p < p1; ++p) {
    const float* panel = w.panels.data() + p * n_in * kPanelRows;
    const int64_t rows = std::min(kPanelRows, w.n_out - p * kPanelRows);
    // Near-equal tiles (17 steps: 9 + 8, not 12 + 5): a short tile reloads the panel for few FMAs.
    const int64_t n_tiles = (T + kTileSteps - 1) / kTileSteps;
    for (int64_t k = 0, t0 = 0; k < n_tiles; ++k) {
      const int64_t t1 = T * (k + 1) / n_tiles;
      kTiles[static_cast<size_t>(t1 - t0 - 1)](panel, n_in, x + t0 * n_in, y + t0 * y_stride + p * kPanelRows,
                                               y_stride, rows);
      t0 = t1;
    }
  }
#else
  (void)w, (void)p0, (void)p1, (void)x, (void)T, (void)y, (void)y_stride;
#endif
}

}  // namespace omni::audio::snac
