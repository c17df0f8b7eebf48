// GGUF v3 writer. Layout matches gguf-py's GGUFWriter byte for byte: keys in insertion order,
// tensor infos in insertion order with offsets padded to the alignment, zero padding after the
// tensor infos and after every tensor's data (including the last).
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "runtime/model/gguf.h"

namespace omni::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kVersion = 3;

template <class T>
void put(std::vector<uint8_t>* out, T v) {
  const size_t at = out->size();
  out->resize(at + sizeof(T));
  std::memcpy(out->data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>* out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out->insert(out->end(), s.begin(), s.end());
}

void pad_to(std::vector<uint8_t>* out, uint64_t alignment) {
  out->resize((out->size() + alignment - 1) / alignment * alignment, 0);
}

template <class T>
std::vector<uint8_t> encode(T v) {
  std::vector<uint8_t> b;
  put(&b, v);
  return b;
}

}  // namespace

void GgufWriter::add_encoded(std::string key, ValueType type, std::vector<uint8_t> value) {
  std::vector<uint8_t> enc;
  enc.reserve(4 + value.size());
  put<uint32_t>(&enc, static_cast<uint32_t>(type));
  enc.insert(enc.end(), value.begin(), value.end());
  for (auto& kv : kv_) {
    if (kv.first == key) {  // replace in place, keeping the key's position
      kv.second = std::move(enc);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(enc));
}

void GgufWriter::set_alignment(uint32_t a) {
  if (a == 0 || (a & (a - 1)) != 0) {
    if (error_.ok()) error_ = invalid_argument(fmt("GGUF alignment %u is not a nonzero power of two", a));
    return;
  }
  alignment_ = a;
  bool present = false;
  for (const auto& kv : kv_) present |= kv.first == "general.alignment";
  if (a != 32 || present) add_u32("general.alignment", a);
}

void GgufWriter::add_u8(std::string key, uint8_t v) { add_encoded(std::move(key), ValueType::kU8, encode(v)); }
void GgufWriter::add_i8(std::string key, int8_t v) { add_encoded(std::move(key), ValueType::kI8, encode(v)); }
void GgufWriter::add_u16(std::string key, uint16_t v) { add_encoded(std::move(key), ValueType::kU16, encode(v)); }
void GgufWriter::add_i16(std::string key, int16_t v) { add_encoded(std::move(key), ValueType::kI16, encode(v)); }
void GgufWriter::add_u32(std::string key, uint32_t v) { add_encoded(std::move(key), ValueType::kU32, encode(v)); }
void GgufWriter::add_i32(std::string key, int32_t v) { add_encoded(std::move(key), ValueType::kI32, encode(v)); }
void GgufWriter::add_u64(std::string key, uint64_t v) { add_encoded(std::move(key), ValueType::kU64, encode(v)); }
void GgufWriter::add_i64(std::string key, int64_t v) { add_encoded(std::move(key), ValueType::kI64, encode(v)); }
void GgufWriter::add_f32(std::string key, float v) { add_encoded(std::move(key), ValueType::kF32, encode(v)); }
void GgufWriter::add_f64(std::string key, double v) { add_encoded(std::move(key), ValueType::kF64, encode(v)); }
void GgufWriter::add_bool(std::string key, bool v) {
  add_encoded(std::move(key), ValueType::kBool, encode<uint8_t>(v ? 1 : 0));
}
void GgufWriter::add_string(std::string key, std::string v) {
  std::vector<uint8_t> b;
  put_string(&b, v);
  add_encoded(std::move(key), ValueType::kString, std::move(b));
}
void GgufWriter::add_string_array(std::string key, const std::vector<std::string>& v) {
  std::vector<uint8_t> b;
  put<uint32_t>(&b, static_cast<uint32_t>(ValueType::kString));
  put<uint64_t>(&b, v.size());
  for (const auto& s : v) put_string(&b, s);
  add_encoded(std::move(key), ValueType::kArray, std::move(b));
}
void GgufWriter::add_f32_array(std::string key, const std::vector<float>& v) {
  std::vector<uint8_t> b;
  put<uint32_t>(&b, static_cast<uint32_t>(ValueType::kF32));
  put<uint64_t>(&b, v.size());
  for (float x : v) put(&b, x);
  add_encoded(std::move(key), ValueType::kArray, std::move(b));
}
void GgufWriter::add_i32_array(std::string key, const std::vector<int32_t>& v) {
  std::vector<uint8_t> b;
  put<uint32_t>(&b, static_cast<uint32_t>(ValueType::kI32));
  put<uint64_t>(&b, v.size());
  for (int32_t x : v) put(&b, x);
  add_encoded(std::move(key), ValueType::kArray, std::move(b));
}
void GgufWriter::add_raw(std::string key, ValueType type, std::vector<uint8_t> encoded_value) {
  add_encoded(std::move(key), type, std::move(encoded_value));
}

Status GgufWriter::add_tensor(std::string name, DType type, std::vector<int64_t> ne, const void* data,
                              size_t n_bytes) {
  for (const auto& t : tensors_)
    if (t.name == name) return invalid_argument(fmt("duplicate tensor '%s'", name.c_str()));
  const DTypeTraits* traits = dtype_traits(static_cast<uint32_t>(type));
  if (!traits) return invalid_argument(fmt("tensor '%s': unknown type id %u", name.c_str(), unsigned(type)));
  if (ne.empty() || ne.size() > 4)
    return invalid_argument(fmt("tensor '%s': %zu dimensions (must be 1..4)", name.c_str(), ne.size()));
  int64_t rows = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] < 1) return invalid_argument(fmt("tensor '%s': ne[%zu] = %lld", name.c_str(), d, (long long)ne[d]));
    if (d > 0 && __builtin_mul_overflow(rows, ne[d], &rows))
      return invalid_argument(fmt("tensor '%s': too many elements", name.c_str()));
  }
  const int64_t row_bytes = dtype_row_bytes(type, ne[0]);
  int64_t expected = 0;
  if (row_bytes < 0)
    return invalid_argument(fmt("tensor '%s': ne[0] = %lld is not a multiple of the %s block size %lld",
                                name.c_str(), (long long)ne[0], traits->name, (long long)traits->block_size));
  if (__builtin_mul_overflow(row_bytes, rows, &expected) || static_cast<uint64_t>(expected) != n_bytes)
    return invalid_argument(fmt("tensor '%s': %zu data bytes given, shape needs %lld", name.c_str(), n_bytes,
                                (long long)expected));
  if (!data && n_bytes) return invalid_argument(fmt("tensor '%s': null data", name.c_str()));
  const auto* p = static_cast<const uint8_t*>(data);
  tensors_.push_back(Tensor{std::move(name), type, std::move(ne), std::vector<uint8_t>(p, p + n_bytes)});
  return Status::Ok();
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  if (!error_.ok()) return {};
  std::vector<uint8_t> out;
  put<uint32_t>(&out, kMagic);
  put<uint32_t>(&out, kVersion);
  put<uint64_t>(&out, tensors_.size());
  put<uint64_t>(&out, kv_.size());
  for (const auto& [key, enc] : kv_) {
    put_string(&out, key);
    out.insert(out.end(), enc.begin(), enc.end());
  }
  uint64_t offset = 0;  // relative to the data section
  for (const Tensor& t : tensors_) {
    put_string(&out, t.name);
    put<uint32_t>(&out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t n : t.ne) put<uint64_t>(&out, static_cast<uint64_t>(n));
    put<uint32_t>(&out, static_cast<uint32_t>(t.type));
    put<uint64_t>(&out, offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  pad_to(&out, alignment_);
  for (const Tensor& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    pad_to(&out, alignment_);
  }
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  OMNI_RETURN_IF_ERROR(error_);
  const std::vector<uint8_t> bytes = to_bytes();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return io_error(fmt("cannot create '%s': %s", path.c_str(), std::strerror(errno)));
  const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int write_errno = errno;
  if (std::fclose(f) != 0 || n != bytes.size())
    return io_error(fmt("cannot write %zu bytes to '%s': %s", bytes.size(), path.c_str(),
                        std::strerror(n != bytes.size() ? write_errno : errno)));
  return Status::Ok();
}

}  // namespace omni::gguf
