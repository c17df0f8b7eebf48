// Stream-read and FMA-throughput probes (see probe_cpu.h). Each ISA body is compiled with a
// target attribute and chosen from cpu_isa(), like the kernels.
#include "kernels/cpu/probe_cpu.h"

// GCC 12 flags the deliberately undefined source operand of its own AVX-512 reduction
// intrinsics once inlined (as in kernels_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu/ops_cpu.h"

namespace omni::cpu {
namespace {

uint64_t read_scalar(const uint8_t* p, size_t n) {
  uint64_t a[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      uint64_t v;
      std::memcpy(&v, p + i + 8 * k, 8);
      a[k] ^= v;
    }
  }
  for (; i < n; ++i) a[0] += p[i];
  return a[0] ^ a[1] ^ a[2] ^ a[3];
}

float fma_scalar(int64_t iters) {
  float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  for (int64_t i = 0; i < iters; ++i)
    for (float& v : a) v = v * 0.999f + 0.001f;
  return a[0] + a[7];
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm256_xor_si256(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  uint64_t out[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), s);
  return out[0] ^ out[1] ^ out[2] ^ out[3] ^ read_scalar(p + i, n - i);
}

__attribute__((target("avx512f"))) uint64_t read_avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 256 <= n; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_loadu_si512(p + i + 192));
  }
  const __m512i s = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(s)) ^ read_scalar(p + i, n - i);
}

// 12 independent chains cover the FMA latency (4 cycles) times the FMA ports (2-3).
#define OMNI_FMA_CHAINS(T, SET1, FMA, ADD)                                                \
  T c0 = SET1(1.0f), c1 = SET1(1.1f), c2 = SET1(1.2f), c3 = SET1(1.3f), c4 = SET1(1.4f), \
    c5 = SET1(1.5f), c6 = SET1(1.6f), c7 = SET1(1.7f), c8 = SET1(1.8f), c9 = SET1(1.9f), \
    c10 = SET1(2.0f), c11 = SET1(2.1f);                                                  \
  const T m = SET1(0.9999f), b = SET1(1e-4f);                                            \
  for (int64_t i = 0; i < iters; ++i) {                                                  \
    c0 = FMA(c0, m, b); c1 = FMA(c1, m, b); c2 = FMA(c2, m, b); c3 = FMA(c3, m, b);      \
    c4 = FMA(c4, m, b); c5 = FMA(c5, m, b); c6 = FMA(c6, m, b); c7 = FMA(c7, m, b);      \
    c8 = FMA(c8, m, b); c9 = FMA(c9, m, b); c10 = FMA(c10, m, b); c11 = FMA(c11, m, b);  \
  }                                                                                      \
  const T s = ADD(ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(c6, c7))),     \
                  ADD(ADD(c8, c9), ADD(c10, c11)));

__attribute__((target("avx2,fma"))) float fma_avx2(int64_t iters) {
  OMNI_FMA_CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps)
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

__attribute__((target("avx512f"))) float fma_avx512(int64_t iters) {
  OMNI_FMA_CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps)
  return _mm512_reduce_add_ps(s);
}
#undef OMNI_FMA_CHAINS
#endif

uint64_t read_best(const uint8_t* p, size_t n) {
#if defined(__x86_64__)
  switch (cpu_isa()) {
    case CpuIsa::kAvx512: return read_avx512(p, n);
    case CpuIsa::kAvx2: return read_avx2(p, n);
    case CpuIsa::kScalar: break;
  }
#endif
  return read_scalar(p, n);
}

// Returns f32 lanes per FMA instruction times the chains, and the sink value.
double fma_best(int64_t iters, float* sink) {
#if defined(__x86_64__)
  switch (cpu_isa()) {
    case CpuIsa::kAvx512: *sink = fma_avx512(iters); return 16.0 * 12;
    case CpuIsa::kAvx2: *sink = fma_avx2(iters); return 8.0 * 12;
    case CpuIsa::kScalar: break;
  }
#endif
  *sink = fma_scalar(iters);
  return 8.0;
}

}  // namespace

uint64_t stream_read(ThreadPool& pool, const void* buf, size_t n_bytes) {
  const auto* p = static_cast<const uint8_t*>(buf);
  uint64_t partial[64] = {};
  const int nt = pool.n_threads() < 64 ? pool.n_threads() : 64;
  constexpr int64_t kGrain = 4096;  // page-aligned chunks
  pool.parallel_for(static_cast<int64_t>(n_bytes), kGrain, [&](int64_t b, int64_t e, int ti) {
    if (ti < nt) partial[ti] = read_best(p + b, static_cast<size_t>(e - b));
  });
  uint64_t s = 0;
  for (int i = 0; i < nt; ++i) s ^= partial[i];
  return s;
}

double fma_burst(ThreadPool& pool, int64_t iters) {
  struct Ctx {
    int64_t iters;
    double lanes;
    float sink[64];
  } ctx{iters, 0, {}};
  pool.run(
      [](void* c, int ti, int) {
        auto* a = static_cast<Ctx*>(c);
        float s = 0;
        const double lanes = fma_best(a->iters, &s);
        if (ti == 0) a->lanes = lanes;
        if (ti < 64) a->sink[ti] = s;
      },
      &ctx);
  volatile float keep = ctx.sink[0];
  (void)keep;
  return 2.0 * ctx.lanes * static_cast<double>(iters) * pool.n_threads();
}

}  // namespace omni::cpu
