#include "runtime/model/audio_out.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "kernels/cpu/ops_cpu.h"

namespace omni {
namespace {

constexpr const char* kPrefix = "omni.audio_out.";

std::string key(const char* name) { return std::string(kPrefix) + name; }

using Clock = std::chrono::steady_clock;
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// An optional i32 key: -1 when absent.
StatusOr<int32_t> opt_i32(const gguf::GgufFile& f, const char* name) {
  if (!f.find(key(name))) return -1;
  OMNI_ASSIGN_OR_RETURN(int32_t v, f.get_i32(key(name)));
  if (v < -1) return corrupt_file(fmt("%s = %d must be >= -1 (-1: none)", key(name).c_str(), v));
  return v;
}

StatusOr<std::vector<int32_t>> opt_i32_array(const gguf::GgufFile& f, const char* name) {
  if (!f.find(key(name))) return std::vector<int32_t>{};
  return f.get_i32_array(key(name));
}

Status check_id(const char* name, int32_t id, int64_t n, const char* what) {
  if (id >= n)
    return corrupt_file(fmt("%s = %d is outside the %s (%lld entries)", key(name).c_str(), id, what, (long long)n));
  return Status::Ok();
}

Status read_levels(const gguf::GgufFile& f, AudioOutSpec& s) {
  OMNI_ASSIGN_OR_RETURN(s.levels, f.get_i32_array(key("codec_levels")));
  if (static_cast<int32_t>(s.levels.size()) != s.n_codebooks)
    return corrupt_file(fmt("%s has %zu entries, codebook_count is %d", key("codec_levels").c_str(), s.levels.size(),
                            s.n_codebooks));
  std::vector<int> count(static_cast<size_t>(s.n_codebooks), 0);
  for (int32_t l : s.levels) {
    if (l < 0 || l >= s.n_codebooks)
      return corrupt_file(fmt("%s holds level %d, outside [0, %d)", key("codec_levels").c_str(), l, s.n_codebooks));
    ++count[static_cast<size_t>(l)];
  }
  const int32_t top = *std::max_element(s.levels.begin(), s.levels.end());
  for (int32_t l = 0; l <= top; ++l)
    if (count[static_cast<size_t>(l)] == 0)
      return corrupt_file(fmt("%s skips level %d (levels must be 0..%d)", key("codec_levels").c_str(), l, top));
  return Status::Ok();
}

Status read_parallel(const gguf::GgufFile& f, int64_t n_vocab, AudioOutSpec& s) {
  OMNI_ASSIGN_OR_RETURN(uint32_t vocab, f.get_u32(key("codebook_vocab")));
  if (vocab < static_cast<uint32_t>(s.codebook_size) || vocab > (1u << 24))
    return corrupt_file(fmt("%s = %u must be in [codebook_size = %d, 2^24]", key("codebook_vocab").c_str(), vocab,
                            s.codebook_size));
  s.codebook_vocab = static_cast<int32_t>(vocab);
  OMNI_ASSIGN_OR_RETURN(s.delays, f.get_i32_array(key("delays")));
  if (static_cast<int32_t>(s.delays.size()) != s.n_codebooks)
    return corrupt_file(fmt("%s has %zu entries, codebook_count is %d", key("delays").c_str(), s.delays.size(),
                            s.n_codebooks));
  for (int32_t d : s.delays)
    if (d < 0 || d > 1024) return corrupt_file(fmt("%s holds %d, outside [0, 1024]", key("delays").c_str(), d));
  OMNI_ASSIGN_OR_RETURN(std::string combine, f.get_string_or(key("input_combine"), "mean"));
  if (combine == "mean") {
    s.combine = InputCombine::kMean;
  } else if (combine == "sum") {
    s.combine = InputCombine::kSum;
  } else {
    return unsupported(fmt("%s = '%s' is not known (mean, sum)", key("input_combine").c_str(), combine.c_str()));
  }
  OMNI_ASSIGN_OR_RETURN(s.end_code, opt_i32(f, "end_code"));
  OMNI_ASSIGN_OR_RETURN(s.pad_code, opt_i32(f, "pad_code"));
  OMNI_ASSIGN_OR_RETURN(s.input_code, opt_i32(f, "input_code"));
  OMNI_ASSIGN_OR_RETURN(s.answer_code, opt_i32(f, "answer_code"));
  if (s.pad_code < 0) return corrupt_file(key("pad_code") + " is required for parallel heads (the input inside a delay)");
  const std::pair<const char*, int32_t> codes[] = {
      {"end_code", s.end_code}, {"pad_code", s.pad_code}, {"input_code", s.input_code}, {"answer_code", s.answer_code}};
  for (const auto& [name, v] : codes) {
    OMNI_RETURN_IF_ERROR(check_id(name, v, s.codebook_vocab, "codebook vocabulary"));
    if (v >= 0 && v < s.codebook_size)
      return corrupt_file(fmt("%s = %d is a code (< codebook_size %d), not a special token", key(name).c_str(), v,
                              s.codebook_size));
  }
  OMNI_ASSIGN_OR_RETURN(s.text_end_id, opt_i32(f, "text_end_id"));
  OMNI_ASSIGN_OR_RETURN(s.text_pad_id, opt_i32(f, "text_pad_id"));
  OMNI_ASSIGN_OR_RETURN(s.text_input_id, opt_i32(f, "text_input_id"));
  OMNI_ASSIGN_OR_RETURN(s.text_answer_id, opt_i32(f, "text_answer_id"));
  const std::pair<const char*, int32_t> ids[] = {{"text_end_id", s.text_end_id},
                                                 {"text_pad_id", s.text_pad_id},
                                                 {"text_input_id", s.text_input_id},
                                                 {"text_answer_id", s.text_answer_id}};
  for (const auto& [name, v] : ids) OMNI_RETURN_IF_ERROR(check_id(name, v, n_vocab, "backbone vocabulary"));
  return Status::Ok();
}

Status read_in_vocab(const gguf::GgufFile& f, int64_t n_vocab, AudioOutSpec& s) {
  OMNI_ASSIGN_OR_RETURN(uint32_t offset, f.get_u32(key("token_offset")));
  const int64_t end = static_cast<int64_t>(offset) + static_cast<int64_t>(s.n_codebooks) * s.codebook_size;
  if (end > n_vocab)
    return corrupt_file(fmt("codec tokens %u + %d x %d = %lld end past the vocabulary (%lld tokens)", offset,
                            s.n_codebooks, s.codebook_size, (long long)end, (long long)n_vocab));
  s.token_offset = static_cast<int32_t>(offset);
  OMNI_ASSIGN_OR_RETURN(s.speech_start_id, opt_i32(f, "speech_start_id"));
  OMNI_ASSIGN_OR_RETURN(s.speech_end_id, opt_i32(f, "speech_end_id"));
  for (const auto& [name, v] : {std::pair<const char*, int32_t>{"speech_start_id", s.speech_start_id},
                                std::pair<const char*, int32_t>{"speech_end_id", s.speech_end_id}}) {
    OMNI_RETURN_IF_ERROR(check_id(name, v, n_vocab, "backbone vocabulary"));
    if (v >= s.token_offset && v < end)
      return corrupt_file(fmt("%s = %d lies among the codec tokens [%d, %lld)", key(name).c_str(), v, s.token_offset,
                              (long long)end));
  }
  OMNI_ASSIGN_OR_RETURN(s.prompt_prefix, opt_i32_array(f, "prompt_prefix"));
  OMNI_ASSIGN_OR_RETURN(s.prompt_suffix, opt_i32_array(f, "prompt_suffix"));
  for (const auto* arr : {&s.prompt_prefix, &s.prompt_suffix})
    for (int32_t id : *arr)
      if (id < 0 || id >= n_vocab)
        return corrupt_file(fmt("%s holds token %d, outside the vocabulary (%lld tokens)",
                                key(arr == &s.prompt_prefix ? "prompt_prefix" : "prompt_suffix").c_str(), id,
                                (long long)n_vocab));
  return Status::Ok();
}

}  // namespace

const char* audio_out_kind_name(AudioOutKind k) { return k == AudioOutKind::kParallel ? "parallel" : "in_vocab"; }

int AudioOutSpec::max_delay() const {
  int m = 0;
  for (int32_t d : delays) m = std::max(m, static_cast<int>(d));
  return m;
}

std::vector<int> AudioOutSpec::codes_per_level() const {
  std::vector<int> n;
  for (int32_t l : levels) {
    if (static_cast<size_t>(l) >= n.size()) n.resize(static_cast<size_t>(l) + 1, 0);
    ++n[static_cast<size_t>(l)];
  }
  return n;
}

StatusOr<AudioOutSpec> read_audio_out_spec(const gguf::GgufFile& f, int64_t n_vocab) {
  AudioOutSpec s;
  if (!f.find(key("type"))) return not_found("the model has no audio-out heads (no omni.audio_out.type key)");
  // Read in place (GCC 12 flags a moved-from string here as maybe-uninitialized).
  StatusOr<std::string> type_or = f.get_string(key("type"));
  if (!type_or.ok()) return type_or.status();
  const std::string& type = *type_or;
  if (type == "parallel") {
    s.kind = AudioOutKind::kParallel;
  } else if (type == "in_vocab") {
    s.kind = AudioOutKind::kInVocab;
  } else {
    return unsupported(fmt("%s = '%s' is not known (parallel, in_vocab)", key("type").c_str(), type.c_str()));
  }
  OMNI_ASSIGN_OR_RETURN(s.codec, f.get_string_or(key("codec"), ""));
  OMNI_ASSIGN_OR_RETURN(uint32_t k, f.get_u32(key("codebook_count")));
  if (k < 1 || k > static_cast<uint32_t>(kMaxFrameCodes))
    return corrupt_file(fmt("%s = %u must be in [1, %d]", key("codebook_count").c_str(), k, kMaxFrameCodes));
  s.n_codebooks = static_cast<int32_t>(k);
  OMNI_ASSIGN_OR_RETURN(uint32_t size, f.get_u32(key("codebook_size")));
  if (size < 1 || size > (1u << 20))
    return corrupt_file(fmt("%s = %u must be in [1, 2^20]", key("codebook_size").c_str(), size));
  s.codebook_size = static_cast<int32_t>(size);
  OMNI_RETURN_IF_ERROR(read_levels(f, s));
  if (s.kind == AudioOutKind::kParallel) {
    OMNI_RETURN_IF_ERROR(read_parallel(f, n_vocab, s));
  } else {
    OMNI_RETURN_IF_ERROR(read_in_vocab(f, n_vocab, s));
  }
  return s;
}

StatusOr<AudioOutHeads> load_audio_out(const Model& model) {
  AudioOutHeads h;
  OMNI_ASSIGN_OR_RETURN(h.spec, read_audio_out_spec(model.file(), model.hparams().n_vocab));
  if (h.spec.kind != AudioOutKind::kParallel) return h;
  const int64_t d = model.hparams().n_embd;
  auto bind = [&](const std::string& name) -> StatusOr<Weight> {
    const gguf::TensorInfo* t = model.file().find_tensor(name);
    if (!t) return corrupt_file(fmt("tensor '%s' is missing (omni.audio_out.codebook_count = %d)", name.c_str(),
                                    h.spec.n_codebooks));
    if (t->n_dims != 2 || t->ne[0] != d || t->ne[1] != h.spec.codebook_vocab)
      return corrupt_file(fmt("tensor '%s' has shape %s, expected [%lld, %d] (n_embd, codebook_vocab)", name.c_str(),
                              t->shape_string().c_str(), (long long)d, h.spec.codebook_vocab));
    if (!dtype_traits(t->type).supported)
      return unsupported(fmt("tensor '%s' has type %s, which omnirt cannot compute with", name.c_str(),
                             dtype_name(t->type)));
    return Weight{t->type, t->data, t->ne[0], t->ne[1]};
  };
  for (int32_t i = 0; i < h.spec.n_codebooks; ++i) {
    OMNI_ASSIGN_OR_RETURN(Weight e, bind(fmt("audio_out.embd.%d.weight", i)));
    OMNI_ASSIGN_OR_RETURN(Weight o, bind(fmt("audio_out.head.%d.weight", i)));
    h.embd.push_back(e);
    h.head.push_back(o);
  }
  return h;
}

// ---- the decode loop ---------------------------------------------------------------------------

AudioOutDecoder::AudioOutDecoder(const AudioOutHeads& heads, Backbone& bb, const AudioOutParams& params)
    : heads_(heads), spec_(heads.spec), bb_(bb), params_(params) {}

StatusOr<std::unique_ptr<AudioOutDecoder>> AudioOutDecoder::create(const AudioOutHeads& heads, Context& ctx,
                                                                   const AudioOutParams& params) {
  auto own = std::make_unique<CpuBackbone>(ctx);
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<AudioOutDecoder> dec, create(heads, static_cast<Backbone&>(*own), params));
  dec->own_backbone_ = std::move(own);  // bb_ refers to it; it lives as long as the decoder
  return dec;
}

StatusOr<std::unique_ptr<AudioOutDecoder>> AudioOutDecoder::create(const AudioOutHeads& heads, Backbone& ctx,
                                                                   const AudioOutParams& params) {
  if (params.max_steps < 1) return invalid_argument(fmt("max_steps = %lld must be >= 1", (long long)params.max_steps));
  if (params.max_text_tokens < -1)
    return invalid_argument(fmt("max_text_tokens = %lld must be >= 0 (or -1: no limit)", (long long)params.max_text_tokens));
  const AudioOutSpec& s = heads.spec;
  const int64_t d = ctx.model().hparams().n_embd;
  if (s.n_codebooks < 1 || static_cast<int32_t>(s.levels.size()) != s.n_codebooks)
    return invalid_argument("audio-out spec has no codebooks (not read by load_audio_out?)");
  if (s.kind == AudioOutKind::kParallel) {
    if (static_cast<int32_t>(heads.head.size()) != s.n_codebooks || static_cast<int32_t>(heads.embd.size()) != s.n_codebooks)
      return invalid_argument("parallel audio-out heads are not bound (use load_audio_out)");
    for (const Weight& w : heads.head)
      if (w.n_in != d) return invalid_argument(fmt("head width %lld differs from the context's n_embd %lld",
                                                   (long long)w.n_in, (long long)d));
  } else if (s.token_offset + static_cast<int64_t>(s.n_codebooks) * s.codebook_size > ctx.model().hparams().n_vocab) {
    return invalid_argument("in-vocab codec tokens lie outside this context's vocabulary");
  }
  if (s.kind == AudioOutKind::kParallel) OMNI_RETURN_IF_ERROR(ctx.set_extra_outputs(heads.head));
  std::unique_ptr<AudioOutDecoder> dec(new AudioOutDecoder(heads, ctx, params));
  OMNI_RETURN_IF_ERROR(dec->init_samplers());
  return dec;
}

Status AudioOutDecoder::init_samplers() {
  const int64_t n_vocab = bb_.model().hparams().n_vocab;
  OMNI_ASSIGN_OR_RETURN(Sampler text, Sampler::create(params_.text_sampling, n_vocab));
  text_sampler_ = std::make_unique<Sampler>(std::move(text));
  const bool has_end = spec_.kind == AudioOutKind::kParallel ? spec_.end_code >= 0 : spec_.speech_end_id >= 0;
  const int64_t n_cand = spec_.codebook_size + (has_end ? 1 : 0);
  for (int32_t i = 0; i < spec_.n_codebooks; ++i) {
    SamplerParams p = params_.audio_sampling;
    p.seed = params_.audio_sampling.seed + 1 + static_cast<uint64_t>(i);
    OMNI_ASSIGN_OR_RETURN(Sampler smp, Sampler::create(p, n_cand));
    audio_samplers_.push_back(std::move(smp));
  }
  audio_history_.assign(static_cast<size_t>(spec_.n_codebooks), {});
  // Level-major slot of each frame position: level l's codes start after all lower levels'.
  const std::vector<int> per_level = spec_.codes_per_level();
  std::vector<int> next(per_level.size(), 0);
  for (size_t l = 1; l < per_level.size(); ++l) next[l] = next[l - 1] + per_level[l - 1];
  for (int32_t l : spec_.levels) slot_of_position_.push_back(next[static_cast<size_t>(l)]++);

  const int64_t d = bb_.model().hparams().n_embd;
  row_.resize(static_cast<size_t>(d));
  dequant_.resize(static_cast<size_t>(d));
  head_logits_.resize(static_cast<size_t>(std::max(spec_.codebook_vocab, 1)) * static_cast<size_t>(spec_.n_codebooks));
  cand_.resize(static_cast<size_t>(n_cand));
  pending_.assign(static_cast<size_t>(spec_.max_delay() + 1) * static_cast<size_t>(spec_.n_codebooks), 0);
  next_audio_.assign(static_cast<size_t>(spec_.n_codebooks), spec_.pad_code);
  marker_audio_.assign(static_cast<size_t>(spec_.n_codebooks), spec_.pad_code);
  // The histories grow by one per step: reserve so that sampling never allocates.
  const size_t cap = static_cast<size_t>(std::min<int64_t>(params_.max_steps, 1 << 16)) + 1;
  text_history_.reserve(cap);
  for (auto& h : audio_history_) h.reserve(cap);
  row_.resize(static_cast<size_t>(d) * 3);  // a step's row, or the 2 marker rows at the end of audio input
  return Status::Ok();
}

void AudioOutDecoder::to_frame(const int32_t* tokens_by_position, int64_t index, CodecFrame* out) const {
  out->index = index;
  out->n_codes = spec_.n_codebooks;
  for (int32_t p = 0; p < spec_.n_codebooks; ++p) out->codes[slot_of_position_[static_cast<size_t>(p)]] = tokens_by_position[p];
}

// Input rows for parallel steps: (x_text + sum_i x_i(audio_i)) / (K + 1) for kMean, the plain sum
// for kSum, times the backbone's embedding scale (Mini-Omni scales after combining, as
// litgpt's scale_embeddings). audio ids < 0 contribute nothing (and still count in the mean).
Status AudioOutDecoder::fill_parallel_row(int32_t text_id, const int32_t* audio_ids, int64_t r, float* dst) {
  const Model& m = bb_.model();
  const int64_t d = m.hparams().n_embd, n_vocab = m.hparams().n_vocab;
  const int32_t K = spec_.n_codebooks;
  auto add_row = [&](const Weight& w, int64_t id) {
    const auto* base = static_cast<const uint8_t*>(w.data) + id * dtype_row_bytes(w.type, w.n_in);
    cpu::dequantize_row(w.type, base, dequant_.data(), d);
    for (int64_t j = 0; j < d; ++j) dst[j] += dequant_[static_cast<size_t>(j)];
  };
  const float scale = (spec_.combine == InputCombine::kMean ? 1.0f / static_cast<float>(K + 1) : 1.0f) *
                      m.hparams().embd_scale;
  std::fill(dst, dst + d, 0.0f);
  if (text_id < 0 || text_id >= n_vocab)
    return invalid_argument(fmt("text id %d at row %lld is outside the vocabulary (%lld)", text_id, (long long)r,
                                (long long)n_vocab));
  add_row(m.token_embd(), text_id);
  for (int32_t i = 0; i < K; ++i) {
    const int32_t a = audio_ids[i];
    if (a >= spec_.codebook_vocab)
      return invalid_argument(fmt("audio id %d (codebook %d, row %lld) is outside the codebook vocabulary (%d)", a, i,
                                  (long long)r, spec_.codebook_vocab));
    if (a >= 0) add_row(heads_.embd[static_cast<size_t>(i)], a);
  }
  for (int64_t j = 0; j < d; ++j) dst[j] *= scale;
  return Status::Ok();
}

// Input rows for parallel steps: (x_text + sum_i x_i(audio_i)) / (K + 1) for kMean, the plain sum
// for kSum, times the backbone's embedding scale (Mini-Omni scales after combining, as
// litgpt's scale_embeddings). audio ids < 0 contribute nothing (and still count in the mean).
Status AudioOutDecoder::eval_parallel_rows(const int32_t* text_ids, const int32_t* audio_ids, int64_t n,
                                           bool hidden_only) {
  const int64_t d = bb_.model().hparams().n_embd;
  float* rows = row_.data();
  if (n > 1) {
    batch_.resize(static_cast<size_t>(n * d));
    rows = batch_.data();
  }
  for (int64_t r = 0; r < n; ++r)
    OMNI_RETURN_IF_ERROR(fill_parallel_row(text_ids[r], audio_ids + r * spec_.n_codebooks, r, rows + r * d));
  return hidden_only ? bb_.eval_embeddings_hidden(rows, n) : bb_.eval_embeddings(rows, n, false);
}

Status AudioOutDecoder::prefill_parallel(std::span<const int32_t> text_ids, std::span<const int32_t> audio_ids) {
  if (spec_.kind != AudioOutKind::kParallel) return wrong_state("prefill_parallel needs parallel audio-out heads");
  if (text_ids.empty()) return invalid_argument("empty prompt");
  if (audio_ids.size() != text_ids.size() * static_cast<size_t>(spec_.n_codebooks))
    return invalid_argument(fmt("%zu audio ids for %zu rows of %d codebooks", audio_ids.size(), text_ids.size(),
                                spec_.n_codebooks));
  OMNI_RETURN_IF_ERROR(eval_parallel_rows(text_ids.data(), audio_ids.data(), static_cast<int64_t>(text_ids.size())));
  prefilled_ = true;
  return Status::Ok();
}

Status AudioOutDecoder::prefill_tokens(std::span<const int32_t> ids) {
  if (ids.empty()) return invalid_argument("empty prompt");
  OMNI_RETURN_IF_ERROR(bb_.eval(ids, false));
  if (spec_.kind == AudioOutKind::kInVocab && spec_.speech_start_id >= 0 && ids.back() == spec_.speech_start_id)
    in_speech_ = true;
  prefilled_ = true;
  return Status::Ok();
}

Status AudioOutDecoder::prefill_text(std::span<const int32_t> text_tokens) {
  if (spec_.kind == AudioOutKind::kInVocab) {
    std::vector<int32_t> ids(spec_.prompt_prefix);
    ids.insert(ids.end(), text_tokens.begin(), text_tokens.end());
    ids.insert(ids.end(), spec_.prompt_suffix.begin(), spec_.prompt_suffix.end());
    return prefill_tokens(ids);
  }
  std::vector<int32_t> text;
  if (spec_.text_input_id >= 0) text.push_back(spec_.text_input_id);
  text.insert(text.end(), text_tokens.begin(), text_tokens.end());
  if (spec_.text_end_id >= 0) text.push_back(spec_.text_end_id);
  if (spec_.text_answer_id >= 0) text.push_back(spec_.text_answer_id);
  std::vector<int32_t> audio(text.size() * static_cast<size_t>(spec_.n_codebooks), spec_.pad_code);
  if (spec_.answer_code >= 0 && !text.empty())
    std::fill(audio.end() - spec_.n_codebooks, audio.end(), spec_.answer_code);
  return prefill_parallel(text, audio);
}

Status AudioOutDecoder::eval_marker_row(int32_t text_id, int32_t audio_code) {
  if (text_id < 0) return Status::Ok();
  const int32_t code = audio_code >= 0 ? audio_code : spec_.pad_code;
  std::vector<int32_t> audio(static_cast<size_t>(spec_.n_codebooks), code);
  OMNI_RETURN_IF_ERROR(eval_parallel_rows(&text_id, audio.data(), 1));
  ++input_rows_;
  return Status::Ok();
}

Status AudioOutDecoder::begin_audio_input() {
  if (spec_.kind != AudioOutKind::kParallel) return wrong_state("audio input needs parallel audio-out heads");
  if (audio_input_open_ || prefilled_) return wrong_state("begin_audio_input() twice or after a prefill");
  input_rows_ = 0;
  OMNI_RETURN_IF_ERROR(eval_marker_row(spec_.text_input_id, spec_.input_code));
  audio_input_open_ = true;
  return Status::Ok();
}

void AudioOutDecoder::fill_audio_rows(const float* rows, int64_t n, float* dst) {
  const Model& m = bb_.model();
  const int64_t d = m.hparams().n_embd;
  const float k = static_cast<float>(spec_.n_codebooks);
  const float scale = (spec_.combine == InputCombine::kMean ? 1.0f / (k + 1.0f) : 1.0f) * m.hparams().embd_scale;
  float* text_row = dequant_.data();  // [d]
  std::fill(text_row, text_row + d, 0.0f);
  if (spec_.text_pad_id >= 0) {
    const Weight& w = m.token_embd();
    cpu::dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + spec_.text_pad_id * dtype_row_bytes(w.type, d),
                        text_row, d);
  }
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) dst[r * d + j] = (k * rows[r * d + j] + text_row[j]) * scale;
}

Status AudioOutDecoder::audio_input_rows(const float* rows, int64_t n) {
  if (!audio_input_open_) return wrong_state("audio_input_rows() outside begin/end_audio_input()");
  if (n <= 0 || rows == nullptr) return invalid_argument(fmt("audio input needs rows (got %lld)", (long long)n));
  const int64_t d = bb_.model().hparams().n_embd;
  batch_.resize(static_cast<size_t>(n * d));
  fill_audio_rows(rows, n, batch_.data());
  OMNI_RETURN_IF_ERROR(bb_.eval_embeddings(batch_.data(), n, false));
  input_rows_ += n;
  return Status::Ok();
}

Status AudioOutDecoder::end_audio_input() { return end_audio_input(nullptr, 0); }

Status AudioOutDecoder::end_audio_input(const float* last_rows, int64_t n) {
  if (!audio_input_open_) return wrong_state("end_audio_input() without begin_audio_input()");
  if (n < 0 || (n > 0 && last_rows == nullptr))
    return invalid_argument(fmt("end_audio_input: %lld last rows%s", (long long)n, n > 0 ? " but no data" : ""));
  const int64_t d = bb_.model().hparams().n_embd;
  // [last audio rows | end marker | answer marker], markers whose text id is -1 left out.
  batch_.resize(static_cast<size_t>((n + 2) * d));
  if (n > 0) fill_audio_rows(last_rows, n, batch_.data());
  int64_t rows = n;
  for (const auto& [text_id, code] : {std::pair<int32_t, int32_t>{spec_.text_end_id, spec_.end_code},
                                      std::pair<int32_t, int32_t>{spec_.text_answer_id, spec_.answer_code}}) {
    if (text_id < 0) continue;
    std::fill(marker_audio_.begin(), marker_audio_.end(), code >= 0 ? code : spec_.pad_code);
    OMNI_RETURN_IF_ERROR(fill_parallel_row(text_id, marker_audio_.data(), rows, batch_.data() + rows * d));
    ++rows;
  }
  if (input_rows_ + rows == 0) return wrong_state("the audio input produced no rows");
  if (rows > 0) OMNI_RETURN_IF_ERROR(bb_.eval_embeddings(batch_.data(), rows, false));
  input_rows_ += rows;
  audio_input_open_ = false;
  prefilled_ = true;
  return Status::Ok();
}

Status AudioOutDecoder::run_heads(const int32_t* active, int32_t n) {
  return bb_.run_extra_outputs(active, n, head_logits_.data());
}

StatusOr<AudioOutStep> AudioOutDecoder::step() {
  if (!prefilled_) return wrong_state("step() before a prefill");
  if (done_) return wrong_state("step() after the end of the turn");
  if (feed_pending_) {
    const auto t_fwd = Clock::now();
    if (spec_.kind == AudioOutKind::kParallel) {
      // After the end of text the text logits are never read again (step_parallel feeds the pad).
      OMNI_RETURN_IF_ERROR(eval_parallel_rows(&next_text_, next_audio_.data(), 1, text_ended_ && params_.skip_text_head));
    } else {
      OMNI_RETURN_IF_ERROR(bb_.eval(std::span<const int32_t>(&feed_token_, 1), false));
    }
    times_.forward += seconds(Clock::now() - t_fwd);
    feed_pending_ = false;
  }
  return spec_.kind == AudioOutKind::kParallel ? step_parallel() : step_in_vocab();
}

StatusOr<AudioOutStep> AudioOutDecoder::step_parallel() {
  AudioOutStep out;
  const int64_t s = n_steps_++;
  const int32_t K = spec_.n_codebooks, cs = spec_.codebook_size;
  const int64_t ring = spec_.max_delay() + 1;
  // Text: after its end the input is the pad token (Mini-Omni feeds _pad_t once _eot came out).
  const auto t_text = Clock::now();
  if (text_ended_) {
    next_text_ = spec_.text_pad_id >= 0 ? spec_.text_pad_id : spec_.text_end_id;
  } else {
    const bool cut = params_.max_text_tokens >= 0 && spec_.text_end_id >= 0 &&
                     static_cast<int64_t>(text_history_.size()) >= params_.max_text_tokens;
    const int32_t t = cut ? spec_.text_end_id : text_sampler_->sample(bb_.last_logits(), text_history_);
    text_history_.push_back(t);
    next_text_ = t;
    if (t == spec_.text_end_id) {
      text_ended_ = true;
    } else {
      out.text_token = t;
    }
  }
  const double text_sample_s = seconds(Clock::now() - t_text);
  // Codebooks: i emits its token of frame s - delays[i]; inside the delay its input is the pad.
  if (!bb_.has_hidden()) return wrong_state("the context has no hidden state (evaluate a prompt first)");
  int32_t active[kMaxFrameCodes];
  int32_t n_active = 0;
  for (int32_t i = 0; i < K; ++i)
    if (s >= spec_.delays[static_cast<size_t>(i)]) active[n_active++] = i;
  const auto t_heads = Clock::now();
  if (n_active > 0) OMNI_RETURN_IF_ERROR(run_heads(active, n_active));
  const auto t_sample = Clock::now();
  times_.heads += seconds(t_sample - t_heads);
  for (int32_t i = 0; i < K; ++i) {
    const int64_t f = s - spec_.delays[static_cast<size_t>(i)];
    if (f < 0) {
      next_audio_[static_cast<size_t>(i)] = spec_.pad_code;
      continue;
    }
    const float* head_logits = head_logits_.data() + static_cast<int64_t>(i) * spec_.codebook_vocab;
    std::copy(head_logits, head_logits + cs, cand_.begin());
    if (spec_.end_code >= 0) cand_[static_cast<size_t>(cs)] = head_logits[spec_.end_code];
    const int32_t c = audio_samplers_[static_cast<size_t>(i)].sample(cand_.data(), audio_history_[static_cast<size_t>(i)]);
    if (c == cs) {  // the end code
      next_audio_[static_cast<size_t>(i)] = spec_.end_code;
      end_frame_ = std::min(end_frame_, f);
    } else {
      next_audio_[static_cast<size_t>(i)] = c;
      audio_history_[static_cast<size_t>(i)].push_back(c);
      pending_[static_cast<size_t>((f % ring) * K + i)] = c;
    }
  }
  times_.sample += seconds(Clock::now() - t_sample) + text_sample_s;
  // Frame s - max_delay has now been emitted by every codebook.
  const int64_t f_done = s - spec_.max_delay();
  if (f_done >= 0 && f_done == next_frame_ && f_done < end_frame_) {
    to_frame(&pending_[static_cast<size_t>((f_done % ring) * K)], f_done, &out.frame);
    out.has_frame = true;
    ++next_frame_;
  }
  if (next_frame_ >= end_frame_) speech_ended_ = done_ = true;
  if (n_steps_ >= params_.max_steps) done_ = true;
  feed_pending_ = !done_;  // evaluated by the next step(), after the caller took this frame
  return out;
}

StatusOr<AudioOutStep> AudioOutDecoder::step_in_vocab() {
  AudioOutStep out;
  ++n_steps_;
  const float* logits = bb_.last_logits();
  const int32_t cs = spec_.codebook_size;
  int32_t token;
  if (!in_speech_) {
    token = text_sampler_->sample(logits, text_history_);
    text_history_.push_back(token);
    if (token == spec_.speech_start_id) {
      in_speech_ = true;
    } else if (token == spec_.speech_end_id) {
      speech_ended_ = done_ = true;
    } else {
      out.text_token = token;
    }
  } else {
    // Only the current position's band of codes, and the end marker at a frame boundary.
    const int p = frame_pos_;
    const float* band = logits + spec_.token_offset + static_cast<int64_t>(p) * cs;
    std::copy(band, band + cs, cand_.begin());
    if (spec_.speech_end_id >= 0)
      cand_[static_cast<size_t>(cs)] = p == 0 ? logits[spec_.speech_end_id] : -std::numeric_limits<float>::infinity();
    const int32_t c = audio_samplers_[static_cast<size_t>(p)].sample(cand_.data(), audio_history_[static_cast<size_t>(p)]);
    if (c == cs) {
      token = spec_.speech_end_id;
      speech_ended_ = done_ = true;
    } else {
      audio_history_[static_cast<size_t>(p)].push_back(c);
      token = spec_.token_offset + c + cs * p;
      frame_tokens_[p] = c;
      if (++frame_pos_ == spec_.n_codebooks) {
        to_frame(frame_tokens_, next_frame_++, &out.frame);
        out.has_frame = true;
        frame_pos_ = 0;
      }
    }
  }
  if (n_steps_ >= params_.max_steps) done_ = true;
  feed_token_ = token;
  feed_pending_ = !done_;
  return out;
}

}  // namespace omni
