// Synthetic omni model files (synthetic_omni.h). Keys and small components go through a
// GgufWriter (the components' add_synthetic_* functions fill it), which is then parsed back and
// handed to synthetic.cpp's writer (synthetic_internal.h): it re-encodes them after the
// backbone's keys and generates the backbone and head matrices chunk by chunk, so memory does
// not grow with the backbone.
#include "runtime/model/synthetic_omni.h"

#include <memory>
#include <string>
#include <vector>

#include "runtime/model/audio_loader.h"
#include "runtime/model/gguf.h"
#include "runtime/model/snac_loader.h"
#include "runtime/model/synthetic.h"
#include "runtime/model/synthetic_internal.h"
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
  int64_t audio_chunk_ms = 0;  // omni.audio_in.chunk_ms (0: not written)
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

// Mini-Omni's encoder is Whisper's, trained on whole 30 s windows: no chunk length is its own
// (docs/AUDIO.md: chunks of 0.5 s to 2 s cost Whisper's decoder the same accuracy), so the file
// asks for the one that answers soonest (docs/AUDIO_OUT.md section 6: time to first audio
// against the chunk, the turn ending anywhere inside its last chunk).
constexpr int64_t kLatencyChunkMs = 500;

const std::vector<OmniPreset>& presets() {
  static const std::vector<OmniPreset> kPresets = {
      {"omni-tiny", shape("qwen2", 512, 256, 2, 4, 2, 64, 512, 2048, 1e6f, 1e-6f, false), true, 64, 8, 508, 0, 0, 0,
       "whisper-tiny-enc", "vit-tiny", "snac-tiny"},
      {"orpheus-tiny", shape("llama", 1024, 256, 2, 4, 2, 64, 512, 2048, 500000.0f, 1e-5f, true), false, 64, 0, 0, 528,
       513, 260, "", "", "snac-tiny"},
      // Qwen2-0.5B with Mini-Omni's padded vocabularies (text 152000, audio 7 x 4160).
      {"mini-omni-0.5b", shape("qwen2", 152000, 896, 24, 14, 2, 64, 4864, 32768, 1e6f, 1e-6f, true), true, 4096, 64,
       151936, 0, 0, 0, "whisper-small-enc", "", "snac-24khz", kLatencyChunkMs},
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

// The components compute with fewer types than the backbone.
DType component_type(DType t) {
  return (t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kQ8_0) ? t : DType::kQ8_0;
}

// The codec of a quantized model keeps its matrices in bf16: Q8_0 is no finer (8-bit values
// per 32-block scale against bf16's 8-bit mantissa), codecs are not shipped quantized, and
// CPUs with AVX512_BF16 run bf16 matrices at twice the f32 rate (audio/codec/snac_gemm.h).
DType codec_type(DType t) { return (t == DType::kF32 || t == DType::kF16 || t == DType::kBF16) ? t : DType::kBF16; }

// ---- metadata and file ------------------------------------------------------------------------

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

Status write_file(const SyntheticOmniSpec& spec, const OmniPreset& p, const std::string& out_path) {
  // Keys and components, in memory; the backbone and heads are streamed by synthetic.cpp's writer.
  gguf::GgufWriter w;
  std::vector<std::string> components = {"backbone", "audio_out"};
  if (*p.audio_encoder) components.push_back("audio_in");
  if (*p.vision) components.push_back("vision");
  if (*p.codec) components.push_back("codec");
  w.add_string_array("omni.components", components);
  add_audio_out_keys(p, w);
  const DType ct = component_type(spec.type);
  if (*p.audio_encoder) {
    OMNI_RETURN_IF_ERROR(add_synthetic_audio_encoder(w, p.audio_encoder, p.shape.n_embd, ct, spec.seed + 1));
    if (p.audio_chunk_ms > 0) w.add_u32(kAudioChunkMsKey, static_cast<uint32_t>(p.audio_chunk_ms));
  }
  if (*p.vision) OMNI_RETURN_IF_ERROR(add_synthetic_vision(w, p.vision, p.shape.n_embd, ct, spec.seed + 2));
  if (*p.codec) OMNI_RETURN_IF_ERROR(add_synthetic_snac(w, p.codec, codec_type(spec.type), spec.seed + 3));
  std::vector<uint8_t> bytes = w.to_bytes();
  w = gguf::GgufWriter();  // frees the component tensors before the big ones are generated
  if (bytes.empty()) return internal_error("the component writer refused its input");
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> appended,
                        gguf::GgufFile::from_memory(bytes.data(), bytes.size()));

  synthetic_detail::Extras extras;
  if (p.parallel) {
    const int64_t rows = p.codebook_size + p.n_special;
    for (int i = 0; i < 7; ++i) {
      extras.matrices.push_back({"audio_out.embd." + std::to_string(i) + ".weight", p.shape.n_embd, rows});
      extras.matrices.push_back({"audio_out.head." + std::to_string(i) + ".weight", p.shape.n_embd, rows});
    }
  }
  extras.appended = appended.get();
  extras.fallbacks_key = false;
  const SyntheticSpec backbone{p.shape.arch, spec.preset, spec.type, spec.seed, spec.n_threads};
  return synthetic_detail::write_model(backbone, p.shape, extras, out_path);
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
  OMNI_RETURN_IF_ERROR(synthetic_detail::check_output(spec.type, out_path));
  return write_file(spec, *p, out_path);
}

}  // namespace omni
