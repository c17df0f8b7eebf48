// gemma3: Gemma 3 text models. Differences from llama, as llama.cpp implements them:
//  - token embeddings scaled by sqrt(n_embd), output tied to token_embd;
//  - RMSNorm weights already include Gemma's "+1" (the converter adds it), so x*w as usual;
//  - QK-norm (per-head RMSNorm of q and k before rope), and extra norms after attention and FFN;
//  - GeGLU FFN with the tanh approximation of GELU;
//  - 5 of every 6 layers use sliding-window attention (window <arch>.attention.sliding_window)
//    with rope base 10000; every 6th layer (il % 6 == 5) is global with <arch>.rope.freq_base and
//    optional linear scaling (<arch>.rope.scaling.factor, the 4B+ models use 8).
//  - attention scale 1/sqrt(head_dim), except the 27B model (62 layers): 1/sqrt(n_embd/n_head).
#include <cmath>

#include "runtime/model/arch.h"

namespace omni {
namespace {

constexpr int kGemma3SwaPattern = 6;
constexpr float kGemma3SwaRopeBase = 10000.0f;

Status read_gemma3_hparams(const gguf::GgufFile& file, HParams& hp) {
  hp.rope_style = RopeStyle::kNeox;
  hp.ffn_act = FfnActivation::kGeluTanh;
  hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
  const float q_scale_dim = hp.n_layer == 62 ? static_cast<float>(hp.n_embd / hp.n_head)
                                             : static_cast<float>(hp.head_dim);
  hp.attn_scale = 1.0f / std::sqrt(q_scale_dim);
  OMNI_ASSIGN_OR_RETURN(uint32_t window, file.get_u32_or("gemma3.attention.sliding_window", 0));
  hp.sliding_window = window;
  hp.rope_freq_base_swa = kGemma3SwaRopeBase;
  OMNI_ASSIGN_OR_RETURN(float factor, file.get_f32_or("gemma3.rope.scaling.factor", 1.0f));
  if (!(factor > 0.0f)) return corrupt_file(fmt("gemma3.rope.scaling.factor %g must be > 0", factor));
  hp.rope_freq_scale = 1.0f / factor;
  OMNI_ASSIGN_OR_RETURN(float softcap, file.get_f32_or("gemma3.final_logit_softcapping", 0.0f));
  hp.final_logit_softcap = softcap;
  hp.layer_is_swa.assign(static_cast<size_t>(hp.n_layer), 0);
  if (window > 0)
    for (int64_t il = 0; il < hp.n_layer; ++il)
      hp.layer_is_swa[static_cast<size_t>(il)] = (il % kGemma3SwaPattern) != kGemma3SwaPattern - 1;
  return Status::Ok();
}

}  // namespace

const ArchSpec& gemma3_arch_spec() {
  static const ArchSpec spec{Arch::kGemma3, "gemma3", /*attn_bias=*/false, /*qk_norm=*/true,
                             /*post_norms=*/true, /*output_may_be_tied=*/true, read_gemma3_hparams};
  return spec;
}

}  // namespace omni
