// The planner and streaming writer behind synthetic.h, shared with synthetic_omni.cpp: a
// backbone (llama.cpp names and keys, GPT-2 byte-level tokenizer) plus what an omni file adds:
// matrices generated after the backbone's, and keys and tensors taken as they are from a
// parsed GGUF (the components' GgufWriter output). Internal to runtime/model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/core/status.h"
#include "runtime/model/gguf.h"
#include "runtime/model/synthetic.h"

namespace omni::synthetic_detail {

struct Extras {
  // Generated after the backbone's tensors, in this order, seeded from the same draw:
  // weight [n_out, n_in] of the requested type (or its fallback), stddev 1/sqrt(n_in).
  struct Matrix {
    std::string name;
    int64_t n_in = 0, n_out = 0;
  };
  std::vector<Matrix> matrices;
  // Its keys follow the backbone's (re-encoded as parsed) and its tensors are copied after all
  // generated ones; it must outlive the call. Null: none. A key or tensor name the backbone
  // already has is an internal error.
  const gguf::GgufFile* appended = nullptr;
  // omnirt.synthetic.fallbacks after omnirt.synthetic.preset (files from synthetic_omni have
  // never carried it).
  bool fallbacks_key = true;
};

// kUnsupported unless `type` is one synthetic files can be made of; kInvalidArgument for an
// empty path.
Status check_output(DType type, const std::string& out_path);

// Writes `shape`'s backbone for `spec` (preset name, type, seed, threads) and `extras` to
// out_path through out_path.partial, renamed at the end (removed on failure). Memory is bounded
// by two 16 MiB chunks plus the header whatever the backbone's size.
Status write_model(const SyntheticSpec& spec, const SyntheticShape& shape, const Extras& extras,
                   const std::string& out_path);

}  // namespace omni::synthetic_detail
