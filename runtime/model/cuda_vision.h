// CudaViT: the ViT encoder and its adapter (vision/vit/vit_encoder.h) on the CUDA kernels,
// giving the same rows as the CPU ViTEncoder::encode + adapt (patch dropping included: the
// transformer runs on the kept tokens only, each keeping the position of its place in the grid).
//
//   OMNI_ASSIGN_OR_RETURN(auto vit, CudaViT::create(vision_model->weights));
//   std::vector<float> embeds; int64_t width = 0;
//   OMNI_RETURN_IF_ERROR(vit->encode_adapt(pixels, &mask, &embeds, &width));
//
// Weights are uploaded once, in their stored type (bf16 and f16 used in place by the cuBLASLt
// GEMMs; f32 and quantized types dequantized to f16 per GEMM into a scratch buffer); q/k/v are
// fused into one [3d, d] matrix when they share a type. Norms, biases and the position table
// are f32. Scratch is sized for the largest image seen so far: a new, larger grid re-creates it
// (one cudaMalloc), every later image of that size or smaller allocates nothing. The
// interpolated position table is computed on the host (ViTEncoder::patch_positions) and kept
// on the device for the last grid.
// Without CUDA (no driver, no device, or a build with OMNIRT_CUDA=OFF) create() returns
// kUnsupported with the reason. Thread-safety: one thread at a time; the weights must outlive it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/core/status.h"
#include "vision/vit/vit_encoder.h"
#include "vision/vit/vit_weights.h"

namespace omni {

// Where the device time of the last encode went (filled only with profiling on: it records an
// event pair around every op, which costs a little).
struct CudaViTProfile {
  double gemm_ms = 0, attn_ms = 0, other_ms = 0;  // GPU time by op class
  double total_ms = 0;                            // first to last op, GPU time
};

struct CudaViTOptions {
  // Attention: false (default) = the tensor-core path (cuda::attn_full_fast: cuBLAS TF32 GEMMs
  // and a softmax over a [heads, n, n] scores scratch, ~3e-4 relative L2 off the exact result);
  // true = the exact flash kernel (cuda::launch_attn_full, 1e-5). OMNIRT_ENCODER_ATTN=exact in
  // the environment also selects the exact one. Grids whose one-head scores exceed the scratch
  // cap (256 MB: above ~8000 tokens) use the exact kernel either way.
  bool exact_attention = false;
};

class CudaViT {
 public:
  // kUnsupported without a device or for a weight type the CUDA GEMM cannot read (or a head
  // size above the attention kernel's limit); kOutOfMemory when the weights do not fit.
  static StatusOr<std::unique_ptr<CudaViT>> create(const vision::ViTWeights& w, int device = 0);
  static StatusOr<std::unique_ptr<CudaViT>> create(const vision::ViTWeights& w, int device,
                                                   const CudaViTOptions& options);
  ~CudaViT();
  CudaViT(const CudaViT&) = delete;
  CudaViT& operator=(const CudaViT&) = delete;

  // As ViTEncoder::encode (same checks and messages' meaning); out->hidden is downloaded.
  Status encode(const vision::PixelTensor& pixels, const vision::PatchMask* mask, vision::ViTOutput* out);
  // As ViTEncoder::adapt on a host encoder output (uploaded first).
  Status adapt(const vision::ViTOutput& enc, std::vector<float>* embeds, int64_t* n_out);
  // encode then adapt without the hidden states leaving the device; `enc`, when set, receives
  // the encoder's metadata (tokens, grid, kept patches) but no hidden rows.
  Status encode_adapt(const vision::PixelTensor& pixels, const vision::PatchMask* mask,
                      std::vector<float>* embeds, int64_t* n_out, vision::ViTOutput* enc = nullptr);

  // Profiling of the following calls (see CudaViTProfile); last_profile() is the latest call's.
  void set_profiling(bool on);
  const CudaViTProfile& last_profile() const { return profile_; }
  // GPU milliseconds of the latest encode/adapt/encode_adapt (events around the whole call).
  double last_gpu_ms() const { return last_gpu_ms_; }

 private:
  struct Impl;
  CudaViT();
  std::unique_ptr<Impl> impl_;
  CudaViTProfile profile_;
  double last_gpu_ms_ = 0;
};

}  // namespace omni
