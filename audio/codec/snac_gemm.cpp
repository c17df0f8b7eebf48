#include "audio/codec/snac_gemm.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "kernels/cpu/ops_cpu.h"
#include "kernels/ref/ops_ref.h"

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
#define OMNI_SNAC_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))

// Steps per register tile: 12 x 2 accumulators + 2 weight vectors + 1 broadcast = 27 zmm.
constexpr int kTileSteps = 12;

// y = acc, or with an epilogue: y = [residual +] (acc + bias), the order the separate add_bias /
// add_residual passes used, so fusing them changes no bit.
struct Epilogue {
  const float* bias = nullptr;      // [n_out] at this panel's first row, or null
  const float* residual = nullptr;  // like y (same stride, at this tile), may be y itself
};

template <int T>
OMNI_SNAC_AVX512 inline __attribute__((always_inline)) void store_tile(__m512* acc0, __m512* acc1, float* y,
                                                                      int64_t y_stride, int64_t rows, Epilogue ep) {
  const __mmask16 m0 = static_cast<__mmask16>(rows >= 16 ? 0xFFFF : (1u << rows) - 1);
  const __mmask16 m1 = static_cast<__mmask16>(rows <= 16 ? 0 : rows >= 32 ? 0xFFFF : (1u << (rows - 16)) - 1);
  if (ep.bias) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, ep.bias), b1 = _mm512_maskz_loadu_ps(m1, ep.bias + 16);
#pragma GCC unroll 12
    for (int t = 0; t < T; ++t) {
      acc0[t] = _mm512_add_ps(acc0[t], b0);
      acc1[t] = _mm512_add_ps(acc1[t], b1);
    }
  }
  if (ep.residual) {
#pragma GCC unroll 12
    for (int t = 0; t < T; ++t) {
      acc0[t] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ep.residual + t * y_stride), acc0[t]);
      acc1[t] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ep.residual + t * y_stride + 16), acc1[t]);
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
#pragma GCC unroll 12
  for (int t = 0; t < T; ++t) {
    _mm512_mask_storeu_ps(y + t * y_stride, m0, acc0[t]);
    _mm512_mask_storeu_ps(y + t * y_stride + 16, m1, acc1[t]);
  }
}

// One f32 panel (32 output channels, `rows` of them real) times T steps of x [T, n_in].
template <int T>
OMNI_SNAC_AVX512 void panel_tile(const float* panel, int64_t n_in, const float* x, float* y, int64_t y_stride,
                                 int64_t rows, Epilogue ep) {
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
  store_tile<T>(acc0, acc1, y, y_stride, rows, ep);
}

// One bf16 panel times T steps of x in bf16 [T, 2 * n_pairs]: per pair of input channels,
// 2 weight loads, T 32-bit broadcasts of (x[2q], x[2q + 1]) and 2T vdpbf16ps.
template <int T>
OMNI_SNAC_AVX512BF16 void panel_tile_bf16(const uint16_t* panel, int64_t n_pairs, const uint16_t* x, float* y,
                                          int64_t y_stride, int64_t rows, Epilogue ep) {
  __m512 acc0[T], acc1[T];
#pragma GCC unroll 12
  for (int t = 0; t < T; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
  // The pair (x[2q], x[2q + 1]) as one 32-bit value; memcpy (one broadcast load) rather than an
  // int32_t* into uint16_t storage.
  auto pair = [x](int64_t i) {
    int32_t v;
    std::memcpy(&v, x + 2 * i, sizeof v);
    return v;
  };
  for (int64_t q = 0; q < n_pairs; ++q) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(panel + q * 2 * kPanelRows);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(panel + q * 2 * kPanelRows + kPanelRows);
#pragma GCC unroll 12
    for (int t = 0; t < T; ++t) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(pair(t * n_pairs + q));
      acc0[t] = _mm512_dpbf16_ps(acc0[t], w0, xb);
      acc1[t] = _mm512_dpbf16_ps(acc1[t], w1, xb);
    }
  }
  store_tile<T>(acc0, acc1, y, y_stride, rows, ep);
}

// x [T, n_in] f32 -> [T, 2 * n_pairs] bf16, round to nearest even (vcvtneps2bf16), the odd
// padding column zero. Element-wise, so independent of how T is cut.
OMNI_SNAC_AVX512BF16 void to_bf16_rows(const float* x, int64_t T, int64_t n_in, uint16_t* out) {
  const int64_t w = (n_in + 1) / 2 * 2;
  for (int64_t t = 0; t < T; ++t) {
    const float* src = x + t * n_in;
    uint16_t* dst = out + t * w;
    int64_t i = 0;
    for (; i + 16 <= n_in; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    if (i < w) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n_in - i)) - 1);  // n_in - i < 16
      const __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
      _mm256_mask_storeu_epi16(dst + i, static_cast<__mmask16>((1u << (w - i)) - 1), v);
    }
  }
}

using TileF32 = void (*)(const float*, int64_t, const float*, float*, int64_t, int64_t, Epilogue);
using TileBf16 = void (*)(const uint16_t*, int64_t, const uint16_t*, float*, int64_t, int64_t, Epilogue);
template <size_t... I>
constexpr std::array<TileF32, sizeof...(I)> tiles_f32(std::index_sequence<I...>) {
  return {&panel_tile<int(I) + 1>...};
}
template <size_t... I>
constexpr std::array<TileBf16, sizeof...(I)> tiles_bf16(std::index_sequence<I...>) {
  return {&panel_tile_bf16<int(I) + 1>...};
}
constexpr auto kTilesF32 = tiles_f32(std::make_index_sequence<kTileSteps>{});    // [T - 1]
constexpr auto kTilesBf16 = tiles_bf16(std::make_index_sequence<kTileSteps>{});  // [T - 1]

// Near-equal tiles over T steps (17 steps: 9 + 8, not 12 + 5): a short tile reloads the panel
// for few FMAs. fn(t0, n) runs one tile.
template <typename Fn>
void for_each_tile(int64_t T, Fn&& fn) {
  const int64_t n_tiles = (T + kTileSteps - 1) / kTileSteps;
  for (int64_t k = 0, t0 = 0; k < n_tiles; ++k) {
    const int64_t t1 = T * (k + 1) / n_tiles;
    fn(t0, t1 - t0);
    t0 = t1;
  }
}
#endif

}  // namespace

bool packed_matmul_supported(DType t) {
#if defined(__x86_64__)
  return (t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kQ8_0) &&
         cpu_isa() == CpuIsa::kAvx512;
#else
  (void)t;
  return false;
#endif
}

bool bf16_dot_supported() {
#if defined(__x86_64__)
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has && cpu_isa() == CpuIsa::kAvx512;
#else
  return false;
#endif
}

PackedWeights pack_weights(DType t, const void* w, int64_t n_out, int64_t n_in) {
  PackedWeights p;
  p.n_out = n_out;
  p.n_in = n_in;
  p.bf16 = t == DType::kBF16 && bf16_dot_supported();
  const int64_t row_bytes = dtype_row_bytes(t, n_in);
  std::vector<float> row(static_cast<size_t>(n_in));
  if (p.bf16) {
    p.panels_bf16.assign(static_cast<size_t>(p.n_panels() * p.n_pairs() * 2 * kPanelRows), 0);
    const uint16_t* src = static_cast<const uint16_t*>(w);
    for (int64_t o = 0; o < n_out; ++o) {
      uint16_t* dst = p.panels_bf16.data() + (o / kPanelRows) * p.n_pairs() * 2 * kPanelRows + (o % kPanelRows) * 2;
      for (int64_t i = 0; i < n_in; ++i) dst[(i / 2) * 2 * kPanelRows + i % 2] = src[o * n_in + i];
    }
    return p;
  }
  p.panels.assign(static_cast<size_t>(p.n_panels() * n_in * kPanelRows), 0.0f);
  for (int64_t o = 0; o < n_out; ++o) {
    ref::dequantize_row(t, static_cast<const uint8_t*>(w) + o * row_bytes, row.data(), n_in);
    float* dst = p.panels.data() + (o / kPanelRows) * n_in * kPanelRows + o % kPanelRows;
    for (int64_t i = 0; i < n_in; ++i) dst[i * kPanelRows] = row[static_cast<size_t>(i)];
  }
  return p;
}

int64_t packed_scratch_elems(const PackedWeights& w, int64_t T) { return w.bf16 ? T * w.n_pairs() * 2 : 0; }

void packed_matmul(const PackedWeights& w, int64_t p0, int64_t p1, const float* x, int64_t T, float* y,
                   int64_t y_stride, uint16_t* scratch, const float* bias, const float* residual) {
#if defined(__x86_64__)
  // The epilogue of the tile at step t0 of panel p.
  auto epilogue = [&](int64_t p, int64_t t0) {
    return Epilogue{bias ? bias + p * kPanelRows : nullptr, residual ? residual + t0 * y_stride + p * kPanelRows : nullptr};
  };
  if (w.bf16) {
    const int64_t n_pairs = w.n_pairs();
    to_bf16_rows(x, T, w.n_in, scratch);
    for (int64_t p = p0; p < p1; ++p) {
      const uint16_t* panel = w.panels_bf16.data() + p * n_pairs * 2 * kPanelRows;
      const int64_t rows = std::min(kPanelRows, w.n_out - p * kPanelRows);
      for_each_tile(T, [&](int64_t t0, int64_t n) {
        kTilesBf16[static_cast<size_t>(n - 1)](panel, n_pairs, scratch + t0 * n_pairs * 2,
                                               y + t0 * y_stride + p * kPanelRows, y_stride, rows, epilogue(p, t0));
      });
    }
    return;
  }
  const int64_t n_in = w.n_in;
  for (int64_t p = p0; p < p1; ++p) {
    const float* panel = w.panels.data() + p * n_in * kPanelRows;
    const int64_t rows = std::min(kPanelRows, w.n_out - p * kPanelRows);
    for_each_tile(T, [&](int64_t t0, int64_t n) {
      kTilesF32[static_cast<size_t>(n - 1)](panel, n_in, x + t0 * n_in, y + t0 * y_stride + p * kPanelRows, y_stride,
                                            rows, epilogue(p, t0));
    });
  }
#else
  (void)w, (void)p0, (void)p1, (void)x, (void)T, (void)y, (void)y_stride, (void)scratch, (void)bias, (void)residual;
#endif
}

}  // namespace omni::audio::snac
