// Loads a Whisper GGUF (made by tools/convert_whisper_ct2.py or tools/convert_whisper.py; keys and tensors in
// docs/WHISPER.md) into the weight views audio/whisper's networks take. Every key and tensor
// shape is checked; a file that does not match says which key or tensor, and what it expected.
// Matrices stay in the file's type (mapped, no copy); conv kernels, norms, biases and position
// tables become f32 vectors.
// Thread-safety: a WhisperModel is immutable after loading; share it between threads freely.
#pragma once

#include <memory>
#include <string>

#include "audio/whisper/whisper_weights.h"
#include "kernels/core/status.h"
#include "runtime/model/gguf.h"

namespace omni {

struct WhisperModel {
  std::unique_ptr<gguf::GgufFile> file;  // owns the mapping WhisperMatrix views point into
  audio::WhisperWeights weights;
};

// kNotFound / kIoError / kCorruptFile from the GGUF reader; kUnsupported for another
// architecture or an unsupported tensor type; kCorruptFile for missing keys/tensors or shapes.
StatusOr<std::unique_ptr<WhisperModel>> load_whisper(const std::string& path);
StatusOr<std::unique_ptr<WhisperModel>> load_whisper(std::unique_ptr<gguf::GgufFile> file);

}  // namespace omni
