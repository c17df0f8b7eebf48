// The Whisper network's parameters as views and small f32 vectors: what the encoder, decoder
// and transcriber read. Filled by runtime/model/whisper_loader (from GGUF) or by a test; the
// networks never see a file format. Names follow OpenAI's checkpoints (docs/WHISPER.md).
// Lifetime: WhisperMatrix::data points into memory the filler keeps alive (the mapped file).
// Thread-safety: immutable once filled; any number of encoders/decoders may share it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/core/dtype.h"

namespace omni::audio {

struct WhisperHParams {
  int64_t n_mels = 80;
  int64_t n_audio_ctx = 1500;  // encoder positions (frames / 2)
  int64_t n_audio_state = 384;
  int64_t n_audio_head = 6;
  int64_t n_audio_layer = 4;
  int64_t n_text_ctx = 448;    // decoder positions
  int64_t n_text_state = 384;
  int64_t n_text_head = 6;
  int64_t n_text_layer = 4;
  int64_t n_vocab = 51864;
};

// W [n_out, n_in] row-major in `type` (ggml convention: y = W x).
struct WhisperMatrix {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t n_in = 0, n_out = 0;
};

struct WhisperLinear {
  WhisperMatrix w;
  std::vector<float> b;  // [n_out]; empty = no bias (Whisper's key projections)
};

struct WhisperLayerNorm {
  std::vector<float> w, b;  // [d] each; y = (x - mean) / sqrt(var + 1e-5) * w + b
};

// Conv1d, kernel 3, padding 1, repacked for im2col: w [n_out, kernel, n_in] f32.
struct WhisperConv {
  std::vector<float> w;
  std::vector<float> b;  // [n_out]
  int64_t n_in = 0, n_out = 0, kernel = 3;
};

struct WhisperAttentionWeights {
  WhisperLinear query, key, value, out;
};

struct WhisperBlock {
  WhisperLayerNorm attn_ln;
  WhisperAttentionWeights attn;
  WhisperLayerNorm cross_attn_ln;        // decoder blocks only
  WhisperAttentionWeights cross_attn;    // decoder blocks only
  WhisperLayerNorm mlp_ln;
  WhisperLinear mlp0, mlp2;              // d -> 4d (GELU) -> d
};

// Special tokens and the token strings (GPT-2 byte-level BPE symbols).
struct WhisperVocab {
  std::vector<std::string> tokens;  // [n_vocab]
  int32_t eot = 50256, sot = 50257, translate = 50357, transcribe = 50358, sot_prev = 50360,
          sot_lm = 50359, no_speech = 50361, no_timestamps = 50362, timestamp_begin = 50363;
  bool multilingual = false;
  std::vector<int32_t> suppress_tokens;        // never sampled
  std::vector<int32_t> suppress_tokens_begin;  // not as the first token (" " and eot)
};

struct WhisperWeights {
  WhisperHParams hp;
  WhisperVocab vocab;
  // Encoder.
  WhisperConv conv1, conv2;           // n_mels -> d (stride 1), d -> d (stride 2); GELU after each
  std::vector<float> enc_pos;         // [n_audio_ctx, n_audio_state]
  std::vector<WhisperBlock> enc_blocks;
  WhisperLayerNorm enc_ln_post;
  // Decoder.
  WhisperMatrix token_embedding;      // [n_vocab, n_text_state]; also the output projection
  std::vector<float> dec_pos;         // [n_text_ctx, n_text_state]
  std::vector<WhisperBlock> dec_blocks;
  WhisperLayerNorm dec_ln;
};

}  // namespace omni::audio
