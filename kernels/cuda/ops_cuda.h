// CUDA op kernels. Each op has a params struct whose fields document direction and shape, a
// check_params() that names the bad value, and a launcher `cudaError_t launch_xxx(params,
// stream)` that returns cudaErrorInvalidValue when check_params fails and otherwise the launch
// error (asynchronous execution errors show at the next synchronizing call). All pointers are
// device pointers unless said otherwise; activations are f32; weights keep their GGUF block
// layout (kernels/core/dtype.h). No launcher allocates memory or synchronizes, so every one may
// be captured in a CUDA graph; values that change per step (positions, token ids, random
// numbers) are read from device memory for that reason.
// The numerical oracle for every op is kernels/ref/ops_ref.h; tests/cuda_test.cpp checks each.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/core/dtype.h"
#include "kernels/core/status.h"
#include "kernels/ref/ops_ref.h"

namespace omni::cuda {

class BlasHandle;

// Weight types the matvec / dequantize kernels read.
bool weight_type_supported(DType t);

// ---- matrix-vector for a few tokens (decode) ---------------------------------------------
// y[t, o] (+)= sum_i W[o, i] * x[t, i] (+ bias[o]). A warp per 2 output rows (split along the
// row for small matrices), 16-byte loads for f16/bf16/f32 and Q4_K (see matvec.cu).
constexpr int kMatvecMaxTokens = 16;
struct MatvecParams {
  DType w_type = DType::kF32;
  const void* w = nullptr;       // in:  [n_out, n_in] rows in w_type's layout, 16-byte aligned
  const float* x = nullptr;      // in:  [n_tok, n_in] f32, 16-byte aligned
  float* y = nullptr;            // out: [n_tok, n_out] f32; must not overlap x
  const float* bias = nullptr;   // in:  [n_out] or null
  bool accumulate = false;       // y += W x (fused residual add) instead of y = W x
  int64_t n_out = 0, n_in = 0;
  int64_t n_tok = 1;             // 1 .. kMatvecMaxTokens
};
Status check_params(const MatvecParams& p);
cudaError_t launch_matvec(const MatvecParams& p, cudaStream_t stream);
// 1..3 matvecs that share x, w_type, n_in and n_tok (q/k/v; gate/up) in one launch, each with
// its own w, y, bias, accumulate and n_out; every y equals its own launch_matvec bit for bit.
cudaError_t launch_matvecs(const MatvecParams* p, int count, cudaStream_t stream);
// Single-token Q8_0/Q4_K kernel generation: 2 (default: row spans staged through shared
// memory, matvec.cu) or 1 (the previous kernels), read once from OMNIRT_CUDA_MATVEC_V1=1;
// set_matvec_generation overrides it (tests and benchmarks time and check both).
int matvec_generation();
void set_matvec_generation(int generation);
// Single-token Q8_0 at generation 2: matvec_tiled (default; GPU run 1 measured it faster for
// Q8_0) or the span kernel, read once from OMNIRT_CUDA_Q8_0_SPAN=1; set_q8_0_span overrides it.
// Q4_K always takes the span kernel at generation 2 on sm_80+.
bool q8_0_span();
void set_q8_0_span(bool on);
// Batched (2..16 tokens) Q8_0 at generation 2: quant bytes by 2-byte loads (default; GPU run 2
// measured the 4-byte word loads slower) or words, OMNIRT_CUDA_Q8_0_MMA_WORDS=1. Same bits.
bool q8_0_mma_words();
void set_q8_0_mma_words(bool on);
// One-token matvec_tiled at generation 2: steps of each row in flight per warp, 1 (default; 4
// took 128+ registers and halved bf16 decode bandwidth in GPU run 2) or OMNIRT_CUDA_TILED_STEPS=4.
// Same bits either way.
int matvec_tiled_steps();
void set_matvec_tiled_steps(int steps);

// ---- dequantize + GEMM (prefill) ---------------------------------------------------------
// dst[r, i] = bf16(decode(src)[r, i]), or f16 (saturated at +-65504) with to_f16.
struct DequantBf16Params {
  DType type = DType::kF32;
  const void* src = nullptr;  // in:  [rows, n] in `type`'s row layout
  uint16_t* dst = nullptr;    // out: [rows, n] bf16 (f16 with to_f16)
  int64_t rows = 0, n = 0;
  bool to_f16 = false;
};
Status check_params(const DequantBf16Params& p);
cudaError_t launch_dequant_bf16(const DequantBf16Params& p, cudaStream_t stream);

// y[t, o] (+)= sum_i W[o, i] x[t, i] (+ bias[o]) for any n_tok, by cuBLASLt with f32
// accumulation and f32 output. Operands: bf16 when W is bf16 (x rounded to bf16); otherwise f16
// (f16 W used in place, other types dequantized into w_scratch; x rounded to f16, saturating).
struct GemmParams {
  DType w_type = DType::kBF16;
  const void* w = nullptr;       // in:  [n_out, n_in]
  const float* x = nullptr;      // in:  [n_tok, n_in]
  float* y = nullptr;            // out: [n_tok, n_out]
  const float* bias = nullptr;   // in:  [n_out] or null
  bool accumulate = false;
  int64_t n_out = 0, n_in = 0, n_tok = 0;
  uint16_t* w_scratch = nullptr; // [n_out, n_in] f16; unused (may be null) when w_type is BF16 or F16
  uint16_t* x_scratch = nullptr; // [n_tok, n_in] bf16 or f16
};
Status check_params(const GemmParams& p);
Status gemm_bf16(const GemmParams& p, const BlasHandle& blas);  // runs on blas.stream()

// Splits the rows of a fused GEMM's output (q|k|v over one concatenated weight) into up to 3
// contiguous matrices: dst[j][t, i] = src[t, off_j + i], off_j = width[0] + .. + width[j-1].
// One pass over src (read once, written once); outputs must not overlap src.
struct SplitColsParams {
  const float* src = nullptr;  // in:  [rows, width[0] + width[1] + width[2]]
  float* dst[3] = {};          // out: [rows, width[j]] each (may be null where width[j] == 0)
  int64_t width[3] = {};
  int64_t rows = 0;
};
Status check_params(const SplitColsParams& p);
cudaError_t launch_split_cols(const SplitColsParams& p, cudaStream_t stream);

// ---- normalization and element-wise ------------------------------------------------------
// s = x (+ residual); x_sum_out = s when residual is set; y = s / sqrt(mean(s^2) + eps) * w.
struct RmsNormParams {
  const float* x = nullptr;         // in:  [rows, n]
  const float* residual = nullptr;  // in:  [rows, n] or null
  float* x_sum_out = nullptr;       // out: [rows, n], required with residual; may alias x
  const float* w = nullptr;         // in:  [n] or null (= 1)
  float* y = nullptr;               // out: [rows, n]; may alias x unless residual is set
  int64_t rows = 0, n = 0;
  float eps = 1e-5f;
};
Status check_params(const RmsNormParams& p);
cudaError_t launch_rms_norm(const RmsNormParams& p, cudaStream_t stream);

// Rotates the first rot_dim dims of every head of every token in place (ref::rope).
struct RopeParams {
  float* x = nullptr;            // in/out: [n_tok, n_head, head_dim]
  const int32_t* pos = nullptr;  // in: [n_tok] position of each token (device)
  int64_t n_tok = 0, n_head = 0, head_dim = 0, rot_dim = 0;
  float freq_base = 10000.0f, freq_scale = 1.0f;
  RopeStyle style = RopeStyle::kNormal;
};
Status check_params(const RopeParams& p);
cudaError_t launch_rope(const RopeParams& p, cudaStream_t stream);

enum class GluAct : int { kSilu = 0, kGeluTanh = 1 };
// out[i] = act(gate[i]) * up[i].
struct GluParams {
  const float* gate = nullptr;  // in:  [n]
  const float* up = nullptr;    // in:  [n]
  float* out = nullptr;         // out: [n], may alias gate or up
  int64_t n = 0;
  GluAct act = GluAct::kSilu;
};
Status check_params(const GluParams& p);
cudaError_t launch_glu(const GluParams& p, cudaStream_t stream);
// The GLU over a fused gate|up GEMM output: row t of gate_up is [gate (n) | up (n)], ld apart.
// out[t, i] = act(gate_up[t * ld + i]) * gate_up[t * ld + n + i], bit for bit launch_glu's value.
struct GluRowsParams {
  const float* gate_up = nullptr;  // in:  [rows, ld], ld >= 2 n
  float* out = nullptr;            // out: [rows, n] contiguous; must not overlap gate_up
  int64_t rows = 0, n = 0, ld = 0;
  GluAct act = GluAct::kSilu;
};
Status check_params(const GluRowsParams& p);
cudaError_t launch_glu_rows(const GluRowsParams& p, cudaStream_t stream);

// y[o] = act(gate[o, :] . x) * (up[o, :] . x) for one token (decode FFN): gate and up of one
// type and shape, no bias. Bit for bit launch_matvecs(gate -> y, up -> tmp) then
// launch_glu(y, tmp -> y), which is what it runs where the fused kernel does not apply (Q8_0 and
// Q4_K at matvec generation 2, rows off the 16-byte vector path, generation 1); the fused kernel
// (a warp owns the same rows of gate and up, the product in the epilogue) saves the GLU launch
// and the round trip of gate/up through memory.
struct MatvecGluParams {
  DType w_type = DType::kF32;
  const void* gate = nullptr;  // in:  [n_out, n_in] in w_type's layout, 16-byte aligned
  const void* up = nullptr;    // in:  [n_out, n_in]
  const float* x = nullptr;    // in:  [n_in] f32, 16-byte aligned
  float* y = nullptr;          // out: [n_out]
  float* tmp = nullptr;        // scratch [n_out] for the unfused fallback; must not overlap x or y
  int64_t n_out = 0, n_in = 0;
  GluAct act = GluAct::kSilu;
};
Status check_params(const MatvecGluParams& p);
cudaError_t launch_matvec_glu(const MatvecGluParams& p, cudaStream_t stream);

// y[i] = a[i] + b[i]  (y may alias a or b).
struct AddParams {
  const float* a = nullptr;
  const float* b = nullptr;
  float* y = nullptr;
  int64_t n = 0;
};
Status check_params(const AddParams& p);
cudaError_t launch_add(const AddParams& p, cudaStream_t stream);

// x[i] *= s;  or, with softcap > 0, x[i] = softcap * tanh(x[i] / softcap) (s ignored).
struct ScaleParams {
  float* x = nullptr;
  int64_t n = 0;
  float s = 1.0f;
  float softcap = 0.0f;
};
Status check_params(const ScaleParams& p);
cudaError_t launch_scale(const ScaleParams& p, cudaStream_t stream);

// out[t, :] = decode(W[tokens[t], :]) * scale. Ids outside [0, n_vocab) give a NaN row.
struct EmbedParams {
  DType w_type = DType::kF32;
  const void* w = nullptr;          // in:  [n_vocab, n_embd]
  const int32_t* tokens = nullptr;  // in:  [n_tok] (device)
  float* out = nullptr;             // out: [n_tok, n_embd]
  int64_t n_vocab = 0, n_embd = 0, n_tok = 0;
  float scale = 1.0f;
};
Status check_params(const EmbedParams& p);
cudaError_t launch_embed(const EmbedParams& p, cudaStream_t stream);

// Appends K or V rows to an f16 cache: dst[t * seq_stride + pos[t] * row + i] = f16(src[t, i]).
// One sequence (prefill): seq_stride = 0, pos = consecutive positions. Batched decode: token t
// is sequence t's next token, seq_stride = that cache's elements per sequence.
struct KvAppendParams {
  const float* src = nullptr;       // in:  [n_tok, row]
  uint16_t* dst = nullptr;          // out: f16 cache [n_seq][n_ctx, row]
  const int32_t* pos = nullptr;     // in:  [n_tok] (device)
  int64_t n_tok = 0, row = 0;       // row = n_kv_head * head_dim
  int64_t seq_stride = 0;           // elements between sequences' caches (0: one sequence)
  int64_t n_ctx = 0;                // capacity in positions; pos >= n_ctx is skipped (bug guard)
};
Status check_params(const KvAppendParams& p);
cudaError_t launch_kv_append(const KvAppendParams& p, cudaStream_t stream);

// Decode/prefill step fusion of rope(q), rope(k), kv_append(k), kv_append(v): one launch.
// q and k rotated in place exactly as launch_rope (rot_dim 0: none); the rotated k and v are
// appended to the f16 caches as launch_kv_append (same positions, seq_stride, n_ctx guard).
struct RopeKvAppendParams {
  float* q = nullptr;              // in/out: [n_tok, n_head, head_dim]
  float* k = nullptr;              // in/out: [n_tok, n_kv_head, head_dim]
  const float* v = nullptr;        // in:     [n_tok, n_kv_head, head_dim]
  uint16_t* k_cache = nullptr;     // out: f16 [n_seq][n_ctx, n_kv_head * head_dim]
  uint16_t* v_cache = nullptr;     // out: same layout
  const int32_t* pos = nullptr;    // in:  [n_tok] (device)
  int64_t n_tok = 0, n_head = 0, n_kv_head = 0, head_dim = 0, rot_dim = 0;
  float freq_base = 10000.0f, freq_scale = 1.0f;
  RopeStyle style = RopeStyle::kNormal;
  int64_t seq_stride = 0;          // as KvAppendParams
  int64_t n_ctx = 0;
};
Status check_params(const RopeKvAppendParams& p);
cudaError_t launch_rope_kv_append(const RopeKvAppendParams& p, cudaStream_t stream);

// ---- attention ---------------------------------------------------------------------------
// Decode: one query token per sequence against its f16 cache, keys [max(0, pos-window+1), pos].
// Split along the sequence in chunks of kAttnSplitChunk positions (flash-decoding): grid
// (splits, n_head, n_seq) writes partial (max, sum, unnormalized output) to the workspace and a
// combine kernel merges them. The split count depends on n_ctx only, so a CUDA graph stays
// valid as positions advance.
constexpr int kAttnSplitChunk = 256;
constexpr int kAttnMaxHeadDim = 256;
struct AttnDecodeParams {
  const float* q = nullptr;      // in:  [n_seq, n_head, head_dim]
  const uint16_t* k = nullptr;   // in:  f16 [n_seq][n_ctx, n_kv_head, head_dim] (seq_stride apart)
  const uint16_t* v = nullptr;   // in:  same layout as k
  const int32_t* pos = nullptr;  // in:  [n_seq] position of each query (device)
  float* out = nullptr;          // out: [n_seq, n_head, head_dim]
  float* workspace = nullptr;    // attn_decode_workspace_floats() floats
  int64_t n_seq = 1, n_head = 0, n_kv_head = 0, head_dim = 0, n_ctx = 0;
  int64_t seq_stride = 0;        // elements; 0 allowed when n_seq == 1
  int64_t window = 0;            // 0 = full causal
  float scale = 1.0f, softcap = 0.0f;
};
int64_t attn_decode_workspace_floats(int64_t n_seq, int64_t n_head, int64_t head_dim, int64_t n_ctx);
Status check_params(const AttnDecodeParams& p);
cudaError_t launch_attn_decode(const AttnDecodeParams& p, cudaStream_t stream);

// Prefill: n_q queries of one sequence at positions pos[i] against its f16 cache (already
// holding their own K/V); query i sees keys [max(0, pos[i] - window + 1), pos[i]] (a row that
// sees none gives 0 on the flash path). No [n_q, n_kv] matrix exists anywhere. Two kernels:
// flash (default where eligible: sm_80+, head_dim a multiple of 16, q/out 8-byte and k/v
// 16-byte aligned): flash-attention 2 on tensor cores, 64 queries per block, f16 operands (q *
// scale and the softmax weights rounded to f16) with f32 accumulation, ~1e-3 relative L2 of
// ref::attention (docs/CUDA.md); tiled: CUDA cores in f32 (1e-5), a block of 8 queries streams
// 32-key tiles with an online softmax.
struct AttnPrefillParams {
  const float* q = nullptr;      // in:  [n_q, n_head, head_dim]
  const uint16_t* k = nullptr;   // in:  f16 [>= max(pos) + 1, n_kv_head, head_dim]
  const uint16_t* v = nullptr;
  const int32_t* pos = nullptr;  // in:  [n_q] (device)
  float* out = nullptr;          // out: [n_q, n_head, head_dim]
  int64_t n_q = 0, n_head = 0, n_kv_head = 0, head_dim = 0;
  int64_t window = 0;
  float scale = 1.0f, softcap = 0.0f;
};
Status check_params(const AttnPrefillParams& p);
cudaError_t launch_attn_prefill(const AttnPrefillParams& p, cudaStream_t stream);
// The prefill kernel: kFlash (default) or kTiled, read once from OMNIRT_CUDA_PREFILL_ATTN=tiled;
// set_prefill_attn_kernel overrides it (tests and benchmarks run both).
enum class PrefillAttnKernel : int { kFlash = 1, kTiled = 2 };
PrefillAttnKernel prefill_attn_kernel();
void set_prefill_attn_kernel(PrefillAttnKernel k);
// Whether launch_attn_prefill(p) takes the flash kernel on the current device.
bool attn_prefill_uses_flash(const AttnPrefillParams& p);

// ---- sampling ----------------------------------------------------------------------------
// out[r] = the lowest index of the maximum of logits[r, :] (NaN never wins).
struct ArgmaxParams {
  const float* logits = nullptr;  // in:  [rows, n]
  int32_t* out = nullptr;         // out: [rows]
  int64_t rows = 1, n = 0;
};
Status check_params(const ArgmaxParams& p);
cudaError_t launch_argmax(const ArgmaxParams& p, cudaStream_t stream);

// One token per row, llama.cpp's order: top-k (k <= kSampleMaxTopK; k <= 0 means the cap),
// top-p over the softmax of the survivors, min-p, then temperature, then the inverse CDF at
// uniform[r] in [0, 1). temperature <= 0 is argmax.
constexpr int kSampleMaxTopK = 256;
struct SampleParams {
  const float* logits = nullptr;   // in:  [rows, n]
  const float* uniform = nullptr;  // in:  [rows] (device) uniform numbers in [0, 1)
  int32_t* out = nullptr;          // out: [rows]
  float* workspace = nullptr;      // sample_workspace_floats(rows, n) floats
  int64_t rows = 1, n = 0;
  int32_t top_k = 40;
  float top_p = 1.0f, min_p = 0.0f, temperature = 1.0f;
};
int64_t sample_workspace_floats(int64_t rows, int64_t n);
Status check_params(const SampleParams& p);
cudaError_t launch_sample(const SampleParams& p, cudaStream_t stream);

}  // namespace omni::cuda
