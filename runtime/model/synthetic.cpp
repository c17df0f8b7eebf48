#include "runtime/model/synthetic.h"

#include "runtime/model/synthetic_internal.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "kernels/core/thread_pool.h"
#include "kernels/ref/ops_ref.h"
#include "runtime/model/gguf.h"

namespace omni {
namespace {

using synthetic_detail::Extras;

// ---- presets ---------------------------------------------------------------------------------

constexpr const char* kArchs[] = {"llama", "qwen2", "gemma3"};

SyntheticShape tiny_shape(const std::string& arch) {
  SyntheticShape s;
  s.arch = arch;
  s.n_vocab = 512;
  s.n_embd = 256;
  s.n_layer = arch == "gemma3" ? 6 : 2;  // gemma3: 5 sliding-window layers + 1 global
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 64;
  s.n_ff = 512;
  s.n_ctx_train = 2048;
  s.sliding_window = arch == "gemma3" ? 64 : 0;  // short, so tests see it take effect
  s.rope_freq_base = arch == "llama" ? 500000.0f : 1e6f;
  s.norm_eps = arch == "llama" ? 1e-5f : 1e-6f;
  s.tied_output = arch != "qwen2";  // one tiny model exercises output.weight
  s.attn_bias = arch == "qwen2";
  return s;
}

struct Preset {
  const char* name;
  SyntheticShape shape;
};

const std::vector<Preset>& real_presets() {
  static const std::vector<Preset> kPresets = [] {
    std::vector<Preset> p;
    // name, {arch, vocab, embd, layers, heads, kv heads, head_dim, ff, ctx, swa, rope base, eps,
    //        tied, bias}
    p.push_back({"gemma3-270m",
                 {"gemma3", 262144, 640, 18, 4, 1, 256, 2048, 32768, 512, 1e6f, 1e-6f, true, false}});
    p.push_back({"qwen2.5-0.5b",
                 {"qwen2", 151936, 896, 24, 14, 2, 64, 4864, 32768, 0, 1e6f, 1e-6f, true, true}});
    p.push_back({"llama3.2-1b",
                 {"llama", 128256, 2048, 16, 32, 8, 64, 8192, 131072, 0, 500000.0f, 1e-5f, true,
                  false}});
    p.push_back({"qwen2.5-7b",
                 {"qwen2", 152064, 3584, 28, 28, 4, 128, 18944, 32768, 0, 1e6f, 1e-6f, false, true}});
    return p;
  }();
  return kPresets;
}

bool known_arch(const std::string& a) {
  for (const char* k : kArchs)
    if (a == k) return true;
  return false;
}

// llama.cpp's general.file_type (enum llama_ftype) for a file whose matrices are all `t`.
uint32_t llama_file_type(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ8_0: return 7;
    case DType::kQ5_0: return 8;
    case DType::kQ4_K: return 14;  // MOSTLY_Q4_K_S: every matrix q4_K
    case DType::kQ5_K: return 16;  // MOSTLY_Q5_K_S
    case DType::kQ6_K: return 18;
    case DType::kBF16: return 32;
    default: return 0;
  }
}

bool creatable_type(DType t) {
  switch (t) {
    case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kQ8_0: case DType::kQ4_0:
    case DType::kQ5_0: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

// ---- random numbers --------------------------------------------------------------------------

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// n approximately normal values with standard deviation `stddev`: Irwin-Hall sum of four 16-bit
// uniforms per 64-bit draw (variance 4/12, rescaled). Tails are cut at 3.46 sigma, which
// random weights do not miss, and it is ~10x cheaper than Box-Muller.
void fill_normal(uint64_t seed, float stddev, float* out, int64_t n) {
  uint64_t state = seed;
  const float scale = stddev * std::sqrt(3.0f) / 65536.0f;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = splitmix64(state);
    const int32_t sum = static_cast<int32_t>((r & 0xffff) + ((r >> 16) & 0xffff) +
                                             ((r >> 32) & 0xffff) + (r >> 48));
    out[i] = static_cast<float>(sum - 2 * 65536 + 2) * scale;  // (sum of (h + 0.5)) - 2 * 65536
  }
}

// ---- the tensors of a model --------------------------------------------------------------------

enum class Fill { kNormal, kOnes };

struct PlannedTensor {
  std::string name;
  DType type = DType::kF32;
  DType requested = DType::kF32;
  int n_dims = 1;
  int64_t ne[4] = {1, 1, 1, 1};  // ggml order: ne[0] is the row length (n_in), ne[1] the rows
  Fill fill = Fill::kNormal;
  float stddev = 0.0f;
  uint64_t seed = 0;
  const uint8_t* copy_from = nullptr;  // an appended tensor: its bytes as they are
  uint64_t offset = 0, n_bytes = 0;

  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
};

constexpr float kBiasStd = 0.02f;

std::vector<PlannedTensor> plan_tensors(const SyntheticShape& s, DType type, uint64_t seed,
                                        const Extras& extras) {
  std::vector<PlannedTensor> out;
  auto matrix = [&](std::string name, int64_t n_in, int64_t n_out) {
    PlannedTensor t;
    t.name = std::move(name);
    t.requested = type;
    t.type = synthetic_weight_type(type, n_in);
    t.ne[0] = n_in;
    t.ne[1] = n_out;
    t.n_dims = 2;
    t.stddev = 1.0f / std::sqrt(static_cast<float>(n_in));
    out.push_back(std::move(t));
  };
  auto vec = [&](std::string name, int64_t n, Fill fill) {
    PlannedTensor t;
    t.name = std::move(name);
    t.ne[0] = n;
    t.fill = fill;
    t.stddev = kBiasStd;
    out.push_back(std::move(t));
  };
  const int64_t d = s.n_embd, q_dim = s.n_head * s.head_dim, kv_dim = s.n_head_kv * s.head_dim;
  matrix("token_embd.weight", d, s.n_vocab);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    vec(p + "attn_norm.weight", d, Fill::kOnes);
    matrix(p + "attn_q.weight", d, q_dim);
    matrix(p + "attn_k.weight", d, kv_dim);
    matrix(p + "attn_v.weight", d, kv_dim);
    if (s.attn_bias) {
      vec(p + "attn_q.bias", q_dim, Fill::kNormal);
      vec(p + "attn_k.bias", kv_dim, Fill::kNormal);
      vec(p + "attn_v.bias", kv_dim, Fill::kNormal);
    }
    if (s.arch == "gemma3") {
      vec(p + "attn_q_norm.weight", s.head_dim, Fill::kOnes);
      vec(p + "attn_k_norm.weight", s.head_dim, Fill::kOnes);
    }
    matrix(p + "attn_output.weight", q_dim, d);
    if (s.arch == "gemma3") vec(p + "post_attention_norm.weight", d, Fill::kOnes);
    vec(p + "ffn_norm.weight", d, Fill::kOnes);
    matrix(p + "ffn_gate.weight", d, s.n_ff);
    matrix(p + "ffn_up.weight", d, s.n_ff);
    matrix(p + "ffn_down.weight", s.n_ff, d);
    if (s.arch == "gemma3") vec(p + "post_ffw_norm.weight", d, Fill::kOnes);
  }
  vec("output_norm.weight", d, Fill::kOnes);
  if (!s.tied_output) matrix("output.weight", d, s.n_vocab);
  for (const Extras::Matrix& m : extras.matrices) matrix(m.name, m.n_in, m.n_out);

  // One seed per tensor, drawn in file order, so each tensor's data depends only on (seed, index).
  std::mt19937_64 gen(seed);
  for (PlannedTensor& t : out) {
    t.seed = gen();
    t.n_bytes = static_cast<uint64_t>(dtype_row_bytes(t.type, t.ne[0]) * t.rows());
  }
  if (extras.appended) {
    for (const gguf::TensorInfo& ti : extras.appended->tensors()) {
      PlannedTensor t;
      t.name = ti.name;
      t.type = t.requested = ti.type;
      t.n_dims = static_cast<int>(ti.n_dims);
      std::copy(ti.ne, ti.ne + 4, t.ne);
      t.copy_from = ti.data;
      t.n_bytes = ti.n_bytes;
      out.push_back(std::move(t));
    }
  }
  uint64_t offset = 0;
  for (PlannedTensor& t : out) {
    t.offset = offset;
    offset += (t.n_bytes + 31) / 32 * 32;
  }
  return out;
}

// ---- GGUF encoding (same layout as gguf::GgufWriter, but the tensor data is streamed) ----------

class MetadataEncoder {
 public:
  uint64_t count() const { return count_; }
  bool has(const std::string& k) const {
    return std::find(keys_.begin(), keys_.end(), k) != keys_.end();
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

  void add_u32(const std::string& k, uint32_t v) { key(k, gguf::ValueType::kU32); pod(v); }
  void add_u64(const std::string& k, uint64_t v) { key(k, gguf::ValueType::kU64); pod(v); }
  void add_f32(const std::string& k, float v) { key(k, gguf::ValueType::kF32); pod(v); }
  void add_bool(const std::string& k, bool v) {
    key(k, gguf::ValueType::kBool);
    pod(static_cast<uint8_t>(v));
  }
  void add_string(const std::string& k, const std::string& v) {
    key(k, gguf::ValueType::kString);
    str(v);
  }
  void add_string_array(const std::string& k, const std::vector<std::string>& v) {
    key(k, gguf::ValueType::kArray);
    pod(static_cast<uint32_t>(gguf::ValueType::kString));
    pod(static_cast<uint64_t>(v.size()));
    for (const std::string& s : v) str(s);
  }
  void add_i32_array(const std::string& k, const std::vector<int32_t>& v) {
    key(k, gguf::ValueType::kArray);
    pod(static_cast<uint32_t>(gguf::ValueType::kI32));
    pod(static_cast<uint64_t>(v.size()));
    for (int32_t x : v) pod(x);
  }
  // A parsed value, re-encoded as GGUF lays it out.
  void add_value(const std::string& k, const gguf::Value& v) {
    key(k, v.type);
    value(v);
  }

 private:
  template <class T>
  void pod(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    pod(static_cast<uint64_t>(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void key(const std::string& k, gguf::ValueType t) {
    ++count_;
    keys_.push_back(k);
    str(k);
    pod(static_cast<uint32_t>(t));
  }
  // The value without its type tag (array elements carry none).
  void value(const gguf::Value& v) {
    using T = gguf::ValueType;
    auto size_of = [](T t) -> size_t {
      switch (t) {
        case T::kU8: case T::kI8: case T::kBool: return 1;
        case T::kU16: case T::kI16: return 2;
        case T::kU32: case T::kI32: case T::kF32: return 4;
        default: return 8;
      }
    };
    switch (v.type) {
      case T::kF32: pod(static_cast<float>(v.scalar.f)); break;
      case T::kF64: pod(v.scalar.f); break;
      case T::kString:
        pod(static_cast<uint64_t>(v.str.size()));
        bytes_.insert(bytes_.end(), v.str.begin(), v.str.end());
        break;
      case T::kArray:
        pod(static_cast<uint32_t>(v.elem_type));
        pod(v.n_elems);
        if (v.elem_type == T::kString) {
          for (std::string_view e : v.strings) {
            pod(static_cast<uint64_t>(e.size()));
            bytes_.insert(bytes_.end(), e.begin(), e.end());
          }
        } else if (v.elem_type == T::kArray) {
          for (const gguf::Value& e : v.elements) value(e);
        } else if (v.n_elems > 0) {
          bytes_.insert(bytes_.end(), v.raw, v.raw + v.n_elems * size_of(v.elem_type));
        }
        break;
      default: {  // integers and bool: the low bytes of the little-endian u64
        const auto* p = reinterpret_cast<const uint8_t*>(&v.scalar.u);
        bytes_.insert(bytes_.end(), p, p + size_of(v.type));
      }
    }
  }
  std::vector<uint8_t> bytes_;
  std::vector<std::string> keys_;
  uint64_t count_ = 0;
};

// GPT-2's bytes_to_unicode(): the 188 printable bytes map to themselves, the others to U+0100...
// Returned in the order of that table (printables first), which is GPT-2's token order.
std::vector<std::string> byte_level_symbols() {
  std::vector<int> bs, cs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  cs = bs;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + n++);
    }
  }
  std::vector<std::string> out;
  for (int c : cs) {  // UTF-8 of code point c (< 0x800)
    std::string s;
    if (c < 0x80) {
      s.push_back(static_cast<char>(c));
    } else {
      s.push_back(static_cast<char>(0xC0 | (c >> 6)));
      s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
    out.push_back(std::move(s));
  }
  return out;
}

void add_tokenizer(const SyntheticShape& s, MetadataEncoder* md) {
  std::vector<std::string> tokens = byte_level_symbols();
  std::vector<int32_t> types(tokens.size(), 1);  // normal
  auto control = [&](const char* piece) {
    tokens.push_back(piece);
    types.push_back(3);
    return static_cast<uint32_t>(tokens.size() - 1);
  };
  const uint32_t bos = control("<|bos|>");
  const uint32_t eos = control("<|eos|>");
  int64_t eot = -1;
  if (s.arch == "gemma3") {
    control("<start_of_turn>");
    control("<end_of_turn>");
  } else if (s.arch == "qwen2") {
    control("<|im_start|>");
    control("<|im_end|>");
  } else {
    control("<|start_header_id|>");
    control("<|end_header_id|>");
    eot = control("<|eot_id|>");
  }
  for (int64_t i = 0; static_cast<int64_t>(tokens.size()) < s.n_vocab; ++i) {
    tokens.push_back("<unused_" + std::to_string(i) + ">");
    types.push_back(5);
  }
  md->add_string("tokenizer.ggml.model", "gpt2");
  md->add_string("tokenizer.ggml.pre", "gpt2");
  md->add_string_array("tokenizer.ggml.tokens", tokens);
  md->add_i32_array("tokenizer.ggml.token_type", types);
  md->add_string_array("tokenizer.ggml.merges", {});
  md->add_u32("tokenizer.ggml.bos_token_id", bos);
  md->add_u32("tokenizer.ggml.eos_token_id", eos);
  if (eot >= 0) md->add_u32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(eot));
  md->add_bool("tokenizer.ggml.add_bos_token", true);
}

StatusOr<MetadataEncoder> build_metadata(const SyntheticSpec& spec, const SyntheticShape& s,
                                         const std::vector<PlannedTensor>& tensors,
                                         const Extras& extras) {
  MetadataEncoder md;
  const std::string& a = s.arch;
  md.add_string("general.architecture", a);
  md.add_string("general.name", "synthetic " + spec.preset);
  md.add_u32("general.file_type", llama_file_type(spec.type));
  if (dtype_traits(spec.type).block_size > 1) md.add_u32("general.quantization_version", 2);
  md.add_bool("omnirt.synthetic", true);
  md.add_u64("omnirt.synthetic.seed", spec.seed);
  md.add_string("omnirt.synthetic.preset", spec.preset);
  if (extras.fallbacks_key) {
    std::vector<std::string> fallbacks;
    for (const PlannedTensor& t : tensors) {
      if (t.n_dims == 2 && t.type != t.requested) {
        fallbacks.push_back(fmt("%s: %s -> %s (row of %lld is not a multiple of %lld)",
                                t.name.c_str(), dtype_name(t.requested), dtype_name(t.type),
                                static_cast<long long>(t.ne[0]),
                                static_cast<long long>(dtype_traits(t.requested).block_size)));
      }
    }
    md.add_string_array("omnirt.synthetic.fallbacks", fallbacks);
  }

  md.add_u32(a + ".vocab_size", static_cast<uint32_t>(s.n_vocab));
  md.add_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx_train));
  md.add_u32(a + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  md.add_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  md.add_u32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  md.add_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  md.add_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  md.add_u32(a + ".attention.key_length", static_cast<uint32_t>(s.head_dim));
  md.add_u32(a + ".attention.value_length", static_cast<uint32_t>(s.head_dim));
  md.add_f32(a + ".attention.layer_norm_rms_epsilon", s.norm_eps);
  md.add_f32(a + ".rope.freq_base", s.rope_freq_base);
  md.add_u32(a + ".rope.dimension_count", static_cast<uint32_t>(s.head_dim));
  if (s.sliding_window > 0)
    md.add_u32(a + ".attention.sliding_window", static_cast<uint32_t>(s.sliding_window));
  add_tokenizer(s, &md);
  if (extras.appended) {
    for (const gguf::KeyValue& kv : extras.appended->metadata()) {
      if (md.has(kv.key)) return internal_error(fmt("key '%s' is written twice", kv.key.c_str()));
      md.add_value(kv.key, kv.value);
    }
  }
  return md;
}

std::vector<uint8_t> encode_header(const MetadataEncoder& md, const std::vector<PlannedTensor>& ts) {
  std::vector<uint8_t> h;
  auto pod = [&](auto v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    h.insert(h.end(), p, p + sizeof(v));
  };
  h.insert(h.end(), {'G', 'G', 'U', 'F'});
  pod(uint32_t{3});
  pod(static_cast<uint64_t>(ts.size()));
  pod(md.count());
  h.insert(h.end(), md.bytes().begin(), md.bytes().end());
  for (const PlannedTensor& t : ts) {
    pod(static_cast<uint64_t>(t.name.size()));
    h.insert(h.end(), t.name.begin(), t.name.end());
    pod(static_cast<uint32_t>(t.n_dims));
    for (int i = 0; i < t.n_dims; ++i) pod(static_cast<uint64_t>(t.ne[i]));
    pod(static_cast<uint32_t>(t.type));
    pod(t.offset);
  }
  h.resize((h.size() + 31) / 32 * 32, 0);
  return h;
}

// ---- streaming the data ------------------------------------------------------------------------

class OutputFile {
 public:
  explicit OutputFile(std::FILE* f) : f_(f) {}
  ~OutputFile() {
    if (f_) std::fclose(f_);
  }
  Status write(const void* p, size_t n, const std::string& path) {
    if (n && std::fwrite(p, 1, n, f_) != n)
      return io_error(fmt("writing '%s' failed after %llu bytes: %s", path.c_str(),
                          static_cast<unsigned long long>(written_), std::strerror(errno)));
    written_ += n;
    return Status::Ok();
  }
  Status close(const std::string& path) {
    if (!f_) return Status::Ok();
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) return io_error(fmt("closing '%s' failed: %s", path.c_str(), std::strerror(errno)));
    return Status::Ok();
  }
  uint64_t written() const { return written_; }

 private:
  std::FILE* f_;
  uint64_t written_ = 0;
};

constexpr size_t kChunkBytes = size_t(16) << 20;  // bounds memory whatever the model size

// Double-buffered output: chunk k is written by a background thread while chunk k + 1 is
// generated, so the disk and the cores work at the same time. Writes stay in file order.
class ChunkStream {
 public:
  ChunkStream(OutputFile& out, std::string path) : out_(out), path_(std::move(path)) {}
  ~ChunkStream() { (void)flush(); }
  // The buffer to fill next, sized n bytes (waits until no write still reads it).
  Status next_buffer(size_t n, std::vector<uint8_t>** buf) {
    cur_ ^= 1;
    if (in_flight_[cur_].valid()) OMNI_RETURN_IF_ERROR(in_flight_[cur_].get());
    bufs_[cur_].resize(n);
    *buf = &bufs_[cur_];
    return Status::Ok();
  }
  // Queues the current buffer behind the previous one.
  void submit() {
    std::shared_future<Status> prev = in_flight_[cur_ ^ 1];
    const std::vector<uint8_t>* b = &bufs_[cur_];
    in_flight_[cur_] = std::async(std::launch::async, [this, prev, b]() -> Status {
                         if (prev.valid()) OMNI_RETURN_IF_ERROR(prev.get());
                         return out_.write(b->data(), b->size(), path_);
                       }).share();
  }
  Status flush() {
    Status st;
    for (int i : {cur_, cur_ ^ 1})
      if (in_flight_[i].valid()) {
        Status s = in_flight_[i].get();
        if (st.ok()) st = s;
        in_flight_[i] = {};
      }
    return st;
  }

 private:
  OutputFile& out_;
  std::string path_;
  std::vector<uint8_t> bufs_[2];
  std::shared_future<Status> in_flight_[2];
  int cur_ = 0;
};

// Copies an appended tensor's bytes into `stream` chunk by chunk, padded to 32 bytes.
Status copy_tensor(const PlannedTensor& t, ChunkStream& stream) {
  uint64_t b0 = 0;
  do {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, t.n_bytes - b0));
    const bool last = b0 + n == t.n_bytes;
    const size_t pad = last ? static_cast<size_t>((32 - t.n_bytes % 32) % 32) : 0;
    std::vector<uint8_t>* chunk = nullptr;
    OMNI_RETURN_IF_ERROR(stream.next_buffer(n + pad, &chunk));
    if (n) std::memcpy(chunk->data(), t.copy_from + b0, n);
    std::fill(chunk->begin() + static_cast<std::ptrdiff_t>(n), chunk->end(), uint8_t{0});
    stream.submit();
    b0 += n;
  } while (b0 < t.n_bytes);
  return Status::Ok();
}

// Generates tensor `t` chunk by chunk (rows in parallel; row r's values depend only on
// (t.seed, r), so the bytes do not depend on the thread count) and appends it to `stream`,
// padded to the 32-byte alignment.
Status write_tensor(const PlannedTensor& t, ThreadPool& pool,
                    std::vector<std::vector<float>>& scratch, ChunkStream& stream) {
  if (t.copy_from) return copy_tensor(t, stream);
  const int64_t n_in = t.ne[0], n_rows_all = t.rows();
  const int64_t row_bytes = dtype_row_bytes(t.type, n_in);
  const int64_t rows_per_chunk = std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes) / row_bytes);
  for (int64_t r0 = 0; r0 < n_rows_all; r0 += rows_per_chunk) {
    const int64_t n_rows = std::min(rows_per_chunk, n_rows_all - r0);
    const bool last = r0 + n_rows == n_rows_all;
    const size_t pad = last ? static_cast<size_t>((32 - t.n_bytes % 32) % 32) : 0;
    std::vector<uint8_t>* chunk = nullptr;
    OMNI_RETURN_IF_ERROR(stream.next_buffer(static_cast<size_t>(n_rows * row_bytes) + pad, &chunk));
    uint8_t* dst = chunk->data();
    std::fill(dst + n_rows * row_bytes, dst + chunk->size(), uint8_t{0});
    pool.parallel_for(n_rows, 1, [&](int64_t b, int64_t e, int ti) {
      std::vector<float>& x = scratch[static_cast<size_t>(ti)];
      x.resize(static_cast<size_t>(n_in));
      for (int64_t r = b; r < e; ++r) {
        if (t.fill == Fill::kOnes) {
          std::fill(x.begin(), x.end(), 1.0f);
        } else {
          const uint64_t row_seed = t.seed ^ (static_cast<uint64_t>(r0 + r) * 0xD1B54A32D192ED03ull);
          fill_normal(row_seed, t.stddev, x.data(), n_in);
        }
        ref::quantize_row(t.type, x.data(), dst + r * row_bytes, n_in);
      }
    });
    stream.submit();
  }
  return Status::Ok();
}

}  // namespace

std::vector<std::string> synthetic_presets() {
  std::vector<std::string> names{"tiny"};
  for (const Preset& p : real_presets()) names.push_back(p.name);
  return names;
}

StatusOr<SyntheticShape> synthetic_shape(const std::string& preset, const std::string& arch) {
  if (!arch.empty() && !known_arch(arch))
    return invalid_argument(fmt("unknown architecture '%s' (known: llama, qwen2, gemma3)", arch.c_str()));
  if (preset == "tiny") {
    if (arch.empty())
      return invalid_argument("preset 'tiny' exists for llama, qwen2 and gemma3: choose an architecture");
    return tiny_shape(arch);
  }
  for (const Preset& p : real_presets()) {
    if (preset != p.name) continue;
    if (!arch.empty() && arch != p.shape.arch)
      return invalid_argument(fmt("preset '%s' is a %s model, not %s", preset.c_str(),
                                  p.shape.arch.c_str(), arch.c_str()));
    return p.shape;
  }
  std::string known;
  for (const std::string& n : synthetic_presets()) known += (known.empty() ? "" : ", ") + n;
  return invalid_argument(fmt("unknown synthetic preset '%s' (known: %s)", preset.c_str(), known.c_str()));
}

DType synthetic_weight_type(DType requested, int64_t n_in) {
  if (dtype_row_bytes(requested, n_in) >= 0) return requested;
  DType fallback = DType::kF16;
  if (requested == DType::kQ4_K || requested == DType::kQ5_K) fallback = DType::kQ5_0;
  if (requested == DType::kQ6_K) fallback = DType::kQ8_0;
  return dtype_row_bytes(fallback, n_in) >= 0 ? fallback : DType::kF16;
}

Status create_synthetic_model(const SyntheticSpec& spec, const std::string& out_path) {
  OMNI_ASSIGN_OR_RETURN(SyntheticShape shape, synthetic_shape(spec.preset, spec.arch));
  OMNI_RETURN_IF_ERROR(synthetic_detail::check_output(spec.type, out_path));
  return synthetic_detail::write_model(spec, shape, Extras{}, out_path);
}

namespace synthetic_detail {

Status check_output(DType type, const std::string& out_path) {
  const DTypeTraits* traits = dtype_traits(static_cast<uint32_t>(type));
  if (!traits || !creatable_type(type))
    return unsupported(fmt("cannot create weights of type '%s' (use f32, f16, bf16, q8_0, q4_0, "
                           "q5_0, q4_K, q5_K or q6_K)",
                           traits ? traits->name : std::to_string(static_cast<uint32_t>(type)).c_str()));
  if (out_path.empty()) return invalid_argument("empty output path");
  return Status::Ok();
}

Status write_model(const SyntheticSpec& spec, const SyntheticShape& shape, const Extras& extras,
                   const std::string& out_path) {
  const std::vector<PlannedTensor> tensors = plan_tensors(shape, spec.type, spec.seed, extras);
  for (size_t i = 0; i < tensors.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (tensors[i].name == tensors[j].name)
        return internal_error(fmt("tensor '%s' is written twice", tensors[i].name.c_str()));
  OMNI_ASSIGN_OR_RETURN(const MetadataEncoder md, build_metadata(spec, shape, tensors, extras));
  const std::vector<uint8_t> header = encode_header(md, tensors);

  const std::string tmp_path = out_path + ".partial";
  std::FILE* f = std::fopen(tmp_path.c_str(), "wb");
  if (!f)
    return io_error(fmt("cannot create '%s' (writing through '%s'): %s", out_path.c_str(),
                        tmp_path.c_str(), std::strerror(errno)));
  OutputFile out(f);
  auto fail = [&](Status st) {
    (void)out.close(tmp_path);
    std::remove(tmp_path.c_str());
    return st;
  };

  int n_threads = spec.n_threads > 0 ? spec.n_threads
                                     : static_cast<int>(std::thread::hardware_concurrency());
  n_threads = std::clamp(n_threads, 1, 256);
  ThreadPool pool(n_threads);
  std::vector<std::vector<float>> scratch(static_cast<size_t>(n_threads));

  Status st = out.write(header.data(), header.size(), tmp_path);
  {
    ChunkStream stream(out, tmp_path);
    for (size_t i = 0; st.ok() && i < tensors.size(); ++i)
      st = write_tensor(tensors[i], pool, scratch, stream);
    Status flushed = stream.flush();
    if (st.ok()) st = flushed;
  }
  if (!st.ok()) return fail(st);
  const uint64_t expected = header.size() + tensors.back().offset + (tensors.back().n_bytes + 31) / 32 * 32;
  if (out.written() != expected)
    return fail(internal_error(fmt("wrote %llu bytes, planned %llu",
                                   static_cast<unsigned long long>(out.written()),
                                   static_cast<unsigned long long>(expected))));
  st = out.close(tmp_path);
  if (!st.ok()) return fail(st);
  if (std::rename(tmp_path.c_str(), out_path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp_path.c_str());
    return io_error(fmt("cannot rename '%s' to '%s': %s", tmp_path.c_str(), out_path.c_str(),
                        std::strerror(err)));
  }
  return Status::Ok();
}

}  // namespace synthetic_detail

}  // namespace omni
