// The int8-activation decode kernels for AVX512-VNNI: one vpdpbusd (256-bit, VL) per 32
// weights. This file gets the AVX-512 F/BW/VL/DQ flags and, for it alone, -mavx512vnni from
// kernels/CMakeLists.txt; the dispatcher (int8_dot.cpp) calls it after checking CPUID.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/isa_kernels.h"

namespace omni::cpu::detail {
namespace int8_vnni {
namespace {

inline __m256i dot_u8s8(__m256i a, __m256i b) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b); }
#include "kernels/cpu/int8_dot_impl.h"

}  // namespace
}  // namespace int8_vnni

const Int8Kernels& int8_avx512vnni_kernels() { return int8_vnni::kInt8Table; }

}  // namespace omni::cpu::detail
