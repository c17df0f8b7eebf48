// A voice turn on the GPU (CudaBackbone + heads on the device + CudaCodecStream) against the CPU
// (Context + SnacDecoder) on the tiny synthetic presets in BF16: the audio-out heads' logits
// within the CUDA backbone bound (1e-2 relative L2: f16 KV cache, bf16 GEMM operands in
// prefill, docs/CUDA.md), greedy text tokens and codec frames equal step for step (a step where
// the CPU's top two candidates are within 1e-3 of the logit range may flip: the comparison
// stops there, as CudaModel.GreedyTokensAgreeWithCpuFor32Steps does), and the GPU turn's PCM
// equal to the CPU codec's whole decode of the same frames within CudaSnac's 1e-4 bound.
// Audio input on the GPU: AudioStream with CudaWhisperEncoder as its frame encoder gives the
// CPU stream's rows within the CUDA encoder's 1e-2 relative L2 (docs/AUDIO.md), omni-tiny's
// Ultravox adapter (final norm on the device) and the Qwen2-Audio fixture (frames before it).
#if OMNIRT_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "audio/adapter/audio_stream.h"
#include "audio/codec/snac.h"
#include "kernels/core/thread_pool.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/audio_out.h"
#include "runtime/model/context.h"
#include "runtime/model/cuda_context.h"
#include "runtime/model/cuda_snac.h"
#include "runtime/model/cuda_whisper.h"
#include "runtime/model/snac_loader.h"
#include "runtime/model/synthetic_omni.h"
#include "runtime/model/voice_turn.h"
#include "tests/audio_test_util.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

namespace omni {
namespace {

constexpr double kLogitBound = 1e-2;
constexpr double kPcmBound = 1e-4;
constexpr int64_t kSteps = 40;
// A prompt of <= 16 rows: prefill runs the f32-accurate matvec path on both sides. Model seed 1:
// the CPU's greedy run speaks for all 40 steps (omni-tiny: 33 frames; orpheus-tiny: 5), and its
// closest codec candidates differ by 9.4e-6 (orpheus-tiny band) / 1.5e-4 (omni-tiny heads) of
// the logit range, which the near-tie rule covers.
constexpr const char* kPrompt = "Hi";

using Loaded = test::LoadedOmni;

// The preset in BF16, model seed 1.
Loaded load(const std::string& preset) { return test::load_synthetic_omni(preset, DType::kBF16, 1); }

AudioOutParams greedy_params() {
  AudioOutParams p;
  p.text_sampling.temperature = 0.0f;
  p.audio_sampling.temperature = 0.0f;
  p.max_steps = kSteps;
  p.max_text_tokens = 4;  // then the text-ended phase (hidden-only steps) on both backends
  return p;
}

int32_t argmax(const float* x, int64_t n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

// True when x's best and second best are within 1e-3 of its range (a flip is no error).
bool near_tie(const float* x, int64_t n) {
  std::vector<float> v(x, x + n);
  std::sort(v.begin(), v.end(), std::greater<float>());
  return n > 1 && v[0] - v[1] <= 1e-3f * (v[0] - v.back());
}

std::unique_ptr<CudaContext> make_gpu(const Model& m) {
  ContextParams cp;
  cp.n_ctx = 256;
  auto c = CudaContext::create(m, cp);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? std::move(*c) : nullptr;
}

std::unique_ptr<Context> make_cpu(const Model& m) {
  ContextParams cp;
  cp.n_ctx = 256;
  cp.n_threads = 2;
  auto c = Context::create(m, cp);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? std::move(*c) : nullptr;
}

// Level-major frames -> SNAC codes (one frame group per frame).
audio::SnacCodes to_codes(const std::vector<CodecFrame>& frames, const AudioOutSpec& spec) {
  const std::vector<int> per_level = spec.codes_per_level();
  audio::SnacCodes c(per_level.size());
  for (const CodecFrame& f : frames) {
    int slot = 0;
    for (size_t l = 0; l < per_level.size(); ++l) {
      c[l].insert(c[l].end(), f.codes + slot, f.codes + slot + per_level[l]);
      slot += per_level[l];
    }
  }
  return c;
}

// Both backbones step in lockstep; before comparing a step's outputs, the heads' logits (and
// the text logits while the text runs) are compared on both.
void lockstep(const std::string& preset) {
  Loaded l = load(preset);
  ASSERT_TRUE(l.model && l.snac);
  auto cpu = make_cpu(*l.model);
  auto gpu = make_gpu(*l.model);
  ASSERT_TRUE(cpu && gpu);
  CpuBackbone cb(*cpu);
  CudaBackbone gb(*gpu);
  auto prompt = l.model->tokenizer().encode(kPrompt, true, false);
  ASSERT_TRUE(prompt.ok());
  auto dc = AudioOutDecoder::create(l.heads, cb, greedy_params());
  auto dg = AudioOutDecoder::create(l.heads, gb, greedy_params());
  ASSERT_TRUE(dc.ok() && dg.ok()) << dc.status().to_string() << " / " << dg.status().to_string();
  ASSERT_TRUE((*dc)->prefill_text(*prompt).ok());
  Status pst = (*dg)->prefill_text(*prompt);
  ASSERT_TRUE(pst.ok()) << pst.to_string();
  const AudioOutSpec& s = l.heads.spec;
  const bool parallel = s.kind == AudioOutKind::kParallel;
  const int64_t n_vocab = l.model->hparams().n_vocab, V = s.codebook_vocab;
  std::vector<int32_t> all(static_cast<size_t>(s.n_codebooks));
  for (int32_t i = 0; i < s.n_codebooks; ++i) all[size_t(i)] = i;
  std::vector<float> hc(size_t(s.n_codebooks) * size_t(std::max<int64_t>(V, 1))), hg(hc.size(), NAN);
  int agreed = 0, frames = 0;
  bool tie = false;
  while (!(*dc)->done() && !(*dg)->done() && !tie) {
    // The logits this step samples from: the previous step's feedback is evaluated first.
    auto sc = (*dc)->step();
    auto sg = (*dg)->step();
    ASSERT_TRUE(sc.ok() && sg.ok()) << sc.status().to_string() << " / " << sg.status().to_string();
    // (Heads were evaluated inside step(); re-run them on the same hidden state to compare.)
    if (parallel) {
      ASSERT_TRUE(cb.run_extra_outputs(all.data(), s.n_codebooks, hc.data()).ok());
      std::fill(hg.begin(), hg.end(), NAN);
      Status st = gb.run_extra_outputs(all.data(), s.n_codebooks, hg.data());
      ASSERT_TRUE(st.ok()) << st.to_string();
      EXPECT_TRUE(test::close_rel(hg, hc, kLogitBound, preset + " heads at step " + std::to_string(agreed)));
      for (int32_t i = 0; i < s.n_codebooks; ++i) {  // the sampler's candidates: the codes and the end code
        std::vector<float> c(hc.begin() + i * V, hc.begin() + i * V + s.codebook_size);
        std::vector<float> g(hg.begin() + i * V, hg.begin() + i * V + s.codebook_size);
        if (s.end_code >= 0) {
          c.push_back(hc[size_t(i * V + s.end_code)]);
          g.push_back(hg[size_t(i * V + s.end_code)]);
        }
        const int64_t n = static_cast<int64_t>(c.size());
        if (argmax(c.data(), n) != argmax(g.data(), n) && near_tie(c.data(), n)) tie = true;
      }
    }
    if (cb.last_logits() && gb.last_logits()) {
      const float* c = cb.last_logits();
      const float* g = gb.last_logits();
      EXPECT_LE(test::rel_l2(g, c, size_t(n_vocab)), kLogitBound) << preset << " text logits, step " << agreed;
      if (argmax(c, n_vocab) != argmax(g, n_vocab) && near_tie(c, n_vocab)) tie = true;
      for (int32_t q = 0; !parallel && q < s.n_codebooks; ++q) {  // in-vocab: each frame position's band + end
        const int64_t b = s.token_offset + int64_t(q) * s.codebook_size;
        std::vector<float> cc(c + b, c + b + s.codebook_size), gg(g + b, g + b + s.codebook_size);
        if (s.speech_end_id >= 0) {
          cc.push_back(c[s.speech_end_id]);
          gg.push_back(g[s.speech_end_id]);
        }
        const int64_t n = static_cast<int64_t>(cc.size());
        if (argmax(cc.data(), n) != argmax(gg.data(), n) && near_tie(cc.data(), n)) tie = true;
      }
    } else {
      EXPECT_EQ(cb.last_logits() == nullptr, gb.last_logits() == nullptr) << "step " << agreed;
    }
    if (tie) break;  // the outputs sampled from these logits may differ from here on
    ASSERT_EQ(sg->text_token, sc->text_token) << preset << " step " << agreed;
    ASSERT_EQ(sg->has_frame, sc->has_frame) << preset << " step " << agreed;
    if (sc->has_frame) {
      ++frames;
      ASSERT_EQ(sg->frame.index, sc->frame.index);
      for (int k = 0; k < sc->frame.n_codes; ++k)
        ASSERT_EQ(sg->frame.codes[k], sc->frame.codes[k]) << preset << " frame " << sc->frame.index << " code " << k;
    }
    ++agreed;
  }
  std::printf("[ info ] %s: %d of %lld greedy steps equal on GPU and CPU (%d frames)%s\n", preset.c_str(), agreed,
              (long long)kSteps, frames, tie ? ", stopped at a near-tie" : "");
  if (!tie) {
    EXPECT_EQ((*dg)->done(), (*dc)->done());
  }
  EXPECT_GT(agreed, 0);
}

TEST(CudaVoice, ParallelHeadsGreedyStepsMatchCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  lockstep("omni-tiny");
}

TEST(CudaVoice, InVocabGreedyStepsMatchCpu) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  lockstep("orpheus-tiny");
}

// eval_embeddings_hidden on the device: no text logits, the same hidden state as a full eval
// (the heads over it equal the heads after eval_embeddings of the same row: the same kernels up
// to the final norm; 1e-6 relative L2 as CudaModel's graphs on/off test), the same with graphs
// off (one-row steps are captured), and errors as eval_embeddings.
TEST(CudaVoice, HiddenOnlyEvalLeavesTheSameHiddenState) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  Loaded l = load("omni-tiny");
  ASSERT_TRUE(l.model);
  auto a = make_gpu(*l.model);
  auto b = make_gpu(*l.model);
  auto c = make_gpu(*l.model);
  ASSERT_TRUE(a && b && c);
  c->set_use_graphs(false);
  const int64_t d = l.model->hparams().n_embd;
  const std::vector<float> rows = test::random_floats(size_t(3 * d), 7, -0.1f, 0.1f);
  const int32_t K = l.heads.spec.n_codebooks, V = l.heads.spec.codebook_vocab;
  std::vector<int32_t> all(static_cast<size_t>(K));
  for (int32_t i = 0; i < K; ++i) all[size_t(i)] = i;
  std::vector<float> ha(size_t(K) * size_t(V), NAN), hb(ha.size(), NAN);
  ASSERT_EQ(a->run_extra_outputs(all.data(), K, ha.data()).code(), StatusCode::kWrongState);  // no set yet
  ASSERT_TRUE(a->set_extra_outputs(l.heads.head).ok());
  ASSERT_TRUE(b->set_extra_outputs(l.heads.head).ok());
  ASSERT_TRUE(c->set_extra_outputs(l.heads.head).ok());
  ASSERT_TRUE(c->set_extra_outputs(l.heads.head).ok());  // the same set again: kept
  ASSERT_EQ(a->run_extra_outputs(all.data(), K, ha.data()).code(), StatusCode::kWrongState);  // no eval yet
  ASSERT_TRUE(a->eval_embeddings(rows.data(), 2, false).ok());
  ASSERT_TRUE(b->eval_embeddings(rows.data(), 2, false).ok());
  ASSERT_TRUE(a->eval_embeddings_hidden(rows.data() + 2 * d, 1).ok());
  EXPECT_EQ(a->n_logit_rows(), 0);
  ASSERT_TRUE(b->eval_embeddings(rows.data() + 2 * d, 1, false).ok());
  ASSERT_TRUE(a->run_extra_outputs(all.data(), K, ha.data()).ok());
  ASSERT_TRUE(b->run_extra_outputs(all.data(), K, hb.data()).ok());
  EXPECT_TRUE(test::close_rel(ha, hb, 1e-6, "heads after hidden-only vs full eval"));
  EXPECT_TRUE(a->graph_error().empty()) << a->graph_error();
  std::vector<float> hc(ha.size(), NAN);
  ASSERT_TRUE(c->eval_embeddings(rows.data(), 2, false).ok());
  ASSERT_TRUE(c->eval_embeddings_hidden(rows.data() + 2 * d, 1).ok());
  ASSERT_TRUE(c->run_extra_outputs(all.data(), K, hc.data()).ok());
  EXPECT_TRUE(test::close_rel(hc, ha, 1e-6, "heads, graphs off vs on"));
  // Only the requested matrices are written.
  std::vector<float> one(ha.size(), NAN);
  const int32_t third = 2;
  ASSERT_TRUE(a->run_extra_outputs(&third, 1, one.data()).ok());
  for (size_t j = 0; j < one.size(); ++j) {
    const bool mine = j / size_t(V) == 2;
    ASSERT_EQ(std::isnan(one[j]), !mine) << j;
  }
  const int32_t bad = K;
  EXPECT_EQ(a->run_extra_outputs(&bad, 1, one.data()).code(), StatusCode::kInvalidArgument);
  std::vector<float> inf_row(size_t(d), INFINITY);
  EXPECT_EQ(a->eval_embeddings_hidden(inf_row.data(), 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a->n_past(), 3);
}

// A whole GPU turn: the streamed PCM equals the CPU codec's whole decode of the frames the GPU
// decode loop produces (the same greedy run, repeated: deterministic), the stages in order.
TEST(CudaVoice, TurnPcmMatchesCpuCodecOfTheSameFrames) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  Loaded l = load("omni-tiny");
  ASSERT_TRUE(l.model && l.snac);
  auto gpu = make_gpu(*l.model);
  ASSERT_TRUE(gpu);
  CudaBackbone gb(*gpu);
  auto prompt = l.model->tokenizer().encode(kPrompt, true, false);
  ASSERT_TRUE(prompt.ok());
  std::vector<CodecFrame> frames;
  std::vector<int32_t> text;
  {
    auto dec = AudioOutDecoder::create(l.heads, gb, greedy_params());
    ASSERT_TRUE(dec.ok());
    ASSERT_TRUE((*dec)->prefill_text(*prompt).ok());
    while (!(*dec)->done()) {
      auto st = (*dec)->step();
      ASSERT_TRUE(st.ok()) << st.status().to_string();
      if (st->text_token >= 0) text.push_back(st->text_token);
      if (st->has_frame) frames.push_back(st->frame);
    }
  }
  ASSERT_GE(frames.size(), 3u);
  auto snac = CudaSnacDecoder::create(l.snac->weights);
  ASSERT_TRUE(snac.ok()) << snac.status().to_string();
  CudaCodecStream stream(**snac);
  ASSERT_TRUE(gb.rewind(0).ok());
  VoiceTurnParams p;
  p.decode = greedy_params();
  p.noise_seed = 11;
  std::vector<float> streamed;
  auto r = run_voice_turn(gb, l.heads, stream, *prompt, p,
                          [&](const float* x, size_t n) { streamed.insert(streamed.end(), x, x + n); });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->text_tokens, text);
  ASSERT_EQ(r->n_frames, static_cast<int64_t>(frames.size()));
  EXPECT_TRUE(streamed == r->pcm);
  EXPECT_GE(r->t.first_frame, r->t.prefill_done);
  EXPECT_GE(r->t.first_pcm, r->t.first_frame);
  EXPECT_GE(r->t.done, r->t.first_pcm);

  ThreadPool pool(2);
  audio::SnacDecoder cpu_codec(l.snac->weights, pool);
  cpu_codec.set_bf16_dot(false);  // f32 math on the bf16 weights, as CudaSnacDecoder computes
  cpu_codec.set_noise(true, p.noise_seed);
  std::vector<float> want;
  ASSERT_TRUE(cpu_codec.decode(to_codes(frames, l.heads.spec), &want).ok());
  EXPECT_TRUE(test::close_rel(r->pcm, want, kPcmBound, "GPU turn PCM vs CPU codec"));
  // A second turn on the same backbone and stream (heads kept, stream reset): the same audio.
  ASSERT_TRUE(gb.rewind(0).ok());
  auto r2 = run_voice_turn(gb, l.heads, stream, *prompt, p);
  ASSERT_TRUE(r2.ok()) << r2.status().to_string();
  EXPECT_TRUE(r2->pcm == r->pcm);
}

// The LibriVox clip (2.99 s, 299 mel frames) streamed in 20 ms blocks through a CPU stream and
// through one whose frame encoder is the CUDA encoder: the same number of rows, chunk by chunk,
// and every row within kLogitBound relative L2 of the CPU's (all of them together, and each chunk).
void expect_gpu_stream_matches_cpu(const audio::AudioEncoderWeights& w, int64_t chunk, const std::string& what) {
  const std::vector<float> pcm = test::read_wav_pcm16(test::source_path("tests/data/whisper/librivox_0880.wav"));
  ASSERT_EQ(pcm.size(), 47840u);  // 299 mel frames
  auto enc = CudaWhisperEncoder::create(w.whisper);
  ASSERT_TRUE(enc.ok()) << what << ": " << enc.status().to_string();
  const bool want_final_norm = w.adapter.type == audio::AudioProjector::kUltravox;
  int calls = 0;
  ThreadPool pool(2);
  std::vector<float> rows[2];
  std::vector<int64_t> sizes[2];
  for (int k = 0; k < 2; ++k) {
    audio::AudioStreamOptions opt;
    opt.chunk_frames = chunk;
    if (k == 1)
      opt.frame_encoder = [&](const float* mel, int64_t n, bool final_norm, std::vector<float>* frames) {
        ++calls;
        EXPECT_EQ(final_norm, want_final_norm);
        frames->assign(size_t(n / 2 * w.whisper.hp.n_audio_state) + 7, NAN);  // encode() must resize and write all
        return final_norm ? (*enc)->encode(mel, n, frames) : (*enc)->encode_before_final_norm(mel, n, frames);
      };
    auto s = audio::AudioStream::create(w, pool, [&, k](const float* r, int64_t n) {
      rows[k].insert(rows[k].end(), r, r + n * w.adapter.n_embd_out);
      sizes[k].push_back(n);
      return Status::Ok();
    }, opt);
    ASSERT_TRUE(s.ok()) << what << ": " << s.status().to_string();
    for (size_t i = 0; i < pcm.size(); i += 320) {
      Status st = (*s)->push(pcm.data() + i, std::min<size_t>(320, pcm.size() - i));
      ASSERT_TRUE(st.ok()) << what << ": " << st.to_string();
    }
    Status st = (*s)->finish();
    ASSERT_TRUE(st.ok()) << what << ": " << st.to_string();
  }
  const int64_t n_chunks = (299 + chunk - 1) / chunk;
  EXPECT_EQ(calls, n_chunks) << what;
  ASSERT_EQ(sizes[1], sizes[0]) << what;
  ASSERT_EQ(rows[1].size(), rows[0].size()) << what;
  ASSERT_FALSE(rows[0].empty()) << what;
  for (float v : rows[1]) ASSERT_TRUE(std::isfinite(v)) << what;
  const double all = test::rel_l2(rows[1].data(), rows[0].data(), rows[0].size());
  double worst = 0;
  size_t off = 0;
  for (int64_t n : sizes[0]) {
    const size_t len = size_t(n * w.adapter.n_embd_out);
    const double e = test::rel_l2(rows[1].data() + off, rows[0].data() + off, len);
    EXPECT_LE(e, kLogitBound) << what << ": chunk at row " << off / size_t(w.adapter.n_embd_out);
    worst = std::max(worst, e);
    off += len;
  }
  std::printf("[ info ] %s: %lld chunks, %zu rows: relative L2 %.3g (worst chunk %.3g)\n", what.c_str(),
              (long long)n_chunks, rows[0].size() / size_t(w.adapter.n_embd_out), all, worst);
  EXPECT_LE(all, kLogitBound) << what;
}

TEST(CudaVoice, AudioStreamWithCudaEncoderMatchesCpuStream) {
  OMNI_CUDA_SKIP_WITHOUT_DEVICE();
  Loaded l = load("omni-tiny");
  ASSERT_TRUE(l.model);
  auto enc = load_audio_encoder(l.model->file());
  ASSERT_TRUE(enc.ok()) << enc.status().to_string();
  // 128-frame chunks: 2 full chunks + a partial one of 43 frames (padded to 44).
  expect_gpu_stream_matches_cpu((*enc)->weights, 128, "omni-tiny (ultravox)");
  auto q = load_audio_encoder(test::source_path("tests/data/audio_adapter/qwen2a.gguf"));
  ASSERT_TRUE(q.ok()) << q.status().to_string();
  expect_gpu_stream_matches_cpu((*q)->weights, 64, "qwen2a fixture");
}

}  // namespace
}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
