// A ViT encoder's parameters (CLIP / SigLIP style) and its adapter, as views and small f32
// vectors: what vit_encoder.h reads. Filled by runtime/model/vision_loader (from an mmproj GGUF)
// or by a test; the networks never see a file format.
// Lifetime: ViTMatrix::data points into memory the filler keeps alive (the mapped file).
// Thread-safety: immutable once filled; any number of encoders may share it.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/core/dtype.h"

namespace omni::vision {

enum class ViTActivation : int {
  kGeluErf = 0,    // x/2 (1 + erf(x / sqrt 2)): torch.nn.GELU(), LLaVA's projector
  kGeluTanh = 1,   // gelu_pytorch_tanh: SigLIP
  kQuickGelu = 2,  // x sigmoid(1.702 x): OpenAI CLIP
};

enum class ProjectorType : int {
  kNone = 0,  // encoder output as is
  kMlp = 1,   // LLaVA: Linear -> GELU (erf) -> Linear
  // Gemma 3 (llama.cpp "gemma3"): the patch grid average-pooled in pool_kernel x pool_kernel
  // windows (64 x 64 -> 16 x 16 = 256 tokens), RMSNorm (weight as stored: 1 + w), then a
  // bias-free projection to the backbone's width.
  kGemma3Pool = 2,
  // Idefics3 / SmolVLM (llama.cpp "idefics3"): pixel shuffle, each pool_kernel x pool_kernel
  // window's patch rows concatenated in row-major order (d -> d k^2, tokens / k^2), then a
  // bias-free Linear (mm0 = mm.model.fc) to the backbone's width.
  kIdefics3Merge = 3,
};

struct ViTHParams {
  int64_t image_size = 224;  // the size the position table was trained for (square; may
                             // leave a remainder: SigLIP 384 / 14 = 27 patches)
  int64_t patch_size = 14;
  int64_t n_embd = 1024;
  int64_t n_head = 16;
  int64_t n_layer = 24;      // blocks present (and run)
  int64_t n_ff = 4096;
  float eps = 1e-5f;         // LayerNorm epsilon
  ViTActivation act = ViTActivation::kQuickGelu;
  ProjectorType projector = ProjectorType::kNone;
  int64_t n_proj_out = 0;    // projector output width (the backbone's n_embd)
  int64_t pool_kernel = 0;   // kGemma3Pool / kIdefics3Merge: window side
                             // (clip.vision.projector.scale_factor)
  float image_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  float image_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  int64_t grid() const { return patch_size > 0 ? image_size / patch_size : 0; }
};

// W [n_out, n_in] row-major in `type` (ggml convention: y = W x).
struct ViTMatrix {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t n_in = 0, n_out = 0;
};

struct ViTLinear {
  ViTMatrix w;
  std::vector<float> b;  // [n_out]; empty = no bias
};

struct ViTLayerNorm {
  std::vector<float> w, b;  // [d] each; y = (x - mean) / sqrt(var + eps) * w + b
};

struct ViTBlock {
  ViTLayerNorm ln1, ln2;
  ViTLinear q, k, v, out;
  ViTLinear fc1, fc2;  // d -> n_ff (act) -> d
};

struct ViTWeights {
  ViTHParams hp;
  // Patch embedding (a conv, kernel = stride = patch_size) as a matrix over flattened patches:
  // [n_embd, 3 * p * p], each row ordered (channel, y, x) as torch's conv weight.
  ViTMatrix patch;
  std::vector<float> patch_bias;   // [n_embd]; empty for CLIP
  std::vector<float> class_embd;   // [n_embd]; empty = no class token (SigLIP)
  std::vector<float> pos_embd;     // [n_pos, n_embd], n_pos = grid^2 (+1 with a class token)
  ViTLayerNorm pre_ln;             // empty = none (SigLIP)
  std::vector<ViTBlock> blocks;
  ViTLayerNorm post_ln;            // empty = none (LLaVA's feature layer is before it)
  ViTLinear mm0, mm2;              // kMlp projector; kIdefics3Merge: mm0 only
  // kGemma3Pool: soft-embedding RMSNorm weight [n_embd] (already 1 + w, as llama.cpp stores
  // it) and the projection as f32 [n_proj_out, n_embd] (the file holds it transposed,
  // [n_embd][n_proj_out]; the loader transposes it into this owned copy).
  std::vector<float> mm_soft_emb_norm;
  std::vector<float> mm_input_proj;
};

}  // namespace omni::vision
