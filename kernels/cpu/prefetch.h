#pragma once
// Software prefetch of the decode weight streams (every f32 and int8 matrix-vector loop).
//
// Each 64-byte line of weights gets two prefetches on its way in: one far ahead into L2
// (prefetcht1), which is what keeps enough DRAM requests in flight per core, and one just ahead
// into L1 (prefetcht0), so that the loop's loads hit L1 rather than waiting on L2. On the 2-core
// Intel AVX-512 VM of session 9 this took 2-thread decode from L1-only 2 KiB ahead (sessions
// 2-8) to +13-19% on Gemma 3 270M, +30% on qwen2.5-0.5b Q8_0, +14% on Q4_K; L2-only prefetch
// cost the int8 loops 4-14% on qwen Q4_K, which the near L1 prefetch brought back. Without
// software prefetch the kernels ran 1.5-3x slower there. On the Zen 4 VM of sessions 2-8 the
// distance (1-8 KiB) and the hint made no difference. Tables: docs/PERFORMANCE.md, "Session 9".
#include <immintrin.h>

namespace omni::cpu::detail {

constexpr int kPrefetchFarBytes = 8192;  // DRAM -> L2
constexpr int kPrefetchNearBytes = 512;  // L2 -> L1

// Call once per 64 bytes of the stream, with p advancing through it.
inline __attribute__((always_inline)) void prefetch_weights(const void* p) {
  const char* c = static_cast<const char*>(p);
  _mm_prefetch(c + kPrefetchFarBytes, _MM_HINT_T1);
  _mm_prefetch(c + kPrefetchNearBytes, _MM_HINT_T0);
}

}  // namespace omni::cpu::detail
