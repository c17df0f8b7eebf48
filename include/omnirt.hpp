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

// Decoded RGB8 pixels, rows packed (stride 3 * width) unless given (omni_session_append_image_rgb).
inline Error append_image_rgb(omni_session* session, const uint8_t* rgb, int32_t width,
                              int32_t height, size_t stride = 0,
                              uint32_t flags = OMNI_TOKENIZE_ADD_BOS) {
  if (stride == 0) stride = size_t(width > 0 ? width : 0) * 3;
  return check(omni_session_append_image_rgb(session, rgb, width, height, stride, flags));
}

// A video's frames sampled at fps as consecutive images (omni_session_append_video_file).
inline Error append_video_file(omni_session* session, const char* path, double fps = 1.0,
                               int32_t max_frames = 8, uint32_t flags = OMNI_TOKENIZE_ADD_BOS) {
  return check(omni_session_append_video_file(session, path, fps, max_frames, flags));
}

// One utterance streamed into a session (omni_session_audio_begin / _append_audio / _end). The
// destructor ends an utterance still open (its status is dropped: call end() to see it).
// Move-only; the session must outlive it.
//
//   omnirt::Error err;
//   auto audio = omnirt::AudioInput::begin(session.get(), nullptr, &err);
//   while (capturing) err = audio.append(pcm.data(), pcm.size());   // 16 kHz mono
//   int64_t rows = 0;
//   err = audio.end(&rows);
class AudioInput {
 public:
  AudioInput() = default;
  static AudioInput begin(omni_session* session, const omni_audio_params* params = nullptr,
                          Error* err = nullptr) {
    Error e = check(omni_session_audio_begin(session, params));
    if (err) *err = e;
    AudioInput a;
    if (!e) a.session_ = session;
    return a;
  }
  AudioInput(AudioInput&& o) noexcept : session_(o.session_) { o.session_ = nullptr; }
  AudioInput& operator=(AudioInput&& o) noexcept {
    if (this != &o) {
      close();
      session_ = o.session_;
      o.session_ = nullptr;
    }
    return *this;
  }
  AudioInput(const AudioInput&) = delete;
  AudioInput& operator=(const AudioInput&) = delete;
  ~AudioInput() { close(); }

  // True while the utterance is open (begin succeeded, end not called).
  explicit operator bool() const { return session_ != nullptr; }
  Error append(const float* pcm, size_t n_samples, int32_t sample_rate = 16000) {
    return check(omni_session_append_audio(session_, pcm, n_samples, sample_rate));
  }
  Error append(const std::vector<float>& pcm, int32_t sample_rate = 16000) {
    return append(pcm.data(), pcm.size(), sample_rate);
  }
  Error end(int64_t* n_rows_appended = nullptr) {
    omni_session* s = session_;
    session_ = nullptr;
    return check(omni_session_audio_end(s, n_rows_appended));
  }

 private:
  void close() noexcept {
    if (session_) omni_session_audio_end(session_, nullptr);
    session_ = nullptr;
  }
  omni_session* session_ = nullptr;
};

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
