// A voice turn on the omni-tiny preset end to end: decode loop -> streaming SNAC. Deterministic
// for a fixed seed, audio length = frames x samples per frame group (the streaming decoder
// emits exactly what a whole decode would), stages in order; a codec that does not fit the
// heads is refused with a message.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>

#include "audio/adapter/audio_stream.h"
#include "kernels/core/thread_pool.h"
#include "kernels/ref/ops_ref.h"
#include "runtime/model/backbone.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/snac_loader.h"
#include "runtime/model/synthetic_omni.h"
#include "runtime/model/voice_turn.h"
#include "tests/audio_test_util.h"
#include "tests/test_util.h"

namespace omni {
namespace {

using Loaded = test::LoadedOmni;

// omni-tiny etc. in f32, weights from `seed`.
Loaded load(const std::string& preset, uint64_t seed) { return test::load_synthetic_omni(preset, DType::kF32, seed); }

// `edit` adjusts the turn's parameters (defaults: codec thread on, text head skipped).
StatusOr<VoiceTurnResult> turn(const Loaded& l, uint64_t seed, int64_t max_steps,
                               const std::function<void(VoiceTurnParams&)>& edit = {}) {
  ContextParams cp;
  cp.n_ctx = 256;
  cp.n_threads = 2;
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, Context::create(*l.model, cp));
  audio::SnacDecoder codec(l.snac->weights, ctx->thread_pool());
  OMNI_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, l.model->tokenizer().encode("Tell me a story.", true, false));
  VoiceTurnParams p;
  p.decode.text_sampling.seed = seed;
  p.decode.audio_sampling.seed = seed;
  p.decode.max_steps = max_steps;
  p.noise_seed = seed;
  if (edit) edit(p);
  std::vector<float> streamed;  // what the sink saw, in order
  auto r = run_voice_turn(*ctx, l.heads, codec, prompt, p,
                          [&](const float* x, size_t n) { streamed.insert(streamed.end(), x, x + n); });
  if (r.ok()) {
    EXPECT_TRUE(streamed == r->pcm);
    // speak() hands the context and the codec back as it found them.
    EXPECT_EQ(&ctx->step_pool(), &ctx->thread_pool());
    EXPECT_EQ(&codec.thread_pool(), &ctx->thread_pool());
  }
  return r;
}

TEST(VoiceTurn, OmniTinyIsDeterministicWithTheExpectedLengthAndOrderedStages) {
  Loaded l = load("omni-tiny", 21);
  ASSERT_TRUE(l.model && l.snac);
  auto a = turn(l, 9, 40);
  auto b = turn(l, 9, 40);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->text_tokens, b->text_tokens);
  ASSERT_EQ(a->pcm.size(), b->pcm.size());
  EXPECT_TRUE(a->pcm == b->pcm);
  ASSERT_GT(a->n_frames, 0);
  EXPECT_EQ(a->sample_rate, 24000);
  EXPECT_EQ(static_cast<int64_t>(a->pcm.size()), a->n_frames * l.snac->weights.hp.samples_per_group());
  for (float x : a->pcm) ASSERT_TRUE(std::isfinite(x) && std::fabs(x) <= 1.0f);
  const VoiceTurnTimings& t = a->t;
  EXPECT_GE(t.prefill_done, 0.0);
  EXPECT_GE(t.first_frame, t.prefill_done);
  EXPECT_GE(t.first_pcm, t.first_frame);
  EXPECT_GE(t.done, t.first_pcm);
  if (!a->text_tokens.empty()) {
    EXPECT_GE(t.first_text, t.prefill_done);
    EXPECT_LE(t.first_text, t.first_frame);  // text comes at step 0, the first frame at step 7
  }
}

// The user's turn as audio (a 1.5 s tone), streamed through the audio encoder into the
// decoder while it "arrives", then the answer.
// batched_end: the encoder's last rows are held back at the end of the input and evaluated
// with the end/answer markers in one batch (omnirt voice), else row by row as they come.
StatusOr<VoiceTurnResult> audio_turn(const Loaded& l, uint64_t seed, int64_t* rows_out, bool batched_end = false) {
  ContextParams cp;
  cp.n_ctx = 512;
  cp.n_threads = 2;
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, Context::create(*l.model, cp));
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<AudioEncoderModel> enc, load_audio_encoder(l.model->file()));
  AudioOutParams p;
  p.text_sampling.seed = p.audio_sampling.seed = seed;
  p.max_steps = 30;
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<AudioOutDecoder> dec, AudioOutDecoder::create(l.heads, *ctx, p));
  OMNI_RETURN_IF_ERROR(dec->begin_audio_input());
  bool at_end = false;
  std::vector<float> tail;
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<audio::AudioStream> stream,
                        audio::AudioStream::create(enc->weights, ctx->thread_pool(), [&](const float* rows, int64_t n) {
                          if (!(batched_end && at_end)) return dec->audio_input_rows(rows, n);
                          tail.insert(tail.end(), rows, rows + n * l.model->hparams().n_embd);
                          return Status::Ok();
                        }));
  std::vector<float> pcm(24000);
  for (size_t i = 0; i < pcm.size(); ++i) pcm[i] = 0.3f * std::sin(2.0f * 3.14159265f * 440.0f * float(i) / 16000.0f);
  for (size_t i = 0; i < pcm.size(); i += 1600) OMNI_RETURN_IF_ERROR(stream->push(pcm.data() + i, 1600));
  const auto start = std::chrono::steady_clock::now();
  at_end = true;
  OMNI_RETURN_IF_ERROR(stream->finish());
  if (batched_end) {
    EXPECT_FALSE(tail.empty());  // the 1.5 s input ends inside its first 2 s chunk
    OMNI_RETURN_IF_ERROR(dec->end_audio_input(tail.data(), static_cast<int64_t>(tail.size()) / l.model->hparams().n_embd));
  } else {
    OMNI_RETURN_IF_ERROR(dec->end_audio_input());
  }
  *rows_out = stream->stats().rows;
  EXPECT_EQ(ctx->n_past(), 1 + *rows_out + 2);
  audio::SnacDecoder codec(l.snac->weights, ctx->thread_pool());
  return speak(*dec, l.heads.spec, codec, start, {}, seed);
}

TEST(VoiceTurn, AudioInputTurnIsDeterministic) {
  Loaded l = load("omni-tiny", 23);
  ASSERT_TRUE(l.model && l.snac);
  int64_t rows_a = 0, rows_b = 0;
  auto a = audio_turn(l, 4, &rows_a);
  auto b = audio_turn(l, 4, &rows_b);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok());
  EXPECT_GT(rows_a, 0);
  EXPECT_EQ(rows_a, rows_b);
  EXPECT_EQ(a->text_tokens, b->text_tokens);
  EXPECT_TRUE(a->pcm == b->pcm);
  EXPECT_EQ(static_cast<int64_t>(a->pcm.size()), a->n_frames * l.snac->weights.hp.samples_per_group());
}

// Holding the last chunk's rows back and evaluating them with the markers in one batch gives the
// same turn as feeding them row by row (same tokens; audio to f32 rounding of the batch path).
TEST(VoiceTurn, BatchedEndOfInputGivesTheSameTurn) {
  Loaded l = load("omni-tiny", 23);
  ASSERT_TRUE(l.model && l.snac);
  int64_t rows_a = 0, rows_b = 0;
  auto a = audio_turn(l, 4, &rows_a, false);
  auto b = audio_turn(l, 4, &rows_b, true);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(rows_a, rows_b);
  EXPECT_EQ(a->text_tokens, b->text_tokens);
  ASSERT_EQ(a->n_frames, b->n_frames);
  ASSERT_EQ(a->pcm.size(), b->pcm.size());
  for (size_t i = 0; i < a->pcm.size(); ++i) ASSERT_NEAR(a->pcm[i], b->pcm[i], 1e-4f) << i;
}

TEST(VoiceTurn, CpuClockStagesAreOrderedAndStepPartsAdd) {
  Loaded l = load("omni-tiny", 21);
  ASSERT_TRUE(l.model && l.snac);
  auto a = turn(l, 9, 40);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  const VoiceTurnTimings& t = a->t;
  EXPECT_GE(t.cpu_prefill_done, 0.0);
  EXPECT_GE(t.cpu_first_frame, t.cpu_prefill_done);
  EXPECT_GE(t.cpu_first_pcm, t.cpu_first_frame);
  EXPECT_GE(t.cpu_done, t.cpu_first_pcm);
  EXPECT_GE(t.cpu_codec, 0.0);
  EXPECT_LE(t.cpu_codec, t.cpu_done);
  EXPECT_GT(t.step_forward, 0.0);
  EXPECT_GT(t.step_heads, 0.0);
  EXPECT_GE(t.step_sample, 0.0);
  EXPECT_LE(t.step_forward + t.step_heads + t.step_sample, t.done);
}

// After the first audio the codec runs on its own thread beside the decode loop (steps on the
// context's other thread): the same tokens and bit-identical samples as all in series, every
// sample through the sink in order.
TEST(VoiceTurn, CodecThreadGivesTheSameTurn) {
  Loaded l = load("omni-tiny", 21);
  ASSERT_TRUE(l.model && l.snac);
  auto serial = turn(l, 9, 40, [](VoiceTurnParams& p) { p.codec_thread = false; });
  auto overlap = turn(l, 9, 40, [](VoiceTurnParams& p) { p.codec_thread = true; });
  ASSERT_TRUE(serial.ok()) << serial.status().to_string();
  ASSERT_TRUE(overlap.ok()) << overlap.status().to_string();
  ASSERT_GT(serial->n_frames, 4);  // frames after the first audio went through the codec thread
  EXPECT_EQ(serial->text_tokens, overlap->text_tokens);
  EXPECT_EQ(serial->n_frames, overlap->n_frames);
  ASSERT_EQ(serial->pcm.size(), overlap->pcm.size());
  EXPECT_TRUE(serial->pcm == overlap->pcm);
  EXPECT_EQ(static_cast<int64_t>(overlap->pcm.size()), overlap->n_frames * l.snac->weights.hp.samples_per_group());
  EXPECT_GE(overlap->t.first_pcm, overlap->t.first_frame);
  EXPECT_GE(overlap->t.done, overlap->t.first_pcm);
  EXPECT_GT(overlap->t.codec_busy, 0.0);
}

// Once the text has ended (here cut after 3 tokens, as if the model sampled its end), the steps
// skip the text head: the same text and codes, so the same samples, as with the head computed.
TEST(VoiceTurn, SkippingTheTextHeadAfterTheTextKeepsEveryToken) {
  Loaded l = load("omni-tiny", 21);
  ASSERT_TRUE(l.model && l.snac);
  // Seed 10: 22 frames after the cut text (the uncut turn says 13 text tokens).
  auto with_head = turn(l, 10, 40, [](VoiceTurnParams& p) {
    p.decode.max_text_tokens = 3;
    p.decode.skip_text_head = false;
  });
  auto skipped = turn(l, 10, 40, [](VoiceTurnParams& p) {
    p.decode.max_text_tokens = 3;
    p.decode.skip_text_head = true;
  });
  ASSERT_TRUE(with_head.ok()) << with_head.status().to_string();
  ASSERT_TRUE(skipped.ok()) << skipped.status().to_string();
  EXPECT_EQ(skipped->text_tokens.size(), 3u);
  EXPECT_EQ(with_head->text_tokens, skipped->text_tokens);
  ASSERT_GT(skipped->n_frames, 15);  // every frame comes after the end of the text (step 3)
  EXPECT_EQ(with_head->n_frames, skipped->n_frames);
  EXPECT_TRUE(with_head->pcm == skipped->pcm);
  // The cut is what ended the text: without it the same seed says more.
  auto uncut = turn(l, 10, 40);
  ASSERT_TRUE(uncut.ok());
  EXPECT_GT(uncut->text_tokens.size(), 3u);
}

// Context::eval_embeddings_hidden leaves the same hidden state as eval_embeddings, no logits,
// and the cache as eval_embeddings does (the next logits agree); fewer step threads change
// nothing.
TEST(VoiceTurn, HiddenOnlyEvaluationMatchesTheFullOne) {
  Loaded l = load("omni-tiny", 21);
  ASSERT_TRUE(l.model);
  const int64_t d = l.model->hparams().n_embd, V = l.model->hparams().n_vocab;
  ContextParams cp;
  cp.n_ctx = 64;
  cp.n_threads = 2;
  auto a = Context::create(*l.model, cp);
  auto b = Context::create(*l.model, cp);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->last_logits(), nullptr);  // nothing evaluated yet
  EXPECT_EQ((*b)->set_step_threads(0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*b)->set_step_threads(3).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE((*b)->set_step_threads(1).ok());
  EXPECT_EQ((*b)->step_pool().n_threads(), 1);
  std::vector<float> rows(static_cast<size_t>(5 * d));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = 0.05f * std::sin(0.37f * static_cast<float>(i));
  // 3 rows at once, then 2 single rows (the step path).
  ASSERT_TRUE((*a)->eval_embeddings(rows.data(), 3, false).ok());
  ASSERT_TRUE((*b)->eval_embeddings_hidden(rows.data(), 3).ok());
  for (int64_t r = 3; r < 5; ++r) {
    ASSERT_TRUE((*a)->eval_embeddings(rows.data() + r * d, 1, false).ok());
    ASSERT_TRUE((*b)->eval_embeddings_hidden(rows.data() + r * d, 1).ok());
    EXPECT_EQ((*b)->n_logit_rows(), 0);
    EXPECT_EQ((*b)->last_logits(), nullptr);
    ASSERT_NE((*b)->last_hidden(), nullptr);
    for (int64_t j = 0; j < d; ++j) ASSERT_EQ((*a)->last_hidden()[j], (*b)->last_hidden()[j]) << r << "," << j;
  }
  EXPECT_EQ((*a)->n_past(), (*b)->n_past());
  EXPECT_EQ((*b)->eval_embeddings_hidden(nullptr, 1).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE((*a)->eval_embeddings(rows.data(), 1, false).ok());
  ASSERT_TRUE((*b)->eval_embeddings(rows.data(), 1, false).ok());
  ASSERT_NE((*b)->last_logits(), nullptr);
  for (int64_t v = 0; v < V; ++v) ASSERT_EQ((*a)->last_logits()[v], (*b)->last_logits()[v]) << v;
}

TEST(VoiceTurn, LatencySpreadIsMedianNearestRankP95AndMin) {
  // numpy: np.median, np.percentile(v, 95, method="inverted_cdf"), np.min.
  LatencySpread s = latency_spread({5, 1, 4, 2, 3, -1});  // -1: the event did not happen
  EXPECT_EQ(s.n, 5);
  EXPECT_DOUBLE_EQ(s.p50, 3);
  EXPECT_DOUBLE_EQ(s.p95, 5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  std::vector<double> v;
  for (int i = 20; i >= 1; --i) v.push_back(i);
  s = latency_spread(v);
  EXPECT_DOUBLE_EQ(s.p50, 10.5);
  EXPECT_DOUBLE_EQ(s.p95, 19);
  EXPECT_DOUBLE_EQ(s.min, 1);
  s = latency_spread({-1, -1});
  EXPECT_EQ(s.n, 0);
  EXPECT_EQ(s.p50, -1);
  EXPECT_EQ(s.p95, -1);
}

TEST(VoiceTurn, ACodecThatDoesNotFitTheHeadsIsRefused) {
  Loaded l = load("omni-tiny", 22);
  ASSERT_TRUE(l.model);
  audio::SnacHParams hp;  // the 24 kHz codec: 4096 codes, the tiny heads emit 64
  Status st = check_codec_matches(l.heads.spec, hp);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("4096"), std::string::npos) << st.to_string();
  hp.codebook_size = 64;
  hp.vq_strides = {4, 2};
  st = check_codec_matches(l.heads.spec, hp);
  EXPECT_NE(st.message().find("levels"), std::string::npos) << st.to_string();
  hp.vq_strides = {4, 1, 1};
  st = check_codec_matches(l.heads.spec, hp);
  EXPECT_NE(st.message().find("level 1"), std::string::npos) << st.to_string();
  EXPECT_TRUE(check_codec_matches(l.heads.spec, l.snac->weights.hp).ok());
}

// The Backbone interface on the CPU: extra outputs over the last hidden state equal the scalar
// reference dot products (ref::dot, double accumulation) within f32 rounding, only the
// requested matrices are written, and bad calls are refused with a status.
TEST(VoiceTurn, CpuBackboneExtraOutputsMatchTheScalarReference) {
  Loaded l = load("omni-tiny", 23);
  ASSERT_TRUE(l.model);
  ContextParams cp;
  cp.n_ctx = 64;
  cp.n_threads = 2;
  auto ctx = Context::create(*l.model, cp);
  ASSERT_TRUE(ctx.ok());
  CpuBackbone bb(**ctx);
  EXPECT_STREQ(bb.backend_name(), "cpu");
  EXPECT_EQ(bb.cpu_context(), ctx->get());
  const AudioOutSpec& s = l.heads.spec;
  const int64_t V = s.codebook_vocab, d = l.model->hparams().n_embd;
  std::vector<float> out(size_t(s.n_codebooks * V), NAN);
  const int32_t which[] = {0, 3, 6};
  EXPECT_EQ(bb.run_extra_outputs(which, 3, out.data()).code(), StatusCode::kWrongState);  // no set
  ASSERT_TRUE(bb.set_extra_outputs(l.heads.head).ok());
  EXPECT_FALSE(bb.has_hidden());
  EXPECT_EQ(bb.run_extra_outputs(which, 3, out.data()).code(), StatusCode::kWrongState);  // no eval
  const std::vector<int32_t> prompt = {1, 5, 9, 2};
  ASSERT_TRUE(bb.eval(prompt, false).ok());
  ASSERT_TRUE(bb.has_hidden());
  ASSERT_TRUE(bb.run_extra_outputs(which, 3, out.data()).ok());
  const float* h = (*ctx)->last_hidden();
  for (int32_t i = 0; i < s.n_codebooks; ++i) {
    const Weight& w = l.heads.head[size_t(i)];
    const bool asked = i == 0 || i == 3 || i == 6;
    for (int64_t r = 0; r < V; ++r) {
      const float got = out[size_t(i * V + r)];
      if (!asked) {
        ASSERT_TRUE(std::isnan(got)) << "head " << i << " row " << r << " was written";
        continue;
      }
      const auto* row = static_cast<const uint8_t*>(w.data) + r * dtype_row_bytes(w.type, d);
      const float want = ref::dot(w.type, row, h, d);
      ASSERT_NEAR(got, want, 1e-4f * (1.0f + std::fabs(want))) << "head " << i << " row " << r;
    }
  }
  const int32_t bad = s.n_codebooks;
  EXPECT_EQ(bb.run_extra_outputs(&bad, 1, out.data()).code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> many(size_t(kMaxExtraOutputs + 1), 0);
  EXPECT_EQ(bb.run_extra_outputs(many.data(), kMaxExtraOutputs + 1, out.data()).code(), StatusCode::kInvalidArgument);
  Weight narrow = l.heads.head[0];
  narrow.n_in = d - 1;
  EXPECT_EQ(bb.set_extra_outputs(std::span<const Weight>(&narrow, 1)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bb.set_extra_outputs({}).code(), StatusCode::kInvalidArgument);
}

// The backbone/codec-stream overloads are the same turn as the Context/SnacDecoder ones (same
// tokens, same samples), and a stream reused for a second turn (reset) gives it again.
TEST(VoiceTurn, BackboneAndCodecStreamOverloadsGiveTheSameTurn) {
  Loaded l = load("omni-tiny", 21);
  ASSERT_TRUE(l.model && l.snac);
  auto a = turn(l, 9, 30);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ContextParams cp;
  cp.n_ctx = 256;
  cp.n_threads = 2;
  auto ctx = Context::create(*l.model, cp);
  ASSERT_TRUE(ctx.ok());
  CpuBackbone bb(**ctx);
  audio::SnacDecoder codec(l.snac->weights, (*ctx)->thread_pool());
  CpuCodecStream stream(codec);
  auto prompt = l.model->tokenizer().encode("Tell me a story.", true, false);
  ASSERT_TRUE(prompt.ok());
  VoiceTurnParams p;
  p.decode.text_sampling.seed = p.decode.audio_sampling.seed = 9;
  p.decode.max_steps = 30;
  p.noise_seed = 9;
  for (int rep = 0; rep < 2; ++rep) {
    ASSERT_TRUE(bb.rewind(0).ok());
    auto b = run_voice_turn(bb, l.heads, stream, *prompt, p);
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    EXPECT_EQ(b->text_tokens, a->text_tokens) << "turn " << rep;
    EXPECT_TRUE(b->pcm == a->pcm) << "turn " << rep;
    EXPECT_EQ(&(*ctx)->step_pool(), &(*ctx)->thread_pool());
  }
}

}  // namespace
}  // namespace omni
