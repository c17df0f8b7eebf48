// audio::WhisperTextDecoder on the CPU decoder: its slots are WhisperTextCache values decoded by
// the cache functions, so a sequence of slot calls must give the same logits, bit for bit, as
// the same sequence on caches; bad slot calls are statuses that leave the slots usable.
// whisper_search runs on it (greedy and beam) and is deterministic. Random weights
// (tests/whisper_test_util.h); no model file needed. Last, `omnirt transcribe --gpu` on the real
// tiny.en (when installed): the CPU's text where a device exists, else a clear refusal.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "audio/whisper/whisper_decoder.h"
#include "audio/whisper/whisper_search.h"
#include "audio/whisper/whisper_transcriber.h"
#include "kernels/core/thread_pool.h"
#include "tests/cli_test_util.h"
#include "tests/test_util.h"
#include "tests/whisper_test_util.h"

namespace omni {
namespace {

std::vector<float> encoder_output(int64_t n, int64_t d, uint32_t seed) {
  std::vector<float> v(size_t(n * d));
  uint32_t x = seed;
  for (float& f : v) {
    x = x * 1664525u + 1013904223u;
    f = static_cast<float>(x >> 8) / 16777216.0f * 2.0f - 1.0f;
  }
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class WhisperSlots : public ::testing::Test {
 protected:
  void SetUp() override {
    hw_ = test::make_whisper_decoder({}, DType::kF16, 3);
    enc_ = encoder_output(11, hw_->w.hp.n_audio_state, 5);
  }
  int64_t n_vocab() const { return hw_->w.hp.n_vocab; }
  std::unique_ptr<test::WhisperTestWeights> hw_;
  std::vector<float> enc_;
  ThreadPool pool_{2};
};

TEST_F(WhisperSlots, SlotCallsEqualCacheCalls) {
  audio::WhisperDecoder by_slot(hw_->w, pool_), by_cache(hw_->w, pool_);
  ASSERT_TRUE(by_slot.set_audio(enc_.data(), 11).ok());
  ASSERT_TRUE(by_cache.set_audio(enc_.data(), 11).ok());
  ASSERT_TRUE(by_slot.reset_slots(3).ok());
  std::vector<audio::WhisperTextCache> caches(3, by_cache.new_cache());
  const std::vector<int32_t> prompt{290, 7, 12, 99, 3};
  std::vector<float> a(size_t(3 * n_vocab())), b(a.size());
  ASSERT_TRUE(by_slot.decode_slot(0, prompt.data(), 5, a.data()).ok());
  ASSERT_TRUE(by_cache.decode(caches[0], prompt.data(), 5, b.data()).ok());
  EXPECT_TRUE(same_bits(a, b));
  // Two hypotheses from slot 0, then one step of both.
  ASSERT_TRUE(by_slot.copy_slot(1, 0).ok());
  ASSERT_TRUE(by_slot.copy_slot(2, 0).ok());
  caches[1].copy_from(caches[0]);
  caches[2].copy_from(caches[0]);
  const int slots[2] = {2, 1};
  const int32_t next[2] = {41, 42};
  ASSERT_TRUE(by_slot.decode_slots(slots, next, 2, a.data()).ok());
  audio::WhisperTextCache* ptrs[2] = {&caches[2], &caches[1]};
  ASSERT_TRUE(by_cache.decode_beams(ptrs, next, 2, b.data()).ok());
  EXPECT_TRUE(same_bits(a, b));
  // Slot 2 copied over slot 1 mid-way (a beam's cache replaced), one more token.
  ASSERT_TRUE(by_slot.copy_slot(1, 2).ok());
  caches[1].copy_from(caches[2]);
  const int32_t t = 17;
  ASSERT_TRUE(by_slot.decode_slot(1, &t, 1, a.data()).ok());
  ASSERT_TRUE(by_cache.decode(caches[1], &t, 1, b.data()).ok());
  EXPECT_TRUE(same_bits(a, b));
}

TEST_F(WhisperSlots, BadSlotCallsAreStatusesAndLeaveTheSlotsUsable) {
  audio::WhisperDecoder dec(hw_->w, pool_), ref(hw_->w, pool_);
  std::vector<float> a(size_t(2 * n_vocab())), b(a.size());
  const int32_t tok = 5;
  ASSERT_TRUE(dec.reset_slots(2).ok());
  EXPECT_EQ(dec.decode_slot(0, &tok, 1, a.data()).code(), StatusCode::kWrongState);  // before set_audio
  ASSERT_TRUE(dec.set_audio(enc_.data(), 11).ok());
  EXPECT_EQ(dec.reset_slots(0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dec.decode_slot(2, &tok, 1, a.data()).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(dec.decode_slot(-1, &tok, 1, a.data()).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(dec.copy_slot(0, 2).code(), StatusCode::kOutOfRange);
  const int dup[2] = {1, 1};
  const int32_t toks[2] = {5, 6};
  EXPECT_EQ(dec.decode_slots(dup, toks, 2, a.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dec.decode_slot(0, nullptr, 1, a.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dec.decode_slots(nullptr, toks, 2, a.data()).code(), StatusCode::kInvalidArgument);
  const int32_t bad = static_cast<int32_t>(n_vocab());
  EXPECT_EQ(dec.decode_slot(0, &bad, 1, a.data()).code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> too_long(size_t(hw_->w.hp.n_text_ctx + 1), 1);
  EXPECT_EQ(dec.decode_slot(0, too_long.data(), int64_t(too_long.size()), a.data()).code(), StatusCode::kOutOfRange);
  // Nothing above touched the slots: decoding now equals a fresh decoder's first step.
  ASSERT_TRUE(dec.decode_slot(0, &tok, 1, a.data()).ok());
  ASSERT_TRUE(ref.set_audio(enc_.data(), 11).ok());
  auto cache = ref.new_cache();
  ASSERT_TRUE(ref.decode(cache, &tok, 1, b.data()).ok());
  EXPECT_TRUE(std::memcmp(a.data(), b.data(), size_t(n_vocab()) * sizeof(float)) == 0);
}

TEST_F(WhisperSlots, SearchIsDeterministicOnTheSlotInterface) {
  audio::WhisperDecoder dec(hw_->w, pool_);
  ASSERT_TRUE(dec.set_audio(enc_.data(), 11).ok());
  const std::vector<int32_t> prompt{hw_->w.vocab.sot, hw_->w.vocab.no_timestamps};
  for (int beam : {1, 3}) {
    audio::WhisperSearchOptions so;
    so.beam_size = beam;
    so.max_new_tokens = 12;
    auto first = audio::whisper_search(dec, hw_->w, prompt, so);
    auto again = audio::whisper_search(dec, hw_->w, prompt, so);
    ASSERT_TRUE(first.ok()) << first.status().to_string();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*first, *again) << "beam " << beam;
    EXPECT_FALSE(first->empty()) << "beam " << beam;
    for (int32_t t : *first) EXPECT_TRUE(t >= 0 && t < hw_->w.vocab.eot) << t;
  }
}

// A replaced encoder (WhisperBackend, as `transcribe --gpu` uses) that fails: its status comes
// back from transcribe(), and the same transcriber works once the backend does.
TEST_F(WhisperSlots, TranscriberReturnsABackendFailureAndRecovers) {
  test::WhisperDecoderShape shape;
  shape.n_audio_ctx = 1500;  // the transcriber encodes whole 30 s windows
  auto hw = test::make_whisper_decoder(shape, DType::kF16, 9);
  bool broken = true;
  audio::WhisperBackend backend;
  backend.encode = [&](const float*, int64_t n_frames, std::vector<float>* out) -> Status {
    if (broken) return io_error("the device went away");
    out->assign(static_cast<size_t>(n_frames / 2 * shape.d_audio), 0.1f);
    return Status::Ok();
  };
  audio::WhisperTranscriber tr(hw->w, pool_, std::move(backend));
  const std::vector<float> audio(16000, 0.01f);
  audio::WhisperDecodeOptions opt;
  opt.beam_size = 2;
  auto failed = tr.transcribe(audio.data(), audio.size(), opt);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kIoError);
  EXPECT_NE(failed.status().message().find("went away"), std::string::npos) << failed.status().message();
  broken = false;
  auto text = tr.transcribe(audio.data(), audio.size(), opt);
  EXPECT_TRUE(text.ok()) << text.status().to_string();
}

TEST(TranscribeCli, GpuGivesTheCpuTextOrSaysWhyNot) {
  const std::string model = test::source_path("models/whisper-tiny.en.gguf");
  if (!test::file_exists(model)) GTEST_SKIP() << "models/whisper-tiny.en.gguf is not installed (tools/setup.sh)";
  const std::string clip = test::source_path("tests/data/whisper/librivox_0880.wav");
  const auto dir = std::filesystem::path(test::temp_path("transcribe_gpu_cli"));
  std::filesystem::create_directories(dir);
  const test::CliResult cpu = test::run_cli("transcribe --model " + model + " " + clip, dir);
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  const test::CliResult gpu = test::run_cli("transcribe --gpu --model " + model + " " + clip, dir);
  if (gpu.exit_code == 0) {
    EXPECT_EQ(gpu.out, cpu.out);  // a CUDA device ran the encoder and the decoder
  } else {
    EXPECT_EQ(gpu.exit_code, 1);
    EXPECT_NE(gpu.err.find("--gpu: unsupported:"), std::string::npos) << gpu.err;  // no CUDA build or no device
    EXPECT_TRUE(gpu.out.empty()) << gpu.out;
  }
}

}  // namespace
}  // namespace omni
