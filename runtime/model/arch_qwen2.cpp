// qwen2: Qwen2 / Qwen2.5 (the backbone of Qwen2.5-Omni and Mini-Omni). Like llama with biases on
// the Q/K/V projections and NeoX-style rope (rotating halves, no Q/K permutation).
#include <cmath>

#include "runtime/model/arch.h"

namespace omni {
namespace {

Status read_qwen2_hparams(const gguf::GgufFile& file, HParams& hp) {
  hp.rope_style = RopeStyle::kNeox;
  hp.ffn_act = FfnActivation::kSilu;
  hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
  OMNI_ASSIGN_OR_RETURN(std::string scaling, file.get_string_or("qwen2.rope.scaling.type", "none"));
  if (scaling == "linear") {
    OMNI_ASSIGN_OR_RETURN(float factor, file.get_f32_or("qwen2.rope.scaling.factor", 1.0f));
    if (!(factor > 0.0f)) return corrupt_file(fmt("qwen2.rope.scaling.factor %g must be > 0", factor));
    hp.rope_freq_scale = 1.0f / factor;
  } else if (scaling != "none" && scaling != "") {
    // YaRN (long-context Qwen2.5) changes the attention scale and frequencies; not implemented.
    return unsupported(fmt("qwen2.rope.scaling.type '%s' is not supported (none, linear)", scaling.c_str()));
  }
  return Status::Ok();
}

}  // namespace

const ArchSpec& qwen2_arch_spec() {
  static const ArchSpec spec{Arch::kQwen2, "qwen2", /*attn_bias=*/true, /*qk_norm=*/false,
                             /*post_norms=*/false, /*output_may_be_tied=*/true, read_qwen2_hparams};
  return spec;
}

}  // namespace omni
