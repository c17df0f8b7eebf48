// Architecture descriptions: how each family's GGUF metadata maps to HParams and which
// per-layer tensors it has. One file per architecture (arch_llama.cpp, arch_qwen2.cpp,
// arch_gemma3.cpp); the forward pass in context.cpp is shared and driven by HParams and by
// which optional weights are present. Names and keys are llama.cpp's.
#pragma once

#include "kernels/core/status.h"
#include "runtime/model/gguf.h"
#include "runtime/model/model.h"

namespace omni {

struct ArchSpec {
  Arch arch;
  const char* name;         // general.architecture value
  bool attn_bias;           // blk.N.attn_{q,k,v}.bias required
  bool qk_norm;             // blk.N.attn_{q,k}_norm.weight required
  bool post_norms;          // blk.N.post_attention_norm / post_ffw_norm required
  bool output_may_be_tied;  // output.weight absent means tied to token_embd
  // Fills the architecture-specific parts of hp (rope style, scales, sliding window, ...).
  // The shared keys (<arch>.embedding_length, block_count, ...) are already read.
  Status (*read_hparams)(const gguf::GgufFile& file, HParams& hp);
};

const ArchSpec& llama_arch_spec();
const ArchSpec& qwen2_arch_spec();
const ArchSpec& gemma3_arch_spec();
// nullptr for architectures omnirt does not implement.
const ArchSpec* find_arch_spec(std::string_view name);

}  // namespace omni
