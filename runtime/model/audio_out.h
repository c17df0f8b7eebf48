// Audio-out heads: how a backbone speaks. Two families (docs/AUDIO_OUT.md has the file format):
//
//  - parallel (Mini-Omni, Moshi without its depth transformer): every step emits one text token
//    and K codec tokens, one per codebook, from extra heads [n_embd -> codebook_vocab] applied to
//    the final-norm hidden state; codebook i is delayed by delays[i] steps (Mini-Omni: i + 1), so
//    at step s it emits its token of frame s - delays[i]. The next step's input row combines the
//    text token's embedding with the K codec tokens' rows of extra embedding tables: their mean
//    (Mini-Omni: (x_text + x_0 + ... + x_6) / 8) or their sum (Moshi).
//  - in-vocab (Orpheus): codec tokens are ordinary vocabulary entries, K per frame, token id =
//    token_offset + code + codebook_size * position_in_frame, between speech start/end markers.
//
// AudioOutDecoder drives a Backbone (runtime/model/backbone.h: a CPU Context, or a CudaContext
// with the heads on the device): prefill a prompt, then step() until done(), collecting a
// text stream and a stream of codec frames in the codec's level-major layout (SNAC 24 kHz: level
// 0 one code, level 1 two, level 2 four; the 7 tokens of a frame feed levels 0,1,2,2,1,2,2 as in
// both Orpheus and Mini-Omni).
// Thread-safety: AudioOutHeads is immutable after loading (share it); an AudioOutDecoder is used
// by one thread at a time with its Context.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/core/status.h"
#include "runtime/model/backbone.h"
#include "runtime/model/context.h"
#include "runtime/model/gguf.h"
#include "runtime/model/model.h"
#include "runtime/model/sampler.h"

namespace omni {

enum class AudioOutKind { kParallel, kInVocab };
enum class InputCombine { kMean, kSum };
const char* audio_out_kind_name(AudioOutKind k);

inline constexpr int kMaxFrameCodes = 32;  // tokens per codec frame (SNAC 7, Mimi 8)

// The omni.audio_out.* keys, checked against each other and the backbone's vocabulary.
struct AudioOutSpec {
  AudioOutKind kind = AudioOutKind::kParallel;
  std::string codec;               // "snac_24khz" (the codec the codes are for), "mimi"
  int32_t n_codebooks = 0;         // K: tokens per frame
  int32_t codebook_size = 0;       // codes per codebook (SNAC 4096)
  std::vector<int32_t> levels;     // [K] codec level each token of a frame feeds (0-based)
  // parallel
  int32_t codebook_vocab = 0;      // rows of each head and embedding table: codes + specials
  std::vector<int32_t> delays;     // [K] steps
  InputCombine combine = InputCombine::kMean;
  int32_t end_code = -1;           // codebook-local end of speech (-1: none), e.g. 4096
  int32_t pad_code = -1;           // input of a codebook inside its delay / the prompt
  int32_t input_code = -1, answer_code = -1;  // prompt markers (Mini-Omni _input_a, _answer_a)
  int32_t text_end_id = -1, text_pad_id = -1, text_input_id = -1, text_answer_id = -1;
  // in-vocab
  int32_t token_offset = 0;        // id of code 0 at frame position 0
  int32_t speech_start_id = -1, speech_end_id = -1;
  std::vector<int32_t> prompt_prefix, prompt_suffix;  // ids around the prompt's text tokens

  int max_delay() const;
  // Codes per level, in level order ({1, 2, 4} for SNAC 24 kHz).
  std::vector<int> codes_per_level() const;
};

// Reads and checks the spec. kNotFound when the file has no audio-out heads (no
// omni.audio_out.type); kCorruptFile naming the key for a malformed or inconsistent one;
// kUnsupported for an unknown type or combine mode.
StatusOr<AudioOutSpec> read_audio_out_spec(const gguf::GgufFile& file, int64_t n_vocab);

// The spec plus, for parallel heads, the bound tensors audio_out.embd.{i}.weight and
// audio_out.head.{i}.weight, each [n_embd, codebook_vocab] (ggml order), mapped, not copied.
struct AudioOutHeads {
  AudioOutSpec spec;
  std::vector<Weight> embd, head;  // [K] each (parallel only)
};
// kNotFound: no audio-out heads in this model; kCorruptFile / kUnsupported for a missing tensor,
// a bad shape or an uncomputable type (named).
StatusOr<AudioOutHeads> load_audio_out(const Model& model);

// One codec frame in level-major order: for SNAC [l0, l1a, l1b, l2a, l2b, l2c, l2d].
struct CodecFrame {
  int64_t index = 0;  // frame number from 0
  int32_t n_codes = 0;
  int32_t codes[kMaxFrameCodes] = {};
};

struct AudioOutParams {
  SamplerParams text_sampling;   // the text stream (and, in-vocab, tokens before speech)
  SamplerParams audio_sampling;  // every codebook; codebook i samples with seed + 1 + i
  int64_t max_steps = 2048;      // decode steps after the prompt
  // Parallel heads: once the text stream has ended, the fed-back rows are evaluated without the
  // backbone's text head (Context::eval_embeddings_hidden). Emits the same tokens; Mini-Omni's
  // steps then read 408 MB instead of 553.
  bool skip_text_head = true;
  // Parallel heads: the text stream ends after this many text tokens, exactly as if the model
  // had sampled text_end_id next (-1: no limit; needs text_end_id). A trained model ends its
  // text itself; this bounds an answer's text, and lets benchmarks on random weights (which
  // never sample the end) reach the text-ended phase.
  int64_t max_text_tokens = -1;
};

// What one step produced: at most one text token and at most one frame.
struct AudioOutStep {
  int32_t text_token = -1;  // -1: none this step
  bool has_frame = false;
  CodecFrame frame;
};

class AudioOutDecoder {
 public:
  // One decoder per spoken turn (its frame and delay state start at the prefill).
  // heads and ctx must outlive the decoder; ctx's model must be the one the heads came from.
  // kInvalidArgument for bad params or a context whose width differs from the heads'.
  static StatusOr<std::unique_ptr<AudioOutDecoder>> create(const AudioOutHeads& heads, Context& ctx,
                                                           const AudioOutParams& params);
  // The same on any backbone (which must outlive the decoder). Parallel heads are handed to it
  // as its extra outputs (Backbone::set_extra_outputs: a CudaBackbone uploads them once and
  // keeps them while the same heads come back); errors of that call.
  static StatusOr<std::unique_ptr<AudioOutDecoder>> create(const AudioOutHeads& heads, Backbone& backbone,
                                                           const AudioOutParams& params);

  // The model family's prompt around text tokens (no BOS: the caller's tokenizer adds it):
  // parallel: text [text_input, tokens..., text_end, text_answer] with every codebook at pad
  // and answer_code on the last row (Mini-Omni T1A2); in-vocab: prefix + tokens + suffix.
  // Evaluates it after the context's current position. kOutOfRange when it does not fit.
  Status prefill_text(std::span<const int32_t> text_tokens);
  // Parallel only: n rows given as text ids [n] and codebook-local audio ids [n, K].
  Status prefill_parallel(std::span<const int32_t> text_ids, std::span<const int32_t> audio_ids);
  // In-vocab only (or a parallel model's plain token prompt): ids as they are.
  Status prefill_tokens(std::span<const int32_t> ids);
  // Audio input for parallel heads, in Mini-Omni's A1A2 layout: begin_audio_input() evaluates
  // the [text_input | input_code] row; audio_input_rows() the audio adapter's rows [n, n_embd]
  // as they arrive, each standing in for all K codebook embeddings with text_pad as the text
  // (Mini-Omni's concat_whisper_feat): (K * x_audio + x_text_pad) / (K + 1) for kMean;
  // end_audio_input() the [text_end | end_code] and [text_answer | answer_code] rows, after
  // which step() answers. Rows whose marker id is -1 are left out. kWrongState for in-vocab
  // heads or out of order; kInvalidArgument for a bad row count or null rows.
  Status begin_audio_input();
  Status audio_input_rows(const float* rows, int64_t n);
  Status end_audio_input();
  // end_audio_input() with the utterance's last rows [n, n_embd] (the encoder's last chunk, as
  // audio_input_rows() takes them) evaluated in the same batch as the end and answer rows: one
  // pass over the backbone's weights at the end of the user's turn instead of three. n = 0 (rows
  // may be null): end_audio_input(). Same errors, and kInvalidArgument for n < 0.
  Status end_audio_input(const float* last_rows, int64_t n);

  // Feeds the previous step's output back (one forward pass), samples the next step from that
  // evaluation and reports what came out. The feedback of a step is thus evaluated at the start
  // of the next step() call, not before its step() returns: a frame reaches the caller (the
  // codec) one forward pass earlier, and between steps the context lags one row behind.
  // kWrongState before a prefill or after done(); errors of Context::eval.
  StatusOr<AudioOutStep> step();
  // True after the end of speech (all frames before it emitted), or after max_steps.
  bool done() const { return done_; }
  bool speech_ended() const { return speech_ended_; }
  bool text_ended() const { return text_ended_; }
  int64_t n_steps() const { return n_steps_; }
  Backbone& backbone() const { return bb_; }
  int64_t n_frames() const { return next_frame_; }

  // Wall seconds inside step(), all steps together, by part: the backbone's forward pass of the
  // step's input row (input row building included), the audio heads' matvecs, sampling (text and
  // every codebook).
  struct StepTimes {
    double forward = 0, heads = 0, sample = 0;
  };
  const StepTimes& step_times() const { return times_; }

 private:
  AudioOutDecoder(const AudioOutHeads& heads, Backbone& bb, const AudioOutParams& params);
  Status init_samplers();
  // hidden_only: no text logits (Context::eval_embeddings_hidden).
  Status eval_parallel_rows(const int32_t* text_ids, const int32_t* audio_ids, int64_t n, bool hidden_only = false);
  // One input row of parallel heads (unscaled sum of the embeddings; ids checked) into dst [n_embd].
  Status fill_parallel_row(int32_t text_id, const int32_t* audio_ids, int64_t r, float* dst);
  // Audio adapter rows [n, n_embd] -> input rows (Mini-Omni's concat_whisper_feat), scaled.
  void fill_audio_rows(const float* rows, int64_t n, float* dst);
  // The heads of codebooks active[0..n) over the last hidden state (Backbone::run_extra_outputs;
  // on the CPU one pool pass, the rows of all of them split across the threads): head i's
  // logits at head_logits_[i * codebook_vocab].
  Status run_heads(const int32_t* active, int32_t n);
  Status eval_marker_row(int32_t text_id, int32_t audio_code);
  StatusOr<AudioOutStep> step_parallel();
  StatusOr<AudioOutStep> step_in_vocab();
  void to_frame(const int32_t* tokens_by_position, int64_t index, CodecFrame* out) const;

  const AudioOutHeads& heads_;
  const AudioOutSpec& spec_;
  std::unique_ptr<CpuBackbone> own_backbone_;  // create(heads, Context&): the adapter
  Backbone& bb_;
  AudioOutParams params_;
  bool prefilled_ = false, done_ = false, speech_ended_ = false, text_ended_ = false;
  bool in_speech_ = false;  // in-vocab: after the speech start marker
  bool audio_input_open_ = false;
  bool feed_pending_ = false;  // the last step's output row is not evaluated yet
  int32_t feed_token_ = -1;    // in-vocab: the token to feed back
  int64_t input_rows_ = 0;  // rows evaluated since begin_audio_input()
  int64_t n_steps_ = 0, next_frame_ = 0;
  int64_t end_frame_ = INT64_MAX;  // parallel: the first frame some codebook ended
  std::vector<int> slot_of_position_;  // frame position -> level-major slot
  std::unique_ptr<Sampler> text_sampler_;
  std::vector<Sampler> audio_samplers_;  // [K]
  std::vector<int32_t> text_history_;
  std::vector<std::vector<int32_t>> audio_history_;  // [K], codebook-local
  // Parallel: pending codes by frame, a ring of max_delay + 1 frames x K.
  std::vector<int32_t> pending_;
  std::vector<int32_t> next_audio_;  // [K] next step's codebook-local inputs
  int32_t next_text_ = -1;
  // In-vocab: the codes of the frame being filled.
  int32_t frame_tokens_[kMaxFrameCodes] = {};
  int frame_pos_ = 0;
  // Scratch: one input row, head logits [K, codebook_vocab], candidate logits [codebook_size + 1],
  // input rows of a batch.
  std::vector<float> row_, dequant_, head_logits_, cand_, batch_;
  std::vector<int32_t> marker_audio_;  // [K]
  StepTimes times_;
};

}  // namespace omni
