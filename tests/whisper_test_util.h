// Random Whisper text-decoder weights for tests that need no model file: the CPU slot interface
// (whisper_slots_test.cpp) and the CUDA decoder against the CPU one (cuda_whisper_test.cpp).
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

// audio::WhisperWeights with a decoder only (the encoder fields stay empty) and the storage its
// matrices point into.
struct WhisperDecoderWeights {
  audio::WhisperWeights w;
  std::vector<std::vector<uint8_t>> storage;
};

struct WhisperDecoderShape {
  int64_t d = 64, n_head = 2, n_layer = 2, n_vocab = 300, n_text_ctx = 48;
  int64_t d_audio = 64, n_audio_ctx = 16;
};

// Matrices quantized to `type` from N(0, 1 / n_in) values (rows of whole blocks: d, 4 d and
// d_audio must suit the type), biases and norms near Whisper's scale. The vocabulary's special
// ids are the top ten ids (eot = n_vocab - 10 ... timestamp_begin = n_vocab - 2); every id above
// eot is suppressed (as Whisper's suppress_tokens do with its special tokens; no timestamps), and
// eot at the first step.
inline std::unique_ptr<WhisperDecoderWeights> make_whisper_decoder(const WhisperDecoderShape& s, DType type,
                                                                   uint32_t seed) {
  auto hw = std::make_unique<WhisperDecoderWeights>();
  audio::WhisperWeights& w = hw->w;
  w.hp.n_text_state = s.d;
  w.hp.n_text_head = s.n_head;
  w.hp.n_text_layer = s.n_layer;
  w.hp.n_vocab = s.n_vocab;
  w.hp.n_text_ctx = s.n_text_ctx;
  w.hp.n_audio_state = s.d_audio;
  w.hp.n_audio_ctx = s.n_audio_ctx;
  std::mt19937 rng(seed);
  auto normal = [&](size_t n, float mean, float sd) {
    std::normal_distribution<float> dist(mean, sd);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
  };
  auto matrix = [&](int64_t n_in, int64_t n_out) {
    const std::vector<float> f = normal(size_t(n_in * n_out), 0.0f, 1.0f / std::sqrt(float(n_in)));
    const int64_t rb = dtype_row_bytes(type, n_in);
    std::vector<uint8_t> bytes(size_t(rb * n_out));
    for (int64_t o = 0; o < n_out; ++o) ref::quantize_row(type, f.data() + o * n_in, bytes.data() + o * rb, n_in);
    hw->storage.push_back(std::move(bytes));  // a moved vector keeps its buffer: data() stays valid
    return audio::WhisperMatrix{type, hw->storage.back().data(), n_in, n_out};
  };
  auto linear = [&](int64_t n_in, int64_t n_out, bool bias) {
    audio::WhisperLinear l;
    l.w = matrix(n_in, n_out);
    if (bias) l.b = normal(size_t(n_out), 0.0f, 0.05f);
    return l;
  };
  auto norm = [&]() {
    audio::WhisperLayerNorm n;
    n.w = normal(size_t(s.d), 1.0f, 0.1f);
    n.b = normal(size_t(s.d), 0.0f, 0.05f);
    return n;
  };
  w.token_embedding = matrix(s.d, s.n_vocab);
  w.dec_pos = normal(size_t(s.n_text_ctx * s.d), 0.0f, 0.1f);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    audio::WhisperBlock b;
    b.attn_ln = norm();
    b.attn.query = linear(s.d, s.d, true);
    b.attn.key = linear(s.d, s.d, false);  // Whisper's keys have no bias
    b.attn.value = linear(s.d, s.d, true);
    b.attn.out = linear(s.d, s.d, true);
    b.cross_attn_ln = norm();
    b.cross_attn.query = linear(s.d, s.d, true);
    b.cross_attn.key = linear(s.d_audio, s.d, false);
    b.cross_attn.value = linear(s.d_audio, s.d, true);
    b.cross_attn.out = linear(s.d, s.d, true);
    b.mlp_ln = norm();
    b.mlp0 = linear(s.d, 4 * s.d, true);
    b.mlp2 = linear(4 * s.d, s.d, true);
    w.dec_blocks.push_back(std::move(b));
  }
  w.dec_ln = norm();
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
