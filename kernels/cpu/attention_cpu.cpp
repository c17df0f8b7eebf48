// Causal (optionally windowed, soft-capped) attention over a contiguous KV cache, K and V read
// as f32 or f16 (converted in registers).
// - Heads without sharing (n_head == n_kv_head): parallel over (query, head) pairs. Per pair:
//   scores q·k_j into the thread's scratch, softmax, then out = sum_j p_j v_j.
// - Grouped-query models (n_head > n_kv_head): the query heads that share a KV head go together,
//   so each K and V row is read and converted once for all of them (IsaKernels::attn_scores /
//   attn_values; 2.2-2.9x faster at Gemma's shape, BM_AttentionDecode). Prefill: parallel over
//   (query, KV head). A decode step (n_q == 1): the positions are split into chunks of
//   kDecodeChunk so that even one KV head fills the threads; each chunk keeps its own max and
//   sum (a partial softmax) and the chunks are merged in order. No split depends on the thread
//   count, so neither do the results.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/ops_cpu.h"

namespace omni::cpu {
namespace {

constexpr int64_t kDecodeChunk = 256;

// The first position the query at pos sees (its window's start; 0 without a window).
int64_t first_visible(const AttentionParams& p, int64_t pos) {
  return p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
}

// Raw dot products q·k_j in s[0, n) to scores: times the scale, soft-capped when asked; returns
// their max (the softmax's shift).
float scale_scores(const AttentionParams& p, float* s, int64_t n) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    float v = p.scale * s[j];
    if (p.softcap > 0) v = p.softcap * std::tanh(v / p.softcap);
    s[j] = v;
    mx = std::max(mx, v);
  }
  return mx;
}

bool grouped_decode(const AttentionParams& p) { return p.n_q == 1 && p.n_kv_head > 0 && p.n_head > p.n_kv_head; }

// Scratch of the grouped decode: per thread group * kDecodeChunk scores, then per (KV head,
// chunk) the group's partials: max, sum and the unnormalised output (head_dim), i.e.
// head_dim + 2 floats per query head.
int64_t grouped_scratch_floats(const AttentionParams& p, int n_threads) {
  const int64_t group = p.n_head / p.n_kv_head;
  const int64_t chunks = (p.pos0 + p.n_q + kDecodeChunk - 1) / kDecodeChunk;
  return std::max(1, n_threads) * group * kDecodeChunk + p.n_head * chunks * (p.head_dim + 2);
}

void attention_grouped_decode(ThreadPool& pool, const AttentionParams& p, const float* q, const uint8_t* kb,
                              const uint8_t* vb, int64_t pos_bytes, int64_t esize, float* out, float* scratch) {
  const auto& kern = detail::active_kernels();
  const bool f16 = p.kv_type == DType::kF16;
  const int64_t hd = p.head_dim, group = p.n_head / p.n_kv_head, part = hd + 2;
  const int64_t pos = p.pos0;
  const int64_t lo = first_visible(p, pos);
  const int64_t len = pos - lo + 1;
  const int64_t chunks = (len + kDecodeChunk - 1) / kDecodeChunk;
  float* partials = scratch + pool.n_threads() * group * kDecodeChunk;
  pool.parallel_for_balanced(p.n_kv_head * chunks, 1, [&](int64_t begin, int64_t end, int ti) {
    float* s = scratch + ti * group * kDecodeChunk;
    for (int64_t u = begin; u < end; ++u) {
      const int64_t kh = u / chunks, c = u % chunks;
      const int64_t j0 = lo + c * kDecodeChunk, n = std::min(kDecodeChunk, pos + 1 - j0);
      const int64_t kv_off = j0 * pos_bytes + kh * hd * esize;
      float* pu = partials + (kh * chunks + c) * group * part;  // [g][max, sum, o[hd]]
      kern.attn_scores(q + kh * group * hd, group, kb + kv_off, pos_bytes, f16, n, hd, s, kDecodeChunk);
      for (int64_t g = 0; g < group; ++g) {
        float* sg = s + g * kDecodeChunk;
        const float mx = scale_scores(p, sg, n);
        pu[g * part] = mx;
        pu[g * part + 1] = kern.exp_shift_sum(sg, mx, n);
      }
      kern.attn_values(s, kDecodeChunk, group, vb + kv_off, pos_bytes, f16, n, hd, pu + 2, part);
    }
  });
  // Merge the chunks of each query head, in chunk order.
  for (int64_t h = 0; h < p.n_head; ++h) {
    const int64_t kh = h / group, g = h % group;
    auto at = [&](int64_t c) { return partials + (kh * chunks + c) * group * part + g * part; };
    float mx = -INFINITY;
    for (int64_t c = 0; c < chunks; ++c) mx = std::max(mx, at(c)[0]);
    float sum = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) sum += std::exp(at(c)[0] - mx) * at(c)[1];
    float* o = out + h * hd;
    std::memset(o, 0, static_cast<size_t>(hd) * sizeof(float));
    for (int64_t c = 0; c < chunks; ++c) {
      const float w = std::exp(at(c)[0] - mx) / sum;
      const float* oc = at(c) + 2;
      for (int64_t d = 0; d < hd; ++d) o[d] += w * oc[d];
    }
  }
}

// Prefill of a grouped-query model: per (query, KV head), the group's scores over the positions.
void attention_grouped(ThreadPool& pool, const AttentionParams& p, const float* q, const uint8_t* kb,
                       const uint8_t* vb, int64_t pos_bytes, int64_t esize, float* out, float* scratch) {
  const auto& kern = detail::active_kernels();
  const bool f16 = p.kv_type == DType::kF16;
  const int64_t hd = p.head_dim, group = p.n_head / p.n_kv_head, n_ctx = p.pos0 + p.n_q;
  pool.parallel_for(p.n_q * p.n_kv_head, 1, [&](int64_t begin, int64_t end, int ti) {
    float* s = scratch + ti * group * n_ctx;
    for (int64_t u = begin; u < end; ++u) {
      const int64_t i = u / p.n_kv_head, kh = u % p.n_kv_head;
      const int64_t pos = p.pos0 + i;
      const int64_t lo = first_visible(p, pos);
      const int64_t len = pos - lo + 1;
      const int64_t kv_off = lo * pos_bytes + kh * hd * esize;
      const int64_t h0 = i * p.n_head + kh * group;  // the group's first head row in q / out
      kern.attn_scores(q + h0 * hd, group, kb + kv_off, pos_bytes, f16, len, hd, s, n_ctx);
      float inv_sum[64];  // groups are at most 64 heads (checked by the caller)
      for (int64_t g = 0; g < group; ++g) {
        float* sg = s + g * n_ctx;
        const float mx = scale_scores(p, sg, len);
        inv_sum[g] = 1.0f / kern.exp_shift_sum(sg, mx, len);
      }
      kern.attn_values(s, n_ctx, group, vb + kv_off, pos_bytes, f16, len, hd, out + h0 * hd, hd);
      for (int64_t g = 0; g < group; ++g) kern.scale(out + (h0 + g) * hd, inv_sum[g], hd);
    }
  });
}

bool grouped_prefill(const AttentionParams& p) {
  return p.n_q > 1 && p.n_kv_head > 0 && p.n_head > p.n_kv_head && p.n_head / p.n_kv_head <= 64;
}

}  // namespace

int64_t attention_scratch_floats(const AttentionParams& p, int n_threads) {
  int64_t pairs = (p.pos0 + p.n_q) * std::max(1, n_threads);
  if (grouped_prefill(p)) pairs *= p.n_head / p.n_kv_head;
  // The decode step of a grouped-query model takes the grouped path (n_q == 1): size for it too.
  AttentionParams step = p;
  step.n_q = 1;
  step.pos0 = p.pos0 + p.n_q - 1;
  return grouped_decode(step) ? std::max(pairs, grouped_scratch_floats(step, n_threads)) : pairs;
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
  if (grouped_decode(p)) return attention_grouped_decode(pool, p, q, kb, vb, pos_bytes, esize, out, scratch);
  if (grouped_prefill(p)) return attention_grouped(pool, p, q, kb, vb, pos_bytes, esize, out, scratch);
  pool.parallel_for(p.n_q * p.n_head, 1, [&](int64_t begin, int64_t end, int ti) {
    float* score = scratch + ti * n_ctx;
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t i = idx / p.n_head, h = idx % p.n_head;
      const int64_t kv_off = (h / group) * p.head_dim * esize;
      const int64_t pos = p.pos0 + i;
      const int64_t lo = first_visible(p, pos);
      const int64_t len = pos - lo + 1;
      const float* qv = q + idx * p.head_dim;
      for (int64_t j = 0; j < len; ++j)
        score[j] = kern.dot_kv(qv, kb + (lo + j) * pos_bytes + kv_off, f16, p.head_dim);
      const float mx = scale_scores(p, score, len);
      const float inv_sum = 1.0f / kern.exp_shift_sum(score, mx, len);
      float* o = out + idx * p.head_dim;
      std::memset(o, 0, static_cast<size_t>(p.head_dim) * sizeof(float));
      for (int64_t j = 0; j < len; ++j)
        kern.axpy_kv(score[j] * inv_sum, vb + (lo + j) * pos_bytes + kv_off, f16, o, p.head_dim);
    }
  });
}

}  // namespace omni::cpu
