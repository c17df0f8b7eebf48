// Loads an omni model's audio encoder and adapter, stored as llama.cpp stores them (an
// "mmproj" GGUF, or the same keys and tensors inside an omni model's main GGUF) into the weight
// views audio/adapter's AudioEncoder takes. Every key and tensor shape is checked; a file that
// does not match says which key or tensor, and what it expected. Matrices stay in the file's
// type (mapped, no copy); conv kernels, norms, biases and positions become f32 vectors.
//
// Keys: clip.has_audio_encoder (must be true); clip.audio.projector_type, else
// clip.projector_type: "ultravox" or "qwen2a"; clip.audio.{num_mel_bins, embedding_length,
// feed_forward_length (= 4 * embedding_length), block_count, attention.head_count,
// attention.layer_norm_epsilon (optional, 1e-5), projection_dim (the backbone width)};
// ultravox: clip.audio.projector.stack_factor.
// Tensors (ggml order, d = embedding_length): a.conv1d.1.weight [3, n_mels, d], a.conv1d.2.weight
// [3, d, d], their .bias [d] or [1, d]; a.position_embd.weight [d, n_ctx] (n_ctx encoder
// positions: a chunk of up to 2 * n_ctx mel frames); a.blk.N.{ln1, attn_q, attn_k, attn_v,
// attn_out, ln2, ffn_up, ffn_down}.{weight, bias} (attn_k.bias optional); a.post_ln.*.
// ultravox: mm.a.norm_pre.weight [k*d], mm.a.mlp.1.weight [k*d, H], mm.a.norm_mid.weight [H/2],
// mm.a.mlp.2.weight [H/2, projection_dim]. qwen2a: mm.a.fc.weight [d, projection_dim] + .bias.
// Thread-safety: an AudioEncoderModel is immutable after loading; share it freely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "audio/adapter/audio_adapter.h"
#include "kernels/core/dtype.h"
#include "kernels/core/status.h"
#include "runtime/model/gguf.h"

namespace omni {

struct AudioEncoderModel {
  std::unique_ptr<gguf::GgufFile> file;  // owns the mapping (path overload); null when borrowed
  audio::AudioEncoderWeights weights;
};

// Optional u32 key, 10 to 30000: the streaming encoder's chunk in ms (AudioEncoderWeights::chunk_ms).
inline constexpr const char kAudioChunkMsKey[] = "omni.audio_in.chunk_ms";

// Borrows `f` (an omni model's main GGUF, or an mmproj file): it must outlive the result.
// kUnsupported: no audio encoder in the file, another projector, a tensor type omnirt cannot
// compute with, or a shape our Whisper encoder does not run (MLP width != 4 d, eps != 1e-5);
// kNotFound for a missing key; kCorruptFile for missing tensors, bad shapes, absurd values.
StatusOr<std::unique_ptr<AudioEncoderModel>> load_audio_encoder(const gguf::GgufFile& f);
// Opens and owns the file (kNotFound / kIoError / kCorruptFile from the reader as well).
StatusOr<std::unique_ptr<AudioEncoderModel>> load_audio_encoder(const std::string& path);

// True when the file holds an audio component: clip.has_audio_encoder = true (an mmproj file,
// or an omni model file). A bad value of the key reads as false (load_audio_encoder says why).
bool has_audio_component(const gguf::GgufFile& f);

// Synthetic audio encoders (random weights at a real shape, llama.cpp's mmproj layout): adds
// the clip.audio.* keys and a.* / mm.a.* tensors to `w` (the caller adds general.* and, for an
// mmproj file, general.architecture = "clip"), with an Ultravox adapter (k = 8, H = 2 *
// n_embd_out) into n_embd_out. Presets: "whisper-tiny-enc" (tests: d 64, 2 layers, 4 heads,
// 80 mels, 64 positions), "whisper-small-enc" (Whisper-small's encoder: d 768, 12 layers,
// 12 heads, 80 mels, 1500 positions). `type`: 2-D matrices (f32, f16, bf16, q8_0, q4_0; conv
// kernels f16 as llama.cpp writes them; norms, biases, positions f32).
// kInvalidArgument: unknown preset, n_embd_out outside [1, 65536]; kUnsupported: type.
Status add_synthetic_audio_encoder(gguf::GgufWriter& w, const std::string& preset, int64_t n_embd_out,
                                   DType type, uint64_t seed);
std::vector<std::string> synthetic_audio_presets();

}  // namespace omni
