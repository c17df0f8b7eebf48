// libFuzzer target for the GGUF reader: any byte string must either parse into a GgufFile whose
// metadata and tensors can all be walked, or be rejected with a Status. Seed corpus:
// tests/data/gguf/ (good files) and tests/data/gguf/bad/ (one defect each); see run_fuzz_gguf.sh.
#include <cstddef>
#include <cstdint>

#include "runtime/model/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace omni::gguf;
  Limits limits;
  limits.max_string = 1 << 16;  // keep single inputs cheap; the checks are the same
  auto f = GgufFile::from_memory(data, size, limits);
  if (!f.ok()) {
    if (f.status().message().empty()) __builtin_trap();  // every rejection must say why
    return 0;
  }
  const GgufFile& g = **f;
  size_t sink = 0;
  for (const KeyValue& kv : g.metadata()) {
    sink += kv.value.to_string().size();
    if (g.find(kv.key) != &kv.value) __builtin_trap();
    (void)g.get_u32(kv.key);
    (void)g.get_f32(kv.key);
    (void)g.get_string(kv.key);
    (void)g.get_string_array(kv.key);
    (void)g.get_f32_array(kv.key);
    (void)g.get_i32_array(kv.key);
  }
  for (const TensorInfo& t : g.tensors()) {
    sink += t.shape_string().size();
    if (g.find_tensor(t.name) != &t) __builtin_trap();
    if (t.data < data || t.data + t.n_bytes > data + size) __builtin_trap();
    for (uint64_t i = 0; i < t.n_bytes; i += 64) sink += t.data[i];
    if (t.n_bytes) sink += t.data[t.n_bytes - 1];
  }
  return sink == 0xdeadbeef ? 1 : 0;
}
