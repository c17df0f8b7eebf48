// Machine probes for `omnirt bench`: how fast this CPU can stream memory and issue FMAs, with
// the best instruction set present. They give the roofline that decode/prefill are judged by.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/core/thread_pool.h"

namespace omni::cpu {

// Reads bytes [0, n_bytes) of buf once, split into one contiguous chunk per pool thread, with
// the widest vector loads available; returns a value that depends on every byte (so the reads
// cannot be elided). Time it from outside: GB/s = n_bytes / seconds.
uint64_t stream_read(ThreadPool& pool, const void* buf, size_t n_bytes);

// Runs iters rounds of 12 independent vector FMAs (f32; 8 scalar chains without AVX) on every
// pool thread, from registers only. Returns the floating-point operations done (2 per lane per FMA).
double fma_burst(ThreadPool& pool, int64_t iters);

}  // namespace omni::cpu
