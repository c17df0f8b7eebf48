// Loads a llama.cpp-style vision projector file ("mmproj" GGUF: general.architecture = "clip",
// clip.vision.* keys, v.* / mm.* tensors) into the weight views vision/'s ViT encoder takes.
// Every key and tensor shape is checked; a file that does not match says which key or tensor,
// and what it expected. Matrices stay in the file's type (mapped, no copy); the patch embedding
// is used as a [n_embd, 3*p*p] matrix; norms, biases, class and position tables become f32.
//
// Keys read: clip.has_vision_encoder (must not be false), clip.vision.{image_size, patch_size,
// embedding_length, feed_forward_length, block_count, attention.head_count,
// attention.layer_norm_epsilon, image_mean, image_std}, clip.use_gelu (gelu tanh; else
// quick-GELU), clip.projector_type ("mlp", "gemma3", "idefics3") or clip.has_llava_projector,
// clip.vision.projection_dim, clip.vision.projector.scale_factor (the pooling / merge window;
// 4 for gemma3, 3 for idefics3).
// Tensors: v.patch_embd.weight [+ .bias], v.class_embd, v.position_embd.weight,
// v.pre_ln.*, v.blk.N.{ln1, attn_q, attn_k, attn_v, attn_out, ln2, ffn_up, ffn_down}.{weight,bias},
// v.post_ln.*, mm.0.*, mm.2.* (mlp), mm.soft_emb_norm.weight + mm.input_projection.weight
// (gemma3; the projection is stored [d_vision, d_text] and transposed into an f32 copy),
// mm.model.fc.weight (idefics3). ffn_up / ffn_down are told apart by shape (llama.cpp's legacy
// converter wrote CLIP's fc1 as ffn_down).
// Thread-safety: a VisionModel is immutable after loading; share it between threads freely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/core/status.h"
#include "runtime/model/gguf.h"
#include "vision/vit/vit_weights.h"

namespace omni {

struct VisionModel {
  // Owns the mapping ViTMatrix views point into; null when loaded from a file someone else
  // owns (the vision component of an omni model file: the Model's file must outlive this).
  std::unique_ptr<gguf::GgufFile> file;
  vision::ViTWeights weights;
};

// kNotFound / kIoError / kCorruptFile from the GGUF reader; kUnsupported for a file without a
// vision encoder, an unknown projector or an unsupported tensor type; kCorruptFile for missing
// keys/tensors, bad shapes or out-of-range hyperparameters (named in the message).
StatusOr<std::unique_ptr<VisionModel>> load_vision(const std::string& path);
StatusOr<std::unique_ptr<VisionModel>> load_vision(std::unique_ptr<gguf::GgufFile> file);
// Non-owning: the vision component inside another file (an omni model file holds the
// clip.vision.* keys and v.* / mm.* tensors next to the backbone's; general.architecture is the
// backbone's). `file` must outlive the result. kUnsupported when it has no vision component.
StatusOr<std::unique_ptr<VisionModel>> load_vision(const gguf::GgufFile& file);
// True when the file holds a vision component: clip.vision.* hyperparameters and
// v.patch_embd.weight (an mmproj file, or an omni model file).
bool has_vision_component(const gguf::GgufFile& file);

// Synthetic vision encoders (random weights at a real shape, mmproj layout, omnirt.synthetic =
// true): "vit-tiny" (tests), "siglip-so400m-384", "clip-vit-l-336" (benchmarks).
std::vector<std::string> synthetic_vision_presets();
// kInvalidArgument for an unknown preset.
StatusOr<vision::ViTHParams> synthetic_vision_hparams(const std::string& preset);
struct SyntheticVisionSpec {
  std::string preset;
  DType type = DType::kF16;  // 2-D matrices; norms, biases, tables are F32
  uint64_t seed = 0;
};
// Writes the file (temporary name renamed at the end). kInvalidArgument: unknown preset;
// kUnsupported: a type omnirt cannot compute with; kIoError: not writable.
Status create_synthetic_vision(const SyntheticVisionSpec& spec, const std::string& out_path);
// The vision component alone (clip.* keys, v.* / mm.* tensors; no general.* keys) into `w`,
// for omni model files and for mmproj files with another projection width. n_embd_out > 0:
// the LLaVA MLP projector maps to n_embd_out (a preset without a projector, e.g.
// siglip-so400m-384, gains one with hidden width n_embd_out); 0: the preset's own projector.
// Errors as for create_synthetic_vision; kInvalidArgument for n_embd_out < 0.
Status add_synthetic_vision(gguf::GgufWriter& w, const std::string& preset, int64_t n_embd_out,
                            DType type, uint64_t seed);

}  // namespace omni
