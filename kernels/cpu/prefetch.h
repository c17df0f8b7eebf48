#pragma once
// Software prefetch of the decode weight streams (every f32 and int8 matrix-vector loop).
//
// Each 64-byte line of weights gets two prefetches on its way in: one far ahead into L2
// (prefetcht1), which is what keeps enough DRAM requests in flight per core, and one just ahead
// into L1 (prefetcht0), so that the loop's loads hit L1 rather than waiting on L2. Measured on
// the 2-core Intel AVX-512 VM (docs/PERFORMANCE.md, "Session 9"), decode tok/s, 2 threads, same
// binary, alternating:
//   T0 2 KiB ahead (sessions 2-8)        Gemma 3 270M 66-81, qwen2.5-0.5b Q8_0 30-31, Q4_K 60-64
//   T1 8 KiB ahead only                  Gemma 72-89, qwen Q8_0 38; int8 loops: qwen Q4_K 56-61
//   T1 8 KiB + T0 512 B ahead (this)     Gemma 74-88, qwen Q8_0 40-41, qwen Q4_K 61-64
// With no software prefetch at all the kernels ran 1.5-3x slower there: that machine's hardware
// prefetchers do not keep a stream's lines in flight while the loop computes. On the Zen 4 VM
// of sessions 2-8 the distance (1-8 KiB) and the hint made no difference.
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
