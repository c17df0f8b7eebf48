// Whisper's text decoder on the CPU: token embedding + learned positions, n_text_layer pre-LN
// blocks (causal self-attention over a KV cache, cross-attention over the encoder output, GELU
// MLP), final layer norm, logits through the tied token embedding.
//
//   WhisperDecoder dec(weights, pool);
//   dec.set_audio(encoder_out.data(), 1500);       // cross-attention K/V, once per window
//   WhisperTextCache cache = dec.new_cache();
//   std::vector<float> logits(n_vocab);
//   dec.decode(cache, prompt.data(), prompt.size(), logits.data());  // last token's logits
//
// A cache is one hypothesis: beam search copies caches (copy_from) and decodes each.
// whisper_search drives any decoder through WhisperTextDecoder, whose hypotheses' caches sit in
// numbered slots wherever the decoder keeps them (here host vectors, in CudaWhisperDecoder
// device memory).
// Thread-safety: one thread at a time per decoder (scratch); caches are plain values.
#pragma once

#include <cstdint>
#include <vector>

#include "audio/whisper/whisper_ops.h"
#include "audio/whisper/whisper_weights.h"
#include "kernels/core/status.h"
#include "kernels/core/thread_pool.h"

namespace omni::audio {

struct WhisperTextCache {
  // Per layer the filled rows only: k[l], v[l] are [n_past, d]. new_cache() reserves room for
  // n_ctx rows, so appending does not reallocate and the pages of rows never filled are never
  // touched (ten 5.5 MB caches for a beam search cost a few rows each, not 55 MB of zeros).
  std::vector<std::vector<float>> k, v;
  int64_t n_layer = 0, n_ctx = 0, d = 0;
  int64_t n_past = 0;  // positions filled
  // this = other, copying only the filled rows (beam search reorders hypotheses every step).
  void copy_from(const WhisperTextCache& other);
};

// The argument checks every WhisperTextDecoder makes, with the same messages: tokens set and in
// [0, n_vocab) (invalid_argument); a slot in [0, n_slots) (out_of_range); a step's slots each
// in range and none twice (invalid_argument for a repeat).
Status whisper_check_tokens(const int32_t* tokens, int64_t n, int64_t n_vocab);
Status whisper_check_slot(int slot, size_t n_slots);
Status whisper_check_slots(const int* slots, int64_t n, size_t n_slots);

// What whisper_search needs of a text decoder. Errors as WhisperDecoder's below, plus
// out_of_range for a slot outside [0, n_slots).
class WhisperTextDecoder {
 public:
  virtual ~WhisperTextDecoder() = default;
  // Cross-attention keys and values from the encoder output [n_audio, n_audio_state] (host).
  // invalid_argument for n_audio outside [1, n_audio_ctx].
  virtual Status set_audio(const float* encoder_out, int64_t n_audio) = 0;
  // Makes n_slots (>= 1) empty caches; earlier slots are dropped.
  virtual Status reset_slots(int n_slots) = 0;
  // Appends tokens to slot's cache; logits [n_vocab] of the last one (host).
  virtual Status decode_slot(int slot, const int32_t* tokens, int64_t n, float* logits) = 0;
  // tokens[b] appended to slots[b]'s cache, b in [0, n); logits [n, n_vocab] (host). The slots
  // must differ.
  virtual Status decode_slots(const int* slots, const int32_t* tokens, int64_t n, float* logits) = 0;
  // dst's cache becomes a copy of src's.
  virtual Status copy_slot(int dst, int src) = 0;
  // Host threads for the search's own work on the logits.
  virtual ThreadPool& pool() const = 0;
};

class WhisperDecoder : public WhisperTextDecoder {
 public:
  WhisperDecoder(const WhisperWeights& w, ThreadPool& pool) : w_(w), pool_(pool) {}
  // Projects the encoder output [n_audio, n_audio_state] to every layer's cross-attention keys
  // and values. invalid_argument for n_audio outside [1, n_audio_ctx].
  Status set_audio(const float* encoder_out, int64_t n_audio) override;
  WhisperTextCache new_cache() const;
  // Appends tokens at positions [cache.n_past, cache.n_past + n). logits: [n_vocab] for the last
  // token, or [n, n_vocab] when all_logits. wrong_state before set_audio; out_of_range past
  // n_text_ctx; invalid_argument for a token id outside [0, n_vocab). The cache is unchanged
  // on error.
  Status decode(WhisperTextCache& cache, const int32_t* tokens, int64_t n, float* logits,
                bool all_logits = false);
  // One token for each of n_beams hypotheses (beam search): tokens[b] is appended to caches[b]
  // and logits [n_beams, n_vocab] are that token's. The matrices run once over all beams (the
  // weights are read once per step), the self-attention per cache, the cross-attention over the
  // shared audio K/V. Same errors as decode(); no cache changes on error.
  Status decode_beams(WhisperTextCache* const* caches, const int32_t* tokens, int64_t n_beams,
                      float* logits);

  // WhisperTextDecoder: slots of WhisperTextCache, decoded by the functions above.
  Status reset_slots(int n_slots) override;
  Status decode_slot(int slot, const int32_t* tokens, int64_t n, float* logits) override;
  Status decode_slots(const int* slots, const int32_t* tokens, int64_t n, float* logits) override;
  Status copy_slot(int dst, int src) override;
  ThreadPool& pool() const override { return pool_; }

 private:
  Status check_step(const WhisperTextCache& cache, const int32_t* tokens, int64_t n) const;

  const WhisperWeights& w_;
  ThreadPool& pool_;
  whisper::Scratch scratch_;
  int64_t n_audio_ = 0;
  std::vector<std::vector<float>> cross_k_, cross_vt_;  // per layer: [H, n_audio, D], [H, D, n_audio]
  std::vector<WhisperTextCache> slots_;
  std::vector<WhisperTextCache*> slot_ptrs_;
};

}  // namespace omni::audio
