// The C API: library queries, errors, models, tokenizer and engines. Sessions: session.cpp.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "include/omnirt.h"
#include "kernels/core/status.h"
#include "kernels/cpu/ops_cpu.h"
#include "runtime/capi/capi_internal.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/gguf.h"
#include "runtime/model/model.h"
#include "runtime/model/multimodal.h"
#include "runtime/model/vision_loader.h"

#ifndef OMNIRT_VERSION
#define OMNIRT_VERSION "0.0.0"
#endif

// ---- ABI: append only. These fail to compile when a value or a field moves. -----------------
static_assert(OMNI_OK == static_cast<int>(omni::StatusCode::kOk));
static_assert(OMNI_ERR_INVALID_ARGUMENT == static_cast<int>(omni::StatusCode::kInvalidArgument));
static_assert(OMNI_ERR_NOT_FOUND == static_cast<int>(omni::StatusCode::kNotFound));
static_assert(OMNI_ERR_IO == static_cast<int>(omni::StatusCode::kIoError));
static_assert(OMNI_ERR_CORRUPT_FILE == static_cast<int>(omni::StatusCode::kCorruptFile));
static_assert(OMNI_ERR_UNSUPPORTED == static_cast<int>(omni::StatusCode::kUnsupported));
static_assert(OMNI_ERR_OUT_OF_RANGE == static_cast<int>(omni::StatusCode::kOutOfRange));
static_assert(OMNI_ERR_OUT_OF_MEMORY == static_cast<int>(omni::StatusCode::kOutOfMemory));
static_assert(OMNI_ERR_WRONG_STATE == static_cast<int>(omni::StatusCode::kWrongState));
static_assert(OMNI_ERR_INTERNAL == static_cast<int>(omni::StatusCode::kInternal));
static_assert(OMNI_ERR_CANCELLED == static_cast<int>(omni::StatusCode::kCancelled));
static_assert(OMNI_STOP_CONTEXT_FULL == 5 && OMNI_KV_F32 == 1 && OMNI_DEVICE_CPU == 0);
static_assert(OMNI_TOKENIZE_ADD_BOS == 1 && OMNI_TOKENIZE_PARSE_SPECIAL == 2);
static_assert(sizeof(omni_token) == 4);
#if defined(__x86_64__) || defined(__aarch64__)  // LP64 offsets, as shipped
static_assert(offsetof(omni_model_params, validate_only) == 8);
static_assert(offsetof(omni_model_params, mmproj_path) == 16);
static_assert(offsetof(omni_vision_stats, encodes) == 8);
static_assert(offsetof(omni_vision_stats, encode_ms) == 48);
static_assert(offsetof(omni_vision_stats, image_size) == 56);
static_assert(offsetof(omni_image, size) == 8);
static_assert(offsetof(omni_audio_params, chunk_ms) == 8);
static_assert(offsetof(omni_engine_params, device) == 8);
static_assert(offsetof(omni_engine_params, n_threads) == 12);
static_assert(offsetof(omni_session_params, n_ctx) == 8);
static_assert(offsetof(omni_session_params, n_batch) == 12);
static_assert(offsetof(omni_session_params, kv_type) == 16);
static_assert(offsetof(omni_session_params, n_threads) == 20);
static_assert(offsetof(omni_session_params, temperature) == 24);
static_assert(offsetof(omni_session_params, top_k) == 28);
static_assert(offsetof(omni_session_params, top_p) == 32);
static_assert(offsetof(omni_session_params, min_p) == 36);
static_assert(offsetof(omni_session_params, repeat_penalty) == 40);
static_assert(offsetof(omni_session_params, repeat_last_n) == 44);
static_assert(offsetof(omni_session_params, seed) == 48);
#endif
static_assert(std::is_standard_layout_v<omni_session_params>);

namespace omni::capi {
namespace {
thread_local std::string t_last_error;
}  // namespace

omni_status set_error(omni_status code, const char* message) noexcept {
  try {
    t_last_error = message ? message : "";
  } catch (...) {
    t_last_error.clear();  // no memory even for the message: the code still tells
  }
  return code;
}

omni_status set_error(omni_status code, const std::string& message) noexcept {
  return set_error(code, message.c_str());
}

omni_status from_status(const Status& status) noexcept {
  if (status.ok()) return OMNI_OK;
  return set_error(static_cast<omni_status>(status.code()), status.message());
}

omni_status from_status(const Status& status, const char* fn) noexcept {
  if (status.ok()) return OMNI_OK;
  try {
    return set_error(static_cast<omni_status>(status.code()), std::string(fn) + ": " + status.message());
  } catch (...) {
    return from_status(status);
  }
}

namespace {

int version_part(int index) {
  const char* p = OMNIRT_VERSION;
  for (int i = 0; i < index && p; ++i) {
    p = std::strchr(p, '.');
    if (p) ++p;
  }
  return p ? std::atoi(p) : 0;
}

// The model file's own vision component (omni model files), if it has one.
Status attach_own_vision(omni_model* handle) {
  const gguf::GgufFile& f = handle->model->file();
  if (!has_vision_component(f)) return Status::Ok();
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<VisionModel> v, load_vision(f));
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<ImageEncoder> enc,
                        ImageEncoder::create(std::move(v), handle->model, f.path() + "#vision",
                                             handle->model->hparams().n_embd));
  handle->vision->encoder = std::move(enc);
  return Status::Ok();
}

// An mmproj file's components: its vision encoder, its audio encoder (Ultravox, Qwen2-Audio), or
// both (Qwen2.5-Omni's). Each is loaded and checked before either is attached (all or nothing);
// a component the model already has is OMNI_ERR_WRONG_STATE. A file with neither goes to the
// vision loader, whose message names what is missing.
omni_status attach_mmproj(omni_model* handle, const std::string& path, const char* fn) {
  bool audio = false;
  {
    auto probe = gguf::GgufFile::open(path);
    if (!probe.ok()) {
      return from_status(Status(probe.status().code(), "mmproj '" + path + "': " + probe.status().message()), fn);
    }
    audio = has_audio_component(**probe);
    const bool vision = has_vision_component(**probe) || !audio;
    if (vision && handle->vision->get()) {
      return set_error(OMNI_ERR_WRONG_STATE, std::string(fn) + ": the model already has a vision encoder");
    }
    if (audio && handle->audio->get()) {
      return set_error(OMNI_ERR_WRONG_STATE, std::string(fn) + ": the model already has an audio encoder");
    }
    if (!vision) {
      if (Status st = attach_audio_mmproj(handle, path); !st.ok()) return from_status(st, fn);
      return OMNI_OK;
    }
  }
  auto v = load_vision(path);
  if (!v.ok()) return from_status(Status(v.status().code(), "mmproj '" + path + "': " + v.status().message()), fn);
  auto enc = ImageEncoder::create(std::move(v).value(), nullptr, path,
                                  handle->model->hparams().n_embd);
  if (!enc.ok()) {
    return from_status(Status(enc.status().code(), "mmproj '" + path + "': " + enc.status().message()), fn);
  }
  if (audio) {  // attached first: a failure leaves the model as it was
    if (Status st = attach_audio_mmproj(handle, path); !st.ok()) return from_status(st, fn);
  }
  std::lock_guard<std::mutex> lock(handle->vision->mu);
  handle->vision->encoder = std::move(enc).value();
  return OMNI_OK;
}

// Returns the model or records an error; for the value-returning queries.
const Model* model_or_error(const omni_model* m, const char* fn) {
  if (m == nullptr || !m->model) {
    set_error(OMNI_ERR_INVALID_ARGUMENT, std::string(fn) + ": model is NULL");
    return nullptr;
  }
  return m->model.get();
}

}  // namespace
}  // namespace omni::capi

using omni::capi::from_status;
using omni::capi::model_or_error;
using omni::capi::set_error;

extern "C" {

// ---- library -----------------------------------------------------------------------------

OMNI_API const char* omni_last_error(void) { return omni::capi::t_last_error.c_str(); }

OMNI_API const char* omni_status_name(omni_status status) {
  if (status < OMNI_OK || status > OMNI_ERR_CANCELLED) return "unknown status";
  return omni::status_code_name(static_cast<omni::StatusCode>(status));
}

OMNI_API const char* omni_version(void) { return OMNIRT_VERSION; }
OMNI_API int omni_version_major(void) { return omni::capi::version_part(0); }
OMNI_API int omni_version_minor(void) { return omni::capi::version_part(1); }
OMNI_API int omni_version_patch(void) { return omni::capi::version_part(2); }

OMNI_API const char* omni_backends(void) {
#ifdef OMNIRT_HAVE_CUDA
  return "cpu,cuda";
#else
  return "cpu";
#endif
}

OMNI_API const char* omni_cpu_isa(void) {
  OMNI_API_BEGIN
  return omni::cpu_isa_name(omni::cpu_isa());
  OMNI_API_END_RETURN("unknown")
}

OMNI_API const char* omni_cpu_features(void) {
  OMNI_API_BEGIN
  return omni::cpu_features_string();
  OMNI_API_END_RETURN("")
}

// ---- model -------------------------------------------------------------------------------

OMNI_API omni_model_params omni_model_default_params(void) {
  omni_model_params p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  return p;
}

OMNI_API omni_status omni_model_load(const char* path, const omni_model_params* params,
                                     omni_model** out) {
  OMNI_API_BEGIN
  OMNI_CHECK_ARG(out != nullptr, "omni_model_load: out is NULL");
  *out = nullptr;
  OMNI_CHECK_ARG(path != nullptr, "omni_model_load: path is NULL");
  omni_model_params p = omni_model_default_params();
  if (omni_status s = read_params(params, &p, "omni_model_params"); s != OMNI_OK) return s;

  omni::ModelParams mp;
  mp.validate_only = p.validate_only != 0;
  auto loaded = omni::Model::load(path, mp);
  if (!loaded.ok()) return from_status(loaded.status());
  auto handle = std::make_unique<omni_model>();
  handle->model = std::shared_ptr<const omni::Model>(std::move(loaded).value());
  handle->arch = omni::arch_name(handle->model->hparams().arch);
  handle->name = handle->model->name();
  handle->chat_template = omni::chat_template_name(handle->model->chat_template());
  handle->has_tokenizer = !mp.validate_only;
  if (p.mmproj_path != nullptr) {
    if (omni_status st = omni::capi::attach_mmproj(handle.get(), p.mmproj_path, "omni_model_load");
        st != OMNI_OK) {
      return st;
    }
  }
  // An mmproj's components come before the file's own.
  if (!handle->vision->get()) {
    if (omni::Status st = omni::capi::attach_own_vision(handle.get()); !st.ok()) {
      return from_status(st, "omni_model_load: the model's vision component");
    }
  }
  if (!handle->audio->get()) {
    if (omni::Status st = omni::capi::attach_own_audio(handle.get()); !st.ok()) {
      return from_status(st, "omni_model_load: the model's audio component");
    }
  }
  *out = handle.release();
  return OMNI_OK;
  OMNI_API_END
}

OMNI_API void omni_model_destroy(omni_model* model) { delete model; }

OMNI_API omni_status omni_model_load_mmproj(omni_model* model, const char* path) {
  OMNI_API_BEGIN
  OMNI_CHECK_ARG(model != nullptr && model->model, "omni_model_load_mmproj: model is NULL");
  OMNI_CHECK_ARG(path != nullptr, "omni_model_load_mmproj: path is NULL");
  return omni::capi::attach_mmproj(model, path, "omni_model_load_mmproj");
  OMNI_API_END
}

OMNI_API int omni_model_has_vision(const omni_model* model) {
  OMNI_API_BEGIN
  return model_or_error(model, "omni_model_has_vision") && model->vision->get() ? 1 : 0;
  OMNI_API_END_RETURN(0)
}

OMNI_API omni_status omni_model_vision_stats(const omni_model* model, omni_vision_stats* out) {
  OMNI_API_BEGIN
  if (!model_or_error(model, "omni_model_vision_stats")) return OMNI_ERR_INVALID_ARGUMENT;
  OMNI_CHECK_ARG(out != nullptr, "omni_model_vision_stats: out is NULL");
  OMNI_CHECK_ARG(out->struct_size >= sizeof(size_t),
                 omni::fmt("omni_model_vision_stats: out->struct_size is %zu: set it to "
                           "sizeof(omni_vision_stats)", out->struct_size));
  std::shared_ptr<omni::ImageEncoder> enc = model->vision->get();
  if (!enc) {
    return set_error(OMNI_ERR_UNSUPPORTED, "omni_model_vision_stats: the model has no vision encoder");
  }
  const omni::EmbeddingCacheStats cs = enc->cache_stats();
  omni_vision_stats v;
  std::memset(&v, 0, sizeof v);
  v.struct_size = sizeof v;
  v.encodes = enc->n_encodes();
  v.cache_hits = cs.hits;
  v.cache_misses = cs.misses;
  v.cache_entries = cs.entries;
  v.cache_bytes = cs.bytes;
  v.encode_ms = enc->total_encode_ms();
  v.image_size = static_cast<int32_t>(enc->hparams().image_size);
  v.n_image_embd = static_cast<int32_t>(enc->n_embd_out());
  const size_t n = out->struct_size < sizeof v ? out->struct_size : sizeof v;
  const size_t caller_size = out->struct_size;
  std::memcpy(static_cast<void*>(out), &v, n);
  out->struct_size = caller_size;
  return OMNI_OK;
  OMNI_API_END
}

OMNI_API const char* omni_model_arch(const omni_model* model) {
  return model_or_error(model, "omni_model_arch") ? model->arch.c_str() : "";
}
OMNI_API const char* omni_model_name(const omni_model* model) {
  return model_or_error(model, "omni_model_name") ? model->name.c_str() : "";
}
OMNI_API const char* omni_model_chat_template(const omni_model* model) {
  return model_or_error(model, "omni_model_chat_template") ? model->chat_template.c_str() : "";
}
OMNI_API int32_t omni_model_n_vocab(const omni_model* model) {
  const omni::Model* m = model_or_error(model, "omni_model_n_vocab");
  return m ? static_cast<int32_t>(m->hparams().n_vocab) : 0;
}
OMNI_API int32_t omni_model_n_ctx_train(const omni_model* model) {
  const omni::Model* m = model_or_error(model, "omni_model_n_ctx_train");
  return m ? static_cast<int32_t>(m->hparams().n_ctx_train) : 0;
}
OMNI_API int32_t omni_model_n_embd(const omni_model* model) {
  const omni::Model* m = model_or_error(model, "omni_model_n_embd");
  return m ? static_cast<int32_t>(m->hparams().n_embd) : 0;
}
OMNI_API int32_t omni_model_n_layer(const omni_model* model) {
  const omni::Model* m = model_or_error(model, "omni_model_n_layer");
  return m ? static_cast<int32_t>(m->hparams().n_layer) : 0;
}
OMNI_API uint64_t omni_model_weight_bytes(const omni_model* model) {
  const omni::Model* m = model_or_error(model, "omni_model_weight_bytes");
  return m ? m->weight_bytes() : 0;
}
OMNI_API int omni_model_is_synthetic(const omni_model* model) {
  const omni::Model* m = model_or_error(model, "omni_model_is_synthetic");
  return m && m->is_synthetic() ? 1 : 0;
}

namespace {
// The tokenizer, or an error (NULL model, or one loaded with validate_only).
const omni::Tokenizer* tokenizer_or_error(const omni_model* model, const char* fn) {
  const omni::Model* m = model_or_error(model, fn);
  if (!m) return nullptr;
  if (!model->has_tokenizer) {
    set_error(OMNI_ERR_WRONG_STATE, std::string(fn) + ": the model was loaded without a tokenizer");
    return nullptr;
  }
  return &m->tokenizer();
}
}  // namespace

OMNI_API omni_token omni_model_token_bos(const omni_model* model) {
  OMNI_API_BEGIN
  const omni::Tokenizer* t = tokenizer_or_error(model, "omni_model_token_bos");
  return t && t->bos() >= 0 ? t->bos() : OMNI_TOKEN_NONE;
  OMNI_API_END_RETURN(OMNI_TOKEN_NONE)
}
OMNI_API omni_token omni_model_token_eos(const omni_model* model) {
  OMNI_API_BEGIN
  const omni::Tokenizer* t = tokenizer_or_error(model, "omni_model_token_eos");
  return t && t->eos() >= 0 ? t->eos() : OMNI_TOKEN_NONE;
  OMNI_API_END_RETURN(OMNI_TOKEN_NONE)
}
OMNI_API int omni_model_token_is_eog(const omni_model* model, omni_token token) {
  OMNI_API_BEGIN
  const omni::Tokenizer* t = tokenizer_or_error(model, "omni_model_token_is_eog");
  if (!t || token < 0 || token >= t->n_vocab()) return 0;
  return t->is_end_of_generation(token) ? 1 : 0;
  OMNI_API_END_RETURN(0)
}

OMNI_API omni_status omni_model_meta_string(const omni_model* model, const char* key, char* buf,
                                            size_t cap, size_t* len) {
  OMNI_API_BEGIN
  const omni::Model* m = model_or_error(model, "omni_model_meta_string");
  if (!m) return OMNI_ERR_INVALID_ARGUMENT;
  OMNI_CHECK_ARG(key != nullptr, "omni_model_meta_string: key is NULL");
  OMNI_CHECK_ARG(len != nullptr, "omni_model_meta_string: len is NULL");
  OMNI_CHECK_ARG(buf != nullptr || cap == 0, "omni_model_meta_string: buf is NULL but cap > 0");
  const omni::gguf::Value* v = m->file().find(key);
  if (!v) return set_error(OMNI_ERR_NOT_FOUND, std::string("metadata key '") + key + "' not found");
  const std::string text =
      v->type == omni::gguf::ValueType::kString ? std::string(v->str) : v->to_string();
  *len = text.size();
  if (cap < text.size() + 1) {
    return set_error(OMNI_ERR_OUT_OF_RANGE,
                     omni::fmt("omni_model_meta_string: '%s' needs %zu bytes, buffer has %zu", key,
                               text.size() + 1, cap));
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  return OMNI_OK;
  OMNI_API_END
}

// ---- tokenizer ---------------------------------------------------------------------------

OMNI_API omni_status omni_tokenize(const omni_model* model, const char* text, uint32_t flags,
                                   omni_token* tokens, size_t cap, size_t* n_tokens) {
  OMNI_API_BEGIN
  const omni::Tokenizer* t = tokenizer_or_error(model, "omni_tokenize");
  if (!t) return model ? OMNI_ERR_WRONG_STATE : OMNI_ERR_INVALID_ARGUMENT;
  OMNI_CHECK_ARG(text != nullptr, "omni_tokenize: text is NULL");
  OMNI_CHECK_ARG(n_tokens != nullptr, "omni_tokenize: n_tokens is NULL");
  OMNI_CHECK_ARG(tokens != nullptr || cap == 0, "omni_tokenize: tokens is NULL but cap > 0");
  OMNI_CHECK_ARG((flags & ~3u) == 0, omni::fmt("omni_tokenize: unknown flags 0x%x", flags));
  const bool add_bos = (flags & OMNI_TOKENIZE_ADD_BOS) && t->add_bos() && t->bos() >= 0;
  auto ids = t->encode(text, add_bos, (flags & OMNI_TOKENIZE_PARSE_SPECIAL) != 0);
  if (!ids.ok()) return from_status(ids.status());
  *n_tokens = ids->size();
  if (cap < ids->size()) {
    return set_error(OMNI_ERR_OUT_OF_RANGE, omni::fmt("omni_tokenize: text needs %zu tokens, buffer "
                                                      "holds %zu", ids->size(), cap));
  }
  if (!ids->empty()) std::memcpy(tokens, ids->data(), ids->size() * sizeof(omni_token));
  return OMNI_OK;
  OMNI_API_END
}

OMNI_API omni_status omni_detokenize(const omni_model* model, const omni_token* tokens,
                                     size_t n_tokens, uint32_t flags, char* buf, size_t cap,
                                     size_t* len) {
  OMNI_API_BEGIN
  const omni::Tokenizer* t = tokenizer_or_error(model, "omni_detokenize");
  if (!t) return model ? OMNI_ERR_WRONG_STATE : OMNI_ERR_INVALID_ARGUMENT;
  OMNI_CHECK_ARG(tokens != nullptr || n_tokens == 0, "omni_detokenize: tokens is NULL");
  OMNI_CHECK_ARG(len != nullptr, "omni_detokenize: len is NULL");
  OMNI_CHECK_ARG(buf != nullptr || cap == 0, "omni_detokenize: buf is NULL but cap > 0");
  OMNI_CHECK_ARG((flags & ~1u) == 0, omni::fmt("omni_detokenize: unknown flags 0x%x", flags));
  for (size_t i = 0; i < n_tokens; ++i) {
    if (tokens[i] < 0 || tokens[i] >= t->n_vocab()) {
      return set_error(OMNI_ERR_OUT_OF_RANGE,
                       omni::fmt("omni_detokenize: token %d at index %zu is outside [0, %d)",
                                 tokens[i], i, t->n_vocab()));
    }
  }
  auto text = t->decode(std::span<const int32_t>(tokens, n_tokens),
                        (flags & OMNI_DETOKENIZE_RENDER_SPECIAL) != 0);
  if (!text.ok()) return from_status(text.status());
  *len = text->size();
  if (cap < text->size() + 1) {
    return set_error(OMNI_ERR_OUT_OF_RANGE, omni::fmt("omni_detokenize: text needs %zu bytes, "
                                                      "buffer has %zu", text->size() + 1, cap));
  }
  std::memcpy(buf, text->data(), text->size());
  buf[text->size()] = '\0';
  return OMNI_OK;
  OMNI_API_END
}

// ---- engine ------------------------------------------------------------------------------

OMNI_API omni_engine_params omni_engine_default_params(void) {
  omni_engine_params p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.device = OMNI_DEVICE_CPU;
  p.n_threads = 0;
  return p;
}

OMNI_API omni_status omni_engine_create(const omni_engine_params* params, omni_engine** out) {
  OMNI_API_BEGIN
  OMNI_CHECK_ARG(out != nullptr, "omni_engine_create: out is NULL");
  *out = nullptr;
  omni_engine_params p = omni_engine_default_params();
  if (omni_status s = read_params(params, &p, "omni_engine_params"); s != OMNI_OK) return s;
  if (p.device != OMNI_DEVICE_CPU) {
    return set_error(OMNI_ERR_UNSUPPORTED,
                     omni::fmt("omni_engine_create: device %d is not supported; this build runs "
                               "on OMNI_DEVICE_CPU (0)", p.device));
  }
  OMNI_CHECK_ARG(p.n_threads >= 0 && p.n_threads <= 1024,
                 omni::fmt("omni_engine_create: n_threads %d is outside [0, 1024]", p.n_threads));
  auto engine = std::make_unique<omni_engine>();
  engine->device = p.device;
  engine->n_threads = p.n_threads;
  *out = engine.release();
  return OMNI_OK;
  OMNI_API_END
}

OMNI_API void omni_engine_destroy(omni_engine* engine) { delete engine; }

}  // extern "C"
