// Random Whisper weights for tests that need no model file: the CPU slot interface
// (whisper_slots_test.cpp), the CUDA encoder and decoder against the CPU ones (cuda_whisper_test.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "audio/whisper/whisper_weights.h"
#include "kernels/core/dtype.h"
#include "kernels/ref/ops_ref.h"

namespace omni::test {

// audio::WhisperWeights built in memory and the storage its matrices point into.
struct WhisperTestWeights {
  audio::WhisperWeights w;
  std::vector<std::vector<uint8_t>> storage;
};

// Random Whisper parameters from one generator: N(mean, sd) vectors; matrices from N(0, 1 / n_in)
// values quantized to `type` row by row (rows of whole blocks), kept in hw's storage; biases and
// norms near Whisper's scale.
class WhisperRandom {
 public:
  WhisperRandom(WhisperTestWeights& hw, DType type, uint32_t seed) : hw_(hw), type_(type), rng_(seed) {}
  std::vector<float> normal(size_t n, float mean, float sd) {
    std::normal_distribution<float> dist(mean, sd);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng_);
    return v;
  }
  audio::WhisperMatrix matrix(int64_t n_in, int64_t n_out) {
    const std::vector<float> f = normal(size_t(n_in * n_out), 0.0f, 1.0f / std::sqrt(float(n_in)));
    const int64_t rb = dtype_row_bytes(type_, n_in);
    std::vector<uint8_t> bytes(size_t(rb * n_out));
    for (int64_t o = 0; o < n_out; ++o) ref::quantize_row(type_, f.data() + o * n_in, bytes.data() + o * rb, n_in);
    hw_.storage.push_back(std::move(bytes));  // a moved vector keeps its buffer: data() stays valid
    return audio::WhisperMatrix{type_, hw_.storage.back().data(), n_in, n_out};
  }
  audio::WhisperLinear linear(int64_t n_in, int64_t n_out, bool bias) {
    audio::WhisperLinear l;
    l.w = matrix(n_in, n_out);
    if (bias) l.b = normal(size_t(n_out), 0.0f, 0.05f);
    return l;
  }
  audio::WhisperLayerNorm norm(int64_t d) {
    audio::WhisperLayerNorm n;
    n.w = normal(size_t(d), 1.0f, 0.1f);
    n.b = normal(size_t(d), 0.0f, 0.05f);
    return n;
  }
  // attn_ln, mlp_ln, self-attention (Whisper's key has no bias) and the MLP of a d-wide block.
  audio::WhisperBlock block(int64_t d) {
    audio::WhisperBlock b;
    b.attn_ln = norm(d);
    b.attn.query = linear(d, d, true);
    b.attn.key = linear(d, d, false);
    b.attn.value = linear(d, d, true);
    b.attn.out = linear(d, d, true);
    b.mlp_ln = norm(d);
    b.mlp0 = linear(d, 4 * d, true);
    b.mlp2 = linear(4 * d, d, true);
    return b;
  }

 private:
  WhisperTestWeights& hw_;
  DType type_;
  std::mt19937 rng_;
};

struct WhisperDecoderShape {
  int64_t d = 64, n_head = 2, n_layer = 2, n_vocab = 300, n_text_ctx = 48;
  int64_t d_audio = 64, n_audio_ctx = 16;
};

// A decoder only (the encoder fields stay empty), matrices in `type` (d, 4 d and d_audio must
// suit it). The vocabulary's special ids are the top ten ids (eot = n_vocab - 10 ...
// timestamp_begin = n_vocab - 2); every id above eot is suppressed (as Whisper's suppress_tokens
// do with its special tokens; no timestamps), and eot at the first step.
inline std::unique_ptr<WhisperTestWeights> make_whisper_decoder(const WhisperDecoderShape& s, DType type,
                                                                uint32_t seed) {
  auto hw = std::make_unique<WhisperTestWeights>();
  audio::WhisperWeights& w = hw->w;
  w.hp.n_text_state = s.d;
  w.hp.n_text_head = s.n_head;
  w.hp.n_text_layer = s.n_layer;
  w.hp.n_vocab = s.n_vocab;
  w.hp.n_text_ctx = s.n_text_ctx;
  w.hp.n_audio_state = s.d_audio;
  w.hp.n_audio_ctx = s.n_audio_ctx;
  WhisperRandom r(*hw, type, seed);
  w.token_embedding = r.matrix(s.d, s.n_vocab);
  w.dec_pos = r.normal(size_t(s.n_text_ctx * s.d), 0.0f, 0.1f);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    audio::WhisperBlock b = r.block(s.d);
    b.cross_attn_ln = r.norm(s.d);
    b.cross_attn.query = r.linear(s.d, s.d, true);
    b.cross_attn.key = r.linear(s.d_audio, s.d, false);
    b.cross_attn.value = r.linear(s.d_audio, s.d, true);
    b.cross_attn.out = r.linear(s.d, s.d, true);
    w.dec_blocks.push_back(std::move(b));
  }
  w.dec_ln = r.norm(s.d);
  audio::WhisperVocab& v = w.vocab;
  const auto top = static_cast<int32_t>(s.n_vocab);
  v.eot = top - 10;
  v.sot = top - 9;
  v.translate = top - 8;
  v.transcribe = top - 7;
  v.sot_lm = top - 6;
  v.sot_prev = top - 5;
  v.no_speech = top - 4;
  v.no_timestamps = top - 3;
  v.timestamp_begin = top - 2;
  v.suppress_tokens_begin = {v.eot};
  for (int32_t id = v.eot + 1; id < top; ++id) v.suppress_tokens.push_back(id);
  for (int64_t i = 0; i < s.n_vocab; ++i) {
    std::string name(1, 't');  // (not "t" + ...: GCC 12 warns of a false -Wrestrict there)
    name += std::to_string(i);
    v.tokens.push_back(std::move(name));
  }
  return hw;
}

}  // namespace omni::test
