// The C API: sessions (one conversation each): input, chat turns, generation, logits.
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "include/omnirt.h"
#include "runtime/capi/capi_internal.h"

using omni::capi::add_bos_now;
using omni::capi::from_status;
using omni::capi::set_error;

namespace omni::capi {

bool add_bos_now(const omni_session* s, uint32_t flags) {
  const omni::Tokenizer& t = s->model->tokenizer();
  return (flags & OMNI_TOKENIZE_ADD_BOS) && s->ctx->n_past() == 0 && t.add_bos() && t.bos() >= 0;
}

omni_status eval_input(omni_session* s, const std::vector<InputChunk>& chunks, const char* fn) {
  int64_t total = 0;
  for (const InputChunk& c : chunks) total += c.n_positions();
  if (total == 0) return OMNI_OK;
  if (omni_status st = refuse_during_audio(s, fn); st != OMNI_OK) return st;
  // Everything checkable is checked before the first position is evaluated.
  if (Status st = check_chunks(*s->ctx, chunks); !st.ok()) return from_status(st, fn);
  if (Status st = eval_chunks(*s->ctx, chunks); !st.ok()) {
    // Only resource failures get here; the context was rewound, its logits are not ours.
    s->has_logits = false;
    return from_status(st, fn);
  }
  for (const InputChunk& c : chunks) s->history.insert(s->history.end(), c.tokens.begin(), c.tokens.end());
  s->has_logits = true;
  return OMNI_OK;
}

}  // namespace omni::capi

namespace {

#define OMNI_CHECK_SESSION(s, fn) \
  OMNI_CHECK_ARG((s) != nullptr && (s)->ctx != nullptr, fn ": session is NULL")

// Evaluates `tokens` after the conversation so far, all or nothing.
omni_status eval_tokens(omni_session* s, const std::vector<int32_t>& tokens, const char* fn) {
  if (tokens.empty()) return OMNI_OK;
  if (omni_status st = omni::capi::refuse_during_audio(s, fn); st != OMNI_OK) return st;
  const int64_t n_vocab = s->model->hparams().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      return set_error(OMNI_ERR_OUT_OF_RANGE,
                       omni::fmt("%s: token %d at index %zu is outside [0, %lld)", fn, tokens[i],
                                 i, static_cast<long long>(n_vocab)));
    }
  }
  const int64_t free_slots = s->ctx->n_ctx() - s->ctx->n_past();
  if (static_cast<int64_t>(tokens.size()) > free_slots) {
    return set_error(OMNI_ERR_OUT_OF_RANGE,
                     omni::fmt("%s: %zu tokens do not fit in the context: n_ctx %lld, %lld used, "
                               "%lld free",
                               fn, tokens.size(), static_cast<long long>(s->ctx->n_ctx()),
                               static_cast<long long>(s->ctx->n_past()),
                               static_cast<long long>(free_slots)));
  }
  if (omni::Status st = s->ctx->eval(tokens, /*all_logits=*/false); !st.ok()) {
    return from_status(st);
  }
  s->history.insert(s->history.end(), tokens.begin(), tokens.end());
  s->has_logits = true;
  return OMNI_OK;
}

// The text a template puts after an assistant message ("<end_of_turn>\n" for Gemma), found by
// rendering a two-message conversation around a sentinel.
omni::StatusOr<std::string> assistant_turn_closer(omni::ChatTemplate t) {
  static constexpr std::string_view kSentinel = "OMNIRT_ASSISTANT_SENTINEL";
  OMNI_ASSIGN_OR_RETURN(std::string text,
                        omni::apply_chat_template(t, {{"user", "hi"}, {"assistant", std::string(kSentinel)}},
                                                  /*add_generation_prompt=*/false));
  const size_t at = text.rfind(kSentinel);
  if (at == std::string::npos) {
    return omni::internal_error(std::string("chat template '") + omni::chat_template_name(t) +
                                "' dropped the assistant message");
  }
  return text.substr(at + kSentinel.size());
}

omni_status make_sampler(omni_session* s) {
  auto sampler = omni::Sampler::create(s->sampler_params, s->model->hparams().n_vocab);
  if (!sampler.ok()) return from_status(sampler.status());
  s->sampler.emplace(std::move(sampler).value());
  return OMNI_OK;
}

}  // namespace

namespace omni::capi {

omni_status append_chat(omni_session* session, const char* role, const char* content,
                        const std::vector<std::shared_ptr<const EmbeddingRows>>& images,
                        const char* fn) {
  const std::string_view r(role);
  if (r != "system" && r != "user" && r != "assistant") {
    return set_error(OMNI_ERR_INVALID_ARGUMENT,
                     std::string(fn) + ": role '" + role + "' is not one of system, user, assistant");
  }
  if (!images.empty() && r != "user") {
    return set_error(OMNI_ERR_INVALID_ARGUMENT,
                     std::string(fn) + ": images go in a user message, not a " + role + " message");
  }
  if (omni_status st = refuse_during_audio(session, fn); st != OMNI_OK) return st;
  const omni::ChatTemplate tmpl = session->model->chat_template();
  if (tmpl == omni::ChatTemplate::kNone) {
    return set_error(OMNI_ERR_UNSUPPORTED,
                     std::string(fn) + ": the model has no chat template; use "
                     "omni_session_append_text");
  }
  if (r == "system") {
    session->pending_system.push_back({std::string(r), content});
    return OMNI_OK;
  }

  // Text to evaluate: [closer of an open assistant turn] + the rendered message(s).
  std::string text;
  if (session->assistant_turn_open) {
    auto closer = assistant_turn_closer(tmpl);
    if (!closer.ok()) return from_status(closer.status());
    if (r == "assistant") {
      text = std::string(content) + *closer;  // the caller supplies the open turn's reply
    } else {
      text = *closer;
    }
  }
  if (!(session->assistant_turn_open && r == "assistant")) {
    std::vector<omni::ChatMessage> messages = session->pending_system;
    std::string message = content;
    if (!images.empty() && omni::count_image_markers(message) == 0) {
      // No marker: the images open the message, in order.
      std::string markers;
      for (size_t i = 0; i < images.size(); ++i) markers += omni::kImageMarker;
      message = markers + message;
    }
    messages.push_back({std::string(r), std::move(message)});
    auto rendered = omni::apply_chat_template(tmpl, messages, /*add_generation_prompt=*/r == "user");
    if (!rendered.ok()) return from_status(rendered.status());
    text += *rendered;
  }
  if (images.empty()) {
    auto ids = session->model->tokenizer().encode(text, add_bos_now(session, OMNI_TOKENIZE_ADD_BOS),
                                                  /*parse_special=*/true);
    if (!ids.ok()) return from_status(ids.status());
    if (omni_status st = eval_tokens(session, *ids, fn); st != OMNI_OK) return st;
  } else {
    auto chunks = omni::build_multimodal_prompt(
        session->model->tokenizer(), omni::image_wrap_tokens(*session->model), text, images,
        add_bos_now(session, OMNI_TOKENIZE_ADD_BOS), /*parse_special=*/true);
    if (!chunks.ok()) return from_status(chunks.status(), fn);
    if (omni_status st = omni::capi::eval_input(session, *chunks, fn); st != OMNI_OK) return st;
  }
  session->pending_system.clear();
  session->assistant_turn_open = (r == "user");
  return OMNI_OK;
}

}  // namespace omni::capi

extern "C" {

OMNI_API omni_session_params omni_session_default_params(void) {
  omni_session_params p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  const omni::SamplerParams sp;
  p.n_ctx = 0;
  p.n_batch = 0;
  p.kv_type = OMNI_KV_F16;
  p.n_threads = 0;
  p.temperature = sp.temperature;
  p.top_k = sp.top_k;
  p.top_p = sp.top_p;
  p.min_p = sp.min_p;
  p.repeat_penalty = sp.repeat_penalty;
  p.repeat_last_n = sp.repeat_last_n;
  p.seed = sp.seed;
  p.int8_activations = 0;
  return p;
}

OMNI_API omni_status omni_session_create(omni_engine* engine, const omni_model* model,
                                         const omni_session_params* params, omni_session** out) {
  OMNI_API_BEGIN
  OMNI_CHECK_ARG(out != nullptr, "omni_session_create: out is NULL");
  *out = nullptr;
  OMNI_CHECK_ARG(engine != nullptr, "omni_session_create: engine is NULL");
  OMNI_CHECK_ARG(model != nullptr && model->model, "omni_session_create: model is NULL");
  if (!model->has_tokenizer) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     "omni_session_create: the model was loaded with validate_only (no tokenizer)");
  }
  omni_session_params p = omni_session_default_params();
  if (omni_status st = read_params(params, &p, "omni_session_params"); st != OMNI_OK) return st;
  OMNI_CHECK_ARG(p.n_ctx >= 0, omni::fmt("omni_session_create: n_ctx %d is negative", p.n_ctx));
  OMNI_CHECK_ARG(p.n_batch >= 0, omni::fmt("omni_session_create: n_batch %d is negative", p.n_batch));
  OMNI_CHECK_ARG(p.n_threads >= 0 && p.n_threads <= 1024,
                 omni::fmt("omni_session_create: n_threads %d is outside [0, 1024]", p.n_threads));
  OMNI_CHECK_ARG(p.kv_type == OMNI_KV_F16 || p.kv_type == OMNI_KV_F32,
                 omni::fmt("omni_session_create: kv_type %d is neither OMNI_KV_F16 (0) nor "
                           "OMNI_KV_F32 (1)", p.kv_type));

  auto s = std::make_unique<omni_session>();
  s->model = model->model;
  s->vision = model->vision;
  s->audio = model->audio;
  s->sampler_params.temperature = p.temperature;
  s->sampler_params.top_k = p.top_k;
  s->sampler_params.top_p = p.top_p;
  s->sampler_params.min_p = p.min_p;
  s->sampler_params.repeat_penalty = p.repeat_penalty;
  s->sampler_params.repeat_last_n = p.repeat_last_n;
  s->sampler_params.seed = p.seed;
  if (omni_status st = make_sampler(s.get()); st != OMNI_OK) return st;

  omni::ContextParams cp;
  cp.n_ctx = p.n_ctx;
  if (p.n_batch > 0) cp.n_batch = p.n_batch;
  cp.n_threads = p.n_threads > 0 ? p.n_threads : engine->n_threads;
  cp.kv_type = p.kv_type == OMNI_KV_F32 ? omni::DType::kF32 : omni::DType::kF16;
  cp.int8_activations = p.int8_activations != 0;
  auto ctx = omni::Context::create(*s->model, cp);
  if (!ctx.ok()) return from_status(ctx.status());
  s->ctx = std::move(ctx).value();
  *out = s.release();
  return OMNI_OK;
  OMNI_API_END
}

OMNI_API void omni_session_destroy(omni_session* session) { delete session; }

OMNI_API omni_status omni_session_reset(omni_session* session) {
  OMNI_API_BEGIN
  OMNI_CHECK_SESSION(session, "omni_session_reset");
  if (omni_status st = make_sampler(session); st != OMNI_OK) return st;
  if (omni::Status st = session->ctx->rewind(0); !st.ok()) return from_status(st);
  session->audio_in.reset();  // an open utterance is dropped with the rest
  session->history.clear();
  session->has_logits = false;
  session->pending_system.clear();
  session->assistant_turn_open = false;
  session->stop_reason = OMNI_STOP_NONE;
  return OMNI_OK;
  OMNI_API_END
}

OMNI_API omni_status omni_session_append_text(omni_session* session, const char* text,
                                              uint32_t flags) {
  OMNI_API_BEGIN
  OMNI_CHECK_SESSION(session, "omni_session_append_text");
  OMNI_CHECK_ARG(text != nullptr, "omni_session_append_text: text is NULL");
  OMNI_CHECK_ARG((flags & ~3u) == 0,
                 omni::fmt("omni_session_append_text: unknown flags 0x%x", flags));
  auto ids = session->model->tokenizer().encode(text, add_bos_now(session, flags),
                                                (flags & OMNI_TOKENIZE_PARSE_SPECIAL) != 0);
  if (!ids.ok()) return from_status(ids.status());
  return eval_tokens(session, *ids, "omni_session_append_text");
  OMNI_API_END
}

OMNI_API omni_status omni_session_append_tokens(omni_session* session, const omni_token* tokens,
                                                size_t n_tokens) {
  OMNI_API_BEGIN
  OMNI_CHECK_SESSION(session, "omni_session_append_tokens");
  OMNI_CHECK_ARG(tokens != nullptr || n_tokens == 0, "omni_session_append_tokens: tokens is NULL");
  std::vector<int32_t> ids(tokens, tokens + n_tokens);
  return eval_tokens(session, ids, "omni_session_append_tokens");
  OMNI_API_END
}

OMNI_API omni_status omni_session_append_chat(omni_session* session, const char* role,
                                              const char* content) {
  OMNI_API_BEGIN
  OMNI_CHECK_SESSION(session, "omni_session_append_chat");
  OMNI_CHECK_ARG(role != nullptr, "omni_session_append_chat: role is NULL");
  OMNI_CHECK_ARG(content != nullptr, "omni_session_append_chat: content is NULL");
  return omni::capi::append_chat(session, role, content, {}, "omni_session_append_chat");
  OMNI_API_END
}

OMNI_API omni_status omni_session_generate(omni_session* session, int32_t max_tokens,
                                           omni_token_callback cb, void* user_data) {
  OMNI_API_BEGIN
  OMNI_CHECK_SESSION(session, "omni_session_generate");
  OMNI_CHECK_ARG(max_tokens >= 0,
                 omni::fmt("omni_session_generate: max_tokens %d is negative", max_tokens));
  if (!session->has_logits) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     "omni_session_generate: the session has no input yet; append text, tokens "
                     "or a chat message first");
  }
  if (!session->pending_system.empty()) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     "omni_session_generate: a system message is waiting for a user message");
  }
  if (omni_status st = omni::capi::refuse_during_audio(session, "omni_session_generate");
      st != OMNI_OK) {
    return st;
  }
  session->stop_requested.store(false, std::memory_order_relaxed);
  const omni::Tokenizer& tok = session->model->tokenizer();
  omni::StreamDetokenizer detok(tok);
  omni::Context& ctx = *session->ctx;
  omni_stop_reason reason = OMNI_STOP_MAX_TOKENS;
  omni_status result = OMNI_OK;
  for (int32_t n = 0; n < max_tokens; ++n) {
    if (session->stop_requested.load(std::memory_order_relaxed)) {
      reason = OMNI_STOP_REQUESTED;
      result = set_error(OMNI_ERR_CANCELLED, "omni_session_generate: stopped by omni_session_stop");
      break;
    }
    const int32_t id = session->sampler->sample(ctx.last_logits(), session->history);
    if (tok.is_end_of_generation(id)) {
      reason = OMNI_STOP_END_OF_GENERATION;
      break;
    }
    if (ctx.n_past() >= ctx.n_ctx()) {
      reason = OMNI_STOP_CONTEXT_FULL;
      break;
    }
    auto piece = detok.push(id);
    if (!piece.ok()) {
      result = from_status(piece.status());
      reason = OMNI_STOP_NONE;
      break;
    }
    const bool stop_by_callback = cb && cb(id, piece->data(), piece->size(), user_data) != 0;
    // Evaluate the emitted token so that history and the KV cache stay equal.
    const int32_t one[1] = {id};
    if (omni::Status st = ctx.eval(one, /*all_logits=*/false); !st.ok()) {
      result = from_status(st);
      reason = OMNI_STOP_NONE;
      break;
    }
    session->history.push_back(id);
    if (stop_by_callback) {
      reason = OMNI_STOP_CALLBACK;
      break;
    }
  }
  const std::string rest = detok.flush();
  if (!rest.empty() && cb) cb(OMNI_TOKEN_NONE, rest.data(), rest.size(), user_data);
  session->stop_reason = reason;
  return result;
  OMNI_API_END
}

OMNI_API void omni_session_stop(omni_session* session) {
  if (session) session->stop_requested.store(true, std::memory_order_relaxed);
}

OMNI_API omni_stop_reason omni_session_stop_reason(const omni_session* session) {
  return session ? session->stop_reason : OMNI_STOP_NONE;
}

OMNI_API omni_status omni_session_logits(omni_session* session, const float** logits,
                                         int32_t* n_vocab) {
  OMNI_API_BEGIN
  OMNI_CHECK_SESSION(session, "omni_session_logits");
  OMNI_CHECK_ARG(logits != nullptr, "omni_session_logits: logits is NULL");
  if (!session->has_logits) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     "omni_session_logits: nothing has been evaluated yet; append input first");
  }
  *logits = session->ctx->last_logits();
  if (n_vocab) *n_vocab = static_cast<int32_t>(session->model->hparams().n_vocab);
  return OMNI_OK;
  OMNI_API_END
}

OMNI_API int32_t omni_session_n_tokens(const omni_session* session) {
  return session && session->ctx ? static_cast<int32_t>(session->ctx->n_past()) : 0;
}

OMNI_API int32_t omni_session_n_ctx(const omni_session* session) {
  return session && session->ctx ? static_cast<int32_t>(session->ctx->n_ctx()) : 0;
}

}  // extern "C"
