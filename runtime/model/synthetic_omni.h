// Synthetic omni model files: ONE GGUF holding a backbone (llama.cpp names and keys, loads with
// Model::load as a text model), audio-out heads (omni.audio_out.*, audio_out.* tensors) and
// the components other engineers define (audio encoder clip.audio.* / a.* / mm.a.*, vision
// encoder clip.vision.* / v.* / mm.*, SNAC codec snac.* / codec.*), listed in omni.components.
// Random weights at real shapes; omnirt.synthetic = true (the voice is noise). docs/AUDIO_OUT.md.
//
// Presets:
//   omni-tiny       tests: tiny qwen2 backbone, 7 parallel SNAC heads (Mini-Omni layout, 64
//                   codes), whisper-tiny-enc audio encoder, vit-tiny vision, snac-tiny codec
//   orpheus-tiny    tests: tiny llama backbone with 7 x 64 SNAC tokens in the vocabulary, snac-tiny
//   mini-omni-0.5b  Qwen2-0.5B backbone (vocab 152000), 7 parallel SNAC heads of 4160 rows,
//                   Whisper-small-shaped encoder, SNAC 24 kHz
//   orpheus-3b      Llama-3.2-3B shape, vocab 156940 with 7 x 4096 SNAC tokens from id 128266, SNAC 24 kHz
//
// Thread-safety: create_synthetic_omni() may run concurrently for different output paths.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/core/status.h"

namespace omni {

struct SyntheticOmniSpec {
  std::string preset;        // one of synthetic_omni_presets()
  DType type = DType::kF16;  // backbone and head matrices; components take it when they can
                             // compute with it (f32, f16, bf16, q8_0), else q8_0
  uint64_t seed = 0;
  int n_threads = 0;         // 0: one per hardware thread; the bytes do not depend on it
};

// Writes the file through `out_path`.partial, renamed at the end. Memory: the backbone and heads
// stream in 16 MiB chunks; the components are built in memory (about 2x their size: 0.4 GB for
// mini-omni-0.5b's Whisper-small encoder in f16). kInvalidArgument: unknown preset;
// kUnsupported: a type omnirt cannot compute with; kIoError: not writable.
Status create_synthetic_omni(const SyntheticOmniSpec& spec, const std::string& out_path);
std::vector<std::string> synthetic_omni_presets();

}  // namespace omni
