// The model forward pass on one NVIDIA GPU, with Context's contract (runtime/model/context.h):
// create(model, params), eval(tokens, all_logits), logits(), n_past(), rewind(). Weights are
// uploaded once in their stored type (Q4_K stays Q4_K), the KV cache is f16 on the device, and a
// decode step (one token per sequence, 1..16 sequences) is captured as a CUDA graph on first use
// and replayed after. Greedy decoding never copies logits to the host: decode_greedy() returns
// the argmax computed on the device.
//
//   OMNI_ASSIGN_OR_RETURN(auto ctx, CudaContext::create(model, ContextParams{}));
//   OMNI_RETURN_IF_ERROR(ctx->eval(prompt, false));            // prefill; logits() on the host
//   OMNI_ASSIGN_OR_RETURN(int32_t tok, ctx->decode_greedy(first_token));
//
// Batched decode: sequences 0..n_seq-1 each own a KV cache of n_ctx positions; sequence 0 is the
// one eval()/decode_greedy() use. decode_batch() advances n of them by one token in one pass.
// Thread-safety: one thread at a time; the Model is only read (and may be freed after create()).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/core/status.h"
#include "runtime/model/backbone.h"
#include "runtime/model/context.h"
#include "runtime/model/model.h"

namespace omni {

struct CudaContextOptions {
  int device = 0;
  bool use_graphs = true;  // false: launch every kernel each step (to measure host overhead)
  int n_seq = 1;           // sequences with their own KV cache, for decode_batch (1..16)
  // Prefill chunks on the GEMM path (> 16 tokens) run q|k|v as one GEMM and gate|up as one
  // (over concatenated weights that wq/wk/wv and gate/up are views into); false, or the
  // environment's OMNIRT_CUDA_PREFILL_FUSED=0 (read at create), keeps separate GEMMs.
  bool prefill_fused = true;
};

class CudaContext {
 public:
  static constexpr int kMaxBatch = 16;

  // kUnsupported without a device or for a weight type without a CUDA kernel, kOutOfMemory when
  // the weights and cache do not fit, kInvalidArgument as Context::create (kv_type must be f16).
  static StatusOr<std::unique_ptr<CudaContext>> create(const Model& model, const ContextParams& params,
                                                       const CudaContextOptions& options = {});
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  // As Context::eval on sequence 0; the logits are copied to the host.
  Status eval(std::span<const int32_t> tokens, bool all_logits);
  // As Context::eval_embeddings: [n, n_embd] host rows, copied to the device and used as given.
  Status eval_embeddings(const float* embd, int64_t n, bool all_logits);
  const float* logits() const { return logits_.data(); }
  int64_t n_logit_rows() const { return n_logit_rows_; }
  const float* last_logits() const { return logits_.data() + (n_logit_rows_ - 1) * n_vocab_; }
  int64_t n_past() const { return seq_past_[0]; }
  int64_t n_ctx() const { return n_ctx_; }
  Status rewind(int64_t n);  // sequence 0
  const Model& model() const { return *model_; }
  const ContextParams& params() const { return params_; }

  // Appends `token` to sequence 0 and returns the argmax of the new logits, computed on the
  // device (the host logits() are not updated).
  StatusOr<int32_t> decode_greedy(int32_t token);
  // Appends tokens[s] to sequence s for s < tokens.size() (<= n_seq) and writes each sequence's
  // argmax to next[s]; with copy_logits, logits() then holds [tokens.size(), n_vocab].
  Status decode_batch(std::span<const int32_t> tokens, std::span<int32_t> next, bool copy_logits);
  int64_t seq_past(int s) const { return seq_past_[static_cast<size_t>(s)]; }
  Status rewind_seq(int s, int64_t n);

  void set_use_graphs(bool on) { options_.use_graphs = on; }
  bool use_graphs() const { return options_.use_graphs; }
  // Why graph capture was abandoned (empty while graphs work); steps then run eagerly.
  const std::string& graph_error() const { return graph_error_; }
  // Device time of the last decode_batch/decode_greedy step (events around the launch), ms.
  float last_step_gpu_ms() const { return last_step_gpu_ms_; }
  size_t device_weight_bytes() const { return weight_bytes_; }
  size_t device_kv_bytes() const { return kv_bytes_; }
  // True when prefill chunks of more than 16 tokens go through cuBLASLt (cuBLAS was found).
  bool has_gemm() const;
  // True when at least one layer's q|k|v or gate|up prefill GEMMs are fused (prefill_fused).
  bool prefill_fused() const;
  std::string device_name() const { return device_name_; }

  // Profiling (bench/gpu): hook(user, label) runs on the calling thread right after each op of a
  // step is enqueued ("attn_q", "rms_norm", "attn_decode", ...), e.g. to record a CUDA event on
  // stream_handle(). While a hook is set, decode steps run without graphs. nullptr removes it.
  using OpHook = void (*)(void* user, const char* label);
  void set_op_hook(OpHook hook, void* user) {
    op_hook_ = hook;
    op_hook_user_ = user;
  }
  void* stream_handle() const;  // the cudaStream_t every step runs on

  // As Context::eval_embeddings_hidden: the rows are evaluated up to sequence 0's last row's
  // final-norm hidden state, which stays on the device (run_extra_outputs reads it); the output
  // head is skipped, n_logit_rows() is 0 afterwards. Same errors as eval_embeddings.
  Status eval_embeddings_hidden(const float* embd, int64_t n);
  // Extra output matrices on sequence 0's last final-norm hidden state (Backbone's contract,
  // runtime/model/backbone.h): uploaded once in their stored type (any type the matvec kernels
  // read); a set equal to the current one (same host data, types and shapes) is kept as it is.
  Status set_extra_outputs(std::span<const Weight> mats);
  // Matvecs of matrices which[0..n) over that hidden state (one token, the decode kernels),
  // then one copy of their outputs to the host: matrix i's at out + offset(i).
  Status run_extra_outputs(const int32_t* which, int32_t n, float* out);
  // True once an evaluation left a hidden state (any eval, eval_embeddings[_hidden], decode).
  bool has_hidden() const { return hidden_valid_; }

 private:
  struct Impl;
  CudaContext() = default;
  Status run_step(int64_t n, bool batch_decode, bool all_logits, bool copy_logits);
  // Prefill of ids or of embedding rows (exactly one set), after the input checks.
  Status eval_rows(const int32_t* tokens, const float* embd, int64_t n, bool all_logits);
  // One embedding row at sequence 0's next position (after the input checks): the decode-step
  // path (flash-decoding attention), captured as a CUDA graph per output kind (logits or the
  // hidden state only), the row staged in pinned memory.
  Status eval_embedding_step(const float* row, bool hidden_only);
  [[maybe_unused]] bool embd_input_ = false;  // run_step: the input rows are already in the device's x (unused without CUDA)
  [[maybe_unused]] bool hidden_only_ = false;  // run_step/eval_rows: stop after the final norm (no output head)
  bool hidden_valid_ = false;                   // the device's xn holds sequence 0's last hidden state
  [[maybe_unused]] int64_t hidden_row_ = 0;     // ... at row hidden_row_ of xn

  const Model* model_ = nullptr;
  ContextParams params_;
  CudaContextOptions options_;
  int64_t n_ctx_ = 0, n_vocab_ = 0, n_logit_rows_ = 0;
  std::vector<int64_t> seq_past_;
  std::vector<float> logits_;
  size_t weight_bytes_ = 0, kv_bytes_ = 0;
  float last_step_gpu_ms_ = 0.0f;
  std::string graph_error_, device_name_;
  OpHook op_hook_ = nullptr;
  void* op_hook_user_ = nullptr;
  std::unique_ptr<Impl> impl_;
};

// A CudaContext as a Backbone (runtime/model/backbone.h): audio-out heads run on the device
// (set_extra_outputs / run_extra_outputs), only their logits come to the host.
class CudaBackbone final : public Backbone {
 public:
  explicit CudaBackbone(CudaContext& ctx) : ctx_(ctx) {}
  const Model& model() const override { return ctx_.model(); }
  Status eval(std::span<const int32_t> tokens, bool all_logits) override { return ctx_.eval(tokens, all_logits); }
  Status eval_embeddings(const float* embd, int64_t n, bool all_logits) override {
    return ctx_.eval_embeddings(embd, n, all_logits);
  }
  Status eval_embeddings_hidden(const float* embd, int64_t n) override { return ctx_.eval_embeddings_hidden(embd, n); }
  const float* last_logits() const override { return ctx_.n_logit_rows() > 0 ? ctx_.last_logits() : nullptr; }
  bool has_hidden() const override { return ctx_.has_hidden(); }
  Status rewind(int64_t n) override { return ctx_.rewind(n); }
  int64_t n_past() const override { return ctx_.n_past(); }
  Status set_extra_outputs(std::span<const Weight> mats) override { return ctx_.set_extra_outputs(mats); }
  Status run_extra_outputs(const int32_t* which, int32_t n, float* out) override {
    return ctx_.run_extra_outputs(which, n, out);
  }
  const char* backend_name() const override { return "cuda"; }
  CudaContext& context() const { return ctx_; }

 private:
  CudaContext& ctx_;
};

}  // namespace omni
