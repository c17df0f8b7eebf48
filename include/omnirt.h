/* omnirt.h — the C API of omnirt, an embeddable inference runtime for GGUF transformer models.
 *
 * Usage (error checks shortened; every omni_status must be checked in real code):
 *
 *   omni_model* model = NULL;
 *   omni_engine* engine = NULL;
 *   omni_session* session = NULL;
 *   if (omni_model_load("gemma-3-270m-q4_k_m.gguf", NULL, &model) != OMNI_OK) {
 *     fprintf(stderr, "%s\n", omni_last_error());
 *     return 1;
 *   }
 *   omni_engine_create(NULL, &engine);                  // CPU, all cores
 *   omni_session_create(engine, model, NULL, &session); // default context and sampler
 *   omni_session_append_chat(session, "user", "Why is the sky blue?");
 *   omni_session_generate(session, 128, print_piece, NULL);
 *   omni_session_destroy(session);
 *   omni_engine_destroy(engine);
 *   omni_model_destroy(model);
 *
 *   static int print_piece(omni_token token, const char* piece, size_t len, void* user_data) {
 *     fwrite(piece, 1, len, stdout);
 *     return 0;                                          // nonzero stops generation
 *   }
 *
 * Conventions
 *  - Handles are opaque; names are omni_<noun>_<verb>; every create or load function has a
 *    matching destroy, and destroy(NULL) is a no-op.
 *  - Every call that can fail returns omni_status (OMNI_OK = 0). After a failure,
 *    omni_last_error() returns a message naming what was wrong for the calling thread; it is
 *    left unchanged by successful calls. Nothing aborts, exits or throws across this boundary,
 *    and a failed call leaves its handles as they were.
 *  - Params structs start with `size_t struct_size`: fill them with omni_*_default_params(),
 *    change what you need, pass a pointer (NULL means defaults). The library reads only the
 *    first struct_size bytes, so a program built against an older header keeps working when
 *    fields are appended.
 *
 * Ownership
 *  - The caller owns every handle it gets from a load or create function and releases it with
 *    the matching destroy. Handles may be destroyed in any order: a session keeps what it needs
 *    of its model alive until the session itself is destroyed.
 *  - Strings and arrays returned by the library (omni_last_error, omni_model_arch, logits,
 *    callback pieces, ...) are owned by it; each function says how long they stay valid.
 *  - Buffers passed in are owned by the caller. Functions that fill a caller buffer take its
 *    capacity and report the size needed; too small a buffer is OMNI_ERR_OUT_OF_RANGE with
 *    the needed size written and the buffer untouched.
 */
#ifndef OMNIRT_H
#define OMNIRT_H

#include <stddef.h>
#include <stdint.h>

#if defined(OMNI_BUILDING_LIBRARY)
#define OMNI_API __attribute__((visibility("default")))
#else
#define OMNI_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------------------------ */

/* Values equal omni::StatusCode (kernels/core/status.h). Append only. */
typedef enum omni_status {
  OMNI_OK = 0,
  OMNI_ERR_INVALID_ARGUMENT = 1, /* a bad value: null handle, bad size, bad token id, bad UTF-8 */
  OMNI_ERR_NOT_FOUND = 2,        /* a file or metadata key that should exist does not */
  OMNI_ERR_IO = 3,               /* open/read/mmap/write failed */
  OMNI_ERR_CORRUPT_FILE = 4,     /* a file's bytes violate its format */
  OMNI_ERR_UNSUPPORTED = 5,      /* valid, but not implemented (unknown architecture, type) */
  OMNI_ERR_OUT_OF_RANGE = 6,     /* context full, buffer too small, value too big */
  OMNI_ERR_OUT_OF_MEMORY = 7,
  OMNI_ERR_WRONG_STATE = 8,      /* calls in the wrong order (generate before any input) */
  OMNI_ERR_INTERNAL = 9,         /* a bug in omnirt */
  OMNI_ERR_CANCELLED = 10        /* stopped by omni_session_stop() */
} omni_status;

/* Message of the last failed call on this thread ("" if none). Valid until the next failing
 * call on this thread. */
OMNI_API const char* omni_last_error(void);
/* "invalid argument", "corrupt file", ... ; a static string. */
OMNI_API const char* omni_status_name(omni_status status);

/* ---- library ----------------------------------------------------------------------------- */

/* All returned strings are static. */
OMNI_API const char* omni_version(void); /* "0.1.0" */
OMNI_API int omni_version_major(void);
OMNI_API int omni_version_minor(void);
OMNI_API int omni_version_patch(void);
OMNI_API const char* omni_backends(void);     /* "cpu" or "cpu,cuda", as compiled */
OMNI_API const char* omni_cpu_isa(void);      /* the kernel path in use: "scalar", "avx2", "avx512" */
OMNI_API const char* omni_cpu_features(void); /* detected CPU features: "avx2 fma f16c ..." */

/* ---- handles ----------------------------------------------------------------------------- */

typedef int32_t omni_token;
#define OMNI_TOKEN_NONE ((omni_token)-1)

/* Immutable weights + tokenizer, mmapped from a GGUF file.
 * Thread-safety: a model may be shared by any number of engines, sessions and threads. */
typedef struct omni_model omni_model;
/* A device (the CPU for now) and its threads.
 * Thread-safety: an engine may be used from any number of threads at once. */
typedef struct omni_engine omni_engine;
/* One conversation: KV cache, sampler and token history.
 * Thread-safety: one thread at a time, except omni_session_stop(), which any thread may call. */
typedef struct omni_session omni_session;

/* ---- model ------------------------------------------------------------------------------- */

typedef struct omni_model_params {
  size_t struct_size;    /* sizeof(omni_model_params) */
  int32_t validate_only; /* nonzero: parse and bind the weights, skip the tokenizer */
  /* A llama.cpp-style vision projector ("mmproj" GGUF) to load with the model; NULL: none (a
   * model file that holds its own vision component, an omni model file, needs none). */
  const char* mmproj_path;
} omni_model_params;

OMNI_API omni_model_params omni_model_default_params(void);

/* Maps and validates a GGUF file. OMNI_ERR_NOT_FOUND, OMNI_ERR_IO, OMNI_ERR_CORRUPT_FILE (with
 * the key or tensor at fault), OMNI_ERR_UNSUPPORTED. params may be NULL. *out is set to NULL
 * on failure. */
OMNI_API omni_status omni_model_load(const char* path, const omni_model_params* params,
                                     omni_model** out);
OMNI_API void omni_model_destroy(omni_model* model);

/* Queries. On a NULL model they return ""/0 and set omni_last_error(). Strings live as long
 * as the model. */
OMNI_API const char* omni_model_arch(const omni_model* model); /* "llama", "qwen2", "gemma3" */
OMNI_API const char* omni_model_name(const omni_model* model); /* general.name, may be "" */
OMNI_API const char* omni_model_chat_template(const omni_model* model); /* "gemma", "none", ... */
OMNI_API int32_t omni_model_n_vocab(const omni_model* model);
OMNI_API int32_t omni_model_n_ctx_train(const omni_model* model);
OMNI_API int32_t omni_model_n_embd(const omni_model* model);
OMNI_API int32_t omni_model_n_layer(const omni_model* model);
OMNI_API uint64_t omni_model_weight_bytes(const omni_model* model);
OMNI_API omni_token omni_model_token_bos(const omni_model* model); /* OMNI_TOKEN_NONE if none */
OMNI_API omni_token omni_model_token_eos(const omni_model* model);
OMNI_API int omni_model_token_is_eog(const omni_model* model, omni_token token); /* end of generation */
/* 1 for files written by `omnirt model create` (random weights: the output is noise). */
OMNI_API int omni_model_is_synthetic(const omni_model* model);

/* ---- vision (images in) -------------------------------------------------------------------
 * A model sees images through a vision encoder (ViT + adapter into its embedding space): the
 * model file's own (an omni model file: clip.vision.* keys and v.* tensors inside it) or an
 * mmproj file given at load (omni_model_params.mmproj_path) or by omni_model_load_mmproj().
 * Encoded images are cached per model by a hash of their bytes (and the preprocessing and
 * encoder), so the same image is encoded once per model; sessions share the cache. */

/* The marker that places an image in prompt text (as llama.cpp's mtmd default marker). */
#define OMNI_IMAGE_MARKER "<__image__>"

/* Attaches a vision projector file to a loaded model. Call it before sharing the model with
 * other threads; sessions created before it see it too. OMNI_ERR_WRONG_STATE when the model
 * already has a vision encoder; OMNI_ERR_INVALID_ARGUMENT when the projector's output width is
 * not the model's n_embd (a projector for another model); file errors as omni_model_load. */
OMNI_API omni_status omni_model_load_mmproj(omni_model* model, const char* path);
/* 1 when the model has a vision encoder (its own or an mmproj), else 0. */
OMNI_API int omni_model_has_vision(const omni_model* model);

typedef struct omni_vision_stats {
  size_t struct_size;     /* sizeof(omni_vision_stats): the library fills that many bytes */
  uint64_t encodes;       /* images run through the encoder */
  uint64_t cache_hits;    /* images answered from the cache (no encoder work) */
  uint64_t cache_misses;
  uint64_t cache_entries;
  uint64_t cache_bytes;   /* embedding bytes held (bounded; least recently used go first) */
  double encode_ms;       /* total encoder time (ViT + adapter), milliseconds */
  int32_t image_size;     /* the encoder's input size in pixels (square) */
  int32_t n_image_embd;   /* the adapter's output width (== the model's n_embd) */
} omni_vision_stats;

/* Counters of the model's vision encoder. OMNI_ERR_UNSUPPORTED without one. */
OMNI_API omni_status omni_model_vision_stats(const omni_model* model, omni_vision_stats* out);

/* Any GGUF metadata value as text (strings as they are, numbers in decimal, arrays abbreviated).
 * *len receives the byte length without the terminating NUL; the buffer needs len + 1 bytes.
 * buf may be NULL when cap is 0 (a size query). OMNI_ERR_NOT_FOUND when the key is absent. */
OMNI_API omni_status omni_model_meta_string(const omni_model* model, const char* key, char* buf,
                                            size_t cap, size_t* len);

/* ---- tokenizer --------------------------------------------------------------------------- */

enum {
  OMNI_TOKENIZE_ADD_BOS = 1u,       /* prepend BOS when the model's tokenizer uses one */
  OMNI_TOKENIZE_PARSE_SPECIAL = 2u  /* "<start_of_turn>" in the text becomes its token id */
};
enum {
  OMNI_DETOKENIZE_RENDER_SPECIAL = 1u /* render control tokens as their text */
};

/* Text (NUL-terminated UTF-8) to token ids. *n_tokens receives the count; when it exceeds
 * cap, OMNI_ERR_OUT_OF_RANGE and nothing is written (tokens may be NULL when cap is 0).
 * Invalid UTF-8 is OMNI_ERR_INVALID_ARGUMENT. */
OMNI_API omni_status omni_tokenize(const omni_model* model, const char* text, uint32_t flags,
                                   omni_token* tokens, size_t cap, size_t* n_tokens);
/* Token ids to UTF-8 text, NUL-terminated. *len receives the byte length without the NUL; the
 * buffer needs len + 1 bytes. An id outside [0, n_vocab) is OMNI_ERR_OUT_OF_RANGE. */
OMNI_API omni_status omni_detokenize(const omni_model* model, const omni_token* tokens,
                                     size_t n_tokens, uint32_t flags, char* buf, size_t cap,
                                     size_t* len);

/* ---- engine ------------------------------------------------------------------------------ */

enum { OMNI_DEVICE_CPU = 0 };

typedef struct omni_engine_params {
  size_t struct_size; /* sizeof(omni_engine_params) */
  int32_t device;     /* OMNI_DEVICE_CPU */
  int32_t n_threads;  /* 0 = all online cores */
} omni_engine_params;

OMNI_API omni_engine_params omni_engine_default_params(void);
OMNI_API omni_status omni_engine_create(const omni_engine_params* params, omni_engine** out);
OMNI_API void omni_engine_destroy(omni_engine* engine);

/* ---- session ----------------------------------------------------------------------------- */

enum { OMNI_KV_F16 = 0, OMNI_KV_F32 = 1 };

typedef struct omni_session_params {
  size_t struct_size;     /* sizeof(omni_session_params) */
  int32_t n_ctx;          /* KV capacity in tokens; 0 = min(training context, 4096) */
  int32_t n_batch;        /* tokens per prefill chunk; 0 = 256 */
  int32_t kv_type;        /* OMNI_KV_F16 (default) or OMNI_KV_F32 */
  int32_t n_threads;      /* 0 = the engine's */
  /* Sampler, applied in llama.cpp's order: penalties, top-k, top-p, min-p, temperature. */
  float temperature;      /* <= 0: greedy (argmax). Default 0.8 */
  int32_t top_k;          /* <= 0: off. Default 40 */
  float top_p;            /* >= 1: off. Default 0.95 */
  float min_p;            /* <= 0: off. Default 0.05 */
  float repeat_penalty;   /* 1: off. Default 1 */
  int32_t repeat_last_n;  /* tokens the penalty looks back over. Default 64 */
  uint64_t seed;          /* same seed, same input: same tokens. Default 0 */
  /* Appended in 0.1 (struct_size tells the library whether a caller has it): */
  int32_t int8_activations; /* nonzero: decode steps quantise activations to int8 for Q8_0,
                               Q4_0, Q5_0, Q4_K, Q5_K and Q6_K matrices (faster; logits differ
                               from the f32 path by ~1e-2 relative L2 on Gemma 3 270M). Default
                               0 (the environment's OMNIRT_INT8_DOT=1 still turns it on for
                               every session). */
} omni_session_params;

OMNI_API omni_session_params omni_session_default_params(void);

/* A session on `engine` for `model`. OMNI_ERR_INVALID_ARGUMENT for bad params (kv_type,
 * negative sizes, sampler values). */
OMNI_API omni_status omni_session_create(omni_engine* engine, const omni_model* model,
                                         const omni_session_params* params, omni_session** out);
OMNI_API void omni_session_destroy(omni_session* session);
/* Forgets the conversation (tokens, KV, logits, pending chat messages); reseeds the sampler. */
OMNI_API omni_status omni_session_reset(omni_session* session);

/* Input. Each call evaluates its tokens at once (prefill). When they do not fit in the
 * remaining context, OMNI_ERR_OUT_OF_RANGE and nothing changes. */

/* Tokenizes and evaluates text. flags: OMNI_TOKENIZE_*; BOS is added only to an empty session. */
OMNI_API omni_status omni_session_append_text(omni_session* session, const char* text,
                                              uint32_t flags);
/* Evaluates token ids; an id outside [0, n_vocab) is OMNI_ERR_OUT_OF_RANGE. */
OMNI_API omni_status omni_session_append_tokens(omni_session* session, const omni_token* tokens,
                                                size_t n_tokens);
/* One chat message through the model's chat template. role: "system", "user" or "assistant".
 * A system message is held and rendered with the next message; a user message ends with the
 * assistant's turn opener, ready for omni_session_generate(). After a generated reply, the
 * reply's turn is closed before the new message. OMNI_ERR_UNSUPPORTED when the model has no
 * chat template. */
OMNI_API omni_status omni_session_append_chat(omni_session* session, const char* role,
                                              const char* content);

/* Images: encoded file bytes (PNG, JPEG, WebP, BMP, GIF), decoded, preprocessed as the encoder's
 * family does (CLIP or SigLIP), encoded (or taken from the cache), and evaluated as rows of
 * the model's embedding space at the next positions; wrapped in the model family's image
 * start/end tokens where it has them (Gemma 3: <start_of_image> ... <end_of_image>).
 * flags: OMNI_TOKENIZE_ADD_BOS (BOS first when the session is empty; also for _prompt:
 * OMNI_TOKENIZE_PARSE_SPECIAL). Errors, with nothing changed in the session:
 * OMNI_ERR_UNSUPPORTED: the model has no vision encoder (load an mmproj) or the format has no
 * decoder; OMNI_ERR_CORRUPT_FILE: bytes that are no image or a truncated one;
 * OMNI_ERR_OUT_OF_RANGE: an image beyond 64 Mpx or 65535 px a side (decompression bombs), or
 * positions that do not fit in the context; OMNI_ERR_INVALID_ARGUMENT: marker count != image
 * count, an image in a system or assistant message; OMNI_ERR_WRONG_STATE: a chat system message
 * waits for its user message. Byte buffers are read during the call only. */
typedef struct omni_image {
  const uint8_t* data; /* the file's bytes */
  size_t size;
} omni_image;

OMNI_API omni_status omni_session_append_image(omni_session* session, const uint8_t* data,
                                               size_t size, uint32_t flags);
/* The same, from a file (OMNI_ERR_NOT_FOUND when there is none). */
OMNI_API omni_status omni_session_append_image_file(omni_session* session, const char* path,
                                                    uint32_t flags);
/* An image the caller has decoded: rows of width * 3 bytes (R, G, B; 8 bits each), row y at
 * rgb + y * stride (stride >= 3 * width), read during the call only; preprocessed, encoded
 * and placed as omni_session_append_image places a file's image (cached by a hash of the
 * pixels). OMNI_ERR_INVALID_ARGUMENT: NULL rgb, width or height < 1, stride < 3 * width;
 * OMNI_ERR_OUT_OF_RANGE: beyond the pixel limits (64 Mpx, 65535 a side); other errors as
 * omni_session_append_image. The session is unchanged on any error. */
OMNI_API omni_status omni_session_append_image_rgb(omni_session* session, const uint8_t* rgb,
                                                   int32_t width, int32_t height, size_t stride,
                                                   uint32_t flags);
/* Frames of a video file (any container and codec FFmpeg reads), sampled by presentation time:
 * frame k is the first at or after k / fps seconds, each frame at most once, at most
 * max_frames; evaluated as consecutive images at the next positions (as `omnirt generate
 * --video` places them at its marker), one evaluation, all or nothing. fps in (0, 1000],
 * max_frames in [1, 100000] (else OMNI_ERR_INVALID_ARGUMENT); OMNI_ERR_NOT_FOUND: no such
 * file; OMNI_ERR_CORRUPT_FILE: no video stream or no frame decodes; OMNI_ERR_OUT_OF_RANGE:
 * frames beyond the pixel limits, or more rows than the context holds; OMNI_ERR_UNSUPPORTED: no
 * vision encoder, or a build without FFmpeg. The session is unchanged on any error. */
OMNI_API omni_status omni_session_append_video_file(omni_session* session, const char* path,
                                                    double fps, int32_t max_frames,
                                                    uint32_t flags);
/* Text with OMNI_IMAGE_MARKER where images[i] go, in order; text without a marker gets its
 * images first. One evaluation, all or nothing. No images and no marker: as
 * omni_session_append_text (a marker without its image is OMNI_ERR_INVALID_ARGUMENT). */
OMNI_API omni_status omni_session_append_prompt(omni_session* session, const char* text,
                                                const omni_image* images, size_t n_images,
                                                uint32_t flags);
/* A user chat message (as omni_session_append_chat) with images at its markers, or opening the
 * message when it has none. */
OMNI_API omni_status omni_session_append_chat_images(omni_session* session, const char* role,
                                                     const char* content,
                                                     const omni_image* images, size_t n_images);

/* ---- audio (speech in, while the user speaks) ----------------------------------------------
 * A model hears through an audio encoder (Whisper encoder + adapter into its embedding space),
 * owned by the model as its vision encoder is: the model file's own (an omni model file:
 * clip.audio.* keys and a.* / mm.a.* tensors inside it) or an mmproj file's (Ultravox,
 * Qwen2-Audio; omni_model_params.mmproj_path or omni_model_load_mmproj, which take vision,
 * audio or both from the file). A session takes one utterance at a time:
 *
 *   omni_session_append_text(s, "<prompt before the audio>", OMNI_TOKENIZE_ADD_BOS);
 *   omni_session_audio_begin(s, NULL);                    // 2 s encoder chunks
 *   while (capturing) omni_session_append_audio(s, pcm, n, 16000);  // rows go in as chunks fill
 *   omni_session_audio_end(s, &n_rows);                   // the last partial chunk
 *   omni_session_append_text(s, "<prompt after the audio>", 0);
 *   omni_session_generate(s, ...);
 *
 * Each full chunk of audio is encoded and its rows evaluated at the next positions during the
 * append call that completes it, so the work left at audio_end is one partial chunk whatever
 * the utterance's length. A row covers 2 * stack encoder frames (Ultravox k = 8: 160 ms) or 40 ms
 * (Qwen2-Audio); each chunk is encoded as its own window (positions from 0): docs/AUDIO.md
 * measures what that costs in accuracy against Whisper's 30 s window. The model family's audio
 * markers (e.g. <|audio_bos|>) are the caller's text around the utterance.
 * While an utterance is open, other input (text, tokens, chat, images) and generate are
 * OMNI_ERR_WRONG_STATE; omni_session_reset drops the utterance with the rest. */

typedef struct omni_audio_params {
  size_t struct_size; /* sizeof(omni_audio_params) */
  /* Audio per encoder chunk in ms, rounded to the adapter's group (Ultravox k = 8: 160 ms);
   * 0 = the model file's omni.audio_in.chunk_ms, else 2000 (Qwen2.5-Omni's encoder window).
   * At most the encoder's window (30000 for Whisper's 1500 positions):
   * OMNI_ERR_INVALID_ARGUMENT naming the value otherwise. */
  int32_t chunk_ms;
} omni_audio_params;

OMNI_API omni_audio_params omni_audio_default_params(void);
/* 1 when the model has an audio encoder (its own or an mmproj's), else 0. */
OMNI_API int omni_model_has_audio(const omni_model* model);

/* Opens an utterance. params may be NULL. OMNI_ERR_UNSUPPORTED: the model has no audio
 * encoder; OMNI_ERR_WRONG_STATE: one is already open, or a chat system message waits for its
 * user message. */
OMNI_API omni_status omni_session_audio_begin(omni_session* session, const omni_audio_params* params);
/* Mono float samples in [-1, 1] at 16000 Hz (another sample_rate is OMNI_ERR_INVALID_ARGUMENT:
 * resample first; omnirt does not resample here). Every chunk the samples complete is encoded
 * and evaluated before the call returns. Errors: OMNI_ERR_WRONG_STATE without audio_begin;
 * OMNI_ERR_INVALID_ARGUMENT for NULL pcm with samples, or a NaN or infinite sample (nothing of
 * the call is consumed; the utterance stays open); OMNI_ERR_OUT_OF_RANGE when the rows do not
 * fit in the context: the utterance is closed then, the rows evaluated before it stay. */
OMNI_API omni_status omni_session_append_audio(omni_session* session, const float* pcm,
                                               size_t n_samples, int32_t sample_rate);
/* Closes the utterance: encodes and evaluates what is left (the last partial chunk).
 * *n_rows_appended (may be NULL) receives the rows (positions) the utterance added, also on
 * failure. An utterance without samples adds nothing and is OMNI_OK; one of fewer than 201
 * samples (no complete 25 ms frame) is OMNI_ERR_INVALID_ARGUMENT. The utterance is closed in
 * every case; OMNI_ERR_WRONG_STATE when none is open. */
OMNI_API omni_status omni_session_audio_end(omni_session* session, int64_t* n_rows_appended);

/* Receives each generated token and its text: `piece` holds only complete UTF-8 characters
 * (possibly none, len 0, while a character spans tokens) and is not NUL-terminated; it is valid
 * during the call only. A final call with token OMNI_TOKEN_NONE may deliver leftover bytes.
 * Return nonzero to stop generating. */
typedef int (*omni_token_callback)(omni_token token, const char* piece, size_t len,
                                   void* user_data);

typedef enum omni_stop_reason {
  OMNI_STOP_NONE = 0,         /* no generate call has finished yet */
  OMNI_STOP_END_OF_GENERATION = 1, /* the model produced an end-of-turn/EOS token (not delivered) */
  OMNI_STOP_MAX_TOKENS = 2,
  OMNI_STOP_CALLBACK = 3,     /* the callback returned nonzero */
  OMNI_STOP_REQUESTED = 4,    /* omni_session_stop() */
  OMNI_STOP_CONTEXT_FULL = 5
} omni_stop_reason;

/* Samples up to max_tokens tokens, evaluating each one (so the conversation can continue),
 * and streams them to cb (may be NULL). OMNI_ERR_WRONG_STATE before any input; returns
 * OMNI_ERR_CANCELLED when stopped by omni_session_stop(), OMNI_OK for every other stop
 * (see omni_session_stop_reason). */
OMNI_API omni_status omni_session_generate(omni_session* session, int32_t max_tokens,
                                           omni_token_callback cb, void* user_data);
/* Asks a running omni_session_generate() to return after its current token. Safe from any
 * thread while the session exists; a request made while no generate runs is cleared by the
 * next generate call. */
OMNI_API void omni_session_stop(omni_session* session);
OMNI_API omni_stop_reason omni_session_stop_reason(const omni_session* session);

/* Logits [n_vocab] for the next token after the last evaluated one. The pointer is valid until
 * the next call on the session. OMNI_ERR_WRONG_STATE before any evaluation. */
OMNI_API omni_status omni_session_logits(omni_session* session, const float** logits,
                                         int32_t* n_vocab);
/* Positions in the conversation (tokens, image and audio rows, evaluated, in the KV cache) and the
 * capacity. 0 on NULL. */
OMNI_API int32_t omni_session_n_tokens(const omni_session* session);
OMNI_API int32_t omni_session_n_ctx(const omni_session* session);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* OMNIRT_H */
