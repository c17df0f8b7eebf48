// Streaming audio into a session (audio/adapter/audio_stream.h):
//  * rows appended chunk by chunk (PCM pushed in random pieces) equal the rows of the same mel
//    chunks encoded one call each (both adapter families);
//  * a session: after streaming an utterance into a Context of a tiny synthetic backbone, n_past
//    grew by the expected rows and the last logits equal a one-shot eval_embeddings of them;
//  * the work left at the end of the turn stays one partial chunk whatever the length.
// Measurements for docs/AUDIO.md (gated: OMNIRT_AUDIO_BENCH=1): end-of-turn time vs utterance
// length on a Whisper-small-shaped encoder, and the WER of whisper-tiny.en when the encoder
// sees chunks alone (positions from 0) and the decoder their concatenated output.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "audio/adapter/audio_stream.h"
#include "audio/whisper/whisper_decoder.h"
#include "audio/whisper/whisper_encoder.h"
#include "audio/whisper/whisper_search.h"
#include "audio/whisper/whisper_transcriber.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "runtime/model/synthetic.h"
#include "runtime/model/whisper_loader.h"
#include "tests/audio_test_util.h"
#include "tests/test_util.h"

namespace omni {
namespace {

std::vector<float> librivox_0880() {
  return test::read_wav_pcm16(test::source_path("tests/data/whisper/librivox_0880.wav"));
}

std::unique_ptr<AudioEncoderModel> synthetic_encoder(const std::string& preset, int64_t n_out, const std::string& name) {
  gguf::GgufWriter w;
  w.add_string("general.architecture", "clip");
  EXPECT_TRUE(add_synthetic_audio_encoder(w, preset, n_out, DType::kF16, 11).ok());
  const std::string path = test::temp_path(name);
  EXPECT_TRUE(w.write(path).ok());
  auto m = load_audio_encoder(path);
  std::remove(path.c_str());  // the mapping stays valid
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return m.ok() ? std::move(*m) : nullptr;
}

// The reference: the clip's raw log-mel in one go, cut into chunks of `chunk` frames, each
// normalized with the maximum up to its end, padded to even, encoded by its own call.
std::vector<float> chunks_one_call_each(const audio::AudioEncoderWeights& w, ThreadPool& pool,
                                        const std::vector<float>& pcm, int64_t chunk) {
  auto mel = audio::LogMel::create(80);
  std::vector<float> raw, rows, out;
  EXPECT_TRUE((*mel)->push(pcm.data(), pcm.size(), &raw).ok());
  EXPECT_TRUE((*mel)->finish(&raw).ok());
  audio::AudioEncoder enc(w, pool);
  const int64_t n = int64_t(raw.size()) / 80;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t f0 = 0; f0 < n; f0 += chunk) {
    const int64_t len = std::min(chunk, n - f0);
    std::vector<float> c(raw.begin() + f0 * 80, raw.begin() + (f0 + len) * 80);
    for (float v : c) mx = std::max(mx, v);
    audio::whisper_normalize(c.data(), c.size(), mx);
    c.resize(size_t((len + len % 2) * 80), 0.0f);
    if (enc.rows_for_mel_frames(len + len % 2) == 0) continue;
    EXPECT_TRUE(enc.encode(c.data(), len + len % 2, &rows).ok());
    out.insert(out.end(), rows.begin(), rows.end());
  }
  return out;
}

void stream_matches_one_call_each(const audio::AudioEncoderWeights& w, int64_t chunk) {
  const std::vector<float> pcm = librivox_0880();
  ASSERT_FALSE(pcm.empty());
  ThreadPool pool(2);
  std::vector<float> got;
  std::vector<int64_t> sizes;
  auto s = audio::AudioStream::create(w, pool, [&](const float* rows, int64_t n) {
    got.insert(got.end(), rows, rows + n * w.adapter.n_embd_out);
    sizes.push_back(n);
    return Status::Ok();
  }, {chunk});
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  std::mt19937 gen(5);
  std::uniform_int_distribution<size_t> piece(1, 4000);
  for (size_t i = 0; i < pcm.size();) {
    const size_t n = std::min(piece(gen), pcm.size() - i);
    ASSERT_TRUE((*s)->push(pcm.data() + i, n).ok());
    i += n;
  }
  const size_t before_finish = got.size();
  ASSERT_TRUE((*s)->finish().ok());
  const std::vector<float> ref = chunks_one_call_each(w, pool, pcm, chunk);
  ASSERT_EQ(got.size(), ref.size());
  EXPECT_EQ(got, ref);  // the same ops on the same numbers
  // Every chunk but the last went out while "speaking".
  const int64_t n_frames = int64_t(pcm.size()) / 160;
  EXPECT_EQ(int64_t(sizes.size()), (n_frames + chunk - 1) / chunk);
  EXPECT_GE(before_finish, got.size() - size_t((*s)->rows_per_chunk() * w.adapter.n_embd_out));
  EXPECT_LE((*s)->stats().finish_frames, chunk);
}

TEST(AudioStreamTest, UltravoxStreamedRowsEqualChunksEncodedOneCallEach) {
  auto m = synthetic_encoder("whisper-tiny-enc", 64, "stream_uv.gguf");
  ASSERT_TRUE(m);
  stream_matches_one_call_each(m->weights, 96);
  stream_matches_one_call_each(m->weights, 160);
}

TEST(AudioStreamTest, Qwen2AudioStreamedRowsEqualChunksEncodedOneCallEach) {
  auto m = load_audio_encoder(test::source_path("tests/data/audio_adapter/qwen2a.gguf"));
  ASSERT_TRUE(m.ok());
  stream_matches_one_call_each((*m)->weights, 64);
  stream_matches_one_call_each((*m)->weights, 20);
}

// The pluggable frame encoder (AudioStreamOptions::frame_encoder, the CUDA encoder's hook) fed
// by the CPU Whisper encoder gives the default stream's rows bit for bit, both adapter families
// (Ultravox asks for the final norm, Qwen2-Audio for the frames before it); the hook's errors stop
// the stream.
void hook_matches_default(const audio::AudioEncoderWeights& w, int64_t chunk, bool want_final_norm) {
  const std::vector<float> pcm = librivox_0880();
  ASSERT_FALSE(pcm.empty());
  ThreadPool pool(2);
  audio::WhisperEncoder cpu(w.whisper, pool);
  int calls = 0;
  audio::AudioStreamOptions hooked;
  hooked.chunk_frames = chunk;
  hooked.frame_encoder = [&](const float* mel, int64_t n, bool final_norm, std::vector<float>* frames) {
    ++calls;
    EXPECT_EQ(final_norm, want_final_norm);
    return final_norm ? cpu.encode(mel, n, frames) : cpu.encode_before_final_norm(mel, n, frames);
  };
  std::vector<float> rows[2];
  for (int k = 0; k < 2; ++k) {
    audio::AudioStreamOptions opt;
    opt.chunk_frames = chunk;
    auto s = audio::AudioStream::create(w, pool, [&, k](const float* r, int64_t n) {
      rows[k].insert(rows[k].end(), r, r + n * w.adapter.n_embd_out);
      return Status::Ok();
    }, k == 0 ? opt : hooked);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    for (size_t i = 0; i < pcm.size(); i += 320) ASSERT_TRUE((*s)->push(pcm.data() + i, std::min<size_t>(320, pcm.size() - i)).ok());
    ASSERT_TRUE((*s)->finish().ok());
  }
  const int64_t n_frames = int64_t(pcm.size()) / 160;
  EXPECT_EQ(calls, (n_frames + chunk - 1) / chunk);
  ASSERT_FALSE(rows[0].empty());
  EXPECT_EQ(rows[1], rows[0]);
}

TEST(AudioStreamTest, FrameEncoderHookWithCpuEncoderIsBitIdentical) {
  auto m = synthetic_encoder("whisper-tiny-enc", 64, "stream_hook.gguf");
  ASSERT_TRUE(m);
  hook_matches_default(m->weights, 96, true);
  auto q = load_audio_encoder(test::source_path("tests/data/audio_adapter/qwen2a.gguf"));
  ASSERT_TRUE(q.ok());
  hook_matches_default((*q)->weights, 64, false);
}

TEST(AudioStreamTest, FrameEncoderHookErrorsStopTheStream) {
  auto m = synthetic_encoder("whisper-tiny-enc", 64, "stream_hook_bad.gguf");
  ASSERT_TRUE(m);
  ThreadPool pool(1);
  const std::vector<float> pcm(16000, 0.01f);
  auto sink = [](const float*, int64_t) { return Status::Ok(); };
  audio::AudioStreamOptions opt;
  opt.chunk_frames = 32;
  opt.frame_encoder = [](const float*, int64_t, bool, std::vector<float>*) { return unsupported("no device"); };
  auto s = audio::AudioStream::create(m->weights, pool, sink, opt);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->push(pcm.data(), pcm.size()).code(), StatusCode::kUnsupported);
  EXPECT_TRUE((*s)->closed());
  // A hook that returns the wrong number of values is caught before the adapter reads them.
  opt.frame_encoder = [](const float*, int64_t n, bool, std::vector<float>* f) {
    f->assign(size_t(n / 2 * 10), 0.0f);
    return Status::Ok();
  };
  auto short_out = audio::AudioStream::create(m->weights, pool, sink, opt);
  ASSERT_TRUE(short_out.ok());
  Status st = (*short_out)->push(pcm.data(), pcm.size());
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("frame encoder"), std::string::npos) << st.message();
}

// Encoding chunk by chunk is a real model's encoder: transformers' Qwen2_5OmniAudioEncoder
// (n_window 16: 32-frame chunks with their own conv stem, positions from 0 and attention inside
// the chunk, then pooling, ln_post, proj), stored in the qwen2a layout, equals our encoder run
// on each chunk alone and concatenated (as AudioStream does).
TEST(AudioStreamTest, ChunkByChunkEqualsQwen25OmniChunkedEncoder) {
  auto m = load_audio_encoder(test::source_path("tests/data/audio_adapter/qwen25omni.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const std::vector<float> mel = test::read_f32(test::source_path("tests/data/audio_adapter/mel_80.f32"));
  const std::vector<float> ref = test::read_f32(test::source_path("tests/data/audio_adapter/qwen25omni_out_80.f32"));
  ASSERT_EQ(mel.size(), 80u * 80u);
  ASSERT_EQ(ref.size(), 20u * 48u);
  ThreadPool pool(2);
  audio::AudioEncoder enc((*m)->weights, pool);
  std::vector<float> got, rows;
  for (int64_t f0 = 0; f0 < 80; f0 += 32) {
    const int64_t len = std::min<int64_t>(32, 80 - f0);
    ASSERT_TRUE(enc.encode(mel.data() + f0 * 80, len, &rows).ok());
    got.insert(got.end(), rows.begin(), rows.end());
  }
  ASSERT_EQ(got.size(), ref.size());
  double worst = 0, max_ref = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    worst = std::max(worst, double(std::fabs(got[i] - ref[i])));
    max_ref = std::max(max_ref, double(std::fabs(ref[i])));
  }
  std::printf("  3 chunks (32, 32, 16 frames) -> 20 rows: max |diff| %.3g (max |ref| %.3g)\n", worst, max_ref);
  EXPECT_LE(worst, 1e-4 * max_ref);
}

TEST(AudioStreamTest, RejectsBadChunksAndInput) {
  auto m = synthetic_encoder("whisper-tiny-enc", 64, "stream_bad.gguf");
  ASSERT_TRUE(m);
  ThreadPool pool(1);
  auto sink = [](const float*, int64_t) { return Status::Ok(); };
  EXPECT_EQ(audio::AudioStream::create(m->weights, pool, sink, {100}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(audio::AudioStream::create(m->weights, pool, sink, {272}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(audio::AudioStream::create(m->weights, pool, nullptr).status().code(), StatusCode::kInvalidArgument);
  auto s = audio::AudioStream::create(m->weights, pool, sink);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->chunk_frames(), 208);  // 2 s rounded to Ultravox's 16-frame groups
  std::vector<float> pcm(1000, 0.1f);
  pcm[10] = INFINITY;
  EXPECT_EQ((*s)->push(pcm.data(), pcm.size()).code(), StatusCode::kInvalidArgument);
  pcm[10] = 0.1f;  // the rejected push consumed nothing: the stream goes on
  EXPECT_EQ((*s)->push(pcm.data(), 100).code(), StatusCode::kOk);
  EXPECT_EQ((*s)->finish().code(), StatusCode::kInvalidArgument);  // 100 samples: no frame
  EXPECT_EQ((*s)->push(pcm.data(), 5).code(), StatusCode::kWrongState);
  (*s)->reset();
  EXPECT_TRUE((*s)->push(pcm.data(), 10).ok());
  // A failing sink stops the stream with its status.
  auto failing = audio::AudioStream::create(m->weights, pool, [](const float*, int64_t) {
    return out_of_range("context full");
  }, {32});
  ASSERT_TRUE(failing.ok());
  std::vector<float> second(16000, 0.01f);
  Status st = (*failing)->push(second.data(), second.size());
  EXPECT_EQ(st.code(), StatusCode::kOutOfRange);
  EXPECT_EQ((*failing)->push(second.data(), 10).code(), StatusCode::kWrongState);
}

// A model file may name its encoder chunk (omni.audio_in.chunk_ms): it is the stream's default,
// an explicit chunk still wins, and a value outside [10, 30000] ms is refused naming the key.
TEST(AudioStreamTest, ModelChunkKeyIsTheStreamDefault) {
  auto with_key = [](uint32_t ms, const std::string& name) -> StatusOr<std::unique_ptr<AudioEncoderModel>> {
    gguf::GgufWriter w;
    w.add_string("general.architecture", "clip");
    w.add_u32("omni.audio_in.chunk_ms", ms);
    if (Status st = add_synthetic_audio_encoder(w, "whisper-tiny-enc", 64, DType::kF16, 11); !st.ok()) return st;
    const std::string path = test::temp_path(name);
    if (Status st = w.write(path); !st.ok()) return st;
    auto m = load_audio_encoder(path);
    std::remove(path.c_str());
    return m;
  };
  auto m = with_key(500, "stream_key.gguf");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ((*m)->weights.chunk_ms, 500);
  ThreadPool pool(1);
  auto sink = [](const float*, int64_t) { return Status::Ok(); };
  auto s = audio::AudioStream::create((*m)->weights, pool, sink);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->chunk_frames(), 48);  // 50 frames to the nearest 16-frame Ultravox group
  EXPECT_EQ(audio::chunk_frames_for_ms((*m)->weights, 500), 48);
  EXPECT_EQ(audio::chunk_frames_for_ms((*m)->weights, 1), 16);  // at least one group
  auto explicit_chunk = audio::AudioStream::create((*m)->weights, pool, sink, {96});
  ASSERT_TRUE(explicit_chunk.ok());
  EXPECT_EQ((*explicit_chunk)->chunk_frames(), 96);
  for (uint32_t bad : {0u, 9u, 30001u}) {
    auto b = with_key(bad, "stream_badkey.gguf");
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.status().code(), StatusCode::kCorruptFile) << bad;
    EXPECT_NE(b.status().message().find("omni.audio_in.chunk_ms"), std::string::npos) << b.status().to_string();
  }
  // Without the key: kDefaultChunkMs (RejectsBadChunksAndInput checks the 208 frames).
  auto plain = synthetic_encoder("whisper-tiny-enc", 64, "stream_nokey.gguf");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->weights.chunk_ms, 0);
}

TEST(AudioStreamTest, SessionGetsTheRowsWhileSpeakingAndMatchesOneShot) {
  const std::string model_path = test::temp_path("stream_backbone.gguf");
  SyntheticSpec spec{"llama", "tiny", DType::kF16, 3};
  ASSERT_TRUE(create_synthetic_model(spec, model_path).ok());
  auto model = Model::load(model_path);
  std::remove(model_path.c_str());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const int64_t n_embd = 256;  // the tiny preset's width
  auto enc = synthetic_encoder("whisper-tiny-enc", n_embd, "stream_session.gguf");
  ASSERT_TRUE(enc);
  ContextParams cp;
  cp.n_ctx = 512;
  cp.n_threads = 2;
  cp.kv_type = DType::kF32;
  auto ctx = Context::create(**model, cp);
  ASSERT_TRUE(ctx.ok());
  const int32_t prompt[] = {1, 17, 42};
  ASSERT_TRUE((*ctx)->eval(prompt, false).ok());
  ThreadPool pool(2);
  std::vector<float> all_rows;
  auto s = audio::AudioStream::create(enc->weights, pool, [&](const float* rows, int64_t n) {
    all_rows.insert(all_rows.end(), rows, rows + n * n_embd);
    return (*ctx)->eval_embeddings(rows, n, false);
  }, {96});
  ASSERT_TRUE(s.ok());
  const std::vector<float> pcm = librivox_0880();
  for (size_t i = 0; i < pcm.size(); i += 1600) ASSERT_TRUE((*s)->push(pcm.data() + i, std::min<size_t>(1600, pcm.size() - i)).ok());
  const int64_t n_before_finish = (*ctx)->n_past();
  ASSERT_TRUE((*s)->finish().ok());
  // 0880 is 2.99 s: 299 frames = 3 chunks of 96 (6 rows each) + 11 frames (-> 12, 6 encoder
  // frames, one padded Ultravox row).
  const int64_t n_frames = int64_t(pcm.size()) / 160;
  const int64_t expected = (n_frames / 96) * 6 + (n_frames % 96 ? ((n_frames % 96 + 1) / 2 + 7) / 8 : 0);
  EXPECT_EQ((*ctx)->n_past(), 3 + expected);
  EXPECT_EQ(int64_t(all_rows.size()) / n_embd, expected);
  EXPECT_GE(n_before_finish, 3 + expected - 6);  // at most one chunk's rows were left for the end
  std::vector<float> streamed((*ctx)->last_logits(), (*ctx)->last_logits() + (*model)->hparams().n_vocab);

  auto one = Context::create(**model, cp);
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE((*one)->eval(prompt, false).ok());
  ASSERT_TRUE((*one)->eval_embeddings(all_rows.data(), expected, false).ok());
  EXPECT_EQ((*one)->n_past(), (*ctx)->n_past());
  double worst = 0, max_ref = 0;
  for (size_t i = 0; i < streamed.size(); ++i) {
    worst = std::max(worst, double(std::fabs(streamed[i] - (*one)->last_logits()[i])));
    max_ref = std::max(max_ref, double(std::fabs((*one)->last_logits()[i])));
  }
  std::printf("  %lld rows streamed in %lld chunks; last logits vs one shot: max |diff| %.3g (max %.3g)\n",
              static_cast<long long>(expected), static_cast<long long>((*s)->stats().chunks), worst, max_ref);
  EXPECT_LE(worst, 1e-4 * std::max(1.0, max_ref));
}

bool bench_enabled() {
  const char* e = std::getenv("OMNIRT_AUDIO_BENCH");
  return e && std::string(e) == "1";
}

// End-of-turn work vs utterance length: the clip repeated to 3..24 s, pushed in 100 ms pieces.
TEST(AudioStreamTest, EndOfTurnWorkDoesNotGrowWithTheUtterance) {
  const bool bench = bench_enabled();
  auto enc = synthetic_encoder(bench ? "whisper-small-enc" : "whisper-tiny-enc", bench ? 896 : 64, "stream_eot.gguf");
  ASSERT_TRUE(enc);
  const std::vector<float> clip = librivox_0880();
  ThreadPool pool(2);
  const std::vector<int64_t> chunks = bench ? std::vector<int64_t>{96, 160, 208} : std::vector<int64_t>{96, 160};
  const std::vector<int> lengths = bench ? std::vector<int>{1, 2, 4, 8} : std::vector<int>{1, 4};
  audio::AudioEncoder whole_enc(enc->weights, pool);
  for (int64_t chunk : chunks) {
    for (int reps : lengths) {
      std::vector<float> pcm;
      for (int r = 0; r < reps; ++r) pcm.insert(pcm.end(), clip.begin(), clip.end());
      // Best of 3 (a shared box): the whole turn streamed, and end-of-turn work alone.
      double best_finish = 1e9, best_push = 1e9;
      audio::AudioStreamStats st;
      for (int rep = 0; rep < (bench ? 3 : 1); ++rep) {
        auto s = audio::AudioStream::create(enc->weights, pool, [](const float*, int64_t) { return Status::Ok(); },
                                            {chunk});
        ASSERT_TRUE(s.ok());
        double worst_push = 0;
        for (size_t i = 0; i < pcm.size(); i += 1600) {
          const auto t0 = std::chrono::steady_clock::now();
          ASSERT_TRUE((*s)->push(pcm.data() + i, std::min<size_t>(1600, pcm.size() - i)).ok());
          worst_push = std::max(worst_push, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        ASSERT_TRUE((*s)->finish().ok());
        st = (*s)->stats();
        EXPECT_LE(st.finish_frames, chunk);  // one partial chunk (+ the mel tail) at most
        best_finish = std::min(best_finish, st.finish_s);
        best_push = std::min(best_push, worst_push);
      }
      if (!bench) continue;
      // What a pipeline that encodes the utterance only when it ends pays then (one window).
      auto whole = audio::whisper_log_mel(pcm.data(), pcm.size(), 80, 0);
      ASSERT_TRUE(whole.ok());
      const int64_t n = std::min<int64_t>(int64_t(whole->size()) / 80 / 2 * 2, 3000);
      double best_whole = 1e9;
      std::vector<float> rows;
      for (int rep = 0; rep < 1; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        ASSERT_TRUE(whole_enc.encode(whole->data(), n, &rows).ok());
        best_whole = std::min(best_whole, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("  chunk %3lld frames, utterance %5.1f s: %3lld chunks, slowest push %6.1f ms, end of turn "
                  "%6.1f ms (%3lld frames); whole utterance encoded at the end %7.1f ms\n",
                  static_cast<long long>(chunk), double(pcm.size()) / 16000, static_cast<long long>(st.chunks),
                  best_push * 1e3, best_finish * 1e3, static_cast<long long>(st.finish_frames), best_whole * 1e3);
    }
  }
}

// WER of whisper-tiny.en when the encoder sees fixed chunks alone (positions from 0) and the
// decoder attends over their concatenated output (what an omni model's LM sees), vs whole.
TEST(AudioStreamTest, ChunkedEncoderWer) {
  if (!bench_enabled()) GTEST_SKIP() << "measurement: OMNIRT_AUDIO_BENCH=1";
  const std::string model_path = test::source_path("models/whisper-tiny.en.gguf");
  if (!test::file_exists(model_path)) GTEST_SKIP() << model_path << " is missing (tools/setup.sh)";
  const nlohmann::json ref = nlohmann::json::parse(test::read_file(test::source_path("tests/data/whisper/librivox_transcripts.json")));
  const std::string dir = ref["librivox_dir"].get<std::string>();
  if (!test::file_exists(dir + "/" + ref["clips"][0]["wav"].get<std::string>())) GTEST_SKIP() << dir << " is missing";
  auto wm = load_whisper(model_path);
  ASSERT_TRUE(wm.ok());
  const audio::WhisperWeights& w = (*wm)->weights;
  ThreadPool pool(2);
  audio::WhisperEncoder enc(w, pool);
  audio::WhisperDecoder dec(w, pool);
  audio::WhisperTranscriber tr(w, pool);
  auto prompt = audio::whisper_prompt(w.vocab, {});
  ASSERT_TRUE(prompt.ok());
  audio::WhisperSearchOptions so;
  so.beam_size = 1;
  // Per clip: the samples and the encoder output of Whisper's own 30 s window (the clip's
  // normalized log-mel zero-padded to 3000 frames, as the transcriber does).
  struct Clip { std::vector<float> pcm, full; std::vector<std::string> ref; };
  std::vector<Clip> clips;
  double full_s = 0;
  for (const auto& c : ref["clips"]) {
    Clip k;
    k.pcm = test::read_wav_pcm16(dir + "/" + c["wav"].get<std::string>());
    ASSERT_FALSE(k.pcm.empty());
    k.ref = test::words_of(c["reference"].get<std::string>());
    auto mel = audio::whisper_log_mel(k.pcm.data(), k.pcm.size(), 80, 0);
    ASSERT_TRUE(mel.ok());
    mel->resize(3000 * 80, 0.0f);
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(enc.encode(mel->data(), 3000, &k.full).ok());
    full_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    clips.push_back(std::move(k));
  }
  const int64_t d = w.hp.n_audio_state;
  auto decode = [&](const std::vector<float>& audio_rows) {
    EXPECT_TRUE(dec.set_audio(audio_rows.data(), int64_t(audio_rows.size()) / d).ok());
    auto tokens = audio::whisper_search(dec, w, *prompt, so);
    EXPECT_TRUE(tokens.ok());
    return tokens.ok() ? tr.detokenize(*tokens) : std::string();
  };
  size_t total_words = 0;
  for (const Clip& k : clips) total_words += k.ref.size();
  std::vector<int> cap;  // per clip: 1.5 x the tokens the 30 s window decodes to (cuts loops)
  {
    size_t errors = 0;
    for (const Clip& k : clips) {
      const std::string text = decode(k.full);
      errors += test::word_errors(k.ref, test::words_of(text));
      EXPECT_TRUE(dec.set_audio(k.full.data(), int64_t(k.full.size()) / d).ok());
      cap.push_back(int(1.5 * double(audio::whisper_search(dec, w, *prompt, so)->size())) + 2);
    }
    std::printf("  whole clip, Whisper's 30 s window: WER %.2f %% (%zu/%zu), encode %.2f s\n",
                100.0 * double(errors) / double(total_words), errors, total_words, full_s);
  }
  // Chunks of the speech encoded alone (positions from 0), concatenated: (a) as they are;
  // (b) followed by the 30 s window's own positions after the speech (what Whisper's decoder
  // expects to see where speech ends), so only the cuts differ from the reference. -1: the
  // whole clip as one chunk.
  const int64_t sizes[] = {-1, 500, 200, 160, 100, 50};
  for (int64_t chunk : sizes) {
    size_t err_a = 0, err_b = 0, err_c = 0;
    double enc_s = 0;
    std::string sample;
    for (size_t ci = 0; ci < clips.size(); ++ci) {
      const Clip& k = clips[ci];
      auto lm = audio::LogMel::create(80);
      std::vector<float> raw, cat, out;
      ASSERT_TRUE((*lm)->push(k.pcm.data(), k.pcm.size(), &raw).ok());
      ASSERT_TRUE((*lm)->finish(&raw).ok());
      const int64_t n = int64_t(raw.size()) / 80, c = chunk < 0 ? n + n % 2 : chunk;
      float mx = -std::numeric_limits<float>::infinity();
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t f0 = 0; f0 < n; f0 += c) {
        const int64_t len = std::min(c, n - f0), even = len + len % 2;
        std::vector<float> m(raw.begin() + f0 * 80, raw.begin() + (f0 + len) * 80);
        for (float v : m) mx = std::max(mx, v);
        audio::whisper_normalize(m.data(), m.size(), mx);
        m.resize(size_t(even * 80), 0.0f);
        ASSERT_TRUE(enc.encode(m.data(), even, &out).ok());
        cat.insert(cat.end(), out.begin(), out.end());
      }
      enc_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      err_a += test::word_errors(k.ref, test::words_of(decode(cat)));
      std::vector<float> tail = cat;
      tail.insert(tail.end(), k.full.begin() + int64_t(cat.size()), k.full.end());
      const std::string text = decode(tail);
      err_b += test::word_errors(k.ref, test::words_of(text));
      if (sample.empty()) sample = text;
      so.max_new_tokens = cap[ci];
      err_c += test::word_errors(k.ref, test::words_of(decode(tail)));
      so.max_new_tokens = 224;
    }
    std::printf("  %-18s (a) alone WER %7.2f %%  (b) + window tail %7.2f %%  (c) (b), loops cut %6.2f %% "
                "(%zu/%zu)  encode %.2f s  first clip (b): \"%s\"\n",
                chunk < 0 ? "whole clip alone" : (std::to_string(chunk * 10) + " ms chunks").c_str(),
                100.0 * double(err_a) / double(total_words), 100.0 * double(err_b) / double(total_words),
                100.0 * double(err_c) / double(total_words), err_c, total_words, enc_s, sample.c_str());
  }
}

}  // namespace
}  // namespace omni
