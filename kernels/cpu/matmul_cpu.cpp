// Matrix multiply with quantized weights: y[t, o] = sum_i W[o, i] * x[t, i].
// Decode (n_tok == 1) is a matrix-vector product bound by weight bandwidth: each thread streams
// its rows once, decoding blocks in registers and FMA-ing them with x (which stays in L1).
// Small batches of Q8_0 or F16 (2..64 tokens: the rows at the end of a voice input, a short
// prompt, an encoder chunk, Whisper's beams) on AVX-512 decode each weight block in registers
// and FMA it with up to 6 tokens (fused_tile below): no f32 copy of the weights, bit-identical
// results.
// Larger prefills decode kTileRows rows into the thread's scratch once (16 x n_in f32, in L2)
// and multiply that tile with every token, so weights are read from memory once per call.
#include <algorithm>
#include <array>
#include <utility>

#if defined(__x86_64__)
// GCC 12 flags the deliberately undefined operand of its own AVX-512 intrinsics
// (_mm512_undefined_ps) once inlined: a warning about the header (as in kernels_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/prefetch.h"

namespace omni::cpu {
namespace {

constexpr int64_t kTileRows = 16;

#if defined(__x86_64__)
#define OMNI_FUSED_SMALL_BATCH 1
#define OMNI_AVX512_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

// Register tile of the fused kernel: kFusedRows rows x up to kFusedToks tokens of accumulators
// (24) + the rows' decoded weights (4) + one x vector = 29 of the 32 zmm registers.
constexpr int kFusedRows = 4, kFusedToks = 6;
// Up to this many tokens the fused kernel is faster than dequantize-to-scratch + f32 GEMM
// (Zen 4, the Qwen2-0.5B layer shapes, one thread: 2.0-2.3x at 2-4 tokens, 1.6x at 9, 1.15x at
// 32, 1.04x at 64; docs/AUDIO_OUT.md); the gain shrinks as the rows' re-decoding for every
// group of kFusedToks tokens grows against the copy it saves.
constexpr int64_t kFusedMaxTok = 64;

// 16 weights of a row, decoded to f32 exactly as dequantize_row decodes them. `row` is the row's
// first byte, i a multiple of 16.
struct Q8Row {
  static OMNI_AVX512_FN __m512 load16(const uint8_t* row, int64_t i) {
    const auto& b = reinterpret_cast<const BlockQ8_0*>(row)[i / kQK];
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + i % kQK));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(_cvtsh_ss(b.d)));
  }
  static constexpr int64_t bytes_at(int64_t i) { return i / kQK * static_cast<int64_t>(sizeof(BlockQ8_0)); }
  static constexpr int64_t kPrefetchEvery = 2 * kQK;  // elements: two blocks, 68 bytes
};
struct F16Row {
  static OMNI_AVX512_FN __m512 load16(const uint8_t* row, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i)));
  }
  static constexpr int64_t bytes_at(int64_t i) { return 2 * i; }
  static constexpr int64_t kPrefetchEvery = 32;  // elements: 64 bytes
};

// Rows [0, n_rows) (n_rows <= R, all R when the tile is full) of Q8_0 or F16 weights times T
// tokens of x ([T, n_in]): y[t * y_stride + r]. Per 16 weights of a row: one decode (as
// dequantize_row) and T FMAs into one accumulator per (row, token), ascending over n_in,
// reduced once at the end: the same operations in the same order as dequantize_row + gemm_f32
// of the AVX-512 table, so the result is bit-identical to the tiled path, without the f32 copy
// of the weights. Each row stream is prefetched as the decode loops' are (prefetch.h: the
// hardware prefetcher alone loses interleaved streams on Zen 4; with L2 + L1 prefetches instead
// of L1 only, qwen2.5-0.5b Q8_0 prefill of 16 tokens went from 177-185 to 207-209 tok/s on the
// Intel VM of session 9).
template <class Row, int R, int T>
OMNI_AVX512_FN void fused_tile(const uint8_t* w, int64_t row_bytes, int64_t n_in, const float* x, float* y,
                               int64_t y_stride) {
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < n_in; i += 16) {
    if (i % Row::kPrefetchEvery == 0) {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        detail::prefetch_weights(w + r * row_bytes + Row::bytes_at(i));
    }
    __m512 wv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) wv[r] = Row::load16(w + r * row_bytes, i);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_loadu_ps(x + t * n_in + i);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) y[t * y_stride + r] = _mm512_reduce_add_ps(acc[r][t]);
}

using FusedTileFn = void (*)(const uint8_t*, int64_t, int64_t, const float*, float*, int64_t);
template <class Row, int R, size_t... I>
constexpr std::array<FusedTileFn, sizeof...(I)> fused_tiles(std::index_sequence<I...>) {
  return {&fused_tile<Row, R, int(I) + 1>...};
}
template <class Row>
struct FusedTiles {
  static constexpr auto kFull = fused_tiles<Row, kFusedRows>(std::make_index_sequence<kFusedToks>{});  // [T - 1]
  static constexpr auto kOne = fused_tiles<Row, 1>(std::make_index_sequence<kFusedToks>{});
};

// Whether the fused path takes this call: Q8_0 or F16 (rows of whole 16s), AVX-512 selected, a
// small batch.
bool use_fused(DType wt, int64_t n_in, int64_t n_tok) {
  const bool type_ok = wt == DType::kQ8_0 || (wt == DType::kF16 && n_in % 16 == 0);
  return type_ok && n_tok >= 2 && n_tok <= kFusedMaxTok && cpu_isa() == CpuIsa::kAvx512;
}

// Row groups of kFusedRows (then single rows), each times the tokens in near-equal passes of at
// most kFusedToks; a group's rows (<= 4 x 5.2 KiB at n_in 4864) stay in L1 between passes.
template <class Row>
void fused(const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in, const float* x, int64_t n_tok,
           float* y, int64_t y_stride) {
  const int64_t passes = (n_tok + kFusedToks - 1) / kFusedToks;
  for (int64_t r = 0; r < n_rows;) {
    const bool full = r + kFusedRows <= n_rows;
    for (int64_t p = 0, t0 = 0; p < passes; ++p) {
      const int64_t t1 = n_tok * (p + 1) / passes;
      const FusedTileFn fn = (full ? FusedTiles<Row>::kFull : FusedTiles<Row>::kOne)[static_cast<size_t>(t1 - t0 - 1)];
      fn(w + r * row_bytes, row_bytes, n_in, x + t0 * n_in, y + t0 * y_stride + r, y_stride);
      t0 = t1;
    }
    r += full ? kFusedRows : 1;
  }
}
#endif

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
#if defined(OMNI_FUSED_SMALL_BATCH)
  if (use_fused(wt, n_in, n_tok)) {
    if (wt == DType::kF16) {
      fused<F16Row>(wp + row_begin * row_bytes, row_bytes, row_end - row_begin, n_in, x, n_tok, y + row_begin, y_stride);
    } else {
      fused<Q8Row>(wp + row_begin * row_bytes, row_bytes, row_end - row_begin, n_in, x, n_tok, y + row_begin, y_stride);
    }
    return;
  }
#endif
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kTileRows) {
    const int64_t rows = std::min(kTileRows, row_end - r0);
    for (int64_t r = 0; r < rows; ++r) k.dequantize_row(wt, wp + (r0 + r) * row_bytes, scratch + r * n_in, n_in);
    k.gemm_f32(scratch, rows, n_in, x, n_tok, y + r0, y_stride);
  }
}

int64_t matvec_chunk_rows(int64_t row_bytes, int64_t n_rows, int n_threads, int64_t grain) {
  constexpr int64_t kChunkBytes = 64 * 1024;
  const int64_t share = (n_rows + std::max(1, n_threads) - 1) / std::max(1, n_threads);
  const int64_t rows = std::min(kChunkBytes / std::max<int64_t>(1, row_bytes), (share + 7) / 8);
  return std::max<int64_t>(1, rows / grain) * grain;
}

void matmul(ThreadPool& pool, DType wt, const void* w, int64_t n_out, int64_t n_in, const float* x,
            int64_t n_tok, float* y, float* scratch) {
  if (n_tok == 1) {  // a decode step: balanced over the threads, no scratch
    const int64_t chunk = matvec_chunk_rows(dtype_row_bytes(wt, n_in), n_out, pool.n_threads(), 8);
    pool.parallel_for_balanced(n_out, chunk, [&](int64_t b, int64_t e, int) {
      matmul_rows(wt, w, b, e, n_in, x, 1, n_out, y, nullptr);
    });
    return;
  }
  const int64_t grain = kTileRows;
  pool.parallel_for(n_out, grain, [&](int64_t b, int64_t e, int ti) {
    matmul_rows(wt, w, b, e, n_in, x, n_tok, n_out, y, scratch + ti * kTileRows * n_in);
  });
}

}  // namespace omni::cpu
