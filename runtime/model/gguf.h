// GGUF reader (versions 2 and 3): mmaps a file, parses and strictly validates its header,
// metadata and tensor table. Every failure is a Status naming what was wrong, where.
// Thread-safety: a GgufFile is immutable after open(); any number of threads may read it.
//
// Layout (little-endian): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
// n_kv × {string key, u32 type, value}, n_tensors × {string name, u32 n_dims, u64 ne[n_dims],
// u32 ggml_type, u64 offset}, padding to `general.alignment` (default 32), tensor data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kernels/core/dtype.h"
#include "kernels/core/status.h"

namespace omni::gguf {

enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* value_type_name(ValueType t);

// One metadata value. Strings and arrays of numbers point into the mapped file (no copies);
// arrays of strings are views into it (`strings`), nested arrays are decoded into `elements`.
struct Value {
  ValueType type = ValueType::kU8;
  union {
    uint64_t u;  // kU8..kU64, kBool
    int64_t i;   // kI8..kI64
    double f;    // kF32, kF64
  } scalar{};
  std::string_view str;           // kString
  ValueType elem_type = ValueType::kU8;  // kArray: element type
  uint64_t n_elems = 0;           // kArray: element count
  const uint8_t* raw = nullptr;   // kArray of fixed-size numbers: first element (may be unaligned)
  std::vector<std::string_view> strings;  // kArray of strings: each one, into the file
  std::vector<Value> elements;    // kArray of arrays

  bool is_integer() const;
  bool is_float() const;
  // Numeric element i of a numeric array, converted (no bounds check beyond an assert).
  double array_f64(uint64_t i) const;
  int64_t array_i64(uint64_t i) const;
  // Human-readable rendering (arrays abbreviated), for `omnirt model inspect`.
  std::string to_string(size_t max_elems = 8) const;
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  DType type = DType::kF32;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the innermost (contiguous) dimension, ggml order
  uint64_t offset = 0;           // relative to the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  std::string shape_string() const;  // "[640, 262144]"
};

struct Limits {  // "absurd" values rejected with a message
  uint64_t max_tensors = 1u << 20;
  uint64_t max_kv = 1u << 20;
  uint64_t max_string = 1u << 30;
  uint64_t max_array = 1u << 30;
  uint32_t max_array_depth = 8;
  int64_t max_dim = int64_t(1) << 40;
};

// What GgufFile::settle_pages() found and did.
struct PageReport {
  size_t bytes = 0;         // the file
  int64_t huge_before = -1; // mapped with 2 MiB entries after faulting it in; -1 = unknown
  int64_t huge_bytes = -1;  // the same at the end
  bool reread = false;      // the cached pages were dropped and read again
  double seconds = 0;
};

class GgufFile {
 public:
  // Maps and validates `path`. Fails with kNotFound / kIoError / kCorruptFile / kUnsupported.
  static StatusOr<std::unique_ptr<GgufFile>> open(const std::string& path, const Limits& limits = {});
  // Validates a buffer the caller keeps alive (fuzzing, tests). No copy is made.
  static StatusOr<std::unique_ptr<GgufFile>> from_memory(const uint8_t* data, size_t size,
                                                         const Limits& limits = {});
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  // Faults the whole mapping in (the first forward pass would anyway), so that decode never
  // waits on a page fault, and reports how much of it is mapped with 2 MiB pages. When less than
  // 90% is and allow_reread, and the file is at least 32 MiB: the page cache holds it in small
  // folios (it was written, e.g. downloaded, rather than read), so this file's cached pages are
  // dropped and read again through the huge-page mapping, once, if some of the file already is
  // in 2 MiB pages or a 4 MiB trial shows that this kernel and file system give them. Costs one
  // read of the file from disk;
  // decode streams the weights 15-35% faster after it (kernels/core/huge_pages.h). The bytes are
  // the file's either way. No-op for from_memory(); no re-read with OMNIRT_HUGE_PAGES=0.
  PageReport settle_pages(bool allow_reread = true);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  size_t file_size() const { return size_; }
  const uint8_t* data_section() const { return data_section_; }
  const std::string& path() const { return path_; }

  const std::vector<KeyValue>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;

  // Typed getters: kNotFound if absent, kCorruptFile if of the wrong type or out of range.
  // Integer getters accept any integer type whose value fits; float getters accept f32/f64/ints.
  StatusOr<std::string> get_string(std::string_view key) const;
  StatusOr<uint32_t> get_u32(std::string_view key) const;
  StatusOr<uint64_t> get_u64(std::string_view key) const;
  StatusOr<int32_t> get_i32(std::string_view key) const;
  StatusOr<float> get_f32(std::string_view key) const;
  StatusOr<bool> get_bool(std::string_view key) const;
  // Optional variants: the default when absent, an error only when present and malformed.
  StatusOr<uint32_t> get_u32_or(std::string_view key, uint32_t dflt) const;
  StatusOr<float> get_f32_or(std::string_view key, float dflt) const;
  StatusOr<bool> get_bool_or(std::string_view key, bool dflt) const;
  StatusOr<std::string> get_string_or(std::string_view key, std::string dflt) const;
  // Arrays. A numeric array converts element-wise; kCorruptFile for non-numeric elements.
  StatusOr<std::vector<std::string_view>> get_string_array(std::string_view key) const;
  StatusOr<std::vector<float>> get_f32_array(std::string_view key) const;
  StatusOr<std::vector<int32_t>> get_i32_array(std::string_view key) const;

 private:
  GgufFile() = default;
  Status parse(const Limits& limits);

  std::string path_;
  const uint8_t* base_ = nullptr;  // whole file
  size_t size_ = 0;
  void* mapping_ = nullptr;        // non-null when we own an mmap
  uint64_t dev_ = 0, ino_ = 0;     // the mapped file, to re-open the same one in settle_pages()
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  const uint8_t* data_section_ = nullptr;
  std::vector<KeyValue> kv_;
  std::vector<TensorInfo> tensors_;
  // Name -> index, built once after parsing (views into kv_ / tensors_ strings, which never move).
  std::unordered_map<std::string_view, size_t> kv_index_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
};

// Builds GGUF v3 files (used by `omnirt model create` and tests).
// Keys are kept in insertion order; adding a key again replaces its value in place (as gguf-py's
// dict does), so the bytes match gguf-py's GGUFWriter for the same sequence of calls.
// Misuse (bad alignment, bad tensor shape) is reported by add_tensor or by write(); to_bytes()
// returns an empty vector after misuse.
class GgufWriter {
 public:
  void set_alignment(uint32_t a);  // also writes general.alignment when != 32 (or already written)
  void add_u8(std::string key, uint8_t v);
  void add_i8(std::string key, int8_t v);
  void add_u16(std::string key, uint16_t v);
  void add_i16(std::string key, int16_t v);
  void add_u32(std::string key, uint32_t v);
  void add_i32(std::string key, int32_t v);
  void add_u64(std::string key, uint64_t v);
  void add_i64(std::string key, int64_t v);
  void add_f32(std::string key, float v);
  void add_f64(std::string key, double v);
  void add_bool(std::string key, bool v);
  void add_string(std::string key, std::string v);
  void add_string_array(std::string key, const std::vector<std::string>& v);
  void add_f32_array(std::string key, const std::vector<float>& v);
  void add_i32_array(std::string key, const std::vector<int32_t>& v);
  // Raw value (any type, including nested arrays), encoded by the caller without the key.
  void add_raw(std::string key, ValueType type, std::vector<uint8_t> encoded_value);
  // ne in ggml order (ne[0] innermost); data holds the encoded tensor (n_bytes of it).
  Status add_tensor(std::string name, DType type, std::vector<int64_t> ne, const void* data,
                    size_t n_bytes);
  Status write(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;

 private:
  struct Tensor {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  void add_encoded(std::string key, ValueType type, std::vector<uint8_t> value);
  uint32_t alignment_ = 32;
  Status error_;  // first misuse, reported by write() / to_bytes()
  std::vector<std::pair<std::string, std::vector<uint8_t>>> kv_;  // key -> encoded type+value
  std::vector<Tensor> tensors_;
};

}  // namespace omni::gguf
