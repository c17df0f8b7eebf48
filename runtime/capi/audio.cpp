// The C API: speech into sessions while the user speaks. A model owns its audio encoder (its own
// file's, or an mmproj's) as it owns its vision encoder; a session streams one utterance at a
// time: 16 kHz PCM -> omni::audio::AudioStream (incremental log-mel, encoder on fixed chunks,
// adapter) -> rows evaluated through omni::capi::eval_input (session.cpp), chunk by chunk, so
// at omni_session_audio_end only the last partial chunk is left to encode.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "include/omnirt.h"
#include "runtime/capi/capi_internal.h"
#include "runtime/model/audio_loader.h"

using omni::capi::from_status;
using omni::capi::set_error;

namespace omni::capi {

omni_status refuse_during_audio(const omni_session* s, const char* fn) {
  if (s->audio_in && !s->audio_in->feeding) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     fmt("%s: an audio input is open; end it with omni_session_audio_end first", fn));
  }
  return OMNI_OK;
}

namespace {

Status check_width(const AudioEncoderModel& m, int64_t n_embd) {
  const int64_t out = m.weights.adapter.n_embd_out;
  if (out != n_embd) {
    return invalid_argument(fmt("the audio encoder's output width %lld is not the model's n_embd %lld "
                                "(an encoder for another model)",
                                static_cast<long long>(out), static_cast<long long>(n_embd)));
  }
  return Status::Ok();
}

}  // namespace

Status attach_own_audio(omni_model* handle) {
  const gguf::GgufFile& f = handle->model->file();
  if (!has_audio_component(f)) return Status::Ok();
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<AudioEncoderModel> m, load_audio_encoder(f));
  OMNI_RETURN_IF_ERROR(check_width(*m, handle->model->hparams().n_embd));
  // The weights point into the model's mapping: the deleter keeps the Model alive.
  std::shared_ptr<const Model> keep = handle->model;
  std::shared_ptr<const AudioEncoderModel> enc(m.release(),
                                               [keep](const AudioEncoderModel* p) { delete p; });
  std::lock_guard<std::mutex> lock(handle->audio->mu);
  handle->audio->encoder = std::move(enc);
  return Status::Ok();
}

Status attach_audio_mmproj(omni_model* handle, const std::string& path) {
  auto m = load_audio_encoder(path);  // owns its file
  if (!m.ok()) return Status(m.status().code(), "mmproj '" + path + "': " + m.status().message());
  if (Status st = check_width(**m, handle->model->hparams().n_embd); !st.ok()) {
    return Status(st.code(), "mmproj '" + path + "': " + st.message());
  }
  std::lock_guard<std::mutex> lock(handle->audio->mu);
  handle->audio->encoder = std::move(m).value();
  return Status::Ok();
}

}  // namespace omni::capi

namespace {

#define OMNI_CHECK_SESSION(s, fn) \
  OMNI_CHECK_ARG((s) != nullptr && (s)->ctx != nullptr, fn ": session is NULL")

constexpr int32_t kAudioRate = 16000;
constexpr int32_t kMaxChunkMs = 30000;  // Whisper's window; the encoder's own limit may be lower

// A status as the C API recorded it, back into a Status (for the stream's sink).
omni::Status recorded(omni_status st) {
  return omni::Status(static_cast<omni::StatusCode>(st), omni_last_error());
}

}  // namespace

extern "C" {

OMNI_API omni_audio_params omni_audio_default_params(void) {
  omni_audio_params p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.chunk_ms = 0;
  return p;
}

OMNI_API int omni_model_has_audio(const omni_model* model) {
  OMNI_API_BEGIN
  if (model == nullptr || !model->model) {
    set_error(OMNI_ERR_INVALID_ARGUMENT, "omni_model_has_audio: model is NULL");
    return 0;
  }
  return model->audio->get() ? 1 : 0;
  OMNI_API_END_RETURN(0)
}

OMNI_API omni_status omni_session_audio_begin(omni_session* session, const omni_audio_params* params) {
  OMNI_API_BEGIN
  const char* fn = "omni_session_audio_begin";
  OMNI_CHECK_SESSION(session, "omni_session_audio_begin");
  omni_audio_params p = omni_audio_default_params();
  if (omni_status st = read_params(params, &p, "omni_audio_params"); st != OMNI_OK) return st;
  OMNI_CHECK_ARG(p.chunk_ms >= 0 && p.chunk_ms <= kMaxChunkMs,
                 omni::fmt("%s: chunk_ms %d is outside [0, %d] (0: the model's default)", fn, p.chunk_ms, kMaxChunkMs));
  if (session->audio_in) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     omni::fmt("%s: an audio input is already open; end it with omni_session_audio_end", fn));
  }
  std::shared_ptr<const omni::AudioEncoderModel> enc = session->audio ? session->audio->get() : nullptr;
  if (!enc) {
    return set_error(OMNI_ERR_UNSUPPORTED,
                     omni::fmt("%s: the model has no audio encoder; load an omni model file that holds "
                               "one, or an audio projector (omni_model_params.mmproj_path or "
                               "omni_model_load_mmproj)", fn));
  }
  if (!session->pending_system.empty()) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     omni::fmt("%s: a system message is waiting for its user message", fn));
  }
  omni::audio::AudioStreamOptions so;
  if (p.chunk_ms > 0) so.chunk_frames = omni::audio::chunk_frames_for_ms(enc->weights, p.chunk_ms);
  auto in = std::make_unique<omni::capi::AudioInput>();
  in->encoder = enc;
  omni::capi::AudioInput* raw = in.get();
  const int64_t n_embd = enc->weights.adapter.n_embd_out;
  auto sink = [session, raw, n_embd](const float* rows, int64_t n) -> omni::Status {
    auto r = std::make_shared<omni::EmbeddingRows>();
    r->n_rows = n;
    r->n_embd = n_embd;
    r->data.assign(rows, rows + n * n_embd);
    std::vector<omni::InputChunk> chunks(1);
    chunks[0].rows = std::move(r);
    struct Feeding {  // cleared on every way out, exceptions included
      bool& flag;
      ~Feeding() { flag = false; }
    } feeding{raw->feeding};
    raw->feeding = true;
    const omni_status st = omni::capi::eval_input(session, chunks, "audio rows");
    if (st != OMNI_OK) return recorded(st);
    raw->rows += n;
    return omni::Status::Ok();
  };
  auto stream = omni::audio::AudioStream::create(enc->weights, session->ctx->thread_pool(), sink, so);
  if (!stream.ok()) {
    return from_status(stream.status(), omni::fmt("%s: chunk_ms %d", fn, p.chunk_ms).c_str());
  }
  in->stream = std::move(stream).value();
  session->audio_in = std::move(in);
  return OMNI_OK;
  OMNI_API_END
}

OMNI_API omni_status omni_session_append_audio(omni_session* session, const float* pcm,
                                               size_t n_samples, int32_t sample_rate) {
  OMNI_API_BEGIN
  const char* fn = "omni_session_append_audio";
  OMNI_CHECK_SESSION(session, "omni_session_append_audio");
  if (!session->audio_in) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     omni::fmt("%s: no audio input is open; call omni_session_audio_begin first", fn));
  }
  OMNI_CHECK_ARG(pcm != nullptr || n_samples == 0, omni::fmt("%s: pcm is NULL", fn));
  OMNI_CHECK_ARG(sample_rate == kAudioRate,
                 omni::fmt("%s: sample_rate %d: audio input is %d Hz mono; resample first "
                           "(FFmpeg's libswresample, or omnirt's decoders with rate 16000)",
                           fn, sample_rate, kAudioRate));
  if (n_samples == 0) return OMNI_OK;
  omni::audio::AudioStream& stream = *session->audio_in->stream;
  const omni::Status st = stream.push(pcm, n_samples);
  if (st.ok()) return OMNI_OK;
  if (stream.closed()) {
    // The encoder or the session refused rows (context full): the utterance ends here; the
    // rows evaluated before stay in the session.
    const long long rows = static_cast<long long>(session->audio_in->rows);
    session->audio_in.reset();
    return from_status(st, omni::fmt("%s (the audio input is closed; its %lld rows before stay)", fn, rows).c_str());
  }
  return from_status(st, fn);  // e.g. a non-finite sample: nothing consumed, still open
  OMNI_API_END
}

OMNI_API omni_status omni_session_audio_end(omni_session* session, int64_t* n_rows_appended) {
  OMNI_API_BEGIN
  const char* fn = "omni_session_audio_end";
  OMNI_CHECK_SESSION(session, "omni_session_audio_end");
  if (!session->audio_in) {
    return set_error(OMNI_ERR_WRONG_STATE,
                     omni::fmt("%s: no audio input is open; call omni_session_audio_begin first", fn));
  }
  std::unique_ptr<omni::capi::AudioInput> in = std::move(session->audio_in);  // closed whatever happens
  omni::Status st = omni::Status::Ok();
  if (in->stream->stats().samples > 0) st = in->stream->finish();  // nothing spoken: nothing to do
  if (n_rows_appended) *n_rows_appended = in->rows;
  return from_status(st, fn);
  OMNI_API_END
}

}  // extern "C"
