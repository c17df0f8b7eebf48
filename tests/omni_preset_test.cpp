// Synthetic omni files: one GGUF that loads as a plain backbone (Model::load ignores the other
// components' tensors) and whose components load with their own loaders; bytes do not depend
// on the thread count; the decode loop runs on it deterministically for a fixed seed.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "runtime/model/audio_loader.h"
#include "runtime/model/audio_out.h"
#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "runtime/model/snac_loader.h"
#include "runtime/model/synthetic_omni.h"
#include "runtime/model/vision_loader.h"
#include "tests/test_util.h"

namespace omni {
namespace {

std::string make(const std::string& preset, uint64_t seed, int threads = 2, DType type = DType::kF16) {
  const std::string path = test::temp_path(preset + "_" + std::to_string(seed) + "_" + std::to_string(threads) + ".gguf");
  Status st = create_synthetic_omni({preset, type, seed, threads}, path);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return path;
}

struct Turn {
  std::vector<int> text;
  std::vector<std::vector<int>> frames;
  int64_t steps = 0;
  bool ended = false;
};

Turn run_turn(const Model& model, const AudioOutHeads& heads, const std::vector<int32_t>& prompt, int64_t max_steps,
              uint64_t seed) {
  Turn turn;
  ContextParams cp;
  cp.n_ctx = 256;
  cp.n_threads = 2;
  auto ctx = Context::create(model, cp);
  EXPECT_TRUE(ctx.ok());
  AudioOutParams p;
  p.text_sampling.seed = seed;
  p.audio_sampling.seed = seed;
  p.max_steps = max_steps;
  auto dec = AudioOutDecoder::create(heads, **ctx, p);
  EXPECT_TRUE(dec.ok()) << dec.status().to_string();
  if (!dec.ok()) return turn;
  EXPECT_TRUE((*dec)->prefill_text(prompt).ok());
  while (!(*dec)->done()) {
    auto st = (*dec)->step();
    EXPECT_TRUE(st.ok()) << st.status().to_string();
    if (!st.ok()) break;
    if (st->text_token >= 0) turn.text.push_back(st->text_token);
    if (st->has_frame) {
      EXPECT_EQ(st->frame.index, static_cast<int64_t>(turn.frames.size()));
      turn.frames.emplace_back(st->frame.codes, st->frame.codes + st->frame.n_codes);
    }
  }
  turn.steps = (*dec)->n_steps();
  turn.ended = (*dec)->speech_ended();
  return turn;
}

TEST(OmniPreset, TinyLoadsAsBackboneAndEveryComponentLoads) {
  const std::string path = make("omni-tiny", 3);
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_TRUE((*model)->is_synthetic());
  EXPECT_EQ((*model)->hparams().n_vocab, 512);
  EXPECT_EQ((*model)->hparams().n_embd, 256);
  auto comps = (*model)->file().get_string_array("omni.components");
  ASSERT_TRUE(comps.ok());
  EXPECT_EQ(std::vector<std::string>(comps->begin(), comps->end()),
            (std::vector<std::string>{"backbone", "audio_out", "audio_in", "vision", "codec"}));

  auto heads = load_audio_out(**model);
  ASSERT_TRUE(heads.ok()) << heads.status().to_string();
  EXPECT_EQ(heads->spec.kind, AudioOutKind::kParallel);
  EXPECT_EQ(heads->spec.delays, (std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7}));
  ASSERT_EQ(heads->head.size(), 7u);
  EXPECT_EQ(heads->head[6].n_in, 256);
  EXPECT_EQ(heads->head[6].n_out, 72);

  auto snac = load_snac((*model)->file());
  ASSERT_TRUE(snac.ok()) << snac.status().to_string();
  auto enc = load_audio_encoder((*model)->file());
  EXPECT_TRUE(enc.ok()) << enc.status().to_string();
  auto vis = load_vision((*model)->file());  // the vision component, borrowing the same mapping
  ASSERT_TRUE(vis.ok()) << vis.status().to_string();
  EXPECT_EQ((*vis)->weights.hp.n_proj_out, 256);  // projects into the backbone's width
  std::remove(path.c_str());
}

TEST(OmniPreset, BytesDoNotDependOnThreads) {
  const std::string a = make("omni-tiny", 5, 1), b = make("omni-tiny", 5, 2);
  const std::vector<uint8_t> ba = test::read_file(a), bb = test::read_file(b);
  EXPECT_GT(ba.size(), 1000u);
  EXPECT_TRUE(ba == bb);
  std::remove(a.c_str());
  std::remove(b.c_str());
}

TEST(OmniPreset, TinyTurnIsDeterministicAndFramesFollowTheDelays) {
  const std::string path = make("omni-tiny", 11);
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok());
  auto heads = load_audio_out(**model);
  ASSERT_TRUE(heads.ok());
  auto prompt = (*model)->tokenizer().encode("Say hi.", true, false);
  ASSERT_TRUE(prompt.ok());
  const Turn t1 = run_turn(**model, *heads, *prompt, 40, 42);
  const Turn t2 = run_turn(**model, *heads, *prompt, 40, 42);
  EXPECT_EQ(t1.text, t2.text);
  EXPECT_EQ(t1.frames, t2.frames);
  EXPECT_EQ(t1.steps, t2.steps);
  // Without an end of speech, frame f completes at step f + 7: steps - 7 frames.
  if (!t1.ended) {
    EXPECT_EQ(static_cast<int64_t>(t1.frames.size()), t1.steps - 7);
  }
  for (const auto& f : t1.frames) {
    ASSERT_EQ(f.size(), 7u);
    for (int c : f) EXPECT_TRUE(c >= 0 && c < 64) << c;
  }
  std::remove(path.c_str());
}

TEST(OmniPreset, OrpheusTinyCarriesCodecTokensInItsVocabulary) {
  const std::string path = make("orpheus-tiny", 2);
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  auto heads = load_audio_out(**model);
  ASSERT_TRUE(heads.ok()) << heads.status().to_string();
  EXPECT_EQ(heads->spec.kind, AudioOutKind::kInVocab);
  EXPECT_EQ(heads->spec.token_offset, 528);
  EXPECT_TRUE(heads->head.empty());
  EXPECT_TRUE(load_snac((*model)->file()).ok());
  EXPECT_FALSE(load_audio_encoder((*model)->file()).ok());  // Orpheus has no audio input
  auto prompt = (*model)->tokenizer().encode("Hi", true, false);
  ASSERT_TRUE(prompt.ok());
  // The prompt ends with the speech start marker: every step is a code, 7 to a frame.
  const Turn t = run_turn(**model, *heads, *prompt, 30, 1);
  EXPECT_TRUE(t.text.empty());
  if (!t.ended) {
    EXPECT_EQ(static_cast<int64_t>(t.frames.size()), t.steps / 7);
  }
  for (const auto& f : t.frames)
    for (int c : f) EXPECT_TRUE(c >= 0 && c < 64) << c;
  std::remove(path.c_str());
}

TEST(OmniPreset, BadRequestsAreRefused) {
  EXPECT_EQ(create_synthetic_omni({"omni-huge", DType::kF16, 0, 1}, test::temp_path("x.gguf")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(create_synthetic_omni({"omni-tiny", DType::kQ2_K, 0, 1}, test::temp_path("x.gguf")).code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(create_synthetic_omni({"omni-tiny", DType::kF16, 0, 1}, "/nonexistent-dir/x.gguf").code(),
            StatusCode::kIoError);
}

TEST(OmniPreset, QuantizedBackboneKeepsComponentsComputable) {
  const std::string path = make("omni-tiny", 4, 2, DType::kQ4_K);
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ((*model)->token_embd().type, DType::kQ4_K);
  EXPECT_TRUE(load_audio_out(**model).ok());
  EXPECT_TRUE(load_snac((*model)->file()).ok());
  EXPECT_TRUE(load_audio_encoder((*model)->file()).ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace omni
