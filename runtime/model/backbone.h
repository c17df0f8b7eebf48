// The backbone an AudioOutDecoder drives, whatever computes it: the handful of Context calls a
// spoken turn needs (evaluate ids or embedding rows, the last row's logits) plus "the extra
// output matrices on the last row's final-norm hidden state" (the audio-out heads). CpuBackbone
// adapts a Context (same calls, same pool, same bits as before the interface existed);
// CudaBackbone (runtime/model/cuda_context.h) adapts a CudaContext, with the heads on the device.
// Thread-safety: as the context adapted: one thread at a time.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/core/status.h"
#include "runtime/model/context.h"
#include "runtime/model/model.h"

namespace omni {

// Extra outputs one run_extra_outputs() call computes at most.
inline constexpr int32_t kMaxExtraOutputs = 32;

class Backbone {
 public:
  virtual ~Backbone() = default;
  virtual const Model& model() const = 0;
  // As Context::eval / eval_embeddings / eval_embeddings_hidden (same errors, same contract:
  // nothing changes on error).
  virtual Status eval(std::span<const int32_t> tokens, bool all_logits) = 0;
  virtual Status eval_embeddings(const float* embd, int64_t n, bool all_logits) = 0;
  virtual Status eval_embeddings_hidden(const float* embd, int64_t n) = 0;
  // [n_vocab] logits of the last evaluated row on the host; null before the first eval with
  // logits and after eval_embeddings_hidden().
  virtual const float* last_logits() const = 0;
  // True once a row has been evaluated (the heads have a hidden state to read).
  virtual bool has_hidden() const = 0;
  virtual Status rewind(int64_t n) = 0;
  virtual int64_t n_past() const = 0;

  // The extra output matrices, each [n_embd -> n_out_i] (Weight: n_in = n_embd), set once
  // (CUDA uploads them; the CPU keeps the host mappings, which must outlive the backbone).
  // Replaces an earlier set. kInvalidArgument for a width other than n_embd; kUnsupported for a
  // type the backend cannot compute with.
  virtual Status set_extra_outputs(std::span<const Weight> mats) = 0;
  // Matrices which[0..n) of the set over the last evaluated row's final-norm hidden state:
  // matrix i's outputs go to host out + offset(i), offset(i) = sum of n_out of matrices < i
  // (the others are left as they are). kWrongState before a set or an evaluation,
  // kInvalidArgument for an index outside the set or more than kMaxExtraOutputs of them.
  virtual Status run_extra_outputs(const int32_t* which, int32_t n, float* out) = 0;

  // The CPU context underneath (per-step thread control for the codec thread); null elsewhere.
  virtual Context* cpu_context() { return nullptr; }
  // "cpu" or "cuda".
  virtual const char* backend_name() const = 0;
};

// Offsets of the matrices' outputs laid end to end, with the total at the back ([n + 1]).
std::vector<int64_t> extra_output_offsets(std::span<const Weight> mats);
// The shared checks of set_extra_outputs / run_extra_outputs (messages name the bad value).
Status check_extra_outputs(std::span<const Weight> mats, int64_t n_embd);
Status check_extra_output_ids(const int32_t* which, int32_t n, size_t n_mats);

// A Context as a Backbone. The heads run on ctx.step_pool() over ctx.last_hidden(): the rows
// of all requested matrices laid end to end and split across the threads, as AudioOutDecoder
// did before this interface (bit-identical).
class CpuBackbone final : public Backbone {
 public:
  explicit CpuBackbone(Context& ctx) : ctx_(ctx) {}
  const Model& model() const override { return ctx_.model(); }
  Status eval(std::span<const int32_t> tokens, bool all_logits) override { return ctx_.eval(tokens, all_logits); }
  Status eval_embeddings(const float* embd, int64_t n, bool all_logits) override {
    return ctx_.eval_embeddings(embd, n, all_logits);
  }
  Status eval_embeddings_hidden(const float* embd, int64_t n) override { return ctx_.eval_embeddings_hidden(embd, n); }
  const float* last_logits() const override { return ctx_.last_logits(); }
  bool has_hidden() const override { return ctx_.last_hidden() != nullptr; }
  Status rewind(int64_t n) override { return ctx_.rewind(n); }
  int64_t n_past() const override { return ctx_.n_past(); }
  Status set_extra_outputs(std::span<const Weight> mats) override;
  Status run_extra_outputs(const int32_t* which, int32_t n, float* out) override;
  Context* cpu_context() override { return &ctx_; }
  const char* backend_name() const override { return "cpu"; }

 private:
  Context& ctx_;
  std::vector<Weight> mats_;
  std::vector<int64_t> offsets_;
};

}  // namespace omni
