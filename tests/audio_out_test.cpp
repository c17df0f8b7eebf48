// Audio-out heads with hand-set weights whose tokens are known in advance. The backbone is one
// llama block whose attention and FFN outputs are zero (wo = ffn_down = 0), so the final hidden
// state is rmsnorm(input row); tokens embed as one-hot rows, and every head maps "input token t"
// to a chosen next token. The expected streams below are built from those rules, not from the
// code under test: each codebook's token must come out at its delayed step, and frames must
// reach the codec queue in SNAC's level order (Mini-Omni's reconstruct_tensors / Orpheus's
// redistribute_codes: tokens 0..6 of a frame feed levels 0,1,2,2,1,2,2).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/model/audio_out.h"
#include "runtime/model/context.h"
#include "runtime/model/gguf.h"
#include "runtime/model/model.h"
#include "tests/test_util.h"

namespace omni {
namespace {

constexpr int kD = 128;  // n_embd: text tokens use dims [0, 64), codec rows dims [64, 128)
constexpr int kV = 128;  // text vocabulary

using Matrix = std::vector<float>;  // [rows, kD] row-major

// A llama backbone whose blocks add nothing to the residual stream.
void add_identity_backbone(gguf::GgufWriter& w, const Matrix& token_embd, const Matrix& output) {
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.context_length", 256);
  w.add_u32("llama.embedding_length", kD);
  w.add_u32("llama.block_count", 1);
  w.add_u32("llama.feed_forward_length", 64);
  w.add_u32("llama.attention.head_count", 2);
  w.add_u32("llama.attention.head_count_kv", 2);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  auto mat = [&](const std::string& name, int64_t n_in, int64_t n_out, const float* data) {
    ASSERT_TRUE(w.add_tensor(name, DType::kF32, {n_in, n_out}, data, size_t(n_in * n_out) * 4).ok()) << name;
  };
  const std::vector<float> ones(kD, 1.0f), zeros(size_t(kD) * kD, 0.0f);
  mat("token_embd.weight", kD, kV, token_embd.data());
  ASSERT_TRUE(w.add_tensor("blk.0.attn_norm.weight", DType::kF32, {kD}, ones.data(), kD * 4).ok());
  mat("blk.0.attn_q.weight", kD, kD, zeros.data());
  mat("blk.0.attn_k.weight", kD, kD, zeros.data());
  mat("blk.0.attn_v.weight", kD, kD, zeros.data());
  mat("blk.0.attn_output.weight", kD, kD, zeros.data());
  ASSERT_TRUE(w.add_tensor("blk.0.ffn_norm.weight", DType::kF32, {kD}, ones.data(), kD * 4).ok());
  mat("blk.0.ffn_gate.weight", kD, 64, zeros.data());
  mat("blk.0.ffn_up.weight", kD, 64, zeros.data());
  mat("blk.0.ffn_down.weight", 64, kD, zeros.data());
  ASSERT_TRUE(w.add_tensor("output_norm.weight", DType::kF32, {kD}, ones.data(), kD * 4).ok());
  mat("output.weight", kD, kV, output.data());
}

Matrix one_hot_embd(int rows, float scale) {
  Matrix m(size_t(rows) * kD, 0.0f);
  for (int r = 0; r < rows && r < kD; ++r) m[size_t(r) * kD + size_t(r)] = scale;
  return m;
}

std::unique_ptr<Model> write_and_load(gguf::GgufWriter& w, const std::string& name) {
  const std::string path = test::temp_path(name);
  EXPECT_TRUE(w.write(path).ok());
  ModelParams mp;
  mp.validate_only = true;  // no tokenizer: the loop works on ids
  auto m = Model::load(path, mp);
  std::remove(path.c_str());  // the mapping stays valid
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return m.ok() ? std::move(*m) : nullptr;
}

ContextParams small_ctx() {
  ContextParams cp;
  cp.n_ctx = 128;
  cp.n_threads = 2;
  cp.kv_type = DType::kF32;
  return cp;
}

AudioOutParams greedy() {
  AudioOutParams p;
  p.text_sampling.temperature = 0.0f;
  p.audio_sampling.temperature = 0.0f;
  p.max_steps = 100;
  return p;
}

// ---- parallel heads (Mini-Omni layout) ---------------------------------------------------------

constexpr int kK = 7, kCs = 100, kCv = 104;  // codebooks, codes, codes + 4 specials
constexpr int kEndA = 100, kPadA = 101, kInputA = 102, kAnswerA = 103;
constexpr int kEot = 60, kPadT = 61, kInputT = 62, kAnswerT = 63;
const int kLevels[kK] = {0, 1, 2, 2, 1, 2, 2};

// Codebook i's token when the step's input text token is t (codebook 0 ends on the pad).
int code_rule(int i, int t) { return (i == 0 && t == kPadT) ? kEndA : (3 * t + 10 * i) % kCs; }
int text_rule(int t) { return t == kAnswerT ? 10 : (t < 20 ? t + 1 : kEot); }
const std::vector<int> kTextInputs = [] {
  std::vector<int> v;
  for (int t = 10; t <= 20; ++t) v.push_back(t);
  for (int t : {kEot, kPadT, kAnswerT}) v.push_back(t);
  return v;
}();

struct ParallelFixture {
  std::unique_ptr<Model> model;
  Matrix codec_embd;  // one table shared by all codebooks (rows [kCv, kD])
};

ParallelFixture make_parallel(const std::string& combine, const std::vector<int>& delays) {
  gguf::GgufWriter w;
  Matrix output(size_t(kV) * kD, 0.0f);
  for (int t : kTextInputs)
    if (t != kEot && t != kPadT) output[size_t(text_rule(t)) * kD + size_t(t)] = 1.0f;
  add_identity_backbone(w, one_hot_embd(kV, 8.0f), output);
  w.add_string("omni.audio_out.type", "parallel");
  w.add_string("omni.audio_out.codec", "snac_24khz");
  w.add_u32("omni.audio_out.codebook_count", kK);
  w.add_u32("omni.audio_out.codebook_size", kCs);
  w.add_u32("omni.audio_out.codebook_vocab", kCv);
  w.add_i32_array("omni.audio_out.codec_levels", std::vector<int32_t>(kLevels, kLevels + kK));
  w.add_i32_array("omni.audio_out.delays", std::vector<int32_t>(delays.begin(), delays.end()));
  w.add_string("omni.audio_out.input_combine", combine);
  w.add_i32("omni.audio_out.end_code", kEndA);
  w.add_i32("omni.audio_out.pad_code", kPadA);
  w.add_i32("omni.audio_out.input_code", kInputA);
  w.add_i32("omni.audio_out.answer_code", kAnswerA);
  w.add_i32("omni.audio_out.text_end_id", kEot);
  w.add_i32("omni.audio_out.text_pad_id", kPadT);
  w.add_i32("omni.audio_out.text_input_id", kInputT);
  w.add_i32("omni.audio_out.text_answer_id", kAnswerT);
  ParallelFixture fx;
  // Codec rows live in dims [64, 128), which no head reads: they change the hidden state's scale
  // only, so the next tokens depend on the text input alone (and the rows still travel).
  fx.codec_embd.assign(size_t(kCv) * kD, 0.0f);
  for (int c = 0; c < kCv; ++c) fx.codec_embd[size_t(c) * kD + 64 + size_t(c % 64)] = 8.0f;
  for (int i = 0; i < kK; ++i) {
    Matrix head(size_t(kCv) * kD, 0.0f);
    for (int t : kTextInputs) head[size_t(code_rule(i, t)) * kD + size_t(t)] = 1.0f;
    EXPECT_TRUE(w.add_tensor("audio_out.embd." + std::to_string(i) + ".weight", DType::kF32, {kD, kCv},
                             fx.codec_embd.data(), fx.codec_embd.size() * 4).ok());
    EXPECT_TRUE(w.add_tensor("audio_out.head." + std::to_string(i) + ".weight", DType::kF32, {kD, kCv}, head.data(),
                             head.size() * 4).ok());
  }
  fx.model = write_and_load(w, "audio_out_parallel_" + combine + ".gguf");
  return fx;
}

TEST(AudioOutParallel, EachCodebookAtItsDelayedStepAndFramesInLevelOrder) {
  const std::vector<int> delays = {1, 2, 3, 4, 5, 6, 7};  // Mini-Omni: layer i waits i + 1 steps
  ParallelFixture fx = make_parallel("mean", delays);
  ASSERT_TRUE(fx.model);
  auto heads = load_audio_out(*fx.model);
  ASSERT_TRUE(heads.ok()) << heads.status().to_string();
  EXPECT_EQ(heads->spec.codes_per_level(), (std::vector<int>{1, 2, 4}));
  auto ctx = Context::create(*fx.model, small_ctx());
  ASSERT_TRUE(ctx.ok());
  auto dec = AudioOutDecoder::create(*heads, **ctx, greedy());
  ASSERT_TRUE(dec.ok()) << dec.status().to_string();
  const std::vector<int32_t> prompt = {5, 6, 7};  // any text: the last prompt row is the answer marker
  ASSERT_TRUE((*dec)->prefill_text(prompt).ok());
  EXPECT_EQ((*ctx)->n_past(), 1 + 3 + 2);

  // The input text token of step s: the answer marker, then the sampled text, EOT, then pads.
  auto input_text = [](int s) { return s == 0 ? kAnswerT : s <= 11 ? 9 + s : s == 12 ? kEot : kPadT; };
  std::vector<int> text;
  std::vector<CodecFrame> queue;
  int steps = 0;
  while (!(*dec)->done()) {
    auto st = (*dec)->step();
    ASSERT_TRUE(st.ok()) << st.status().to_string();
    // A step returns before its output is fed back: the context holds the prompt and the
    // feedback of the steps before it only (the codec gets a frame one forward pass earlier).
    EXPECT_EQ((*ctx)->n_past(), 6 + steps) << "step " << steps;
    if (st->text_token >= 0) text.push_back(st->text_token);
    if (st->has_frame) {
      // Frame f is complete once the most delayed codebook (7) has emitted it: step f + 7.
      EXPECT_EQ(st->frame.index, steps - 7) << "step " << steps;
      queue.push_back(st->frame);
    }
    ++steps;
    ASSERT_LT(steps, 60);
  }
  EXPECT_TRUE((*dec)->speech_ended());
  EXPECT_TRUE((*dec)->text_ended());
  EXPECT_EQ(text, (std::vector<int>{10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}));
  // Codebook 0 ends at step 13 (first pad input) = frame 12: frames 0..11, the last at step 18.
  EXPECT_EQ(steps, 19);
  ASSERT_EQ(queue.size(), 12u);

  // The codec queue, level by level, as Mini-Omni's reconstruct_snac + reconstruct_tensors build it.
  std::vector<int> want_l0, want_l1, want_l2, got_l0, got_l1, got_l2;
  for (int f = 0; f < 12; ++f) {
    int tok[kK];
    for (int i = 0; i < kK; ++i) tok[i] = code_rule(i, input_text(f + delays[size_t(i)]));
    want_l0.push_back(tok[0]);
    want_l1.insert(want_l1.end(), {tok[1], tok[4]});
    want_l2.insert(want_l2.end(), {tok[2], tok[3], tok[5], tok[6]});
    const CodecFrame& fr = queue[size_t(f)];
    EXPECT_EQ(fr.n_codes, 7);
    got_l0.push_back(fr.codes[0]);
    got_l1.insert(got_l1.end(), fr.codes + 1, fr.codes + 3);
    got_l2.insert(got_l2.end(), fr.codes + 3, fr.codes + 7);
  }
  EXPECT_EQ(got_l0, want_l0);
  EXPECT_EQ(got_l1, want_l1);
  EXPECT_EQ(got_l2, want_l2);
  EXPECT_EQ((*dec)->step().status().code(), StatusCode::kWrongState);
}

TEST(AudioOutParallel, OtherDelaysMoveEachCodebook) {
  // Moshi-like: no delay on codebook 0, one step on the others; sum of embeddings.
  const std::vector<int> delays = {0, 1, 1, 1, 1, 1, 1};
  ParallelFixture fx = make_parallel("sum", delays);
  ASSERT_TRUE(fx.model);
  auto heads = load_audio_out(*fx.model);
  ASSERT_TRUE(heads.ok());
  auto ctx = Context::create(*fx.model, small_ctx());
  ASSERT_TRUE(ctx.ok());
  auto dec = AudioOutDecoder::create(*heads, **ctx, greedy());
  ASSERT_TRUE(dec.ok());
  ASSERT_TRUE((*dec)->prefill_text(std::vector<int32_t>{5}).ok());
  auto input_text = [](int s) { return s == 0 ? kAnswerT : s <= 11 ? 9 + s : s == 12 ? kEot : kPadT; };
  std::vector<CodecFrame> queue;
  int steps = 0;
  while (!(*dec)->done() && steps < 60) {
    auto st = (*dec)->step();
    ASSERT_TRUE(st.ok());
    if (st->has_frame) {
      EXPECT_EQ(st->frame.index, steps - 1);
      queue.push_back(st->frame);
    }
    ++steps;
  }
  // Codebook 0 (no delay) sees the first pad at step 13 = frame 13: frames 0..12, done at step 14.
  ASSERT_EQ(queue.size(), 13u);
  EXPECT_EQ(steps, 14);
  for (int f = 0; f < 13; ++f) {
    EXPECT_EQ(queue[size_t(f)].codes[0], code_rule(0, input_text(f))) << f;
    EXPECT_EQ(queue[size_t(f)].codes[1], code_rule(1, input_text(f + 1))) << f;  // level 1, first
    EXPECT_EQ(queue[size_t(f)].codes[2], code_rule(4, input_text(f + 1))) << f;  // level 1, second
    EXPECT_EQ(queue[size_t(f)].codes[6], code_rule(6, input_text(f + 1))) << f;
  }
}

TEST(AudioOutParallel, InputRowIsTheMeanOfTheEightEmbeddings) {
  ParallelFixture fx = make_parallel("mean", {1, 2, 3, 4, 5, 6, 7});
  ASSERT_TRUE(fx.model);
  auto heads = load_audio_out(*fx.model);
  ASSERT_TRUE(heads.ok());
  auto ctx_a = Context::create(*fx.model, small_ctx());
  auto ctx_b = Context::create(*fx.model, small_ctx());
  ASSERT_TRUE(ctx_a.ok() && ctx_b.ok());
  auto dec = AudioOutDecoder::create(*heads, **ctx_a, greedy());
  ASSERT_TRUE(dec.ok());
  const std::vector<int32_t> text = {kInputT, 12};
  const std::vector<int32_t> audio = {kInputA, kPadA, 3, 4, 5, 6, 7, /**/ 90, 91, 92, 93, 94, 95, 99};
  ASSERT_TRUE((*dec)->prefill_parallel(text, audio).ok());
  // Reference rows from the weights the test wrote: (x_text + sum_i x_i) / 8.
  const Matrix tok = one_hot_embd(kV, 8.0f);
  std::vector<float> rows(2 * kD, 0.0f);
  for (int r = 0; r < 2; ++r) {
    for (int j = 0; j < kD; ++j) {
      float acc = tok[size_t(text[size_t(r)]) * kD + size_t(j)];
      for (int i = 0; i < kK; ++i) acc += fx.codec_embd[size_t(audio[size_t(r * kK + i)]) * kD + size_t(j)];
      rows[size_t(r * kD + j)] = acc / 8.0f;
    }
  }
  ASSERT_TRUE((*ctx_b)->eval_embeddings(rows.data(), 2, false).ok());
  for (int v = 0; v < kV; ++v) EXPECT_NEAR((*ctx_a)->last_logits()[v], (*ctx_b)->last_logits()[v], 1e-5f) << v;
  for (int j = 0; j < kD; ++j) EXPECT_NEAR((*ctx_a)->last_hidden()[j], (*ctx_b)->last_hidden()[j], 1e-5f) << j;
  // Out-of-range ids are refused before anything is evaluated.
  const std::vector<int32_t> bad_audio(7, kCv);
  EXPECT_EQ((*dec)->prefill_parallel(std::vector<int32_t>{1}, bad_audio).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*dec)->prefill_parallel(std::vector<int32_t>{1}, std::vector<int32_t>(6, 0)).code(),
            StatusCode::kInvalidArgument);
}

TEST(AudioOutParallel, AudioInputRowsStandInForEveryCodebook) {
  ParallelFixture fx = make_parallel("mean", {1, 2, 3, 4, 5, 6, 7});
  ASSERT_TRUE(fx.model);
  auto heads = load_audio_out(*fx.model);
  ASSERT_TRUE(heads.ok());
  auto ctx_a = Context::create(*fx.model, small_ctx());
  auto ctx_b = Context::create(*fx.model, small_ctx());
  ASSERT_TRUE(ctx_a.ok() && ctx_b.ok());
  auto dec = AudioOutDecoder::create(*heads, **ctx_a, greedy());
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ((*dec)->audio_input_rows(nullptr, 1).code(), StatusCode::kWrongState);
  EXPECT_EQ((*dec)->end_audio_input().code(), StatusCode::kWrongState);
  std::vector<float> audio(3 * kD);
  for (size_t i = 0; i < audio.size(); ++i) audio[i] = std::sin(0.37f * float(i));
  ASSERT_TRUE((*dec)->begin_audio_input().ok());
  ASSERT_TRUE((*dec)->audio_input_rows(audio.data(), 2).ok());  // as an encoder delivers chunks
  ASSERT_TRUE((*dec)->audio_input_rows(audio.data() + 2 * kD, 1).ok());
  ASSERT_TRUE((*dec)->end_audio_input().ok());
  EXPECT_EQ((*ctx_a)->n_past(), 1 + 3 + 2);
  // Mini-Omni A1A2: text [_input_t, _pad_t x 3, _eot, _answer_t], audio layers [_input_a,
  // whisper rows x 3, _eoa, _answer_a]; each row the mean of the 8 streams' embeddings.
  const Matrix tok = one_hot_embd(kV, 8.0f);
  std::vector<float> rows(6 * kD, 0.0f);
  auto marker = [&](int r, int t, int a) {
    for (int j = 0; j < kD; ++j)
      rows[size_t(r * kD + j)] = (tok[size_t(t) * kD + size_t(j)] + 7.0f * fx.codec_embd[size_t(a) * kD + size_t(j)]) / 8.0f;
  };
  marker(0, kInputT, kInputA);
  for (int r = 0; r < 3; ++r)
    for (int j = 0; j < kD; ++j)
      rows[size_t((1 + r) * kD + j)] = (7.0f * audio[size_t(r * kD + j)] + tok[size_t(kPadT) * kD + size_t(j)]) / 8.0f;
  marker(4, kEot, kEndA);
  marker(5, kAnswerT, kAnswerA);
  ASSERT_TRUE((*ctx_b)->eval_embeddings(rows.data(), 6, false).ok());
  for (int v = 0; v < kV; ++v) EXPECT_NEAR((*ctx_a)->last_logits()[v], (*ctx_b)->last_logits()[v], 1e-5f) << v;
  for (int j = 0; j < kD; ++j) EXPECT_NEAR((*ctx_a)->last_hidden()[j], (*ctx_b)->last_hidden()[j], 1e-5f) << j;
  // The answer starts as after a text prompt: text 10 first (the last row is the answer marker).
  auto st = (*dec)->step();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->text_token, 10);
}

// The end of the user's turn in one batch: the encoder's last rows go in with the end and
// answer markers (one pass over the weights), giving the same context as row by row.
TEST(AudioOutParallel, LastAudioRowsAndMarkersInOneBatch) {
  ParallelFixture fx = make_parallel("mean", {1, 2, 3, 4, 5, 6, 7});
  ASSERT_TRUE(fx.model);
  auto heads = load_audio_out(*fx.model);
  ASSERT_TRUE(heads.ok());
  auto ctx_a = Context::create(*fx.model, small_ctx());
  auto ctx_b = Context::create(*fx.model, small_ctx());
  ASSERT_TRUE(ctx_a.ok() && ctx_b.ok());
  auto dec = AudioOutDecoder::create(*heads, **ctx_a, greedy());
  ASSERT_TRUE(dec.ok());
  std::vector<float> audio(3 * kD);
  for (size_t i = 0; i < audio.size(); ++i) audio[i] = std::cos(0.29f * float(i));
  EXPECT_EQ((*dec)->end_audio_input(audio.data(), 1).code(), StatusCode::kWrongState);  // not begun
  ASSERT_TRUE((*dec)->begin_audio_input().ok());
  ASSERT_TRUE((*dec)->audio_input_rows(audio.data(), 1).ok());  // a chunk while the user speaks
  EXPECT_EQ((*dec)->end_audio_input(audio.data(), -1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*dec)->end_audio_input(nullptr, 2).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*ctx_a)->n_past(), 1 + 1);  // refused calls evaluated nothing
  const int64_t past = (*ctx_a)->n_past();
  ASSERT_TRUE((*dec)->end_audio_input(audio.data() + kD, 2).ok());  // the last chunk + markers
  EXPECT_EQ((*ctx_a)->n_past(), past + 2 + 2);
  // Hand-built Mini-Omni A1A2 rows, as in AudioInputRowsStandInForEveryCodebook.
  const Matrix tok = one_hot_embd(kV, 8.0f);
  std::vector<float> rows(6 * kD, 0.0f);
  auto marker = [&](int r, int t, int a) {
    for (int j = 0; j < kD; ++j)
      rows[size_t(r * kD + j)] = (tok[size_t(t) * kD + size_t(j)] + 7.0f * fx.codec_embd[size_t(a) * kD + size_t(j)]) / 8.0f;
  };
  marker(0, kInputT, kInputA);
  for (int r = 0; r < 3; ++r)
    for (int j = 0; j < kD; ++j)
      rows[size_t((1 + r) * kD + j)] = (7.0f * audio[size_t(r * kD + j)] + tok[size_t(kPadT) * kD + size_t(j)]) / 8.0f;
  marker(4, kEot, kEndA);
  marker(5, kAnswerT, kAnswerA);
  ASSERT_TRUE((*ctx_b)->eval_embeddings(rows.data(), 6, false).ok());
  for (int v = 0; v < kV; ++v) EXPECT_NEAR((*ctx_a)->last_logits()[v], (*ctx_b)->last_logits()[v], 1e-5f) << v;
  for (int j = 0; j < kD; ++j) EXPECT_NEAR((*ctx_a)->last_hidden()[j], (*ctx_b)->last_hidden()[j], 1e-5f) << j;
  auto st = (*dec)->step();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->text_token, 10);
  EXPECT_EQ((*dec)->end_audio_input(nullptr, 0).code(), StatusCode::kWrongState);  // already ended
}

TEST(AudioOutParallel, MaxStepsEndsTheTurn) {
  ParallelFixture fx = make_parallel("mean", {1, 2, 3, 4, 5, 6, 7});
  ASSERT_TRUE(fx.model);
  auto heads = load_audio_out(*fx.model);
  ASSERT_TRUE(heads.ok());
  auto ctx = Context::create(*fx.model, small_ctx());
  AudioOutParams p = greedy();
  p.max_steps = 9;
  auto dec = AudioOutDecoder::create(*heads, **ctx, p);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ((*dec)->step().status().code(), StatusCode::kWrongState);  // before a prefill
  ASSERT_TRUE((*dec)->prefill_text(std::vector<int32_t>{5}).ok());
  int frames = 0, steps = 0;
  while (!(*dec)->done()) {
    auto st = (*dec)->step();
    ASSERT_TRUE(st.ok());
    frames += st->has_frame;
    ++steps;
  }
  EXPECT_EQ(steps, 9);
  EXPECT_EQ(frames, 2);  // frames 0 and 1, at steps 7 and 8
  EXPECT_FALSE((*dec)->speech_ended());
}

// ---- in-vocabulary codec tokens (Orpheus layout) -------------------------------------------------

constexpr int kOffset = 70, kIvCs = 8, kStart = 66, kEnd = 67, kHumanEnd = 65;
int code_id(int pos, int code) { return kOffset + code + kIvCs * pos; }

TEST(AudioOutInVocab, CodesInTheirBandsAndFramesInLevelOrder) {
  const int frames[2][7] = {{3, 1, 4, 1, 5, 2, 6}, {7, 0, 2, 6, 3, 5, 1}};
  // The chain of next tokens: suffix -> text 30 -> speech start -> 14 codes -> speech end.
  std::vector<int> chain = {kHumanEnd, 30, kStart};
  for (const auto& fr : frames)
    for (int p = 0; p < 7; ++p) chain.push_back(code_id(p, fr[p]));
  chain.push_back(kEnd);
  Matrix output(size_t(kV) * kD, 0.0f);
  for (size_t k = 0; k + 1 < chain.size(); ++k) output[size_t(chain[k + 1]) * kD + size_t(chain[k])] = 1.0f;
  // Decoys the band mask must refuse: a text token scoring above the code (position 3), and the
  // end marker in the middle of a frame (position 4).
  output[size_t(5) * kD + size_t(code_id(2, 4))] = 2.0f;
  output[size_t(kEnd) * kD + size_t(code_id(3, 1))] = 2.0f;

  gguf::GgufWriter w;
  add_identity_backbone(w, one_hot_embd(kV, 1.0f), output);
  w.add_string("omni.audio_out.type", "in_vocab");
  w.add_string("omni.audio_out.codec", "snac_24khz");
  w.add_u32("omni.audio_out.codebook_count", 7);
  w.add_u32("omni.audio_out.codebook_size", kIvCs);
  w.add_i32_array("omni.audio_out.codec_levels", {0, 1, 2, 2, 1, 2, 2});
  w.add_u32("omni.audio_out.token_offset", kOffset);
  w.add_i32("omni.audio_out.speech_start_id", kStart);
  w.add_i32("omni.audio_out.speech_end_id", kEnd);
  w.add_i32_array("omni.audio_out.prompt_prefix", {64});
  w.add_i32_array("omni.audio_out.prompt_suffix", {kHumanEnd});
  auto model = write_and_load(w, "audio_out_in_vocab.gguf");
  ASSERT_TRUE(model);
  auto heads = load_audio_out(*model);
  ASSERT_TRUE(heads.ok()) << heads.status().to_string();
  auto ctx = Context::create(*model, small_ctx());
  ASSERT_TRUE(ctx.ok());
  auto dec = AudioOutDecoder::create(*heads, **ctx, greedy());
  ASSERT_TRUE(dec.ok());
  ASSERT_TRUE((*dec)->prefill_text(std::vector<int32_t>{1, 2}).ok());
  EXPECT_EQ((*ctx)->n_past(), 4);
  std::vector<int> text;
  std::vector<CodecFrame> queue;
  int steps = 0;
  while (!(*dec)->done() && steps < 40) {
    auto st = (*dec)->step();
    ASSERT_TRUE(st.ok());
    if (st->text_token >= 0) text.push_back(st->text_token);
    if (st->has_frame) queue.push_back(st->frame);
    ++steps;
  }
  EXPECT_TRUE((*dec)->speech_ended());
  EXPECT_EQ(text, std::vector<int>{30});
  EXPECT_EQ(steps, 2 + 14 + 1);
  ASSERT_EQ(queue.size(), 2u);
  for (int f = 0; f < 2; ++f) {
    const int* t = frames[f];
    // Orpheus's redistribute_codes: layer_1 <- t0; layer_2 <- t1, t4; layer_3 <- t2, t3, t5, t6.
    const std::vector<int> want = {t[0], t[1], t[4], t[2], t[3], t[5], t[6]};
    EXPECT_EQ(std::vector<int>(queue[size_t(f)].codes, queue[size_t(f)].codes + 7), want) << f;
    EXPECT_EQ(queue[size_t(f)].index, f);
  }
}

// ---- files that do not describe heads properly -----------------------------------------------

TEST(AudioOutSpec, MissingOrInconsistentKeysAreNamed) {
  auto load = [](const std::function<void(gguf::GgufWriter&)>& edit) {
    gguf::GgufWriter w;
    add_identity_backbone(w, one_hot_embd(kV, 1.0f), Matrix(size_t(kV) * kD, 0.0f));
    w.add_string("omni.audio_out.type", "in_vocab");
    w.add_u32("omni.audio_out.codebook_count", 7);
    w.add_u32("omni.audio_out.codebook_size", kIvCs);
    w.add_i32_array("omni.audio_out.codec_levels", {0, 1, 2, 2, 1, 2, 2});
    w.add_u32("omni.audio_out.token_offset", kOffset);
    edit(w);
    auto model = write_and_load(w, "audio_out_bad.gguf");
    return model ? load_audio_out(*model).status() : internal_error("no model");
  };
  EXPECT_TRUE(load([](gguf::GgufWriter&) {}).ok());
  Status st = load([](gguf::GgufWriter& w) { w.add_u32("omni.audio_out.token_offset", 100); });
  EXPECT_EQ(st.code(), StatusCode::kCorruptFile);
  EXPECT_NE(st.message().find("vocabulary"), std::string::npos) << st.to_string();
  st = load([](gguf::GgufWriter& w) { w.add_i32_array("omni.audio_out.codec_levels", {0, 1, 2}); });
  EXPECT_EQ(st.code(), StatusCode::kCorruptFile);
  EXPECT_NE(st.message().find("codec_levels"), std::string::npos) << st.to_string();
  st = load([](gguf::GgufWriter& w) { w.add_i32_array("omni.audio_out.codec_levels", {0, 2, 2, 2, 2, 2, 2}); });
  EXPECT_NE(st.message().find("skips level 1"), std::string::npos) << st.to_string();
  st = load([](gguf::GgufWriter& w) { w.add_i32("omni.audio_out.speech_end_id", kOffset + 3); });
  EXPECT_NE(st.message().find("speech_end_id"), std::string::npos) << st.to_string();
  st = load([](gguf::GgufWriter& w) { w.add_string("omni.audio_out.type", "depth"); });
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  // Parallel heads whose tensors are missing or mis-shaped.
  st = load([](gguf::GgufWriter& w) {
    w.add_string("omni.audio_out.type", "parallel");
    w.add_u32("omni.audio_out.codebook_vocab", kIvCs + 2);
    w.add_i32_array("omni.audio_out.delays", {1, 2, 3, 4, 5, 6, 7});
    w.add_i32("omni.audio_out.pad_code", kIvCs + 1);
  });
  EXPECT_EQ(st.code(), StatusCode::kCorruptFile);
  EXPECT_NE(st.message().find("audio_out.embd.0.weight"), std::string::npos) << st.to_string();
  st = load([](gguf::GgufWriter& w) {
    w.add_string("omni.audio_out.type", "parallel");
    w.add_u32("omni.audio_out.codebook_vocab", kIvCs + 2);
    w.add_i32_array("omni.audio_out.delays", {1, 2, 3, 4, 5, 6, 7});
    w.add_i32("omni.audio_out.pad_code", 3);  // a code, not a special
  });
  EXPECT_NE(st.message().find("pad_code"), std::string::npos) << st.to_string();
}

TEST(AudioOutSpec, ABackboneWithoutHeadsSaysSo) {
  gguf::GgufWriter w;
  add_identity_backbone(w, one_hot_embd(kV, 1.0f), Matrix(size_t(kV) * kD, 0.0f));
  auto model = write_and_load(w, "audio_out_none.gguf");
  ASSERT_TRUE(model);
  Status st = load_audio_out(*model).status();
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("no audio-out heads"), std::string::npos);
}

}  // namespace
}  // namespace omni
