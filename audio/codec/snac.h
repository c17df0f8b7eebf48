// SNAC (Multi-Scale Neural Audio Codec, hubertsiuzdak/snac) decoder: codes -> PCM.
// The 24 kHz model has three codebook levels at 12, 23 and 47 Hz (vq_strides 4, 2, 1 over a
// 46.875 Hz latent: hop 512); a level-0 frame ("frame group") carries 1 + 2 + 4 = 7 codes and
// becomes 4 latent steps = 2048 samples. Network (docs/CODEC.md):
//   z = sum_l repeat(out_proj_l(codebook_l[code]), stride_l)                     [T, latent]
//   x = conv1x1(depthwise_conv7(z))                                             [T, dim]
//   4 x { snake; conv_transpose(stride s, kernel 2s); x += noise * conv1x1(x);
//         3 x residual { x += conv1x1(snake(depthwise_conv7_dilated(snake(x)))) } }  (dil 1,3,9)
//   pcm = tanh(conv7(snake(x)))                                                  [T * hop]
// Weight norm is folded into the weights by the converter. Noise blocks draw from a counter
// keyed by absolute position (snac_ops.h), so windows and streaming reproduce a whole decode.
// Thread-safety: SnacWeights is immutable and shareable; a SnacDecoder / SnacStreamDecoder is
// used by one thread at a time (it owns scratch buffers and drives the pool).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "audio/codec/snac_gemm.h"
#include "kernels/core/dtype.h"
#include "kernels/core/status.h"
#include "kernels/core/thread_pool.h"

namespace omni::audio {

struct SnacHParams {
  int64_t sampling_rate = 24000;
  int64_t hop_length = 512;  // = product of decoder_rates
  int64_t latent_dim = 768;
  int64_t decoder_dim = 1024;
  std::vector<int> decoder_rates = {8, 8, 4, 2};
  int64_t codebook_size = 4096;
  int64_t codebook_dim = 8;
  std::vector<int> vq_strides = {4, 2, 1};
  bool depthwise = true;
  bool noise = true;
  int64_t attn_window_size = 0;  // 0 = no local attention (the 24 kHz model)
  // Codes per frame group at level l (vq_strides[0] / vq_strides[l]).
  int64_t codes_per_group(size_t l) const { return vq_strides[0] / vq_strides[l]; }
  int64_t samples_per_group() const { return vq_strides[0] * hop_length; }
};

// W [n_out, n_in] row-major in `type` (y = W x), mapped from the file.
struct SnacMatrix {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t n_in = 0, n_out = 0;
};

struct SnacSnake {
  std::vector<float> alpha, inv_alpha;  // [C]; inv_alpha = 1 / (alpha + 1e-9) in f32, as PyTorch
  static SnacSnake from_alpha(std::vector<float> alpha);
};

struct SnacQuantizer {
  std::vector<float> codebook;  // [codebook_size, codebook_dim]
  std::vector<float> out_w;     // [latent_dim, codebook_dim]
  std::vector<float> out_b;     // [latent_dim]
};

struct SnacResidualUnit {
  int dilation = 1;
  SnacSnake snake1, snake2;
  std::vector<float> dw_w, dw_b;  // kernel 7 depthwise: [7, C] tap-major, [C]
  SnacMatrix pw;                  // [C, C]
  std::vector<float> pw_b;        // [C]
};

struct SnacBlock {
  int64_t in_dim = 0, out_dim = 0;
  int stride = 1;                   // kernel 2 * stride, padding ceil(stride / 2)
  SnacSnake snake;                  // [in_dim]
  SnacMatrix up;                    // [2 * stride * out_dim, in_dim]: row j * out_dim + o = W[:, o, j]
  std::vector<float> up_b;          // [out_dim]
  SnacMatrix noise;                 // [out_dim, out_dim]; data == nullptr when hp.noise is false
  SnacResidualUnit res[3];
};

struct SnacWeights {
  SnacHParams hp;
  std::vector<SnacQuantizer> quantizers;  // one per vq_strides entry
  std::vector<float> in_dw_w, in_dw_b;    // kernel 7 depthwise over latent_dim: [7, latent], [latent]
  SnacMatrix in_pw;                       // [decoder_dim, latent_dim]
  std::vector<float> in_pw_b;
  std::vector<SnacBlock> blocks;          // one per decoder_rates entry
  SnacSnake out_snake;                    // [C_last]
  std::vector<float> out_w;               // [7, C_last] tap-major (conv C_last -> 1, kernel 7)
  float out_b = 0.0f;
};

// Codes of one request, one vector per level. Level l holds n_groups * codes_per_group(l) codes.
using SnacCodes = std::vector<std::vector<int32_t>>;

class SnacDecoder {
 public:
  // `w` and `pool` must outlive the decoder.
  SnacDecoder(const SnacWeights& w, ThreadPool& pool);

  const SnacHParams& hparams() const { return w_.hp; }
  const SnacWeights& weights() const { return w_; }
  ThreadPool& thread_pool() const { return *pool_; }
  // Runs on `pool` from now on (it must outlive its use; the caller's thread drives it). Every
  // output is the same for any pool: each value is computed in the same order whatever the split.
  void set_thread_pool(ThreadPool& pool);
  // Noise blocks on (default, as the model was trained) or off; the seed picks the noise.
  void set_noise(bool on, uint64_t seed = 0) { noise_on_ = on; seed_ = seed; }
  bool noise_on() const { return noise_on_ && w_.hp.noise; }
  // bf16 matrices on AVX512_BF16 CPUs run bf16 dot products (x rounded to bf16; default), or,
  // off, f32 math on the stored weights: what the CUDA decoder computes, for comparing with it.
  void set_bf16_dot(bool on) { bf16_dot_ = on; }

  // kInvalidArgument naming the level and value: wrong number of levels, a count that is not
  // n_groups * codes_per_group(l) for one n_groups, a code outside [0, codebook_size).
  StatusOr<int64_t> check_codes(const SnacCodes& codes) const;  // -> n_groups
  // Whole-sequence decode: pcm gets n_groups * samples_per_group() samples in [-1, 1].
  Status decode(const SnacCodes& codes, std::vector<float>* pcm);

  // Building blocks (streaming): latent steps of checked codes, appended to z ([T, latent]).
  void latents(const SnacCodes& codes, std::vector<float>* z) const;
  // Decodes latent steps [t0, t0 + T) as if they were the whole sequence (zero padding at both
  // ends); noise positions are absolute (t0 counts). pcm: T * hop_length samples.
  void decode_latents(const float* z, int64_t T, int64_t t0, float* pcm);
  // Latent steps [*lo, *hi] that output samples [n_begin, n_end) depend on (unclipped).
  void dependency(int64_t n_begin, int64_t n_end, int64_t* lo, int64_t* hi) const;

  // The decoder's stages, each over a window of T steps taken as a whole sequence; results
  // live in a decoder buffer until the next call. decode_latents = input, then per block
  // up + 3 residual units, then output. out_t0: absolute index of the window's first output
  // step (noise positions).
  float* run_input(const float* z, int64_t T);                            // -> [T, decoder_dim]
  float* run_up(size_t block, const float* x, int64_t T, int64_t out_t0);  // -> [T * stride, out]
  float* run_residual(size_t block, int unit, const float* x, int64_t T);  // -> [T, out]
  void run_output(const float* x, int64_t T, float* pcm);                  // -> [T]

 private:
  float* buf(int i, int64_t n);
  // y = W x [+ bias], or y = residual + (W x [+ bias]) (residual may be y); y must not alias x.
  void matmul(const SnacMatrix& m, const float* x, int64_t T, float* y, const float* bias = nullptr,
              const float* residual = nullptr);
  const snac::PackedWeights* packed(const SnacMatrix& m) const;

  const SnacWeights& w_;
  ThreadPool* pool_;
  bool noise_on_ = true;
  bool bf16_dot_ = true;
  uint64_t seed_ = 0;
  std::vector<float> bufs_[4];
  std::vector<float> scratch_, noise_;
  std::vector<uint16_t> xbf_;  // bf16 panels: each thread's x chunk in bf16
  std::vector<float> acc_tmp_;  // plain path of a matmul with a residual
  std::vector<float> fuse_;     // fused residual units: each thread's chunk buffers
  // The decoder's matrices packed for snac::packed_matmul (AVX-512 CPUs), by their data pointer.
  std::vector<std::pair<const void*, snac::PackedWeights>> packed_;
};

// Streaming decode: push frame groups as they arrive; each push returns the samples that no
// later code can change (the decoder is non-causal: a sample depends on latent steps on both
// sides, see dependency()); flush() returns the rest at the end of the utterance.
// Every emitted sample equals the whole-sequence decode of all codes pushed (same noise).
// Each stage of the decoder (input convs, each block's up-sampling, each residual unit, the
// output conv) keeps the tail of its input that its next outputs need and computes each output
// step once, plus a few steps of context at the window's edges.
class SnacStreamDecoder {
 public:
  explicit SnacStreamDecoder(SnacDecoder& dec);
  // Codes for k >= 0 frame groups (same rules as SnacDecoder::check_codes); appends to *pcm.
  Status push(const SnacCodes& codes, std::vector<float>* pcm);
  // Emits every remaining sample (the right edge is now the true end); then reset() to reuse.
  Status flush(std::vector<float>* pcm);
  void reset();
  int64_t samples_emitted() const { return emitted_; }
  // Samples decodable from the codes pushed so far but held back until more codes come.
  int64_t samples_pending() const;

 private:
  struct Stage {
    enum Kind { kInput, kUp, kResidual, kOutput } kind;
    size_t block = 0;
    int unit = 0, stride = 1;
    int64_t half = 0;          // stride-1 stages: output t needs inputs [t - half, t + half]
    int64_t c_in = 0, c_out = 0;
    std::vector<float> in;     // input steps [in_first, in_end), [.., c_in]
    int64_t in_first = 0, in_end = 0, out_done = 0;
    int64_t min_dep(int64_t o) const;
    int64_t max_dep(int64_t o) const;
  };
  // Runs stage i on what it has; appends its new outputs to stage i + 1 (or pcm).
  void run_stage(size_t i, bool final, std::vector<float>* pcm);

  SnacDecoder& dec_;
  std::vector<Stage> stages_;
  int64_t n_latent_ = 0, emitted_ = 0;
  bool ended_ = false;
  std::vector<float> tmp_;
};

}  // namespace omni::audio
