/* The public header compiled as strict C99 and exercised through the shared library only.
 *
 *   omnirt_c_api_test MODEL.gguf SCRATCH_DIR
 *
 * MODEL is the tiny synthetic gemma3 file (`omnirt model create --arch gemma3 --preset tiny`,
 * made by the c_api_model ctest fixture): a byte-level tokenizer whose ids follow GPT-2's
 * bytes_to_unicode order ('!'..'~' are ids 0..93, ' ' is 220), then <|bos|> 256, <|eos|> 257,
 * <start_of_turn> 258, <end_of_turn> 259; vocabulary 512, n_embd 256, 6 layers, context 2048.
 * Expected values below come from that construction and from Gemma's published chat format,
 * not from this library's earlier output. Broken files are written into SCRATCH_DIR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omnirt.h"

static int g_passed = 0;
static int g_failed = 0;

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (cond) {                                                                          \
      ++g_passed;                                                                        \
    } else {                                                                             \
      ++g_failed;                                                                        \
      fprintf(stderr, "FAILED %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
              omni_last_error());                                                        \
    }                                                                                    \
  } while (0)

#define CHECK_STATUS(expr, expected) CHECK((expr) == (expected))

static const char* g_model_path;
static const char* g_scratch;

/* GPT-2 byte-level id of an ASCII printable byte in the synthetic vocabulary. */
static omni_token byte_id(char c) { return (omni_token)(c - '!'); }

static int contains(const char* haystack, const char* needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

static void write_file(const char* path, const void* bytes, size_t n) {
  FILE* f = fopen(path, "wb");
  if (f == NULL) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
  if (n > 0) fwrite(bytes, 1, n, f);
  fclose(f);
}

/* ---- library ---------------------------------------------------------------------------- */

static void test_library(void) {
  char expected[64];
  sprintf(expected, "%d.%d.%d", omni_version_major(), omni_version_minor(), omni_version_patch());
  CHECK(strcmp(omni_version(), expected) == 0);
  CHECK(strncmp(omni_backends(), "cpu", 3) == 0);
  CHECK(omni_cpu_isa() != NULL && strlen(omni_cpu_isa()) > 0);
  CHECK(omni_cpu_features() != NULL);
  CHECK(strcmp(omni_status_name(OMNI_ERR_CORRUPT_FILE), "corrupt file") == 0);
  CHECK(strcmp(omni_status_name((omni_status)999), "unknown status") == 0);
  CHECK(omni_model_default_params().struct_size == sizeof(omni_model_params));
  CHECK(omni_engine_default_params().struct_size == sizeof(omni_engine_params));
  CHECK(omni_session_default_params().struct_size == sizeof(omni_session_params));
  /* destroy(NULL) is a no-op */
  omni_model_destroy(NULL);
  omni_engine_destroy(NULL);
  omni_session_destroy(NULL);
}

/* ---- model loading errors ---------------------------------------------------------------- */

static void test_load_errors(void) {
  omni_model* model = (omni_model*)&model; /* must be reset to NULL on failure */
  char path[1024];
  unsigned char bytes[4096];
  FILE* f;
  size_t n;
  omni_model_params params = omni_model_default_params();

  CHECK_STATUS(omni_model_load(g_model_path, NULL, NULL), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_model_load(NULL, NULL, &model), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(model == NULL);

  model = (omni_model*)&model;
  CHECK_STATUS(omni_model_load("/nonexistent/omnirt/model.gguf", NULL, &model), OMNI_ERR_NOT_FOUND);
  CHECK(model == NULL);
  CHECK(contains(omni_last_error(), "/nonexistent/omnirt/model.gguf"));

  params.struct_size = 0;
  CHECK_STATUS(omni_model_load(g_model_path, &params, &model), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(contains(omni_last_error(), "struct_size"));

  /* Wrong magic. */
  sprintf(path, "%s/c_api_bad_magic.gguf", g_scratch);
  memset(bytes, 0, sizeof bytes);
  memcpy(bytes, "GGUX", 4);
  write_file(path, bytes, 64);
  CHECK_STATUS(omni_model_load(path, NULL, &model), OMNI_ERR_CORRUPT_FILE);
  CHECK(model == NULL);

  /* Empty file. */
  sprintf(path, "%s/c_api_empty.gguf", g_scratch);
  write_file(path, bytes, 0);
  CHECK_STATUS(omni_model_load(path, NULL, &model), OMNI_ERR_CORRUPT_FILE);

  /* The real model cut inside its metadata. */
  f = fopen(g_model_path, "rb");
  CHECK(f != NULL);
  if (f != NULL) {
    n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    CHECK(n == sizeof bytes);
    sprintf(path, "%s/c_api_truncated.gguf", g_scratch);
    write_file(path, bytes, 3000);
    CHECK_STATUS(omni_model_load(path, NULL, &model), OMNI_ERR_CORRUPT_FILE);
    CHECK(contains(omni_last_error(), "truncated"));
    CHECK(model == NULL);
  }

  /* A committed broken fixture (absurd tensor count). */
  CHECK_STATUS(omni_model_load(OMNIRT_SOURCE_DIR "/tests/data/gguf/bad/absurd_n_tensors.gguf", NULL,
                               &model),
               OMNI_ERR_CORRUPT_FILE);
  CHECK(model == NULL);
}

/* ---- model queries and tokenizer --------------------------------------------------------- */

static void test_model_queries(const omni_model* model) {
  char buf[64];
  size_t len = 0;
  CHECK(strcmp(omni_model_arch(model), "gemma3") == 0);
  CHECK(strcmp(omni_model_chat_template(model), "none") != 0);
  CHECK(omni_model_n_vocab(model) == 512);
  CHECK(omni_model_n_embd(model) == 256);
  CHECK(omni_model_n_layer(model) == 6);
  CHECK(omni_model_n_ctx_train(model) == 2048);
  CHECK(omni_model_is_synthetic(model) == 1);
  CHECK(omni_model_weight_bytes(model) > 0);
  CHECK(omni_model_token_bos(model) == 256);
  CHECK(omni_model_token_eos(model) == 257);
  CHECK(omni_model_token_is_eog(model, 257) == 1);
  CHECK(omni_model_token_is_eog(model, 259) == 1); /* <end_of_turn> */
  CHECK(omni_model_token_is_eog(model, byte_id('a')) == 0);
  CHECK(omni_model_token_is_eog(model, 100000) == 0);

  /* NULL handles: zero values and a message. */
  CHECK(omni_model_n_vocab(NULL) == 0);
  CHECK(contains(omni_last_error(), "NULL"));
  CHECK(strcmp(omni_model_arch(NULL), "") == 0);
  CHECK(omni_model_is_synthetic(NULL) == 0);

  /* Metadata: size query, too small, exact fit, missing key. */
  CHECK_STATUS(omni_model_meta_string(model, "general.architecture", NULL, 0, &len),
               OMNI_ERR_OUT_OF_RANGE);
  CHECK(len == 6);
  memset(buf, 'x', sizeof buf);
  CHECK_STATUS(omni_model_meta_string(model, "general.architecture", buf, 6, &len),
               OMNI_ERR_OUT_OF_RANGE);
  CHECK(buf[0] == 'x'); /* untouched */
  CHECK_STATUS(omni_model_meta_string(model, "general.architecture", buf, 7, &len), OMNI_OK);
  CHECK(strcmp(buf, "gemma3") == 0);
  CHECK_STATUS(omni_model_meta_string(model, "gemma3.block_count", buf, sizeof buf, &len), OMNI_OK);
  CHECK(strcmp(buf, "6") == 0);
  CHECK_STATUS(omni_model_meta_string(model, "omnirt.synthetic", buf, sizeof buf, &len), OMNI_OK);
  CHECK(strcmp(buf, "true") == 0);
  CHECK_STATUS(omni_model_meta_string(model, "no.such.key", buf, sizeof buf, &len),
               OMNI_ERR_NOT_FOUND);
  CHECK(contains(omni_last_error(), "no.such.key"));
  CHECK_STATUS(omni_model_meta_string(NULL, "general.architecture", buf, sizeof buf, &len),
               OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_model_meta_string(model, NULL, buf, sizeof buf, &len),
               OMNI_ERR_INVALID_ARGUMENT);
}

static void test_tokenizer(const omni_model* model) {
  omni_token ids[64];
  omni_token hi[2];
  omni_token bad[2];
  omni_token special[1];
  char text[64];
  size_t n = 0;
  size_t len = 0;
  hi[0] = byte_id('h');
  hi[1] = byte_id('i');

  CHECK_STATUS(omni_tokenize(model, "hi", OMNI_TOKENIZE_ADD_BOS, ids, 64, &n), OMNI_OK);
  CHECK(n == 3 && ids[0] == 256 && ids[1] == hi[0] && ids[2] == hi[1]);
  CHECK_STATUS(omni_tokenize(model, "hi there", 0, ids, 64, &n), OMNI_OK);
  CHECK(n == 8 && ids[0] == hi[0] && ids[2] == 220 && ids[3] == byte_id('t'));
  CHECK_STATUS(omni_tokenize(model, "", 0, ids, 64, &n), OMNI_OK);
  CHECK(n == 0);

  /* Special-token text: one id with PARSE_SPECIAL, plain bytes without. */
  CHECK_STATUS(omni_tokenize(model, "<start_of_turn>", OMNI_TOKENIZE_PARSE_SPECIAL, ids, 64, &n),
               OMNI_OK);
  CHECK(n == 1 && ids[0] == 258);
  CHECK_STATUS(omni_tokenize(model, "<start_of_turn>", 0, ids, 64, &n), OMNI_OK);
  CHECK(n == 15 && ids[0] == byte_id('<'));

  /* Size query and too small a buffer: needed count reported, buffer untouched. */
  CHECK_STATUS(omni_tokenize(model, "hello", 0, NULL, 0, &n), OMNI_ERR_OUT_OF_RANGE);
  CHECK(n == 5);
  ids[0] = -7;
  CHECK_STATUS(omni_tokenize(model, "hello", 0, ids, 4, &n), OMNI_ERR_OUT_OF_RANGE);
  CHECK(n == 5 && ids[0] == -7);
  CHECK(contains(omni_last_error(), "5"));

  /* Bad input. */
  CHECK_STATUS(omni_tokenize(model, "\xff\xfe", 0, ids, 64, &n), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_tokenize(NULL, "hi", 0, ids, 64, &n), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_tokenize(model, NULL, 0, ids, 64, &n), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_tokenize(model, "hi", 0, NULL, 64, &n), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_tokenize(model, "hi", 0x80u, ids, 64, &n), OMNI_ERR_INVALID_ARGUMENT);

  /* Detokenize. */
  CHECK_STATUS(omni_detokenize(model, hi, 2, 0, text, sizeof text, &len), OMNI_OK);
  CHECK(len == 2 && strcmp(text, "hi") == 0);
  memset(text, 'x', sizeof text);
  CHECK_STATUS(omni_detokenize(model, hi, 2, 0, text, 2, &len), OMNI_ERR_OUT_OF_RANGE);
  CHECK(len == 2 && text[0] == 'x');
  CHECK_STATUS(omni_detokenize(model, hi, 2, 0, NULL, 0, &len), OMNI_ERR_OUT_OF_RANGE);
  CHECK(len == 2);
  special[0] = 258;
  CHECK_STATUS(omni_detokenize(model, special, 1, 0, text, sizeof text, &len), OMNI_OK);
  CHECK(len == 0 && text[0] == '\0');
  CHECK_STATUS(omni_detokenize(model, special, 1, OMNI_DETOKENIZE_RENDER_SPECIAL, text,
                               sizeof text, &len),
               OMNI_OK);
  CHECK(strcmp(text, "<start_of_turn>") == 0);
  bad[0] = hi[0];
  bad[1] = 512;
  CHECK_STATUS(omni_detokenize(model, bad, 2, 0, text, sizeof text, &len), OMNI_ERR_OUT_OF_RANGE);
  CHECK(contains(omni_last_error(), "512"));
  bad[1] = -1;
  CHECK_STATUS(omni_detokenize(model, bad, 2, 0, text, sizeof text, &len), OMNI_ERR_OUT_OF_RANGE);
}

/* ---- engine and sessions ----------------------------------------------------------------- */

typedef struct Collected {
  omni_token tokens[256];
  int n;
  int stop_after; /* callback returns nonzero after this many tokens; 0 = never */
  omni_session* stop_session; /* omni_session_stop() after stop_after tokens instead */
  size_t text_bytes;
} Collected;

static int collect(omni_token token, const char* piece, size_t len, void* user_data) {
  Collected* c = (Collected*)user_data;
  (void)piece;
  c->text_bytes += len;
  if (token == OMNI_TOKEN_NONE) return 0;
  if (c->n < 256) c->tokens[c->n] = token;
  c->n++;
  if (c->stop_after > 0 && c->n >= c->stop_after) {
    if (c->stop_session != NULL) {
      omni_session_stop(c->stop_session);
      return 0;
    }
    return 1;
  }
  return 0;
}

static int argmax(const float* x, int32_t n) {
  int best = 0;
  int32_t i;
  for (i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = (int)i;
  }
  return best;
}

static omni_session* new_session(omni_engine* engine, const omni_model* model, int32_t n_ctx,
                                 float temperature, uint64_t seed) {
  omni_session* s = NULL;
  omni_session_params p = omni_session_default_params();
  p.n_ctx = n_ctx;
  p.temperature = temperature;
  p.seed = seed;
  p.kv_type = OMNI_KV_F32;
  if (omni_session_create(engine, model, &p, &s) != OMNI_OK) {
    fprintf(stderr, "session create failed: %s\n", omni_last_error());
    ++g_failed;
  }
  return s;
}

static void test_engine(void) {
  omni_engine* engine = (omni_engine*)&engine;
  omni_engine_params p = omni_engine_default_params();
  CHECK_STATUS(omni_engine_create(NULL, NULL), OMNI_ERR_INVALID_ARGUMENT);
  p.device = 7;
  CHECK_STATUS(omni_engine_create(&p, &engine), OMNI_ERR_UNSUPPORTED);
  CHECK(engine == NULL);
  CHECK(contains(omni_last_error(), "7"));
  p.device = OMNI_DEVICE_CPU;
  p.n_threads = -1;
  CHECK_STATUS(omni_engine_create(&p, &engine), OMNI_ERR_INVALID_ARGUMENT);
  p.n_threads = 2;
  CHECK_STATUS(omni_engine_create(&p, &engine), OMNI_OK);
  omni_engine_destroy(engine);
}

static void test_session_errors(omni_engine* engine, const omni_model* model) {
  omni_session* s = (omni_session*)&s;
  omni_session_params p = omni_session_default_params();
  const float* logits = NULL;
  int32_t n_vocab = 0;
  omni_token tokens[3];
  omni_token many[16];
  int i;

  CHECK_STATUS(omni_session_create(NULL, model, NULL, &s), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(s == NULL);
  CHECK_STATUS(omni_session_create(engine, NULL, NULL, &s), OMNI_ERR_INVALID_ARGUMENT);
  p.kv_type = 5;
  CHECK_STATUS(omni_session_create(engine, model, &p, &s), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(contains(omni_last_error(), "kv_type"));
  p = omni_session_default_params();
  p.n_ctx = -4;
  CHECK_STATUS(omni_session_create(engine, model, &p, &s), OMNI_ERR_INVALID_ARGUMENT);

  /* NULL session everywhere. */
  CHECK_STATUS(omni_session_reset(NULL), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_text(NULL, "hi", 0), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_tokens(NULL, tokens, 1), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_chat(NULL, "user", "hi"), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_generate(NULL, 4, NULL, NULL), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_logits(NULL, &logits, &n_vocab), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(omni_session_n_tokens(NULL) == 0);
  omni_session_stop(NULL);

  s = new_session(engine, model, 8, 0.0f, 0);
  if (s == NULL) return;
  CHECK(omni_session_n_ctx(s) == 8);
  /* Wrong order. */
  CHECK_STATUS(omni_session_generate(s, 4, NULL, NULL), OMNI_ERR_WRONG_STATE);
  CHECK(contains(omni_last_error(), "no input"));
  CHECK_STATUS(omni_session_logits(s, &logits, &n_vocab), OMNI_ERR_WRONG_STATE);
  CHECK_STATUS(omni_session_append_chat(s, "system", "be brief"), OMNI_OK);
  CHECK_STATUS(omni_session_append_chat(s, "robot", "hi"), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(contains(omni_last_error(), "robot"));
  CHECK_STATUS(omni_session_reset(s), OMNI_OK);

  /* Out-of-range token ids: rejected, nothing evaluated. */
  tokens[0] = 1;
  tokens[1] = 512;
  tokens[2] = 2;
  CHECK_STATUS(omni_session_append_tokens(s, tokens, 3), OMNI_ERR_OUT_OF_RANGE);
  CHECK(contains(omni_last_error(), "512"));
  tokens[1] = -3;
  CHECK_STATUS(omni_session_append_tokens(s, tokens, 3), OMNI_ERR_OUT_OF_RANGE);
  CHECK(omni_session_n_tokens(s) == 0);
  CHECK_STATUS(omni_session_logits(s, &logits, &n_vocab), OMNI_ERR_WRONG_STATE);
  CHECK_STATUS(omni_session_append_tokens(s, NULL, 2), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_text(s, "\xc3", 0), OMNI_ERR_INVALID_ARGUMENT);

  /* More than the context holds: rejected whole; what fits is accepted. */
  for (i = 0; i < 16; ++i) many[i] = byte_id('a') + i;
  CHECK_STATUS(omni_session_append_tokens(s, many, 9), OMNI_ERR_OUT_OF_RANGE);
  CHECK(contains(omni_last_error(), "n_ctx 8"));
  CHECK(omni_session_n_tokens(s) == 0);
  CHECK_STATUS(omni_session_append_tokens(s, many, 6), OMNI_OK);
  CHECK(omni_session_n_tokens(s) == 6);
  CHECK_STATUS(omni_session_append_tokens(s, many, 3), OMNI_ERR_OUT_OF_RANGE);
  CHECK(omni_session_n_tokens(s) == 6);
  {
    /* Generation stops when the context is full. */
    Collected c;
    memset(&c, 0, sizeof c);
    CHECK_STATUS(omni_session_generate(s, 10, collect, &c), OMNI_OK);
    /* (with seed 7 the tiny model emits no end-of-turn token within these steps) */
    CHECK(omni_session_stop_reason(s) == OMNI_STOP_CONTEXT_FULL);
    CHECK(omni_session_n_tokens(s) == 8 && c.n == 2);
    CHECK_STATUS(omni_session_generate(s, -1, collect, &c), OMNI_ERR_INVALID_ARGUMENT);
  }
  omni_session_destroy(s);
}

static void test_generation(omni_engine* engine, const omni_model* model) {
  omni_session* a = new_session(engine, model, 64, 0.0f, 0);
  omni_session* b = new_session(engine, model, 64, 0.0f, 0);
  const float* logits = NULL;
  const float* logits_b = NULL;
  int32_t n_vocab = 0;
  omni_token prompt[4];
  Collected c;
  int i;
  int finite = 1;
  float max_diff = 0.0f;
  if (a == NULL || b == NULL) return;
  prompt[0] = 256;
  prompt[1] = byte_id('h');
  prompt[2] = byte_id('e');
  prompt[3] = byte_id('y');

  /* Logits after a batch equal logits after the same tokens one at a time. */
  CHECK_STATUS(omni_session_append_tokens(a, prompt, 4), OMNI_OK);
  for (i = 0; i < 4; ++i) CHECK_STATUS(omni_session_append_tokens(b, &prompt[i], 1), OMNI_OK);
  CHECK_STATUS(omni_session_logits(a, &logits, &n_vocab), OMNI_OK);
  CHECK(n_vocab == 512);
  CHECK_STATUS(omni_session_logits(b, &logits_b, NULL), OMNI_OK);
  for (i = 0; i < n_vocab; ++i) {
    float d = logits[i] > logits_b[i] ? logits[i] - logits_b[i] : logits_b[i] - logits[i];
    if (!(logits[i] == logits[i]) || logits[i] > 1e30f || logits[i] < -1e30f) finite = 0;
    if (d > max_diff) max_diff = d;
  }
  CHECK(finite);
  CHECK(max_diff < 1e-3f);

  /* Greedy: the first token is the argmax of the logits just read. */
  {
    const int expected_first = argmax(logits, n_vocab);
    memset(&c, 0, sizeof c);
    CHECK_STATUS(omni_session_generate(a, 5, collect, &c), OMNI_OK);
    CHECK(omni_session_stop_reason(a) == OMNI_STOP_MAX_TOKENS ||
          omni_session_stop_reason(a) == OMNI_STOP_END_OF_GENERATION);
    if (omni_model_token_is_eog(model, expected_first)) {
      CHECK(c.n == 0);
    } else {
      CHECK(c.n >= 1 && c.tokens[0] == expected_first);
    }
    CHECK(omni_session_n_tokens(a) == 4 + c.n);
    CHECK(c.n <= 5);
  }

  /* The callback stops generation; the emitted token stays in the conversation. */
  omni_session_reset(b);
  CHECK(omni_session_n_tokens(b) == 0);
  CHECK_STATUS(omni_session_logits(b, &logits_b, NULL), OMNI_ERR_WRONG_STATE);
  CHECK_STATUS(omni_session_append_text(b, "hey", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  CHECK(omni_session_n_tokens(b) == 4);
  memset(&c, 0, sizeof c);
  c.stop_after = 1;
  CHECK_STATUS(omni_session_generate(b, 20, collect, &c), OMNI_OK);
  CHECK(omni_session_stop_reason(b) == OMNI_STOP_CALLBACK);
  CHECK(c.n == 1 && omni_session_n_tokens(b) == 5);

  /* omni_session_stop(): the call returns OMNI_ERR_CANCELLED after the current token. */
  omni_session_reset(b);
  CHECK_STATUS(omni_session_append_text(b, "hey", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  memset(&c, 0, sizeof c);
  c.stop_after = 2;
  c.stop_session = b;
  {
    omni_status st = omni_session_generate(b, 20, collect, &c);
    CHECK(st == OMNI_ERR_CANCELLED);
    CHECK(omni_session_stop_reason(b) == OMNI_STOP_REQUESTED);
    CHECK(c.n == 2 && omni_session_n_tokens(b) == 6);
  }
  /* A new generate clears the request. */
  memset(&c, 0, sizeof c);
  CHECK_STATUS(omni_session_generate(b, 1, collect, &c), OMNI_OK);

  omni_session_destroy(a);
  omni_session_destroy(b);
}

static void test_sampling_reproducible(omni_engine* engine, const omni_model* model) {
  Collected c1, c2;
  omni_session* s1 = new_session(engine, model, 128, 1.0f, 42);
  omni_session* s2 = new_session(engine, model, 128, 1.0f, 42);
  if (s1 == NULL || s2 == NULL) return;
  memset(&c1, 0, sizeof c1);
  memset(&c2, 0, sizeof c2);
  CHECK_STATUS(omni_session_append_text(s1, "once upon", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  CHECK_STATUS(omni_session_append_text(s2, "once upon", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  CHECK_STATUS(omni_session_generate(s1, 24, collect, &c1), OMNI_OK);
  CHECK_STATUS(omni_session_generate(s2, 24, collect, &c2), OMNI_OK);
  CHECK(c1.n == c2.n && memcmp(c1.tokens, c2.tokens, sizeof(omni_token) * (size_t)c1.n) == 0);
  omni_session_destroy(s1);
  omni_session_destroy(s2);
}

static void test_chat(omni_engine* engine, const omni_model* model) {
  /* Gemma's format: <start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n */
  static const char* kTurn1 =
      "<start_of_turn>user\nbe brief\n\nhi<end_of_turn>\n<start_of_turn>model\n";
  static const char* kTurn2 =
      "<end_of_turn>\n<start_of_turn>user\nmore<end_of_turn>\n<start_of_turn>model\n";
  omni_session* s = new_session(engine, model, 256, 0.0f, 0);
  size_t n1 = 0, n2 = 0;
  Collected c;
  int before;
  if (s == NULL) return;
  CHECK_STATUS(omni_tokenize(model, kTurn1, OMNI_TOKENIZE_ADD_BOS | OMNI_TOKENIZE_PARSE_SPECIAL,
                             NULL, 0, &n1),
               OMNI_ERR_OUT_OF_RANGE);
  CHECK_STATUS(omni_tokenize(model, kTurn2, OMNI_TOKENIZE_PARSE_SPECIAL, NULL, 0, &n2),
               OMNI_ERR_OUT_OF_RANGE);

  CHECK_STATUS(omni_session_append_chat(s, "system", "be brief"), OMNI_OK);
  CHECK(omni_session_n_tokens(s) == 0); /* held for the user turn */
  CHECK_STATUS(omni_session_generate(s, 4, NULL, NULL), OMNI_ERR_WRONG_STATE);
  CHECK_STATUS(omni_session_append_chat(s, "user", "hi"), OMNI_OK);
  CHECK(omni_session_n_tokens(s) == (int32_t)n1);
  memset(&c, 0, sizeof c);
  CHECK_STATUS(omni_session_generate(s, 3, collect, &c), OMNI_OK);
  before = omni_session_n_tokens(s);
  CHECK(before == (int32_t)n1 + c.n);
  /* The reply's turn is closed before the next user turn. */
  CHECK_STATUS(omni_session_append_chat(s, "user", "more"), OMNI_OK);
  CHECK(omni_session_n_tokens(s) == before + (int32_t)n2);
  omni_session_destroy(s);
}

/* Handles may be destroyed in any order: a session outlives its model handle. */
static void test_destroy_order(omni_engine* engine) {
  omni_model* model = NULL;
  omni_session* s = NULL;
  Collected c;
  CHECK_STATUS(omni_model_load(g_model_path, NULL, &model), OMNI_OK);
  if (model == NULL) return;
  s = new_session(engine, model, 32, 0.0f, 0);
  omni_model_destroy(model);
  if (s == NULL) return;
  memset(&c, 0, sizeof c);
  CHECK_STATUS(omni_session_append_text(s, "ok", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  CHECK_STATUS(omni_session_generate(s, 2, collect, &c), OMNI_OK);
  omni_session_destroy(s);
}

/* A program built against a smaller omni_session_params (no sampler fields) still works. */
static void test_old_struct_size(omni_engine* engine, const omni_model* model) {
  omni_session* s = NULL;
  omni_session_params p = omni_session_default_params();
  p.struct_size = offsetof(omni_session_params, temperature);
  p.n_ctx = 16;
  p.temperature = -123.0f; /* beyond struct_size: must be ignored */
  CHECK_STATUS(omni_session_create(engine, model, &p, &s), OMNI_OK);
  CHECK(omni_session_n_ctx(s) == 16);
  omni_session_destroy(s);
  /* Built before int8_activations: whatever lies beyond struct_size is not read. */
  p = omni_session_default_params();
  CHECK(p.int8_activations == 0);
  p.struct_size = offsetof(omni_session_params, int8_activations);
  p.int8_activations = 1;
  CHECK_STATUS(omni_session_create(engine, model, &p, &s), OMNI_OK);
  omni_session_destroy(s);
  p = omni_session_default_params();
  p.int8_activations = 1;
  CHECK_STATUS(omni_session_create(engine, model, &p, &s), OMNI_OK);
  CHECK_STATUS(omni_session_append_text(s, "hi", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  omni_session_destroy(s);
}

/* ---- images ------------------------------------------------------------------------------ */

/* The vision entry points on a model without a vision encoder, and projectors that do not fit:
 * every call fails with its status and leaves the session as it was. (Images through a fitting
 * projector: tests/multimodal_test.cpp, which writes one of this model's width.) */
static void test_images(omni_engine* engine, omni_model* model) {
  omni_session* s = NULL;
  omni_session_params sp = omni_session_default_params();
  omni_model_params mp = omni_model_default_params();
  omni_model* m2 = (omni_model*)&m2;
  omni_vision_stats vs;
  omni_image img;
  const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const float* logits = NULL;
  float first = 0.0f;
  int32_t n_vocab = 0, n_before = 0;
  char path[1024];

  CHECK(strcmp(OMNI_IMAGE_MARKER, "<__image__>") == 0);
  CHECK(mp.mmproj_path == NULL);
  CHECK(omni_model_has_vision(model) == 0);
  CHECK(omni_model_has_vision(NULL) == 0);
  vs.struct_size = sizeof vs;
  CHECK_STATUS(omni_model_vision_stats(model, &vs), OMNI_ERR_UNSUPPORTED);
  CHECK_STATUS(omni_model_vision_stats(model, NULL), OMNI_ERR_INVALID_ARGUMENT);

  sp.n_ctx = 64;
  CHECK_STATUS(omni_session_create(engine, model, &sp, &s), OMNI_OK);
  if (s == NULL) return;
  CHECK_STATUS(omni_session_append_text(s, "hi", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  n_before = omni_session_n_tokens(s);
  CHECK_STATUS(omni_session_logits(s, &logits, &n_vocab), OMNI_OK);
  first = logits ? logits[0] : 0.0f;

  img.data = png_magic;
  img.size = sizeof png_magic;
  CHECK_STATUS(omni_session_append_image(s, png_magic, sizeof png_magic, 0), OMNI_ERR_UNSUPPORTED);
  CHECK(contains(omni_last_error(), "no vision encoder"));
  CHECK_STATUS(omni_session_append_prompt(s, "a " OMNI_IMAGE_MARKER, &img, 1, 0),
               OMNI_ERR_UNSUPPORTED);
  CHECK_STATUS(omni_session_append_chat_images(s, "user", "look", &img, 1), OMNI_ERR_UNSUPPORTED);
  CHECK_STATUS(omni_session_append_chat_images(s, "system", "look", &img, 1),
               OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_image(NULL, png_magic, 1, 0), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_image(s, NULL, 5, 0), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_image(s, png_magic, sizeof png_magic, 0x80u),
               OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_image_file(s, NULL, 0), OMNI_ERR_INVALID_ARGUMENT);
  /* Pixels and videos: argument errors first, then the missing encoder; nothing changes. */
  CHECK_STATUS(omni_session_append_image_rgb(NULL, png_magic, 1, 1, 3, 0), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_image_rgb(s, NULL, 1, 1, 3, 0), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_image_rgb(s, png_magic, 2, 1, 5, 0), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(contains(omni_last_error(), "stride 5"));
  CHECK_STATUS(omni_session_append_image_rgb(s, png_magic, 1, 0, 3, 0), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_image_rgb(s, png_magic, 1, 1, 3, 0), OMNI_ERR_UNSUPPORTED);
  CHECK(contains(omni_last_error(), "no vision encoder"));
  CHECK_STATUS(omni_session_append_video_file(s, NULL, 1.0, 8, 0), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_video_file(s, "clip.mp4", -1.0, 8, 0), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_video_file(s, "clip.mp4", 1.0, 8, 0), OMNI_ERR_UNSUPPORTED);
  /* No image: the prompt call is a text call. */
  CHECK_STATUS(omni_session_append_prompt(s, "", NULL, 0, 0), OMNI_OK);
  CHECK(omni_session_n_tokens(s) == n_before);
  CHECK_STATUS(omni_session_logits(s, &logits, &n_vocab), OMNI_OK);
  CHECK(logits != NULL && logits[0] == first);

  /* Projectors: missing file; one of another width (the committed clip_tiny fixture: 80). */
  CHECK_STATUS(omni_model_load_mmproj(model, "/nonexistent/omnirt/mmproj.gguf"), OMNI_ERR_NOT_FOUND);
  CHECK(contains(omni_last_error(), "/nonexistent/omnirt/mmproj.gguf"));
  sprintf(path, "%s/tests/data/vision/clip_tiny.gguf", OMNIRT_SOURCE_DIR);
  CHECK_STATUS(omni_model_load_mmproj(model, path), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(contains(omni_last_error(), "width 80"));
  CHECK(omni_model_has_vision(model) == 0);
  mp.mmproj_path = path;
  CHECK_STATUS(omni_model_load(g_model_path, &mp, &m2), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(m2 == NULL);
  CHECK_STATUS(omni_model_load_mmproj(NULL, path), OMNI_ERR_INVALID_ARGUMENT);
  omni_session_destroy(s);
}

/* ---- audio ------------------------------------------------------------------------------- */

/* The audio entry points on a model without an audio encoder, in the wrong order and with
 * NULLs: every call fails with its status and leaves the session as it was. (Audio through an
 * encoder: tests/capi_audio_test.cpp, on the omni-tiny preset.) */
static void test_audio(omni_engine* engine, omni_model* model) {
  omni_session* s = NULL;
  omni_session_params sp = omni_session_default_params();
  omni_audio_params ap = omni_audio_default_params();
  float pcm[320];
  const float* logits = NULL;
  float first = 0.0f;
  int32_t n_vocab = 0, n_before = 0;
  int64_t n_rows = -1;
  int i;

  for (i = 0; i < 320; ++i) pcm[i] = 0.25f * (float)((i % 40) - 20) / 20.0f;
  CHECK(ap.struct_size == sizeof(omni_audio_params));
  CHECK(ap.chunk_ms == 0);
  CHECK(omni_model_has_audio(model) == 0);
  CHECK(omni_model_has_audio(NULL) == 0);

  sp.n_ctx = 64;
  CHECK_STATUS(omni_session_create(engine, model, &sp, &s), OMNI_OK);
  if (s == NULL) return;
  CHECK_STATUS(omni_session_append_text(s, "hi", OMNI_TOKENIZE_ADD_BOS), OMNI_OK);
  n_before = omni_session_n_tokens(s);
  CHECK_STATUS(omni_session_logits(s, &logits, &n_vocab), OMNI_OK);
  first = logits ? logits[0] : 0.0f;

  /* No encoder. */
  CHECK_STATUS(omni_session_audio_begin(s, NULL), OMNI_ERR_UNSUPPORTED);
  CHECK(contains(omni_last_error(), "no audio encoder"));
  CHECK_STATUS(omni_session_audio_begin(s, &ap), OMNI_ERR_UNSUPPORTED);
  /* Wrong order: nothing open. */
  CHECK_STATUS(omni_session_append_audio(s, pcm, 320, 16000), OMNI_ERR_WRONG_STATE);
  CHECK(contains(omni_last_error(), "omni_session_audio_begin"));
  CHECK_STATUS(omni_session_audio_end(s, &n_rows), OMNI_ERR_WRONG_STATE);
  CHECK_STATUS(omni_session_audio_end(s, NULL), OMNI_ERR_WRONG_STATE);
  /* NULLs and bad values. */
  CHECK_STATUS(omni_session_audio_begin(NULL, NULL), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_append_audio(NULL, pcm, 320, 16000), OMNI_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(omni_session_audio_end(NULL, &n_rows), OMNI_ERR_INVALID_ARGUMENT);
  ap.chunk_ms = -1;
  CHECK_STATUS(omni_session_audio_begin(s, &ap), OMNI_ERR_INVALID_ARGUMENT);
  CHECK(contains(omni_last_error(), "chunk_ms -1"));
  ap.chunk_ms = 0;
  ap.struct_size = 0;
  CHECK_STATUS(omni_session_audio_begin(s, &ap), OMNI_ERR_INVALID_ARGUMENT);
  /* The session is as it was. */
  CHECK(omni_session_n_tokens(s) == n_before);
  CHECK_STATUS(omni_session_logits(s, &logits, &n_vocab), OMNI_OK);
  CHECK(logits != NULL && logits[0] == first);
  CHECK_STATUS(omni_session_append_text(s, "!", 0), OMNI_OK);
  omni_session_destroy(s);
}

int main(int argc, char** argv) {
  omni_model* model = NULL;
  omni_engine* engine = NULL;
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.gguf SCRATCH_DIR\n", argv[0]);
    return 2;
  }
  g_model_path = argv[1];
  g_scratch = argv[2];

  test_library();
  test_load_errors();
  if (omni_model_load(g_model_path, NULL, &model) != OMNI_OK) {
    fprintf(stderr, "cannot load %s: %s\n", g_model_path, omni_last_error());
    printf("%d passed, %d failed\n", g_passed, g_failed + 1);
    return 1;
  }
  test_model_queries(model);
  test_tokenizer(model);
  test_engine();
  CHECK_STATUS(omni_engine_create(NULL, &engine), OMNI_OK);
  if (engine != NULL) {
    test_session_errors(engine, model);
    test_generation(engine, model);
    test_sampling_reproducible(engine, model);
    test_chat(engine, model);
    test_destroy_order(engine);
    test_old_struct_size(engine, model);
    test_images(engine, model);
    test_audio(engine, model);
  }
  omni_engine_destroy(engine);
  omni_model_destroy(model);
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
