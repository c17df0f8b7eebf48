// The C API: images into sessions. Each image is encoded through the model's ImageEncoder
// (cached), then placed with its wrap tokens by the multimodal prompt builder, and evaluated
// through the one input path every kind of input takes (omni::capi::eval_input, session.cpp).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "include/omnirt.h"
#include "runtime/capi/capi_internal.h"
#include "runtime/model/multimodal.h"
#include "vision/io/image.h"
#include "vision/io/video.h"

using omni::capi::from_status;
using omni::capi::set_error;

namespace {

#define OMNI_CHECK_SESSION(s, fn) \
  OMNI_CHECK_ARG((s) != nullptr && (s)->ctx != nullptr, fn ": session is NULL")

using Rows = std::shared_ptr<const omni::EmbeddingRows>;

// The session's vision encoder, or an error naming what to do.
omni_status encoder_or_error(omni_session* s, const char* fn,
                             std::shared_ptr<omni::ImageEncoder>* out) {
  *out = s->vision ? s->vision->get() : nullptr;
  if (!*out) {
    return set_error(OMNI_ERR_UNSUPPORTED,
                     std::string(fn) + ": the model has no vision encoder; load a projector "
                                       "(omni_model_params.mmproj_path or omni_model_load_mmproj)");
  }
  if (!s->pending_system.empty()) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     std::string(fn) + ": a system message is waiting for its user message");
  }
  return OMNI_OK;
}

// Encodes every image (or takes it from the cache) before anything is evaluated.
omni_status encode_all(omni_session* s, const omni_image* images, size_t n_images, const char* fn,
                       std::vector<Rows>* out) {
  OMNI_CHECK_ARG(images != nullptr || n_images == 0, std::string(fn) + ": images is NULL");
  std::shared_ptr<omni::ImageEncoder> enc;
  if (n_images > 0) {
    if (omni_status st = encoder_or_error(s, fn, &enc); st != OMNI_OK) return st;
  }
  for (size_t i = 0; i < n_images; ++i) {
    if (images[i].data == nullptr && images[i].size > 0) {
      return set_error(OMNI_ERR_INVALID_ARGUMENT, omni::fmt("%s: image %zu has NULL data", fn, i));
    }
    auto rows = enc->encode(images[i].data, images[i].size, s->ctx->n_threads());
    if (!rows.ok()) {
      return from_status(rows.status(), omni::fmt("%s: image %zu", fn, i).c_str());
    }
    out->push_back(std::move(rows).value());
  }
  return OMNI_OK;
}

omni_status eval_rows(omni_session* s, const char* text, const std::vector<Rows>& rows,
                      uint32_t flags, const char* fn) {
  auto chunks = omni::build_multimodal_prompt(
      s->model->tokenizer(), omni::image_wrap_tokens(*s->model), text, rows,
      omni::capi::add_bos_now(s, flags), (flags & OMNI_TOKENIZE_PARSE_SPECIAL) != 0);
  if (!chunks.ok()) return from_status(chunks.status(), fn);
  return omni::capi::eval_input(s, *chunks, fn);
}

omni_status append_prompt(omni_session* s, const char* text, const omni_image* images,
                          size_t n_images, uint32_t flags, const char* fn) {
  std::vector<Rows> rows;
  if (omni_status st = encode_all(s, images, n_images, fn, &rows); st != OMNI_OK) return st;
  return eval_rows(s, text, rows, flags, fn);
}

// Decoded pixels through the encoder (cached under their dimensions and pixels).
omni_status encode_pixels(omni::ImageEncoder& enc, const omni::vision::Image& img, int n_threads,
                          const std::string& what, std::vector<Rows>* out) {
  auto rows = enc.encode_image(img, n_threads);
  if (!rows.ok()) return from_status(rows.status(), what.c_str());
  out->push_back(std::move(rows).value());
  return OMNI_OK;
}

}  // namespace

extern "C" {

OMNI_API omni_status omni_session_append_image(omni_session* session, const uint8_t* data,
                                               size_t size, uint32_t flags) {
  OMNI_API_BEGIN
  OMNI_CHECK_SESSION(session, "omni_session_append_image");
  OMNI_CHECK_ARG(data != nullptr || size == 0, "omni_session_append_image: data is NULL");
  OMNI_CHECK_ARG((flags & ~uint32_t(OMNI_TOKENIZE_ADD_BOS)) == 0,
                 omni::fmt("omni_session_append_image: unknown flags 0x%x", flags));
  const omni_image image{data, size};
  return append_prompt(session, "", &image, 1, flags, "omni_session_append_image");
  OMNI_API_END
}

OMNI_API omni_status omni_session_append_image_file(omni_session* session, const char* path,
                                                    uint32_t flags) {
  OMNI_API_BEGIN
  OMNI_CHECK_SESSION(session, "omni_session_append_image_file");
  OMNI_CHECK_ARG(path != nullptr, "omni_session_append_image_file: path is NULL");
  OMNI_CHECK_ARG((flags & ~uint32_t(OMNI_TOKENIZE_ADD_BOS)) == 0,
                 omni::fmt("omni_session_append_image_file: unknown flags 0x%x", flags));
  std::shared_ptr<omni::ImageEncoder> enc;
  if (omni_status st = encoder_or_error(session, "omni_session_append_image_file", &enc);
      st != OMNI_OK) {
    return st;
  }
  std::FILE* f = std::fopen(path, "rb");
  if (!f) {
    const int err = errno;
    return set_error(err == ENOENT ? OMNI_ERR_NOT_FOUND : OMNI_ERR_IO,
                     omni::fmt("omni_session_append_image_file: cannot open '%s': %s", path,
                               std::strerror(err)));
  }
  std::vector<uint8_t> bytes;
  const size_t cap = enc->decode_options.max_file_bytes;
  uint8_t buf[1 << 16];
  bool too_big = false, read_error = false;
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) {
    if (bytes.size() + n > cap) {
      too_big = true;
      break;
    }
    bytes.insert(bytes.end(), buf, buf + n);
  }
  read_error = std::ferror(f) != 0;
  std::fclose(f);
  if (too_big) {
    return set_error(OMNI_ERR_OUT_OF_RANGE,
                     omni::fmt("omni_session_append_image_file: '%s' is larger than %zu bytes",
                               path, cap));
  }
  if (read_error) {
    return set_error(OMNI_ERR_IO, omni::fmt("omni_session_append_image_file: cannot read '%s'", path));
  }
  const omni_image image{bytes.data(), bytes.size()};
  return append_prompt(session, "", &image, 1, flags,
                       omni::fmt("omni_session_append_image_file: '%s'", path).c_str());
  OMNI_API_END
}

OMNI_API omni_status omni_session_append_image_rgb(omni_session* session, const uint8_t* rgb,
                                                   int32_t width, int32_t height, size_t stride,
                                                   uint32_t flags) {
  OMNI_API_BEGIN
  const char* fn = "omni_session_append_image_rgb";
  OMNI_CHECK_SESSION(session, "omni_session_append_image_rgb");
  OMNI_CHECK_ARG(rgb != nullptr, "omni_session_append_image_rgb: rgb is NULL");
  OMNI_CHECK_ARG(width >= 1 && height >= 1,
                 omni::fmt("%s: width %d x height %d (both must be >= 1)", fn, width, height));
  OMNI_CHECK_ARG(stride >= size_t(width) * 3,
                 omni::fmt("%s: stride %zu is less than 3 * width (%zu)", fn, stride,
                           size_t(width) * 3));
  OMNI_CHECK_ARG((flags & ~uint32_t(OMNI_TOKENIZE_ADD_BOS)) == 0,
                 omni::fmt("%s: unknown flags 0x%x", fn, flags));
  std::shared_ptr<omni::ImageEncoder> enc;
  if (omni_status st = encoder_or_error(session, fn, &enc); st != OMNI_OK) return st;
  // The limits before copying: width * height * 3 bytes are about to be allocated.
  const omni::Status dims =
      omni::vision::check_image_dimensions(width, height, enc->decode_options, "rgb image");
  if (!dims.ok()) return from_status(dims, fn);
  omni::vision::Image img;
  img.width = width;
  img.height = height;
  const size_t row = size_t(width) * 3;
  img.rgb.resize(row * size_t(height));
  for (int32_t y = 0; y < height; ++y) {
    std::memcpy(img.rgb.data() + size_t(y) * row, rgb + size_t(y) * stride, row);
  }
  std::vector<Rows> rows;
  if (omni_status st = encode_pixels(*enc, img, session->ctx->n_threads(), fn, &rows);
      st != OMNI_OK) {
    return st;
  }
  return eval_rows(session, "", rows, flags, fn);
  OMNI_API_END
}

OMNI_API omni_status omni_session_append_video_file(omni_session* session, const char* path,
                                                    double fps, int32_t max_frames,
                                                    uint32_t flags) {
  OMNI_API_BEGIN
  const char* fn = "omni_session_append_video_file";
  OMNI_CHECK_SESSION(session, "omni_session_append_video_file");
  OMNI_CHECK_ARG(path != nullptr, "omni_session_append_video_file: path is NULL");
  OMNI_CHECK_ARG(fps > 0.0 && fps <= 1000.0,
                 omni::fmt("%s: fps %g is outside (0, 1000]", fn, fps));
  OMNI_CHECK_ARG(max_frames >= 1 && max_frames <= 100000,
                 omni::fmt("%s: max_frames %d is outside [1, 100000]", fn, max_frames));
  OMNI_CHECK_ARG((flags & ~uint32_t(OMNI_TOKENIZE_ADD_BOS)) == 0,
                 omni::fmt("%s: unknown flags 0x%x", fn, flags));
  std::shared_ptr<omni::ImageEncoder> enc;
  if (omni_status st = encoder_or_error(session, fn, &enc); st != OMNI_OK) return st;
  omni::vision::VideoOptions vo;
  vo.fps = fps;
  vo.max_frames = max_frames;
  vo.limits = enc->decode_options;
  auto video = omni::vision::decode_video_file(path, vo);
  if (!video.ok()) return from_status(video.status(), fn);
  std::vector<Rows> rows;
  for (const omni::vision::VideoFrame& f : video->frames) {
    const std::string what = omni::fmt("%s: '%s' frame at %.3f s", fn, path, f.time_s);
    if (omni_status st = encode_pixels(*enc, f.image, session->ctx->n_threads(), what, &rows);
        st != OMNI_OK) {
      return st;
    }
  }
  return eval_rows(session, "", rows, flags, omni::fmt("%s: '%s'", fn, path).c_str());
  OMNI_API_END
}

OMNI_API omni_status omni_session_append_prompt(omni_session* session, const char* text,
                                                const omni_image* images, size_t n_images,
                                                uint32_t flags) {
  OMNI_API_BEGIN
  OMNI_CHECK_SESSION(session, "omni_session_append_prompt");
  OMNI_CHECK_ARG(text != nullptr, "omni_session_append_prompt: text is NULL");
  OMNI_CHECK_ARG((flags & ~3u) == 0,
                 omni::fmt("omni_session_append_prompt: unknown flags 0x%x", flags));
  return append_prompt(session, text, images, n_images, flags, "omni_session_append_prompt");
  OMNI_API_END
}

OMNI_API omni_status omni_session_append_chat_images(omni_session* session, const char* role,
                                                     const char* content,
                                                     const omni_image* images, size_t n_images) {
  OMNI_API_BEGIN
  const char* fn = "omni_session_append_chat_images";
  OMNI_CHECK_SESSION(session, "omni_session_append_chat_images");
  OMNI_CHECK_ARG(role != nullptr, "omni_session_append_chat_images: role is NULL");
  OMNI_CHECK_ARG(content != nullptr, "omni_session_append_chat_images: content is NULL");
  if (n_images > 0 && std::string_view(role) != "user") {
    return set_error(OMNI_ERR_INVALID_ARGUMENT,
                     omni::fmt("%s: images go in a user message, not a %s message", fn, role));
  }
  std::vector<Rows> rows;
  if (n_images > 0 && !session->pending_system.empty()) {
    // A system message waiting is fine here: it is rendered with this user message.
    std::shared_ptr<omni::ImageEncoder> enc = session->vision ? session->vision->get() : nullptr;
    if (!enc) return encoder_or_error(session, fn, &enc);
    OMNI_CHECK_ARG(images != nullptr, std::string(fn) + ": images is NULL");
    for (size_t i = 0; i < n_images; ++i) {
      auto r = enc->encode(images[i].data, images[i].size, session->ctx->n_threads());
      if (!r.ok()) return from_status(r.status(), omni::fmt("%s: image %zu", fn, i).c_str());
      rows.push_back(std::move(r).value());
    }
  } else if (omni_status st = encode_all(session, images, n_images, fn, &rows); st != OMNI_OK) {
    return st;
  }
  return omni::capi::append_chat(session, role, content, rows, fn);
  OMNI_API_END
}

}  // extern "C"
