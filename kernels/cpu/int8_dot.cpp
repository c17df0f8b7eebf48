// Driver of the int8-activation decode matvec: quantise x once into the caller's scratch, then
// split the rows over the pool like matmul's decode path. The per-ISA loops live in
// int8_dot_impl.h (included by int8_dot_avx2.cpp / int8_dot_avx512.cpp).
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/ref/ops_ref.h"

namespace omni::cpu {
namespace detail {
namespace {

void dot_rows_ref(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
                  const int8_t* q, const float* d, const float* s, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = ref::dot_int8(t, w + r * row_bytes, q, d, s, n_in);
}
void dot_rows_ref3(DType t, const uint8_t* w, int64_t row_bytes, int64_t n_rows, int64_t n_in,
                   const int8_t* q, const float* d, const float* s, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) y[r] = ref::dot_int8x3(t, w + r * row_bytes, q, d, s, n_in);
}
constexpr Int8Kernels kScalarInt8 = {ref::quantize_act_q8, dot_rows_ref, ref::quantize_act_q8x3, dot_rows_ref3};

bool have_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool v = __builtin_cpu_supports("avx512vnni");
  return v;
#else
  return false;
#endif
}

}  // namespace

const Int8Kernels& active_int8_kernels() {
  switch (cpu_isa()) {
    case CpuIsa::kAvx512:
      if (have_vnni()) return int8_avx512vnni_kernels();
      return int8_avx2_kernels();
    case CpuIsa::kAvx2: return int8_avx2_kernels();
    case CpuIsa::kScalar: break;
  }
  return kScalarInt8;
}

}  // namespace detail

namespace {
constexpr int64_t kAlign = 64;
int64_t round_up(int64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
}  // namespace

// Layout: q (3 n_in bytes: room for three levels) | d (n_in / 32 floats) | s (n_in / 32
// floats), each 64-byte aligned relative to an aligned start.
int64_t matvec_int8_scratch_bytes(int64_t n_in) {
  return kAlign + round_up(3 * n_in) + 2 * round_up(n_in / kQK * static_cast<int64_t>(sizeof(float)));
}

namespace {
bool matvec_levels(int levels, ThreadPool& pool, DType wt, const void* w, int64_t n_out, int64_t n_in,
                   const float* x, float* y, void* scratch, int64_t scratch_bytes) {
  if (!ref::int8_dot_supported(wt) || n_in <= 0 || n_in % dtype_traits(wt).block_size != 0 ||
      scratch == nullptr || scratch_bytes < matvec_int8_scratch_bytes(n_in))
    return false;
  auto base = reinterpret_cast<uintptr_t>(scratch);
  base = (base + kAlign - 1) / kAlign * kAlign;
  auto* q = reinterpret_cast<int8_t*>(base);
  auto* d = reinterpret_cast<float*>(base + round_up(3 * n_in));
  auto* s = reinterpret_cast<float*>(base + round_up(3 * n_in) + round_up(n_in / kQK * 4));
  const auto& k = detail::active_int8_kernels();
  (levels == 3 ? k.quantize3 : k.quantize)(x, n_in, q, d, s);
  const auto dot_rows = levels == 3 ? k.dot_rows3 : k.dot_rows;
  const int64_t row_bytes = dtype_row_bytes(wt, n_in);
  const auto* wp = static_cast<const uint8_t*>(w);
  pool.parallel_for_balanced(n_out, matvec_chunk_rows(row_bytes, n_out, pool.n_threads(), 8),
                             [&](int64_t b, int64_t e, int) {
    dot_rows(wt, wp + b * row_bytes, row_bytes, e - b, n_in, q, d, s, y + b);
  });
  return true;
}
}  // namespace

bool matvec_int8(ThreadPool& pool, DType wt, const void* w, int64_t n_out, int64_t n_in,
                 const float* x, float* y, void* scratch, int64_t scratch_bytes) {
  return matvec_levels(1, pool, wt, w, n_out, n_in, x, y, scratch, scratch_bytes);
}

bool matvec_int8x3(ThreadPool& pool, DType wt, const void* w, int64_t n_out, int64_t n_in,
                   const float* x, float* y, void* scratch, int64_t scratch_bytes) {
  return matvec_levels(3, pool, wt, w, n_out, n_in, x, y, scratch, scratch_bytes);
}

bool int8x3_decode_faster(DType wt) {
  if (cpu_isa() == CpuIsa::kScalar) return false;
  if (wt == DType::kQ4_K || wt == DType::kQ5_K || wt == DType::kQ6_K) return true;
  // Q4_0 / Q5_0: only the VNNI table's two-blocks-per-zmm loop beats the f32 one.
  const bool vnni = &detail::active_int8_kernels() == &detail::int8_avx512vnni_kernels();
  return vnni && (wt == DType::kQ4_0 || wt == DType::kQ5_0);
}

bool decode_f32_env() {
  static const bool on = [] {
    const char* v = std::getenv("OMNIRT_DECODE_F32");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return on;
}

bool int8_dot_env() {
  static const bool on = [] {
    const char* v = std::getenv("OMNIRT_INT8_DOT");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return on;
}

}  // namespace omni::cpu
