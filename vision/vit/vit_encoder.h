// The ViT encoder (CLIP / SigLIP) and its adapter on the CPU, with patch dropping.
//
//   pixels [3][H][W] (preprocess.h) -> patches (p x p, conv-as-matmul) -> + class token
//   -> + position embeddings (bicubic-interpolated when H/p, W/p differ from the trained grid)
//   -> [pre LayerNorm] -> n_layer pre-LN blocks (LN -> MHA -> +, LN -> MLP -> +) -> [post LN]
//   -> adapter: class token dropped, LLaVA MLP (Linear -> GELU -> Linear), or Gemma 3's
//      pooling (k x k average -> RMSNorm -> projection: grid^2 / k^2 tokens), or Idefics3's
//      merge (k x k patches concatenated -> Linear).
// With pooling, a pooled token averages the kept patches of its window; a window whose
// patches are all dropped yields no token (rows stay in window order). With the merge, a
// window with any dropped patch yields no token (a concatenation has no value for a missing
// slot; zero-filling it would bring back the bias patch dropping avoids).
//
// Patch dropping (Jain et al., "Missingness Bias in Model Debugging", 2022): a PatchMask
// removes patches before the transformer; the kept tokens keep the position embedding of their
// place in the full grid, and attention runs over kept tokens only. This differs from painting
// the region black, which still feeds those patches (and their bias) to every layer.
// Thread-safety: a ViTEncoder owns scratch buffers; use one per thread (weights are shared).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/core/status.h"
#include "kernels/core/thread_pool.h"
#include "vision/preprocess/preprocess.h"
#include "vision/vit/vit_weights.h"

namespace omni::vision {

// Which patches of a grid_w x grid_h grid stay (row-major, 1 = keep).
struct PatchMask {
  int64_t grid_w = 0, grid_h = 0;
  std::vector<uint8_t> keep;

  static PatchMask keep_all(int64_t grid_w, int64_t grid_h);
  // Drops every patch that overlaps the pixel rectangle [x0, x1) x [y0, y1).
  void drop_pixel_rect(int64_t patch_size, int64_t x0, int64_t y0, int64_t x1, int64_t y1);
  int64_t n_kept() const;
};

struct ViTOutput {
  int64_t n_tokens = 0;          // rows of hidden (class token first when present)
  int64_t n_embd = 0;
  bool class_token = false;
  int64_t grid_w = 0, grid_h = 0;
  std::vector<int32_t> patches;  // grid index (y * grid_w + x) of each patch row, ascending
  std::vector<float> hidden;     // [n_tokens, n_embd]
};

class ViTEncoder {
 public:
  // The weights must outlive the encoder. Their shapes are trusted (the loader checks them).
  explicit ViTEncoder(const ViTWeights& w);

  // pixels: H, W >= patch_size; the grid is (W / p) x (H / p), a remainder of fewer than p
  // pixels right and bottom is ignored (as the stride-p conv does). Positions are interpolated
  // when the grid differs from the trained one.
  // mask: nullptr = every patch; else its grid must be (W/p, H/p) and keep at least one patch.
  // kInvalidArgument names the bad size or mask.
  Status encode(ThreadPool& pool, const PixelTensor& pixels, const PatchMask* mask,
                ViTOutput* out);
  // Patch rows of `enc` through the projector: embeds [n_patches, n_out] (n_out = n_proj_out,
  // or n_embd without a projector); with kGemma3Pool / kIdefics3Merge [n_windows kept, n_out],
  // and kInvalidArgument when the grid is smaller than one window or no window is kept.
  Status adapt(ThreadPool& pool, const ViTOutput& enc, std::vector<float>* embeds,
               int64_t* n_out);

  // Position table for a grid_w x grid_h grid ([grid_h * grid_w, n_embd], the class row not
  // included): the trained table, or torch's bicubic interpolate (align_corners=False, A=-0.75).
  std::vector<float> patch_positions(int64_t grid_w, int64_t grid_h) const;

 private:
  float* buf(size_t slot, size_t n);
  Status adapt_pooled(ThreadPool& pool, const ViTOutput& enc, std::vector<float>* embeds,
                      int64_t* n_out);
  Status adapt_merged(ThreadPool& pool, const ViTOutput& enc, std::vector<float>* embeds,
                      int64_t* n_out);
  const ViTWeights& w_;
  std::vector<std::vector<float>> scratch_;
};

}  // namespace omni::vision
