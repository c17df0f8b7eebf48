// `omnirt model inspect`: a readable report of a GGUF file's header, metadata and tensor table.
// Thread-safety: a pure function of an immutable GgufFile.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/model/gguf.h"

namespace omni {

// Version, alignment, size; every metadata key with its type and value (arrays abbreviated);
// tensor count and bytes by type; the tensor table (name, type, shape, offset, bytes): every
// tensor when all_tensors, else the first kInspectTensorRows and a count of the rest.
// Files made by `omnirt model create` get a warning line: their weights are random.
constexpr size_t kInspectTensorRows = 40;
std::string inspect_gguf(const gguf::GgufFile& file, bool all_tensors);

// "1.50 MiB" style (binary units), for reports.
std::string human_bytes(uint64_t n);

}  // namespace omni
