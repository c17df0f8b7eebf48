// GGUF reader: every byte read goes through a bounds-checked cursor, every size computation is
// overflow-checked, and nothing is allocated for a declared count before the bytes it needs are
// proven present (each element needs at least one byte, usually more).
#include "runtime/model/gguf.h"

#include "kernels/core/huge_pages.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>
#include <utility>

namespace omni::gguf {
namespace {

#ifdef MADV_POPULATE_READ
constexpr int kMadvPopulateRead = MADV_POPULATE_READ;
#else
constexpr int kMadvPopulateRead = 22;  // Linux 5.14
#endif
// Smaller files are not worth a second read: their TLB misses are few.
constexpr size_t kSettleMinBytes = size_t{32} << 20;
// Re-read when less than this share of the file's whole 2 MiB pages is mapped with them.
constexpr double kSettleHugeShare = 0.9;

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxValueType = 12;
// Smallest encodings, used to reject declared counts that cannot fit in the remaining bytes.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // key length, value type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // name len, n_dims, ne[0], type, offset

// Size of a fixed-size value type; 0 for string and array.
size_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    case ValueType::kU64: case ValueType::kI64: case ValueType::kF64: return 8;
    case ValueType::kString: case ValueType::kArray: return 0;
  }
  return 0;
}

bool is_signed_int(ValueType t) {
  return t == ValueType::kI8 || t == ValueType::kI16 || t == ValueType::kI32 || t == ValueType::kI64;
}
bool is_unsigned_int(ValueType t) {
  return t == ValueType::kU8 || t == ValueType::kU16 || t == ValueType::kU32 || t == ValueType::kU64;
}
bool is_float_type(ValueType t) { return t == ValueType::kF32 || t == ValueType::kF64; }

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Decodes one fixed-size little-endian value of type t at p into the union of `out`.
void decode_scalar(const uint8_t* p, ValueType t, Value* out) {
  switch (t) {
    case ValueType::kU8: out->scalar.u = p[0]; break;
    case ValueType::kBool: out->scalar.u = p[0]; break;
    case ValueType::kI8: out->scalar.i = static_cast<int8_t>(p[0]); break;
    case ValueType::kU16: out->scalar.u = load<uint16_t>(p); break;
    case ValueType::kI16: out->scalar.i = load<int16_t>(p); break;
    case ValueType::kU32: out->scalar.u = load<uint32_t>(p); break;
    case ValueType::kI32: out->scalar.i = load<int32_t>(p); break;
    case ValueType::kF32: out->scalar.f = load<float>(p); break;
    case ValueType::kU64: out->scalar.u = load<uint64_t>(p); break;
    case ValueType::kI64: out->scalar.i = load<int64_t>(p); break;
    case ValueType::kF64: out->scalar.f = load<double>(p); break;
    case ValueType::kString: case ValueType::kArray: break;
  }
}

// Where a read happens, for messages: "<what>[ #index][ 'name']".
struct Where {
  const char* what;
  std::string_view name = {};
  int64_t index = -1;
  std::string str() const {
    std::string s = what;
    if (index >= 0) s += fmt(" #%" PRId64, index);
    if (!name.empty()) s += " '" + std::string(name) + "'";
    return s;
  }
};

// Bounds-checked little-endian cursor over the file bytes.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size) : base_(base), size_(size) {}
  size_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const uint8_t* here() const { return base_ + pos_; }

  Status need(uint64_t n, const Where& w) const {
    if (n <= remaining()) return Status::Ok();
    return corrupt_file(fmt("truncated file: need %" PRIu64 " bytes at offset %zu for %s, file has %zu",
                            n, pos_, w.str().c_str(), size_));
  }
  // Declared `count` elements of at least `min_bytes` each must fit in what is left.
  Status need_at_least(uint64_t count, uint64_t min_bytes, const Where& w) const {
    if (count <= remaining() / min_bytes) return Status::Ok();
    return corrupt_file(fmt("truncated file: need at least %" PRIu64 " x %" PRIu64
                            " bytes at offset %zu for %s, file has %zu",
                            count, min_bytes, pos_, w.str().c_str(), size_));
  }
  Status skip(uint64_t n, const Where& w) {
    OMNI_RETURN_IF_ERROR(need(n, w));
    pos_ += n;
    return Status::Ok();
  }
  template <class T>
  Status read(T* out, const Where& w) {
    OMNI_RETURN_IF_ERROR(need(sizeof(T), w));
    *out = load<T>(here());
    pos_ += sizeof(T);
    return Status::Ok();
  }
  Status read_string(std::string_view* out, uint64_t max_len, const Where& w) {
    uint64_t len = 0;
    OMNI_RETURN_IF_ERROR(read(&len, w));
    if (len > max_len)
      return corrupt_file(fmt("string length %" PRIu64 " for %s is absurd (limit %" PRIu64 ")",
                              len, w.str().c_str(), max_len));
    OMNI_RETURN_IF_ERROR(need(len, w));
    *out = std::string_view(reinterpret_cast<const char*>(here()), len);
    pos_ += len;
    return Status::Ok();
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
};

Status check_bool(uint64_t v, std::string_view key) {
  if (v <= 1) return Status::Ok();
  return corrupt_file(fmt("key '%.*s' has bool value %" PRIu64 " (expected 0 or 1)",
                          int(key.size()), key.data(), v));
}

// Reads a value of type `type` (already read). `depth` is the number of enclosing arrays.
Status read_value(Cursor& c, ValueType type, uint32_t depth, std::string_view key,
                  const Limits& limits, Value* out) {
  out->type = type;
  const Where w{"value of key", key};
  if (size_t n = scalar_size(type)) {
    OMNI_RETURN_IF_ERROR(c.need(n, w));
    decode_scalar(c.here(), type, out);
    if (type == ValueType::kBool) OMNI_RETURN_IF_ERROR(check_bool(out->scalar.u, key));
    return c.skip(n, w);
  }
  if (type == ValueType::kString) return c.read_string(&out->str, limits.max_string, w);

  // Array: u32 element type, u64 count, elements.
  if (depth + 1 > limits.max_array_depth)
    return corrupt_file(fmt("key '%.*s' nests arrays deeper than %u levels", int(key.size()),
                            key.data(), limits.max_array_depth));
  uint32_t et = 0;
  OMNI_RETURN_IF_ERROR(c.read(&et, Where{"array element type of key", key}));
  if (et > kMaxValueType)
    return corrupt_file(fmt("key '%.*s' is an array of unknown value type %u", int(key.size()),
                            key.data(), et));
  uint64_t n = 0;
  OMNI_RETURN_IF_ERROR(c.read(&n, Where{"array length of key", key}));
  if (n > limits.max_array)
    return corrupt_file(fmt("array length %" PRIu64 " of key '%.*s' is absurd (limit %" PRIu64 ")",
                            n, int(key.size()), key.data(), limits.max_array));
  out->elem_type = static_cast<ValueType>(et);
  out->n_elems = n;
  const Where we{"array elements of key", key};
  if (size_t es = scalar_size(out->elem_type)) {
    OMNI_RETURN_IF_ERROR(c.need(n * es, we));  // n <= max_array (<< 2^61): no overflow
    out->raw = c.here();
    if (out->elem_type == ValueType::kBool) {
      for (uint64_t i = 0; i < n; ++i) OMNI_RETURN_IF_ERROR(check_bool(out->raw[i], key));
    }
    return c.skip(n * es, we);
  }
  const uint64_t min_elem = out->elem_type == ValueType::kString ? 8 : 4 + 8;
  OMNI_RETURN_IF_ERROR(c.need_at_least(n, min_elem, we));
  if (out->elem_type == ValueType::kString) {
    // 16 bytes per string, not a whole Value (80): a 262,144-piece vocabulary is 4 MiB, not 20.
    out->strings.resize(n);
    for (uint64_t i = 0; i < n; ++i)
      OMNI_RETURN_IF_ERROR(c.read_string(&out->strings[i], limits.max_string, Where{"value of key", key}));
    return Status::Ok();
  }
  out->elements.resize(n);
  for (uint64_t i = 0; i < n; ++i)
    OMNI_RETURN_IF_ERROR(read_value(c, out->elem_type, depth + 1, key, limits, &out->elements[i]));
  return Status::Ok();
}

std::string describe_type(const Value& v) {
  if (v.type != ValueType::kArray) return value_type_name(v.type);
  return std::string("array of ") + value_type_name(v.elem_type);
}

void append_escaped(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char ch : s) {
    unsigned char u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out->push_back('\\');
      out->push_back(ch);
    } else if (ch == '\n') {
      *out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      *out += fmt("\\x%02x", u);
    } else {
      out->push_back(ch);
    }
  }
  out->push_back('"');
}

std::string scalar_to_string(const Value& v) {
  switch (v.type) {
    case ValueType::kU8: case ValueType::kU16: case ValueType::kU32: case ValueType::kU64:
      return fmt("%" PRIu64, v.scalar.u);
    case ValueType::kI8: case ValueType::kI16: case ValueType::kI32: case ValueType::kI64:
      return fmt("%" PRId64, v.scalar.i);
    case ValueType::kF32: return fmt("%.9g", v.scalar.f);
    case ValueType::kF64: return fmt("%.17g", v.scalar.f);
    case ValueType::kBool: return v.scalar.u ? "true" : "false";
    case ValueType::kString: {
      std::string s;
      append_escaped(&s, v.str);
      return s;
    }
    case ValueType::kArray: break;
  }
  return "?";
}

}  // namespace

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kU8: return "u8";
    case ValueType::kI8: return "i8";
    case ValueType::kU16: return "u16";
    case ValueType::kI16: return "i16";
    case ValueType::kU32: return "u32";
    case ValueType::kI32: return "i32";
    case ValueType::kF32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kU64: return "u64";
    case ValueType::kI64: return "i64";
    case ValueType::kF64: return "f64";
  }
  return "unknown";
}

bool Value::is_integer() const { return is_signed_int(type) || is_unsigned_int(type); }
bool Value::is_float() const { return is_float_type(type); }

double Value::array_f64(uint64_t i) const {
  Value e;
  decode_scalar(raw + i * scalar_size(elem_type), elem_type, &e);
  if (is_float_type(elem_type)) return e.scalar.f;
  if (is_signed_int(elem_type)) return static_cast<double>(e.scalar.i);
  return static_cast<double>(e.scalar.u);
}

int64_t Value::array_i64(uint64_t i) const {
  Value e;
  decode_scalar(raw + i * scalar_size(elem_type), elem_type, &e);
  if (is_float_type(elem_type)) return static_cast<int64_t>(e.scalar.f);
  return e.scalar.i;  // unsigned values above INT64_MAX wrap, as documented by the caller's check
}

std::string Value::to_string(size_t max_elems) const {
  if (type != ValueType::kArray) return scalar_to_string(*this);
  std::string s = "[";
  const uint64_t shown = std::min<uint64_t>(n_elems, max_elems);
  for (uint64_t i = 0; i < shown; ++i) {
    if (i) s += ", ";
    if (raw) {
      Value e;
      e.type = elem_type;
      decode_scalar(raw + i * scalar_size(elem_type), elem_type, &e);
      s += scalar_to_string(e);
    } else if (elem_type == ValueType::kString) {
      Value e;
      e.type = ValueType::kString;
      e.str = strings[i];
      s += scalar_to_string(e);
    } else {
      s += elements[i].to_string(max_elems);
    }
  }
  if (shown < n_elems) s += fmt(", ... (%" PRIu64 " %s)", n_elems, value_type_name(elem_type));
  s += "]";
  return s;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (uint32_t d = 0; d < n_dims; ++d) s += (d ? ", " : "") + std::to_string(ne[d]);
  return s + "]";
}

// ---- GgufFile ---------------------------------------------------------------------------------

StatusOr<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path, const Limits& limits) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    std::string m = fmt("cannot open '%s': %s", path.c_str(), std::strerror(e));
    return e == ENOENT ? not_found(m) : io_error(m);
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return io_error(fmt("'%s' is not a regular file", path.c_str()));
  }
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    // 2 MiB-aligned and advised for huge pages: where the page cache holds the file in 2 MiB
    // folios, one TLB entry maps each (kernels/core/huge_pages.h, settle_pages()).
    void* m = map_file_aligned(fd, f->size_);
    if (!m) m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return io_error(fmt("cannot mmap '%s' (%zu bytes): %s", path.c_str(), f->size_, std::strerror(e)));
    }
    f->mapping_ = m;
    f->base_ = static_cast<const uint8_t*>(m);
    f->dev_ = st.st_dev;
    f->ino_ = st.st_ino;
    advise_huge_pages(m, f->size_);
  }
  ::close(fd);  // the mapping keeps the file alive
  Status s = f->parse(limits);
  if (!s.ok()) return Status(s.code(), path + ": " + s.message());
  return f;
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::from_memory(const uint8_t* data, size_t size,
                                                         const Limits& limits) {
  if (!data && size) return invalid_argument("GgufFile::from_memory: null data with nonzero size");
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = "<memory>";
  f->base_ = data;
  f->size_ = size;
  OMNI_RETURN_IF_ERROR(f->parse(limits));
  return f;
}

PageReport GgufFile::settle_pages(bool allow_reread) {
  PageReport r;
  r.bytes = size_;
  if (!mapping_) return r;
  const double t0 = seconds_now();
  auto populate = [&](size_t off, size_t len) {
    // MADV_POPULATE_READ (Linux 5.14) faults the range in without copying it; older kernels say
    // EINVAL and the range is touched one page at a time instead.
    if (madvise(static_cast<uint8_t*>(mapping_) + off, len, kMadvPopulateRead) == 0) return;
    volatile uint8_t sink = 0;
    for (size_t i = off; i < off + len; i += 4096) sink = sink + base_[i];
  };
  populate(0, size_);
  r.huge_bytes = huge_mapped_bytes(mapping_, size_);
  r.huge_before = r.huge_bytes;
  const bool aligned = reinterpret_cast<uintptr_t>(mapping_) % kHugePageBytes == 0;
  const size_t whole_pages = size_ / kHugePageBytes * kHugePageBytes;  // the tail cannot be huge
  if (allow_reread && huge_pages_enabled() && aligned && r.huge_bytes >= 0 && size_ >= kSettleMinBytes &&
      static_cast<double>(r.huge_bytes) < kSettleHugeShare * static_cast<double>(whole_pages)) {
    // Part of the file is in small folios (it was written, not read: a fresh download). Drop this
    // file's cached pages and fault them in again through the huge-page mapping, which makes the
    // readahead allocate 2 MiB folios. Clean page cache only: pages that another process maps
    // stay, and nothing is lost but the read. When no part is in 2 MiB pages yet, one 4 MiB
    // window goes first, to see that this kernel and file system give them at all.
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_ &&
        static_cast<size_t>(st.st_size) == size_) {
      auto reread = [&](size_t off, size_t len) {
        madvise(static_cast<uint8_t*>(mapping_) + off, len, MADV_DONTNEED);  // our page-table entries
        // A file written moments ago is still dirty, and dirty pages are not dropped: write it
        // back first (a no-op for a clean file).
        sync_file_range(fd, static_cast<off_t>(off), static_cast<off_t>(len),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
        posix_fadvise(fd, static_cast<off_t>(off), static_cast<off_t>(len), POSIX_FADV_DONTNEED);
        populate(off, len);
      };
      if (r.huge_bytes >= static_cast<int64_t>(kHugePageBytes)) {
        reread(0, size_);  // some of it already is: the kernel does give them
        r.reread = true;
      } else {
        const size_t probe_off = size_ / 2 / kHugePageBytes * kHugePageBytes, probe_len = 2 * kHugePageBytes;
        reread(probe_off, probe_len);
        const int64_t after_probe = huge_mapped_bytes(mapping_, size_);
        if (after_probe >= r.huge_bytes + static_cast<int64_t>(kHugePageBytes)) {
          reread(0, probe_off);
          reread(probe_off + probe_len, size_ - probe_off - probe_len);
          r.reread = true;
        }
      }
      r.huge_bytes = huge_mapped_bytes(mapping_, size_);
    }
    if (fd >= 0) ::close(fd);
  }
  r.seconds = seconds_now() - t0;
  return r;
}

GgufFile::~GgufFile() {
  if (mapping_) munmap(mapping_, size_);
}

Status GgufFile::parse(const Limits& limits) {
  Cursor c(base_, size_);
  uint32_t magic = 0;
  OMNI_RETURN_IF_ERROR(c.read(&magic, Where{"magic"}));
  if (magic != kMagic) return corrupt_file(fmt("bad magic 0x%08x (expected 'GGUF')", magic));
  OMNI_RETURN_IF_ERROR(c.read(&version_, Where{"version"}));
  if (version_ != 2 && version_ != 3) {
    const uint32_t swapped = __builtin_bswap32(version_);
    const bool big_endian = swapped == 2 || swapped == 3;
    return unsupported(fmt("GGUF version %u is not supported (2 and 3 are)%s", version_,
                           big_endian ? "; this looks like a big-endian file, only little-endian is" : ""));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  OMNI_RETURN_IF_ERROR(c.read(&n_tensors, Where{"tensor count"}));
  OMNI_RETURN_IF_ERROR(c.read(&n_kv, Where{"key/value count"}));
  if (n_tensors > limits.max_tensors)
    return corrupt_file(fmt("n_tensors %" PRIu64 " is absurd (limit %" PRIu64 ")", n_tensors,
                            limits.max_tensors));
  if (n_kv > limits.max_kv)
    return corrupt_file(fmt("n_kv %" PRIu64 " is absurd (limit %" PRIu64 ")", n_kv, limits.max_kv));

  // ---- metadata
  OMNI_RETURN_IF_ERROR(c.need_at_least(n_kv, kMinKvBytes, Where{"key/value pairs"}));
  kv_.resize(n_kv);
  std::unordered_set<std::string_view> keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string_view key;
    OMNI_RETURN_IF_ERROR(c.read_string(&key, limits.max_string, Where{"key", {}, int64_t(i)}));
    if (!keys.insert(key).second)
      return corrupt_file(fmt("duplicate key '%.*s'", int(key.size()), key.data()));
    uint32_t type = 0;
    OMNI_RETURN_IF_ERROR(c.read(&type, Where{"value type of key", key}));
    if (type > kMaxValueType)
      return corrupt_file(fmt("key '%.*s' has unknown value type %u", int(key.size()), key.data(), type));
    kv_[i].key = std::string(key);
    OMNI_RETURN_IF_ERROR(read_value(c, static_cast<ValueType>(type), 0, key, limits, &kv_[i].value));
  }
  for (size_t i = 0; i < kv_.size(); ++i) kv_index_.emplace(kv_[i].key, i);

  if (const Value* a = find("general.alignment")) {
    if (a->type != ValueType::kU32)
      return corrupt_file(fmt("general.alignment has type %s, expected u32", describe_type(*a).c_str()));
    const uint64_t v = a->scalar.u;
    if (v == 0 || (v & (v - 1)) != 0)
      return corrupt_file(fmt("general.alignment %" PRIu64 " is not a nonzero power of two", v));
    alignment_ = v;
  } else {
    alignment_ = kDefaultAlignment;
  }

  // ---- tensor infos
  OMNI_RETURN_IF_ERROR(c.need_at_least(n_tensors, kMinTensorInfoBytes, Where{"tensor infos"}));
  tensors_.resize(n_tensors);
  std::unordered_set<std::string_view> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo& t = tensors_[i];
    std::string_view name;
    OMNI_RETURN_IF_ERROR(c.read_string(&name, limits.max_string, Where{"name of tensor", {}, int64_t(i)}));
    if (!names.insert(name).second)
      return corrupt_file(fmt("duplicate tensor '%.*s'", int(name.size()), name.data()));
    t.name = std::string(name);
    const char* tn = t.name.c_str();
    OMNI_RETURN_IF_ERROR(c.read(&t.n_dims, Where{"n_dims of tensor", name}));
    if (t.n_dims < 1 || t.n_dims > kMaxDims)
      return corrupt_file(fmt("tensor '%s' has n_dims %u (must be 1..%u)", tn, t.n_dims, kMaxDims));
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      uint64_t ne = 0;
      OMNI_RETURN_IF_ERROR(c.read(&ne, Where{"shape of tensor", name}));
      if (ne == 0)
        return corrupt_file(fmt("tensor '%s' has ne[%u] = 0 (every dimension must be >= 1)", tn, d));
      if (ne > static_cast<uint64_t>(limits.max_dim))
        return corrupt_file(fmt("tensor '%s' has ne[%u] = %" PRIu64 ", which is absurd (limit %" PRId64 ")",
                                tn, d, ne, limits.max_dim));
      t.ne[d] = static_cast<int64_t>(ne);
    }
    uint32_t type_id = 0;
    OMNI_RETURN_IF_ERROR(c.read(&type_id, Where{"type of tensor", name}));
    const DTypeTraits* traits = dtype_traits(type_id);
    if (!traits) return unsupported(fmt("tensor '%s' has unknown type id %u", tn, type_id));
    t.type = static_cast<DType>(type_id);
    OMNI_RETURN_IF_ERROR(c.read(&t.offset, Where{"data offset of tensor", name}));

    int64_t n_elem = 1;
    for (int d = 0; d < 4; ++d) {
      if (__builtin_mul_overflow(n_elem, t.ne[d], &n_elem))
        return corrupt_file(fmt("tensor '%s' shape %s has too many elements", tn, t.shape_string().c_str()));
    }
    if (t.ne[0] % traits->block_size != 0)
      return corrupt_file(fmt("tensor '%s' has ne[0] = %" PRId64 ", not a multiple of the %s block size %" PRId64,
                              tn, t.ne[0], traits->name, traits->block_size));
    const int64_t row_bytes = dtype_row_bytes(t.type, t.ne[0]);
    int64_t n_bytes = 0;
    if (row_bytes < 0 || __builtin_mul_overflow(row_bytes, n_elem / t.ne[0], &n_bytes))
      return corrupt_file(fmt("tensor '%s' shape %s is too large in bytes", tn, t.shape_string().c_str()));
    t.n_bytes = static_cast<uint64_t>(n_bytes);
    if (t.offset % alignment_ != 0)
      return corrupt_file(fmt("tensor '%s' offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                              tn, t.offset, alignment_));
  }

  // ---- data section: starts at the next multiple of the alignment after the tensor infos.
  const uint64_t info_end = c.pos();
  const uint64_t data_start = (info_end + alignment_ - 1) / alignment_ * alignment_;  // alignment <= 2^31
  data_section_ = base_ + std::min<uint64_t>(data_start, size_);
  for (TensorInfo& t : tensors_) {
    uint64_t a = 0, b = 0;
    if (__builtin_add_overflow(data_start, t.offset, &a) || __builtin_add_overflow(a, t.n_bytes, &b))
      return corrupt_file(fmt("tensor '%s' data offset %" PRIu64 " + size %" PRIu64
                              " is outside the file (size %zu)", t.name.c_str(), t.offset, t.n_bytes, size_));
    if (b > size_)
      return corrupt_file(fmt("tensor '%s' data [%" PRIu64 ", %" PRIu64 ") is outside the file (size %zu)",
                              t.name.c_str(), a, b, size_));
    t.data = base_ + a;
  }
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t x, size_t y) { return tensors_[x].offset < tensors_[y].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& p = tensors_[order[k - 1]];
    const TensorInfo& q = tensors_[order[k]];
    if (p.offset + p.n_bytes > q.offset)  // both in the file: no overflow
      return corrupt_file(fmt("tensors '%s' and '%s' overlap", p.name.c_str(), q.name.c_str()));
  }
  for (size_t i = 0; i < tensors_.size(); ++i) tensor_index_.emplace(tensors_[i].name, i);
  return Status::Ok();
}

const Value* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ---- typed getters ----------------------------------------------------------------------------

namespace {

std::string quoted(std::string_view key) { return "key '" + std::string(key) + "'"; }

Status wrong_type(std::string_view key, const Value& v, const char* expected) {
  return corrupt_file(fmt("%s has type %s, expected %s", quoted(key).c_str(), describe_type(v).c_str(), expected));
}

template <class T>
StatusOr<T> integer_as(std::string_view key, const Value& v) {
  if (is_signed_int(v.type)) {
    if (!std::in_range<T>(v.scalar.i))
      return corrupt_file(fmt("%s value %" PRId64 " is out of range", quoted(key).c_str(), v.scalar.i));
    return static_cast<T>(v.scalar.i);
  }
  if (is_unsigned_int(v.type)) {
    if (!std::in_range<T>(v.scalar.u))
      return corrupt_file(fmt("%s value %" PRIu64 " is out of range", quoted(key).c_str(), v.scalar.u));
    return static_cast<T>(v.scalar.u);
  }
  return wrong_type(key, v, "an integer");
}

StatusOr<float> float_as(std::string_view key, const Value& v) {
  if (is_float_type(v.type)) {
    if (std::isfinite(v.scalar.f) && std::fabs(v.scalar.f) > std::numeric_limits<float>::max())
      return corrupt_file(fmt("%s value %g does not fit in f32", quoted(key).c_str(), v.scalar.f));
    return static_cast<float>(v.scalar.f);
  }
  if (is_signed_int(v.type)) return static_cast<float>(v.scalar.i);
  if (is_unsigned_int(v.type)) return static_cast<float>(v.scalar.u);
  return wrong_type(key, v, "a number");
}

}  // namespace

#define OMNI_GGUF_LOOKUP(v, key)                                               \
  const Value* v = find(key);                                                  \
  if (!v) return not_found("key '" + std::string(key) + "' not found")

StatusOr<std::string> GgufFile::get_string(std::string_view key) const {
  OMNI_GGUF_LOOKUP(v, key);
  if (v->type != ValueType::kString) return wrong_type(key, *v, "a string");
  return std::string(v->str);
}
StatusOr<uint32_t> GgufFile::get_u32(std::string_view key) const {
  OMNI_GGUF_LOOKUP(v, key);
  return integer_as<uint32_t>(key, *v);
}
StatusOr<uint64_t> GgufFile::get_u64(std::string_view key) const {
  OMNI_GGUF_LOOKUP(v, key);
  return integer_as<uint64_t>(key, *v);
}
StatusOr<int32_t> GgufFile::get_i32(std::string_view key) const {
  OMNI_GGUF_LOOKUP(v, key);
  return integer_as<int32_t>(key, *v);
}
StatusOr<float> GgufFile::get_f32(std::string_view key) const {
  OMNI_GGUF_LOOKUP(v, key);
  return float_as(key, *v);
}
StatusOr<bool> GgufFile::get_bool(std::string_view key) const {
  OMNI_GGUF_LOOKUP(v, key);
  if (v->type != ValueType::kBool) return wrong_type(key, *v, "a bool");
  return v->scalar.u != 0;
}
StatusOr<uint32_t> GgufFile::get_u32_or(std::string_view key, uint32_t dflt) const {
  return find(key) ? get_u32(key) : StatusOr<uint32_t>(dflt);
}
StatusOr<float> GgufFile::get_f32_or(std::string_view key, float dflt) const {
  return find(key) ? get_f32(key) : StatusOr<float>(dflt);
}
StatusOr<bool> GgufFile::get_bool_or(std::string_view key, bool dflt) const {
  return find(key) ? get_bool(key) : StatusOr<bool>(dflt);
}
StatusOr<std::string> GgufFile::get_string_or(std::string_view key, std::string dflt) const {
  return find(key) ? get_string(key) : StatusOr<std::string>(std::move(dflt));
}

StatusOr<std::vector<std::string_view>> GgufFile::get_string_array(std::string_view key) const {
  OMNI_GGUF_LOOKUP(v, key);
  if (v->type != ValueType::kArray || v->elem_type != ValueType::kString)
    return wrong_type(key, *v, "an array of string");
  return v->strings;
}

StatusOr<std::vector<float>> GgufFile::get_f32_array(std::string_view key) const {
  OMNI_GGUF_LOOKUP(v, key);
  const ValueType et = v->elem_type;
  if (v->type != ValueType::kArray || !(is_float_type(et) || is_signed_int(et) || is_unsigned_int(et)))
    return wrong_type(key, *v, "an array of numbers");
  std::vector<float> out(v->n_elems);
  for (uint64_t i = 0; i < v->n_elems; ++i) out[i] = static_cast<float>(v->array_f64(i));
  return out;
}

StatusOr<std::vector<int32_t>> GgufFile::get_i32_array(std::string_view key) const {
  OMNI_GGUF_LOOKUP(v, key);
  const ValueType et = v->elem_type;
  if (v->type != ValueType::kArray || !(is_signed_int(et) || is_unsigned_int(et)))
    return wrong_type(key, *v, "an array of integers");
  std::vector<int32_t> out(v->n_elems);
  const size_t es = scalar_size(et);
  for (uint64_t i = 0; i < v->n_elems; ++i) {
    Value e;
    e.type = et;
    decode_scalar(v->raw + i * es, et, &e);
    const bool fits = is_signed_int(et) ? std::in_range<int32_t>(e.scalar.i) : std::in_range<int32_t>(e.scalar.u);
    if (!fits)
      return corrupt_file(fmt("%s element %" PRIu64 " = %s does not fit in i32", quoted(key).c_str(), i,
                              e.to_string().c_str()));
    out[i] = is_signed_int(et) ? static_cast<int32_t>(e.scalar.i) : static_cast<int32_t>(e.scalar.u);
  }
  return out;
}

#undef OMNI_GGUF_LOOKUP

}  // namespace omni::gguf
