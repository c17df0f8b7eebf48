// The few ops Whisper needs beyond kernels/cpu: layer norm with bias, erf GELU, linear with
// bias, conv1d (im2col + matmul) and non-causal multi-head attention (per-head matmuls).
// Activations are f32, row-major [n_tokens, d]. Weights as in whisper_weights.h.
// Thread-safety: stateless; each call uses the pool it is given and the caller's buffers.
#pragma once

#include <cstdint>
#include <vector>

#include "audio/whisper/whisper_weights.h"
#include "kernels/core/thread_pool.h"

namespace omni::audio::whisper {

// Grow-only scratch shared by the ops of one network (no allocation after warm-up). The ops
// below use slots [0, kFirstFreeSlot); callers use the slots from kFirstFreeSlot on.
class Scratch {
 public:
  static constexpr size_t kFirstFreeSlot = 8;
  float* get(size_t slot, size_t n_floats) {
    if (bufs_.size() <= slot) bufs_.resize(slot + 1);
    if (bufs_[slot].size() < n_floats) bufs_[slot].resize(n_floats);
    return bufs_[slot].data();
  }

 private:
  std::vector<std::vector<float>> bufs_;
};

// y[t] = layer_norm(x[t]) over d, eps 1e-5; y may alias x.
void layer_norm(ThreadPool& pool, const float* x, const WhisperLayerNorm& ln, float* y,
                int64_t n_tok, int64_t d);
// x * 0.5 * (1 + erf(x / sqrt(2))), in place (torch.nn.GELU()).
void gelu_erf(ThreadPool& pool, float* x, int64_t n);
// y [n_tok, n_out] = x [n_tok, n_in] W^T + b.
void linear(ThreadPool& pool, const WhisperLinear& l, const float* x, int64_t n_tok, float* y,
            Scratch& scratch);
// Conv1d, padding 1, stride 1 or 2: x [n_in_t, c.n_in] -> y [n_out_t, c.n_out],
// n_out_t = (n_in_t - 1) / stride + 1.
void conv1d(ThreadPool& pool, const WhisperConv& c, const float* x, int64_t n_in_t, int stride,
            float* y, Scratch& scratch);

// Keys/values split per head: k_heads [H, n_k, D], vt_heads [H, D, n_k] (transposed), from
// k, v [n_k, H * D].
void split_heads(const float* k, const float* v, int64_t n_k, int64_t n_head, int64_t head_dim,
                 float* k_heads, float* vt_heads);
// out [n_q, H*D] = softmax(q_h k_h^T / sqrt(D)) v_h for every head, no mask.
void attention_full(ThreadPool& pool, const float* q, int64_t n_q, const float* k_heads,
                    const float* vt_heads, int64_t n_k, int64_t n_head, int64_t head_dim,
                    float* out, Scratch& scratch);

// The same for a few queries (decoder steps: n_q = beams): one pool dispatch over heads, dot
// products against k_heads and a weighted sum of vt_heads rows, no per-head matmul calls.
void attention_few(ThreadPool& pool, const float* q, int64_t n_q, const float* k_heads,
                   const float* vt_heads, int64_t n_k, int64_t n_head, int64_t head_dim,
                   float* out, Scratch& scratch);

}  // namespace omni::audio::whisper
