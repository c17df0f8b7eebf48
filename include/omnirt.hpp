// omnirt.hpp — a thin RAII layer over the C API (include/omnirt.h) for C++17 and later.
// Handles become std::unique_ptr with the matching destroy; errors stay values (no exceptions);
// generate() takes any callable. Thread-safety: as for the handles of omnirt.h.
//
//   omnirt::Error err;
//   auto model = omnirt::load_model("model.gguf", &err);
//   if (!model) { std::fprintf(stderr, "%s\n", err.message.c_str()); return 1; }
//   auto engine = omnirt::create_engine(nullptr, &err);
//   auto session = omnirt::create_session(engine.get(), model.get(), nullptr, &err);
//   omni_session_append_chat(session.get(), "user", "Hello");
//   omnirt::generate(session.get(), 64, [](omni_token, std::string_view piece) {
//     std::fwrite(piece.data(), 1, piece.size(), stdout);
//     return true;  // keep going
//   });
#ifndef OMNIRT_HPP
#define OMNIRT_HPP

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "omnirt.h"

namespace omnirt {

struct ModelDeleter {
  void operator()(omni_model* m) const noexcept { omni_model_destroy(m); }
};
struct EngineDeleter {
  void operator()(omni_engine* e) const noexcept { omni_engine_destroy(e); }
};
struct SessionDeleter {
  void operator()(omni_session* s) const noexcept { omni_session_destroy(s); }
};
using ModelPtr = std::unique_ptr<omni_model, ModelDeleter>;
using EnginePtr = std::unique_ptr<omni_engine, EngineDeleter>;
using SessionPtr = std::unique_ptr<omni_session, SessionDeleter>;

// A status and, on failure, the message omni_last_error() held right after the call.
struct Error {
  omni_status status = OMNI_OK;
  std::string message;
  explicit operator bool() const { return status != OMNI_OK; }  // true when it is an error
};

inline Error check(omni_status status) {
  return status == OMNI_OK ? Error{} : Error{status, omni_last_error()};
}

inline ModelPtr load_model(const char* path, Error* err = nullptr,
                           const omni_model_params* params = nullptr) {
  omni_model* m = nullptr;
  Error e = check(omni_model_load(path, params, &m));
  if (err) *err = e;
  return ModelPtr(m);
}

inline EnginePtr create_engine(const omni_engine_params* params = nullptr, Error* err = nullptr) {
  omni_engine* h = nullptr;
  Error e = check(omni_engine_create(params, &h));
  if (err) *err = e;
  return EnginePtr(h);
}

inline SessionPtr create_session(omni_engine* engine, const omni_model* model,
                                 const omni_session_params* params = nullptr,
                                 Error* err = nullptr) {
  omni_session* h = nullptr;
  Error e = check(omni_session_create(engine, model, params, &h));
  if (err) *err = e;
  return SessionPtr(h);
}

// A model with a vision projector (mmproj) loaded alongside; nullptr path: none.
inline ModelPtr load_model_with_mmproj(const char* path, const char* mmproj_path,
                                       Error* err = nullptr) {
  omni_model_params p = omni_model_default_params();
  p.mmproj_path = mmproj_path;
  return load_model(path, err, &p);
}

// Image file bytes as the C API takes them (the bytes must outlive the call that uses them).
inline omni_image image_view(const std::vector<uint8_t>& bytes) {
  return omni_image{bytes.data(), bytes.size()};
}

// Text with OMNI_IMAGE_MARKER at each image's place (see omni_session_append_prompt).
inline Error append_prompt(omni_session* session, const char* text,
                           const std::vector<omni_image>& images,
                           uint32_t flags = OMNI_TOKENIZE_ADD_BOS) {
  return check(omni_session_append_prompt(session, text, images.data(), images.size(), flags));
}

// on_token(omni_token, std::string_view piece) -> bool: false stops generation. The callable
// must not throw (an exception cannot cross the C library).
template <class F>
Error generate(omni_session* session, int32_t max_tokens, F&& on_token) {
  auto trampoline = [](omni_token token, const char* piece, size_t len, void* user) -> int {
    F& f = *static_cast<std::remove_reference_t<F>*>(user);
    return f(token, std::string_view(piece, len)) ? 0 : 1;
  };
  return check(omni_session_generate(session, max_tokens, trampoline,
                                     const_cast<void*>(static_cast<const void*>(&on_token))));
}

}  // namespace omnirt

#endif  // OMNIRT_HPP
