// Causal (optionally windowed, soft-capped) attention over a contiguous KV cache, parallel over
// (query, head) pairs. Per pair: scores q·k_j into the thread's scratch, softmax, then
// out = sum_j p_j v_j, with k/v read as f32 or f16 (converted in registers).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/ops_cpu.h"

namespace omni::cpu {

int64_t attention_scratch_floats(const AttentionParams& p, int n_threads) {
  return (p.pos0 + p.n_q) * std::max(1, n_threads);
}

void attention(ThreadPool& pool, const AttentionParams& p, const float* q, const void* k,
               const void* v, float* out, float* scratch) {
  const auto& kern = detail::active_kernels();
  const bool f16 = p.kv_type == DType::kF16;
  const int64_t esize = f16 ? 2 : 4;
  const int64_t n_ctx = p.pos0 + p.n_q;
  const int64_t group = p.n_head / p.n_kv_head;
  const int64_t pos_bytes = p.n_kv_head * p.head_dim * esize;  // one position of K or V
  const auto* kb = static_cast<const uint8_t*>(k);
  const auto* vb = static_cast<const uint8_t*>(v);
  pool.parallel_for(p.n_q * p.n_head, 1, [&](int64_t begin, int64_t end, int ti) {
    float* score = scratch + ti * n_ctx;
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t i = idx / p.n_head, h = idx % p.n_head;
      const int64_t kv_off = (h / group) * p.head_dim * esize;
      const int64_t pos = p.pos0 + i;
      const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
      const int64_t len = pos - lo + 1;
      const float* qv = q + idx * p.head_dim;
      float mx = -INFINITY;
      for (int64_t j = 0; j < len; ++j) {
        float s = p.scale * kern.dot_kv(qv, kb + (lo + j) * pos_bytes + kv_off, f16, p.head_dim);
        if (p.softcap > 0) s = p.softcap * std::tanh(s / p.softcap);
        score[j] = s;
        mx = std::max(mx, s);
      }
      const float inv_sum = 1.0f / kern.exp_shift_sum(score, mx, len);
      float* o = out + idx * p.head_dim;
      std::memset(o, 0, static_cast<size_t>(p.head_dim) * sizeof(float));
      for (int64_t j = 0; j < len; ++j)
        kern.axpy_kv(score[j] * inv_sum, vb + (lo + j) * pos_bytes + kv_off, f16, o, p.head_dim);
    }
  });
}

}  // namespace omni::cpu
