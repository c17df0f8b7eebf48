// A loaded model: hyperparameters, weights bound to the mmapped GGUF file (never copied),
// and the tokenizer. Thread-safety: a Model is immutable after load(); any number of Contexts
// on any threads may share it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/core/status.h"
#include "kernels/ref/ops_ref.h"
#include "runtime/model/gguf.h"
#include "runtime/model/tokenizer.h"

namespace omni {

enum class Arch { kLlama, kQwen2, kGemma3 };
const char* arch_name(Arch a);
enum class FfnActivation { kSilu, kGeluTanh };

struct HParams {
  Arch arch = Arch::kLlama;
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;      // per head, for q, k and v
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float norm_eps = 1e-5f;
  RopeStyle rope_style = RopeStyle::kNormal;
  int64_t rope_dim = 0;       // dims rotated per head
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;      // 1 / linear scaling factor
  float rope_freq_base_swa = 10000.0f;  // sliding-window layers (gemma3)
  int64_t sliding_window = 0;         // 0: none
  std::vector<uint8_t> layer_is_swa;  // [n_layer]
  float attn_scale = 0.0f;            // q·k scale
  float embd_scale = 1.0f;            // token embeddings are multiplied by this (gemma: sqrt(n_embd))
  float final_logit_softcap = 0.0f;
  FfnActivation ffn_act = FfnActivation::kSilu;
};

// A 2-D weight [n_out rows, n_in columns] in its stored type, pointing into the mapping.
struct Weight {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t n_in = 0, n_out = 0;
  explicit operator bool() const { return data != nullptr; }
};

struct LayerWeights {
  std::vector<float> attn_norm, q_norm, k_norm, post_attn_norm, ffn_norm, post_ffn_norm;  // f32
  std::vector<float> bq, bk, bv;  // qwen2 biases, empty when absent
  Weight wq, wk, wv, wo, ffn_gate, ffn_up, ffn_down;
};

struct ModelParams {
  // Parse and bind only: no tokenizer, and the weights are not faulted in (settle_pages()).
  bool validate_only = false;
};

class Model {
 public:
  // kNotFound, kIoError, kCorruptFile (with the tensor/key at fault), kUnsupported.
  static StatusOr<std::unique_ptr<Model>> load(const std::string& path, const ModelParams& params = {});

  const HParams& hparams() const { return hp_; }
  const gguf::GgufFile& file() const { return *file_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  ChatTemplate chat_template() const { return chat_template_; }
  const std::string& name() const { return name_; }
  // True for files written by `omnirt model create` (random weights: output is noise).
  bool is_synthetic() const { return synthetic_; }
  uint64_t weight_bytes() const { return weight_bytes_; }
  // How the file's pages were mapped at load (gguf::GgufFile::settle_pages); empty for validate_only.
  const gguf::PageReport& pages() const { return pages_; }

  const Weight& token_embd() const { return token_embd_; }
  const Weight& output() const { return output_; }  // token_embd when tied
  const std::vector<float>& output_norm() const { return output_norm_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }

 private:
  Model() = default;
  Status bind();

  std::unique_ptr<gguf::GgufFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ChatTemplate chat_template_ = ChatTemplate::kNone;
  HParams hp_;
  std::string name_;
  bool synthetic_ = false;
  uint64_t weight_bytes_ = 0;
  gguf::PageReport pages_;
  Weight token_embd_, output_;
  std::vector<float> output_norm_;
  std::vector<LayerWeights> layers_;
};

}  // namespace omni
