// Per-sequence inference state: a contiguous KV cache for one sequence, scratch buffers sized
// once at creation, and the logits of the last evaluation. eval() does not allocate.
// Thread-safety: a Context is used by one thread at a time; it only reads its Model.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/core/huge_pages.h"
#include "kernels/core/status.h"
#include "kernels/core/thread_pool.h"
#include "runtime/model/model.h"

namespace omni {

struct ContextParams {
  int64_t n_ctx = 0;        // KV capacity in tokens; 0 = min(model's training context, 4096)
  int64_t n_batch = 256;    // tokens per forward chunk during prefill (memory vs speed)
  int n_threads = 0;        // 0 = all online cores
  DType kv_type = DType::kF16;  // kF16 or kF32
  // Decode steps quantise activations to int8 for Q8_0 / Q4_0 / Q5_0 / Q4_K matrices (cpu::matvec_int8):
  // faster, logits differ from the f32 path at ~1e-3 (docs/KERNELS.md). Env OMNIRT_INT8_DOT=1
  // also turns it on.
  bool int8_activations = false;
  // Otherwise decode steps take the three-level int8 x (cpu::matvec_int8x3: f32-grade, error
  // <= max|x in block| * 2^-22) for the types where it is faster than the f32 loops
  // (cpu::int8x3_decode_faster: Q4_K, Q5_K, Q6_K; with AVX512-VNNI Q4_0, Q5_0 too). false, or env
  // OMNIRT_DECODE_F32=1, keeps every decode matvec on the f32 path.
  bool int8x3_decode = true;
};

// The checks every backend's eval() makes before touching its state: at least one token, room
// for all of them after n_past, and every id inside [0, n_vocab). Messages name the bad value.
Status check_token_ids(std::span<const int32_t> tokens, int64_t n_vocab);
Status check_eval_input(std::span<const int32_t> tokens, int64_t n_past, int64_t n_ctx, int64_t n_vocab);
// The same for embedding rows: n >= 1, embd non-null, every value finite, room after n_past.
Status check_embedding_input(const float* embd, int64_t n, int64_t n_embd, int64_t n_past, int64_t n_ctx);

class Context {
 public:
  // kInvalidArgument for bad params (n_ctx <= 0 after defaults, kv_type not f16/f32, ...).
  static StatusOr<std::unique_ptr<Context>> create(const Model& model, const ContextParams& params);
  ~Context();

  // Appends tokens at positions [n_past, n_past + n) and computes logits: for every token when
  // all_logits, else for the last only. On error (empty input, id out of range, context full)
  // nothing changes: n_past, the cache and the previous logits stay as they were.
  Status eval(std::span<const int32_t> tokens, bool all_logits);
  // As eval(), but the inputs are rows of the backbone's embedding space (an image's or an
  // utterance's adapter output): embd is [n, n_embd] row-major f32, used as given (no
  // embedding scale; multimodal adapters are trained against the unscaled input, as in
  // llama.cpp). Attention stays causal over them. kInvalidArgument for n <= 0 or a null or
  // non-finite row, kOutOfRange when they do not fit; nothing changes on error.
  Status eval_embeddings(const float* embd, int64_t n, bool all_logits);
  // As eval_embeddings(embd, n, false), but stops at the last row's final-norm hidden state
  // (last_hidden(), bit-identical to what eval_embeddings leaves there): the output head, the
  // vocabulary projection, is skipped (Mini-Omni's 151936 x 896 text head is 145 of the 553 MB
  // a decode step reads, and once its text has ended only the audio heads are needed). Afterwards
  // n_logit_rows() is 0 and last_logits() is null until an eval with logits. Same errors.
  Status eval_embeddings_hidden(const float* embd, int64_t n);
  // [n_logit_rows, n_vocab] row-major: the rows computed by the last eval.
  const float* logits() const { return logits_.data(); }
  int64_t n_logit_rows() const { return n_logit_rows_; }
  // Null before the first eval and after eval_embeddings_hidden().
  const float* last_logits() const {
    return n_logit_rows_ > 0 ? logits_.data() + (n_logit_rows_ - 1) * n_vocab_ : nullptr;
  }
  // The last evaluated position's hidden state after the final norm: [n_embd], the input of the
  // output head (audio-out heads read it). Valid until the next eval; null before the first.
  const float* last_hidden() const { return last_hidden_; }
  // The context's worker pool, for per-step work on the same threads (audio-out heads).
  ThreadPool& thread_pool() const { return *pool_; }
  // Threads for single-row evaluations (decode steps), 1..n_threads(); default n_threads().
  // Fewer leaves cores to other work between and during steps (a codec decoding the previous
  // frame: a step is bandwidth-bound and loses little on fewer cores). Prefill chunks keep all
  // threads. Results do not depend on it. kInvalidArgument outside the range.
  Status set_step_threads(int n);
  // The pool single-row evaluations run on (per-step work beside them: audio-out heads).
  ThreadPool& step_pool() const { return step_pool_ ? *step_pool_ : *pool_; }

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  // Forgets positions >= n (0 <= n <= n_past); kOutOfRange otherwise.
  Status rewind(int64_t n);
  const Model& model() const { return *model_; }
  const ContextParams& params() const { return params_; }
  int n_threads() const { return pool_->n_threads(); }
  size_t kv_bytes() const;

 private:
  Context() = default;
  // What an evaluation leaves behind: logits of the last row or of every row, or only the last
  // row's hidden state.
  enum class Output { kLastLogits, kAllLogits, kHiddenOnly };
  // Exactly one of tokens / embd is set: ids, or [n, n_embd] input rows. logits_out null: no
  // output head (a chunk before the last, or kHiddenOnly, which still sets last_hidden_ when
  // `hidden` is set).
  void forward_chunk(const int32_t* tokens, const float* embd, int64_t n, bool all_logits, float* logits_out,
                     bool hidden = false);
  Status eval_rows(const int32_t* tokens, const float* embd, int64_t n, Output out);

  const Model* model_ = nullptr;
  ContextParams params_;
  int64_t n_ctx_ = 0, n_vocab_ = 0, n_past_ = 0, n_logit_rows_ = 0;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ThreadPool> step_pool_;  // null: steps use pool_
  // KV cache: per layer [n_ctx, n_head_kv, head_dim] in kv_type, pointers into kv_.
  HugeBuffer kv_;
  size_t kv_bytes_ = 0;
  std::vector<uint8_t*> k_cache_, v_cache_;
  // Scratch (f32), sized for n_batch tokens.
  std::vector<float> x_, xn_, q_, k_, v_, attn_, ffn_a_, ffn_b_, tmp_, matmul_scratch_, attn_scratch_;
  std::vector<float> logits_;  // [max rows, n_vocab]
  const float* last_hidden_ = nullptr;  // into xn_
};

}  // namespace omni
