// Synthetic models: GGUF files with random weights at a real model's shapes, written with
// llama.cpp's tensor names and metadata keys so that they load like real files. Used by tests
// (`tiny` presets) and by latency benchmarks (real shapes), as vLLM's dummy load format.
// Every file carries `omnirt.synthetic = true`: its output is noise, and tools say so.
//
//   SyntheticSpec spec{"", "qwen2.5-0.5b", DType::kQ4_K, 42};
//   Status st = create_synthetic_model(spec, "/tmp/qwen-synth.gguf");
//
// Thread-safety: create_synthetic_model() may run concurrently for different output paths.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/core/status.h"

namespace omni {

struct SyntheticSpec {
  std::string arch;    // "llama", "qwen2", "gemma3"; empty: the preset's own (required for "tiny")
  std::string preset;  // one of synthetic_presets()
  DType type = DType::kF16;  // type of the 2-D matrices; norms and biases are always F32
  uint64_t seed = 0;
  int n_threads = 0;   // 0: one per hardware thread. The bytes do not depend on it.
};

// Writes the model to `out_path` (through a temporary file renamed at the end, so a failure
// never leaves a truncated file under that name). Memory use is bounded (tens of MiB) whatever
// the preset. kInvalidArgument: unknown preset or arch, or arch not the preset's;
// kUnsupported: a weight type omnirt cannot compute with; kIoError: the path is not writable.
Status create_synthetic_model(const SyntheticSpec& spec, const std::string& out_path);

// Preset names: "tiny", "gemma3-270m", "qwen2.5-0.5b", "llama3.2-1b", "qwen2.5-7b".
std::vector<std::string> synthetic_presets();

// The shape a preset resolves to (for listings and size estimates).
struct SyntheticShape {
  std::string arch;
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
  int64_t n_ctx_train = 0;
  int64_t sliding_window = 0;  // gemma3 only
  float rope_freq_base = 10000.0f;
  float norm_eps = 1e-5f;
  bool tied_output = true;     // no output.weight: the head reuses token_embd
  bool attn_bias = false;      // qwen2: blk.N.attn_{q,k,v}.bias
};
// kInvalidArgument as for create_synthetic_model().
StatusOr<SyntheticShape> synthetic_shape(const std::string& preset, const std::string& arch);

// The type a weight of row length n_in gets when `requested` is asked for: llama.cpp's fallback
// for rows that are not whole blocks (q4_K/q5_K -> q5_0, q6_K -> q8_0; f16 if even that fails).
DType synthetic_weight_type(DType requested, int64_t n_in);

}  // namespace omni
