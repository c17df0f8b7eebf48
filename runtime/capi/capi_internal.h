// Internals shared by the C API's translation units: the handle structs behind the opaque
// types of include/omnirt.h and the boundary macros that turn every exception into a status.
#pragma once

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "include/omnirt.h"
#include "kernels/core/status.h"
#include "audio/adapter/audio_stream.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "runtime/model/multimodal.h"
#include "runtime/model/sampler.h"
#include "runtime/model/tokenizer.h"

namespace omni::capi {
// A model's vision component: set at load (the model file's own, or an mmproj file) or later by
// omni_model_load_mmproj. Model and sessions share the slot, so sessions see a later attach.
struct VisionSlot {
  mutable std::mutex mu;
  std::shared_ptr<ImageEncoder> encoder;
  std::shared_ptr<ImageEncoder> get() const {
    std::lock_guard<std::mutex> lock(mu);
    return encoder;
  }
};

// A model's audio encoder (Whisper + adapter): the model file's own, or an mmproj file's. The
// pointer keeps whatever owns the mapped weights alive (the Model, for a component inside its
// file). Shared by model and sessions like VisionSlot.
struct AudioSlot {
  mutable std::mutex mu;
  std::shared_ptr<const AudioEncoderModel> encoder;
  std::shared_ptr<const AudioEncoderModel> get() const {
    std::lock_guard<std::mutex> lock(mu);
    return encoder;
  }
};

// One utterance being streamed into a session (omni_session_audio_begin .. _audio_end).
struct AudioInput {
  std::shared_ptr<const AudioEncoderModel> encoder;  // the weights the stream reads
  std::unique_ptr<audio::AudioStream> stream;
  int64_t rows = 0;       // rows evaluated into the session since begin
  bool feeding = false;   // inside the stream's sink: eval_input lets audio rows through
};

}  // namespace omni::capi

struct omni_model {
  std::shared_ptr<const omni::Model> model;  // sessions hold copies: destroy order is free
  std::string arch, name, chat_template;      // cached so the C strings live as the handle
  bool has_tokenizer = true;                  // false when loaded with validate_only
  std::shared_ptr<omni::capi::VisionSlot> vision = std::make_shared<omni::capi::VisionSlot>();
  std::shared_ptr<omni::capi::AudioSlot> audio = std::make_shared<omni::capi::AudioSlot>();
};

struct omni_engine {
  int32_t device = OMNI_DEVICE_CPU;
  int32_t n_threads = 0;  // 0 = all online cores
};

struct omni_session {
  std::shared_ptr<const omni::Model> model;
  std::unique_ptr<omni::Context> ctx;
  omni::SamplerParams sampler_params;
  std::optional<omni::Sampler> sampler;
  std::shared_ptr<omni::capi::VisionSlot> vision;  // the model's
  std::shared_ptr<omni::capi::AudioSlot> audio;    // the model's
  std::unique_ptr<omni::capi::AudioInput> audio_in;  // non-null between audio_begin and _end
  std::vector<int32_t> history;  // the tokens in the KV cache, in order (image rows are not
                                 // tokens: ctx->n_past() counts every position)
  bool has_logits = false;       // ctx->last_logits() belongs to the last position
  std::atomic<bool> stop_requested{false};
  omni_stop_reason stop_reason = OMNI_STOP_NONE;
  std::vector<omni::ChatMessage> pending_system;  // rendered with the next chat message
  bool assistant_turn_open = false;  // a user turn ended with the assistant's opener
};

namespace omni::capi {

// Records `message` as this thread's last error and returns `code`. Never throws.
omni_status set_error(omni_status code, const char* message) noexcept;
omni_status set_error(omni_status code, const std::string& message) noexcept;
// OMNI_OK for an ok Status; otherwise records its message.
omni_status from_status(const Status& status) noexcept;
// The same, the message prefixed with "<fn>: ".
omni_status from_status(const Status& status, const char* fn) noexcept;

// The one path every kind of input (tokens, image rows, audio rows) takes into a session:
// chunks evaluated after the conversation so far, all or nothing (session.cpp).
omni_status eval_input(omni_session* s, const std::vector<InputChunk>& chunks, const char* fn);
// One chat message (role, content) with images at its markers (or, without markers, opening
// the message); omni_session_append_chat is this with no images. fn names the caller.
omni_status append_chat(omni_session* s, const char* role, const char* content,
                        const std::vector<std::shared_ptr<const EmbeddingRows>>& images,
                        const char* fn);
// OMNI_ERR_WRONG_STATE (naming fn) while an utterance is open: other input waits for
// omni_session_audio_end (audio.cpp).
omni_status refuse_during_audio(const omni_session* s, const char* fn);
// The model file's own audio component, if it has one (omnirt.cpp, at load).
Status attach_own_audio(omni_model* handle);
// Loads an mmproj file's audio encoder into the model (its output width must be n_embd).
Status attach_audio_mmproj(omni_model* handle, const std::string& path);
// Whether BOS goes first now: flags ask for it, the session is empty, the tokenizer uses one.
bool add_bos_now(const omni_session* s, uint32_t flags);

}  // namespace omni::capi

// Every entry point's body sits between these: nothing thrown escapes into C.
#define OMNI_API_BEGIN try {
#define OMNI_API_END                                                                          \
  }                                                                                           \
  catch (const std::bad_alloc&) {                                                             \
    return ::omni::capi::set_error(OMNI_ERR_OUT_OF_MEMORY, "out of memory");                  \
  }                                                                                           \
  catch (const std::exception& e) {                                                           \
    return ::omni::capi::set_error(OMNI_ERR_INTERNAL, std::string("unexpected exception: ") + \
                                                          e.what());                          \
  }                                                                                           \
  catch (...) {                                                                               \
    return ::omni::capi::set_error(OMNI_ERR_INTERNAL, "unexpected exception");                \
  }
// For entry points that return a value instead of a status: `fallback` on any exception.
#define OMNI_API_END_RETURN(fallback)                                     \
  }                                                                       \
  catch (...) {                                                           \
    ::omni::capi::set_error(OMNI_ERR_INTERNAL, "unexpected exception");   \
    return fallback;                                                      \
  }

#define OMNI_CHECK_ARG(cond, msg) \
  do {                            \
    if (!(cond)) return ::omni::capi::set_error(OMNI_ERR_INVALID_ARGUMENT, msg); \
  } while (0)

// Copies the caller's params over the defaults, reading only the bytes the caller's header knew
// (struct_size), so structs can grow at the end without breaking old programs.
template <class T>
omni_status read_params(const T* user, T* out, const char* what) {
  if (user == nullptr) return OMNI_OK;  // defaults
  if (user->struct_size < sizeof(size_t)) {
    return omni::capi::set_error(
        OMNI_ERR_INVALID_ARGUMENT,
        omni::fmt("%s.struct_size is %zu: set it with %s_default_params() or sizeof", what,
                  user->struct_size, what));
  }
  const size_t n = user->struct_size < sizeof(T) ? user->struct_size : sizeof(T);
  std::memcpy(static_cast<void*>(out), static_cast<const void*>(user), n);
  out->struct_size = sizeof(T);
  return OMNI_OK;
}
