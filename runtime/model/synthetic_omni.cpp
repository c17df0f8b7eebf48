// Synthetic omni model files (synthetic_omni.h). Keys and small components go through a
// GgufWriter (the components' add_synthetic_* functions fill it), which is then parsed back and
// re-encoded; the backbone and head matrices are generated and written chunk by chunk, so memory
// does not grow with the backbone.
#include "runtime/model/synthetic_omni.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <thread>

#include "kernels/core/thread_pool.h"
#include "kernels/ref/ops_ref.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/gguf.h"
#include "runtime/model/snac_loader.h"
#include "runtime/model/synthetic.h"
#include "runtime/model/vision_loader.h"

namespace omni {
namespace {

// ---- presets -----------------------------------------------------------------------------------

struct OmniPreset {
  const char* name;
  SyntheticShape shape;  // the backbone
  bool parallel;         // parallel heads (Mini-Omni) or codec tokens in the vocabulary (Orpheus)
  int32_t codebook_size;
  // parallel: codebook_vocab = codebook_size + n_special; specials from codebook_size on are
  // end, pad, input, answer (Mini-Omni: _eoa 4096, _pad_a, _input_a, _answer_a); text markers
  // from text_special on are end, pad, input, answer (Mini-Omni: _eot 151936, ...).
  int32_t n_special = 0;
  int32_t text_special = 0;
  // in-vocab (Orpheus): codes from token_offset; markers from marker_base on are speech start,
  // speech end, human start, human end, ai start (Orpheus 128257..128261); eot closes the text.
  int32_t token_offset = 0, marker_base = 0, eot = 0;
  const char* audio_encoder;  // presets of the other components ("" = none)
  const char* vision;
  const char* codec;
};

SyntheticShape shape(const char* arch, int64_t vocab, int64_t embd, int64_t layers, int64_t heads, int64_t kv,
                     int64_t head_dim, int64_t ff, int64_t ctx, float rope, float eps, bool tied) {
  SyntheticShape s;
  s.arch = arch;
  s.n_vocab = vocab;
  s.n_embd = embd;
  s.n_layer = layers;
  s.n_head = heads;
  s.n_head_kv = kv;
  s.head_dim = head_dim;
  s.n_ff = ff;
  s.n_ctx_train = ctx;
  s.rope_freq_base = rope;
  s.norm_eps = eps;
  s.tied_output = tied;
  s.attn_bias = s.arch == "qwen2";
  return s;
}

const std::vector<OmniPreset>& presets() {
  static const std::vector<OmniPreset> kPresets = {
      {"omni-tiny", shape("qwen2", 512, 256, 2, 4, 2, 64, 512, 2048, 1e6f, 1e-6f, false), true, 64, 8, 508, 0, 0, 0,
       "whisper-tiny-enc", "vit-tiny", "snac-tiny"},
      {"orpheus-tiny", shape("llama", 1024, 256, 2, 4, 2, 64, 512, 2048, 500000.0f, 1e-5f, true), false, 64, 0, 0, 528,
       513, 260, "", "", "snac-tiny"},
      // Qwen2-0.5B with Mini-Omni's padded vocabularies (text 152000, audio 7 x 4160).
      {"mini-omni-0.5b", shape("qwen2", 152000, 896, 24, 14, 2, 64, 4864, 32768, 1e6f, 1e-6f, true), true, 4096, 64,
       151936, 0, 0, 0, "whisper-small-enc", "", "snac-24khz"},
      // Llama-3.2-3B with Orpheus's vocabulary: 128256 + 10 markers + 7 x 4096 codes (+2 spare).
      {"orpheus-3b", shape("llama", 156940, 3072, 28, 24, 8, 128, 8192, 131072, 500000.0f, 1e-5f, true), false, 4096,
       0, 0, 128266, 128257, 128009, "", "", "snac-24khz"},
  };
  return kPresets;
}

const OmniPreset* find_preset(const std::string& name) {
  for (const OmniPreset& p : presets())
    if (name == p.name) return &p;
  return nullptr;
}

const std::vector<int32_t> kSnacLevels = {0, 1, 2, 2, 1, 2, 2};  // Orpheus and Mini-Omni frame order

uint32_t llama_file_type(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ8_0: return 7;
    case DType::kQ5_0: return 8;
    case DType::kQ4_K: return 14;
    case DType::kQ5_K: return 16;
    case DType::kQ6_K: return 18;
    case DType::kBF16: return 32;
    default: return 0;
  }
}

bool creatable(DType t) {
  switch (t) {
    case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kQ8_0: case DType::kQ4_0:
    case DType::kQ5_0: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

// The components compute with fewer types than the backbone.
DType component_type(DType t) {
  return (t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kQ8_0) ? t : DType::kQ8_0;
}

// ---- metadata ----------------------------------------------------------------------------------

// GPT-2's bytes_to_unicode() symbols in GPT-2's token order (printables first), as synthetic.cpp.
std::vector<std::string> byte_level_symbols() {
  std::vector<int> bs, cs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  cs = bs;
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + n++);
    }
  std::vector<std::string> out;
  for (int c : cs) {
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

// Byte-level tokens, bos/eos and the family's chat controls (ids 256..), unused tokens after.
void add_tokenizer(const SyntheticShape& s, gguf::GgufWriter& w) {
  std::vector<std::string> tokens = byte_level_symbols();
  std::vector<int32_t> types(tokens.size(), 1);
  auto control = [&](const char* piece) {
    tokens.push_back(piece);
    types.push_back(3);
    return static_cast<uint32_t>(tokens.size() - 1);
  };
  const uint32_t bos = control("<|bos|>");
  const uint32_t eos = control("<|eos|>");
  int64_t eot = -1;
  if (s.arch == "qwen2") {
    control("<|im_start|>");
    control("<|im_end|>");
  } else {
    control("<|start_header_id|>");
    control("<|end_header_id|>");
    eot = control("<|eot_id|>");  // id 260
  }
  for (int64_t i = 0; static_cast<int64_t>(tokens.size()) < s.n_vocab; ++i) {
    tokens.push_back("<unused_" + std::to_string(i) + ">");
    types.push_back(5);
  }
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "gpt2");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_string_array("tokenizer.ggml.merges", {});
  w.add_u32("tokenizer.ggml.bos_token_id", bos);
  w.add_u32("tokenizer.ggml.eos_token_id", eos);
  if (eot >= 0) w.add_u32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(eot));
  w.add_bool("tokenizer.ggml.add_bos_token", true);
}

void add_backbone_keys(const SyntheticOmniSpec& spec, const SyntheticShape& s, gguf::GgufWriter& w) {
  const std::string& a = s.arch;
  w.add_string("general.architecture", a);
  w.add_string("general.name", "synthetic " + spec.preset);
  w.add_u32("general.file_type", llama_file_type(spec.type));
  if (dtype_traits(spec.type).block_size > 1) w.add_u32("general.quantization_version", 2);
  w.add_bool("omnirt.synthetic", true);
  w.add_u64("omnirt.synthetic.seed", spec.seed);
  w.add_string("omnirt.synthetic.preset", spec.preset);
  w.add_u32(a + ".vocab_size", static_cast<uint32_t>(s.n_vocab));
  w.add_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx_train));
  w.add_u32(a + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  w.add_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.add_u32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.add_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  w.add_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.add_u32(a + ".attention.key_length", static_cast<uint32_t>(s.head_dim));
  w.add_u32(a + ".attention.value_length", static_cast<uint32_t>(s.head_dim));
  w.add_f32(a + ".attention.layer_norm_rms_epsilon", s.norm_eps);
  w.add_f32(a + ".rope.freq_base", s.rope_freq_base);
  w.add_u32(a + ".rope.dimension_count", static_cast<uint32_t>(s.head_dim));
  add_tokenizer(s, w);
}

void add_audio_out_keys(const OmniPreset& p, gguf::GgufWriter& w) {
  const std::string k = "omni.audio_out.";
  w.add_string(k + "type", p.parallel ? "parallel" : "in_vocab");
  w.add_string(k + "codec", std::string(p.codec) == "snac-tiny" ? "snac_tiny" : "snac_24khz");
  w.add_u32(k + "codebook_count", 7);
  w.add_u32(k + "codebook_size", static_cast<uint32_t>(p.codebook_size));
  w.add_i32_array(k + "codec_levels", kSnacLevels);
  if (p.parallel) {
    const int32_t cs = p.codebook_size, t = p.text_special;
    w.add_u32(k + "codebook_vocab", static_cast<uint32_t>(cs + p.n_special));
    w.add_i32_array(k + "delays", {1, 2, 3, 4, 5, 6, 7});
    w.add_string(k + "input_combine", "mean");
    w.add_i32(k + "end_code", cs);
    w.add_i32(k + "pad_code", cs + 1);
    w.add_i32(k + "input_code", cs + 2);
    w.add_i32(k + "answer_code", cs + 3);
    w.add_i32(k + "text_end_id", t);
    w.add_i32(k + "text_pad_id", t + 1);
    w.add_i32(k + "text_input_id", t + 2);
    w.add_i32(k + "text_answer_id", t + 3);
  } else {
    const int32_t m = p.marker_base;
    w.add_u32(k + "token_offset", static_cast<uint32_t>(p.token_offset));
    w.add_i32(k + "speech_start_id", m);
    w.add_i32(k + "speech_end_id", m + 1);
    w.add_i32_array(k + "prompt_prefix", {m + 2});                  // start of human
    w.add_i32_array(k + "prompt_suffix", {p.eot, m + 3, m + 4, m});  // eot, end of human, start of ai, speech
  }
}

// Re-encodes a parsed value (type tag first when with_type) in GGUF's layout.
void encode_value(const gguf::Value& v, bool with_type, std::vector<uint8_t>& out) {
  auto pod = [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  };
  auto u32 = [&](uint32_t x) { pod(&x, 4); };
  auto u64 = [&](uint64_t x) { pod(&x, 8); };
  using T = gguf::ValueType;
  auto size_of = [](T t) -> size_t {
    switch (t) {
      case T::kU8: case T::kI8: case T::kBool: return 1;
      case T::kU16: case T::kI16: return 2;
      case T::kU32: case T::kI32: case T::kF32: return 4;
      default: return 8;
    }
  };
  if (with_type) u32(static_cast<uint32_t>(v.type));
  switch (v.type) {
    case T::kF32: {
      const float f = static_cast<float>(v.scalar.f);
      pod(&f, 4);
      break;
    }
    case T::kF64: pod(&v.scalar.f, 8); break;
    case T::kString:
      u64(v.str.size());
      pod(v.str.data(), v.str.size());
      break;
    case T::kArray:
      u32(static_cast<uint32_t>(v.elem_type));
      u64(v.n_elems);
      if (v.elem_type == T::kString || v.elem_type == T::kArray) {
        for (const gguf::Value& e : v.elements) encode_value(e, false, out);
      } else if (v.n_elems > 0) {
        pod(v.raw, v.n_elems * size_of(v.elem_type));
      }
      break;
    default: pod(&v.scalar.u, size_of(v.type)); break;  // little-endian: the low bytes
  }
}

// ---- the streamed tensors ----------------------------------------------------------------------

enum class Fill { kNormal, kOnes };

struct Planned {
  std::string name;
  DType type = DType::kF32;
  int64_t ne0 = 0, ne1 = 1;
  int n_dims = 1;
  Fill fill = Fill::kNormal;
  float stddev = 0.02f;
  uint64_t seed = 0;
  const uint8_t* copy_from = nullptr;  // a component tensor: copied as it is
  uint64_t n_bytes = 0, offset = 0;
  int64_t ne[4] = {1, 1, 1, 1};
};

std::vector<Planned> plan(const OmniPreset& p, DType type, uint64_t seed) {
  const SyntheticShape& s = p.shape;
  std::vector<Planned> out;
  auto matrix = [&](std::string name, int64_t n_in, int64_t n_out) {
    Planned t;
    t.name = std::move(name);
    t.type = synthetic_weight_type(type, n_in);
    t.ne0 = n_in;
    t.ne1 = n_out;
    t.n_dims = 2;
    t.stddev = 1.0f / std::sqrt(static_cast<float>(n_in));
    out.push_back(std::move(t));
  };
  auto vec = [&](std::string name, int64_t n, Fill fill) {
    Planned t;
    t.name = std::move(name);
    t.ne0 = n;
    t.fill = fill;
    out.push_back(std::move(t));
  };
  const int64_t d = s.n_embd, q_dim = s.n_head * s.head_dim, kv_dim = s.n_head_kv * s.head_dim;
  matrix("token_embd.weight", d, s.n_vocab);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    vec(b + "attn_norm.weight", d, Fill::kOnes);
    matrix(b + "attn_q.weight", d, q_dim);
    matrix(b + "attn_k.weight", d, kv_dim);
    matrix(b + "attn_v.weight", d, kv_dim);
    if (s.attn_bias) {
      vec(b + "attn_q.bias", q_dim, Fill::kNormal);
      vec(b + "attn_k.bias", kv_dim, Fill::kNormal);
      vec(b + "attn_v.bias", kv_dim, Fill::kNormal);
    }
    matrix(b + "attn_output.weight", q_dim, d);
    vec(b + "ffn_norm.weight", d, Fill::kOnes);
    matrix(b + "ffn_gate.weight", d, s.n_ff);
    matrix(b + "ffn_up.weight", d, s.n_ff);
    matrix(b + "ffn_down.weight", s.n_ff, d);
  }
  vec("output_norm.weight", d, Fill::kOnes);
  if (!s.tied_output) matrix("output.weight", d, s.n_vocab);
  if (p.parallel) {
    for (int i = 0; i < 7; ++i) {
      matrix("audio_out.embd." + std::to_string(i) + ".weight", d, p.codebook_size + p.n_special);
      matrix("audio_out.head." + std::to_string(i) + ".weight", d, p.codebook_size + p.n_special);
    }
  }
  std::mt19937_64 gen(seed);
  for (Planned& t : out) {
    t.seed = gen();
    t.ne[0] = t.ne0;
    t.ne[1] = t.ne1;
    t.n_bytes = static_cast<uint64_t>(dtype_row_bytes(t.type, t.ne0) * t.ne1);
  }
  return out;
}

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Approximately normal values (Irwin-Hall sum of four 16-bit uniforms, rescaled).
void fill_normal(uint64_t seed, float stddev, float* out, int64_t n) {
  uint64_t state = seed;
  const float scale = stddev * std::sqrt(3.0f) / 65536.0f;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = splitmix64(state);
    const int32_t sum = static_cast<int32_t>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    out[i] = static_cast<float>(sum - 2 * 65536 + 2) * scale;
  }
}

class Output {
 public:
  Output(std::FILE* f, std::string path) : f_(f), path_(std::move(path)) {}
  ~Output() {
    if (f_) std::fclose(f_);
  }
  Status write(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n)
      return io_error(fmt("writing '%s' failed after %llu bytes: %s", path_.c_str(),
                          static_cast<unsigned long long>(written_), std::strerror(errno)));
    written_ += n;
    return Status::Ok();
  }
  Status pad(uint64_t align) {
    static const uint8_t zeros[64] = {};
    return write(zeros, static_cast<size_t>((align - written_ % align) % align));
  }
  Status close() {
    if (!f_) return Status::Ok();
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) return io_error(fmt("closing '%s' failed: %s", path_.c_str(), std::strerror(errno)));
    return Status::Ok();
  }

 private:
  std::FILE* f_;
  std::string path_;
  uint64_t written_ = 0;
};

constexpr int64_t kChunkBytes = int64_t(16) << 20;

Status write_generated(const Planned& t, ThreadPool& pool, std::vector<std::vector<float>>& scratch,
                       std::vector<uint8_t>& chunk, Output& out) {
  const int64_t row_bytes = dtype_row_bytes(t.type, t.ne0);
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkBytes / row_bytes);
  for (int64_t r0 = 0; r0 < t.ne1; r0 += rows_per_chunk) {
    const int64_t n_rows = std::min(rows_per_chunk, t.ne1 - r0);
    chunk.resize(static_cast<size_t>(n_rows * row_bytes));
    uint8_t* dst = chunk.data();
    pool.parallel_for(n_rows, 1, [&](int64_t b, int64_t e, int ti) {
      std::vector<float>& x = scratch[static_cast<size_t>(ti)];
      x.resize(static_cast<size_t>(t.ne0));
      for (int64_t r = b; r < e; ++r) {
        if (t.fill == Fill::kOnes) {
          std::fill(x.begin(), x.end(), 1.0f);
        } else {
          fill_normal(t.seed ^ (static_cast<uint64_t>(r0 + r) * 0xD1B54A32D192ED03ull), t.stddev, x.data(), t.ne0);
        }
        ref::quantize_row(t.type, x.data(), dst + r * row_bytes, t.ne0);
      }
    });
    OMNI_RETURN_IF_ERROR(out.write(chunk.data(), chunk.size()));
  }
  return Status::Ok();
}

Status write_file(const SyntheticOmniSpec& spec, const OmniPreset& p, const std::string& path) {
  // Keys and components, in memory.
  gguf::GgufWriter w;
  add_backbone_keys(spec, p.shape, w);
  std::vector<std::string> components = {"backbone", "audio_out"};
  if (*p.audio_encoder) components.push_back("audio_in");
  if (*p.vision) components.push_back("vision");
  if (*p.codec) components.push_back("codec");
  w.add_string_array("omni.components", components);
  add_audio_out_keys(p, w);
  const DType ct = component_type(spec.type);
  if (*p.audio_encoder)
    OMNI_RETURN_IF_ERROR(add_synthetic_audio_encoder(w, p.audio_encoder, p.shape.n_embd, ct, spec.seed + 1));
  if (*p.vision) OMNI_RETURN_IF_ERROR(add_synthetic_vision(w, p.vision, p.shape.n_embd, ct, spec.seed + 2));
  if (*p.codec) OMNI_RETURN_IF_ERROR(add_synthetic_snac(w, p.codec, ct, spec.seed + 3));
  std::vector<uint8_t> bytes = w.to_bytes();
  w = gguf::GgufWriter();  // frees the component tensors before the big ones are generated
  if (bytes.empty()) return internal_error("the component writer refused its input");
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> meta, gguf::GgufFile::from_memory(bytes.data(), bytes.size()));
  OMNI_ASSIGN_OR_RETURN(std::string arch, meta->get_string("general.architecture"));
  if (arch != p.shape.arch) return internal_error("a component replaced general.architecture");

  std::vector<Planned> tensors = plan(p, spec.type, spec.seed);
  for (const gguf::TensorInfo& ti : meta->tensors()) {
    for (const Planned& t : tensors)
      if (t.name == ti.name) return internal_error(fmt("tensor '%s' is written twice", ti.name.c_str()));
    Planned t;
    t.name = ti.name;
    t.type = ti.type;
    t.n_dims = static_cast<int>(ti.n_dims);
    std::copy(ti.ne, ti.ne + 4, t.ne);
    t.copy_from = ti.data;
    t.n_bytes = ti.n_bytes;
    tensors.push_back(std::move(t));
  }
  uint64_t offset = 0;
  for (Planned& t : tensors) {
    t.offset = offset;
    offset += (t.n_bytes + 31) / 32 * 32;
  }

  std::vector<uint8_t> header;
  auto pod = [&](auto v) {
    const auto* b = reinterpret_cast<const uint8_t*>(&v);
    header.insert(header.end(), b, b + sizeof(v));
  };
  auto str = [&](const std::string& s) {
    pod(static_cast<uint64_t>(s.size()));
    header.insert(header.end(), s.begin(), s.end());
  };
  header.insert(header.end(), {'G', 'G', 'U', 'F'});
  pod(uint32_t{3});
  pod(static_cast<uint64_t>(tensors.size()));
  pod(static_cast<uint64_t>(meta->metadata().size()));
  for (const gguf::KeyValue& kv : meta->metadata()) {
    str(kv.key);
    encode_value(kv.value, true, header);
  }
  for (const Planned& t : tensors) {
    str(t.name);
    pod(static_cast<uint32_t>(t.n_dims));
    for (int i = 0; i < t.n_dims; ++i) pod(static_cast<uint64_t>(t.ne[i]));
    pod(static_cast<uint32_t>(t.type));
    pod(t.offset);
  }
  header.resize((header.size() + 31) / 32 * 32, 0);

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return io_error(fmt("cannot create '%s': %s", path.c_str(), std::strerror(errno)));
  Output out(f, path);
  OMNI_RETURN_IF_ERROR(out.write(header.data(), header.size()));
  int n_threads = spec.n_threads > 0 ? spec.n_threads : static_cast<int>(std::thread::hardware_concurrency());
  n_threads = std::clamp(n_threads, 1, 256);
  ThreadPool pool(n_threads);
  std::vector<std::vector<float>> scratch(static_cast<size_t>(n_threads));
  std::vector<uint8_t> chunk;
  for (const Planned& t : tensors) {
    if (t.copy_from) {
      OMNI_RETURN_IF_ERROR(out.write(t.copy_from, t.n_bytes));
    } else {
      OMNI_RETURN_IF_ERROR(write_generated(t, pool, scratch, chunk, out));
    }
    OMNI_RETURN_IF_ERROR(out.pad(32));
  }
  return out.close();
}

}  // namespace

std::vector<std::string> synthetic_omni_presets() {
  std::vector<std::string> names;
  for (const OmniPreset& p : presets()) names.push_back(p.name);
  return names;
}

Status create_synthetic_omni(const SyntheticOmniSpec& spec, const std::string& out_path) {
  const OmniPreset* p = find_preset(spec.preset);
  if (!p) {
    std::string known;
    for (const std::string& n : synthetic_omni_presets()) known += (known.empty() ? "" : ", ") + n;
    return invalid_argument(fmt("unknown omni preset '%s' (known: %s)", spec.preset.c_str(), known.c_str()));
  }
  const DTypeTraits* traits = dtype_traits(static_cast<uint32_t>(spec.type));
  if (!traits || !creatable(spec.type))
    return unsupported(fmt("cannot create weights of type '%s' (use f32, f16, bf16, q8_0, q4_0, q5_0, q4_K, q5_K or q6_K)",
                           traits ? traits->name : std::to_string(static_cast<uint32_t>(spec.type)).c_str()));
  if (out_path.empty()) return invalid_argument("empty output path");
  const std::string tmp = out_path + ".partial";
  Status st = write_file(spec, *p, tmp);
  if (st.ok() && std::rename(tmp.c_str(), out_path.c_str()) != 0)
    st = io_error(fmt("cannot rename '%s' to '%s': %s", tmp.c_str(), out_path.c_str(), std::strerror(errno)));
  if (!st.ok()) std::remove(tmp.c_str());
  return st;
}

}  // namespace omni
