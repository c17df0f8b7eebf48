// CUDA ops of bidirectional encoders (the ViT, the Whisper encoder): LayerNorm, bias +
// activation, and full (unmasked) attention. Same conventions as ops_cuda.h: a params struct,
// check_params() naming the bad value, a launcher returning cudaErrorInvalidValue when
// check_params fails and otherwise the launch error; device pointers, f32 activations; no
// launcher allocates or synchronizes (graph-capturable). Oracles: kernels/ref/ops_ref.h
// semantics, checked element by element in tests/cuda_vision_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/core/status.h"

namespace omni::cuda {

// y[r,:] = (x[r,:] - mean) / sqrt(var + eps) * w + b   (b may be null; y may equal x)
// var is the biased (population) variance, as torch.nn.LayerNorm.
struct LayerNormParams {
  const float* x = nullptr;  // in:  [rows, n]
  float* y = nullptr;        // out: [rows, n]; may alias x
  const float* w = nullptr;  // in:  [n]
  const float* b = nullptr;  // in:  [n] or null
  int64_t rows = 0, n = 0;
  float eps = 1e-5f;
};

enum class EncAct { kNone, kGeluErf, kGeluTanh, kQuickGelu, kSilu };

// x[r, i] = act(x[r, i] + bias[i])   (bias may be null)
struct BiasActParams {
  float* x = nullptr;            // in/out: [rows, n]
  const float* bias = nullptr;   // in:     [n] or null
  int64_t rows = 0, n = 0;
  EncAct act = EncAct::kNone;
};

// Full (bidirectional, unmasked) attention of n_q queries against n_kv keys, f32 in/out, any
// row strides (in floats) so q/k/v can be column slices of one fused qkv buffer.
// out[i, h, :] = softmax_j(scale * q[i,h,:].k[j,kvh,:]) v[j,kvh,:], kvh = h / (n_head / n_kv_head)
// Row i of q starts at q + i * q_stride (head h at + h * head_dim); likewise k/v with kv_stride
// and out with out_stride. Flash style: key tiles through shared memory with an online
// softmax, no [n_q, n_kv] matrix. head_dim <= kEncAttnMaxHeadDim; out must not overlap q/k/v.
constexpr int kEncAttnMaxHeadDim = 128;
struct AttnFullParams {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  int64_t n_q = 0, n_kv = 0, n_head = 0, n_kv_head = 0, head_dim = 0;
  int64_t q_stride = 0, kv_stride = 0, out_stride = 0;
  float scale = 1.0f;
};

Status check_params(const LayerNormParams& p);
cudaError_t launch_layer_norm(const LayerNormParams& p, cudaStream_t stream);
Status check_params(const BiasActParams& p);
cudaError_t launch_bias_act(const BiasActParams& p, cudaStream_t stream);
Status check_params(const AttnFullParams& p);
cudaError_t launch_attn_full(const AttnFullParams& p, cudaStream_t stream);

// Fast full attention on tensor cores (the same AttnFullParams and result): per head,
// S = scale * Q K^T into a scores scratch [heads, n_q, n_kv] (cuBLAS strided batched GEMM,
// TF32 on the f32 buffers: CUBLAS_COMPUTE_32F_FAST_TF32, f32 accumulation), a row softmax over
// S in place, then O = P V (TF32 again). TF32 rounds q, k, v and P to 10 mantissa bits, so the
// result is ~3e-4 relative L2 off the exact path (launch_attn_full stays the 1e-5 one).
// The scratch may hold fewer heads than n_head: heads then go in chunks of scores_floats /
// (n_q * n_kv). With GQA (n_kv_head < n_head) every head is its own GEMM (K/V shared by a group).
// No allocation, no synchronisation; runs on blas's stream. n_q, n_kv and the strides must fit
// in int (cuBLAS's m, n, k, ld).
struct AttnFastParams {
  AttnFullParams a;
  float* scores = nullptr;    // scratch, scores_floats floats; must not overlap q/k/v/out
  int64_t scores_floats = 0;  // >= n_q * n_kv (one head)
};
// Scores floats for n_head heads of n_q x n_kv, capped at max_bytes (whole heads); 0 when one
// head alone is larger (callers then use launch_attn_full).
int64_t attn_fast_scores_floats(int64_t n_q, int64_t n_kv, int64_t n_head, size_t max_bytes);
Status check_params(const AttnFastParams& p);
// True when OMNIRT_ENCODER_ATTN=exact is set (read once): encoders then use launch_attn_full.
bool encoder_attn_exact_env();
class BlasHandle;
// kUnsupported without cuBLAS; cuBLAS and launch errors as Status naming the step.
Status attn_full_fast(const AttnFastParams& p, const BlasHandle& blas);

// ---- ViT helpers (vit.cu) -----------------------------------------------------------------
// col[t, (c*p + y)*p + x] = pixels[c, gy*p + y, gx*p + x] for patch t at grid index
// patches[t] = gy * grid_w + gx (torch's conv weight order; the remainder right/bottom unused).
struct PatchGatherParams {
  const float* pixels = nullptr;     // in:  [3, height, width]
  const int32_t* patches = nullptr;  // in:  [n_patch] grid indices, each < grid_w * grid_h
  float* col = nullptr;              // out: [n_patch, 3 * p * p]
  int64_t width = 0, height = 0, patch = 0, grid_w = 0, n_patch = 0;
};
Status check_params(const PatchGatherParams& p);
cudaError_t launch_patch_gather(const PatchGatherParams& p, cudaStream_t stream);

// dst[r, :] (+)= src[idx[r], :] (rows of n floats). With accumulate it adds (the position
// table onto patch rows); without it copies (Idefics3's pixel shuffle). dst must not overlap src.
struct GatherRowsParams {
  const float* src = nullptr;     // in:  [>= max(idx) + 1, n]
  const int32_t* idx = nullptr;   // in:  [rows]
  float* dst = nullptr;           // out: [rows, n]
  int64_t rows = 0, n = 0;
  bool accumulate = false;
};
Status check_params(const GatherRowsParams& p);
cudaError_t launch_gather_rows(const GatherRowsParams& p, cudaStream_t stream);

// dst[o, :] = mean of src[idx[j], :] for j in [offsets[o], offsets[o + 1]) (Gemma 3's window
// average over the kept patches; every range non-empty).
struct MeanRowsParams {
  const float* src = nullptr;        // in:  [.., n]
  const int32_t* idx = nullptr;      // in:  [offsets[rows]]
  const int32_t* offsets = nullptr;  // in:  [rows + 1], ascending
  float* dst = nullptr;              // out: [rows, n]
  int64_t rows = 0, n = 0;
};
Status check_params(const MeanRowsParams& p);
cudaError_t launch_mean_rows(const MeanRowsParams& p, cudaStream_t stream);

}  // namespace omni::cuda
