// Loads the SNAC codec decoder (keys snac.*, tensors codec.*; docs/CODEC.md) from a GGUF that
// is either a standalone codec (general.architecture = "snac", tools/convert_snac.py) or an
// omni model file carrying the codec as a component. Every key and tensor shape is checked; a
// file that does not match says which key or tensor and what was expected.
// Matrices (1x1 and transposed convs) stay mapped in the file's type; vectors, codebooks and
// depthwise kernels become f32 vectors.
// Thread-safety: a SnacModel is immutable after loading; share it between threads freely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "audio/codec/snac.h"
#include "kernels/core/dtype.h"
#include "kernels/core/status.h"
#include "runtime/model/gguf.h"

namespace omni {

struct SnacModel {
  std::unique_ptr<gguf::GgufFile> file;  // set by the path overload; null when borrowed
  audio::SnacWeights weights;            // matrices point into the file's mapping
};

// Borrows `file` (an omni model file shares its mapping this way): it must outlive the result.
// kNotFound for a missing snac.* key; kCorruptFile for a missing tensor, a wrong shape or an
// absurd value; kUnsupported for attention SNACs, non-depthwise decoders or tensor types the
// CPU kernels cannot compute with.
StatusOr<std::unique_ptr<SnacModel>> load_snac(const gguf::GgufFile& file);
// Opens and owns the file.
StatusOr<std::unique_ptr<SnacModel>> load_snac(const std::string& path);

// Synthetic codec weights (random, seeded) at a preset's shape, written as keys + codec.*
// tensors into `w` (no general.* keys: a standalone file adds general.architecture = "snac",
// an omni preset adds its own). Matrices in `type` (f32, f16, bf16 or q8_0 where the row
// length allows), everything else f32. Presets: "snac-tiny" (tests: latent 32, dim 64,
// codebook 64), "snac-24khz" (hubertsiuzdak/snac_24khz's shape). kInvalidArgument for an
// unknown preset or type.
Status add_synthetic_snac(gguf::GgufWriter& w, const std::string& preset, DType type, uint64_t seed);
std::vector<std::string> synthetic_snac_presets();
// A standalone codec file (general.architecture = "snac", general.name = the preset) at `path`.
Status create_synthetic_snac(const std::string& preset, DType type, uint64_t seed, const std::string& path);
// The hyperparameters a preset stands for.
StatusOr<audio::SnacHParams> synthetic_snac_hparams(const std::string& preset);

}  // namespace omni
