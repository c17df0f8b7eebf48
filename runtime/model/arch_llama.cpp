// llama: Llama 2/3, TinyLlama, SmolLM. RMSNorm, rotary embeddings on interleaved pairs
// (llama.cpp's converter permutes Q/K rows so that "normal" rope applies), SwiGLU FFN.
#include <cmath>

#include "runtime/model/arch.h"

namespace omni {
namespace {

Status read_llama_hparams(const gguf::GgufFile& file, HParams& hp) {
  hp.rope_style = RopeStyle::kNormal;
  hp.ffn_act = FfnActivation::kSilu;
  hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
  // Linear rope scaling (llama.cpp: <arch>.rope.scaling.type = "linear", .factor).
  OMNI_ASSIGN_OR_RETURN(std::string scaling, file.get_string_or("llama.rope.scaling.type", "none"));
  if (scaling == "linear") {
    OMNI_ASSIGN_OR_RETURN(float factor, file.get_f32_or("llama.rope.scaling.factor", 1.0f));
    if (!(factor > 0.0f)) return corrupt_file(fmt("llama.rope.scaling.factor %g must be > 0", factor));
    hp.rope_freq_scale = 1.0f / factor;
  } else if (scaling != "none" && scaling != "") {
    return unsupported(fmt("llama.rope.scaling.type '%s' is not supported (none, linear)", scaling.c_str()));
  }
  if (file.find_tensor("rope_freqs.weight"))
    return unsupported("tensor 'rope_freqs.weight' (Llama 3.1+ frequency-factor rope scaling) is not supported yet");
  return Status::Ok();
}

}  // namespace

const ArchSpec& llama_arch_spec() {
  static const ArchSpec spec{Arch::kLlama, "llama", /*attn_bias=*/false, /*qk_norm=*/false,
                             /*post_norms=*/false, /*output_may_be_tied=*/true, read_llama_hparams};
  return spec;
}

}  // namespace omni
