// Images (and, later, other media) in a session: a prompt whose text holds image markers becomes
// a sequence of input chunks (token spans and embedding spans) that a Context evaluates in
// order; an ImageEncoder turns image bytes into the backbone's embedding rows (decode ->
// preprocess -> ViT -> adapter) and remembers them in an EmbeddingCache, so one image is
// encoded once per encoder.
//
//   text "Describe <__image__> in one line", 1 image, gemma3
//   -> [BOS, "Describe", " ", <start_of_image>] [image rows: n_patches x n_embd]
//      [<end_of_image>, " in", " one", " line"]
//
// The marker is kImageMarker ("<__image__>", as llama.cpp's mtmd default marker); text
// without a marker gets its images first (after BOS). Image start/end tokens wrap each image
// where the model family has them (Gemma 3: <start_of_image> / <end_of_image>, as llama.cpp's
// mtmd; the "\n\n" around them that transformers' Gemma3Processor adds is the caller's text).
// Thread-safety: ImageEncoder and EmbeddingCache are safe from any thread (one mutex each;
// encodes run one at a time per encoder). The free functions are pure.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kernels/core/status.h"
#include "kernels/core/thread_pool.h"
#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "runtime/model/vision_loader.h"
#include "vision/io/image.h"
#include "vision/preprocess/preprocess.h"
#include "vision/vit/vit_encoder.h"

namespace omni {

inline constexpr std::string_view kImageMarker = "<__image__>";

// Rows in the backbone's embedding space: [n_rows, n_embd] row-major f32 (an adapter's output).
struct EmbeddingRows {
  int64_t n_rows = 0, n_embd = 0;
  std::vector<float> data;
  size_t bytes() const { return data.size() * sizeof(float); }
};

// One span of input: token ids, or embedding rows (exactly one of the two is non-empty).
struct InputChunk {
  std::vector<int32_t> tokens;
  std::shared_ptr<const EmbeddingRows> rows;
  int64_t n_positions() const { return rows ? rows->n_rows : static_cast<int64_t>(tokens.size()); }
};

// The tokens that open and close an image for this model (-1: none). Gemma 3 (arch gemma3 or
// the gemma chat template) with <start_of_image> / <end_of_image> in its vocabulary; else none.
struct ImageWrapTokens {
  int32_t begin = -1, end = -1;
};
ImageWrapTokens image_wrap_tokens(const Model& model);

// A prompt with image markers -> chunks. Image i's chunk holds images[i] (not copied; the
// pointers are shared). BOS (when add_bos and the tokenizer uses one) starts the first chunk.
// kInvalidArgument when the text has markers and their count differs from images.size(), or an
// image is null; tokenizer errors as Tokenizer::encode.
StatusOr<std::vector<InputChunk>> build_multimodal_prompt(
    const Tokenizer& tokenizer, ImageWrapTokens wrap, std::string_view text,
    const std::vector<std::shared_ptr<const EmbeddingRows>>& images, bool add_bos,
    bool parse_special);
// Number of kImageMarker occurrences in text.
size_t count_image_markers(std::string_view text);

// Everything about the chunks that can be checked before evaluating: token ids in the
// vocabulary, rows of the backbone's n_embd (kInvalidArgument naming both widths), finite
// values, and room for all positions after ctx.n_past() (kOutOfRange). At least one position.
Status check_chunks(const Context& ctx, const std::vector<InputChunk>& chunks);
// check_chunks(), then the chunks in order after ctx's current position (logits of the last
// position). On a failure of the check nothing changes; on a failure during evaluation (out of
// memory) ctx is rewound to where it was but its logits are those of the partial input.
Status eval_chunks(Context& ctx, const std::vector<InputChunk>& chunks);

// ---- embedding cache ----------------------------------------------------------------------

// What identifies an image's embeddings: the bytes' hash, the preprocessing, the encoder (its
// file and patch mask). 128-bit hash of each part.
struct EmbeddingKey {
  uint64_t image[2] = {0, 0};
  uint64_t config[2] = {0, 0};  // preprocessing + encoder identity + mask
  bool operator==(const EmbeddingKey&) const = default;
};
// 128-bit hash (two independent 64-bit lanes) of bytes; not cryptographic.
void hash128(const void* data, size_t n, uint64_t seed, uint64_t out[2]);

struct EmbeddingCacheStats {
  uint64_t hits = 0, misses = 0, evictions = 0;
  size_t entries = 0, bytes = 0, max_bytes = 0;
};

// Least-recently-used, bounded by the bytes of the rows it holds. An entry larger than the
// bound is not kept. Rows are shared: an evicted entry lives while a chunk still holds it.
class EmbeddingCache {
 public:
  explicit EmbeddingCache(size_t max_bytes) : max_bytes_(max_bytes) {}
  // The rows, counted as a hit (and made most recent), or null, counted as a miss.
  std::shared_ptr<const EmbeddingRows> find(const EmbeddingKey& key);
  void insert(const EmbeddingKey& key, std::shared_ptr<const EmbeddingRows> rows);
  EmbeddingCacheStats stats() const;
  void clear();

 private:
  struct KeyHash {
    size_t operator()(const EmbeddingKey& k) const { return size_t(k.image[0] ^ (k.config[0] * 31)); }
  };
  using Entry = std::pair<EmbeddingKey, std::shared_ptr<const EmbeddingRows>>;
  mutable std::mutex mu_;
  size_t max_bytes_, bytes_ = 0;
  uint64_t hits_ = 0, misses_ = 0, evictions_ = 0;
  std::list<Entry> lru_;  // front = most recent
  std::unordered_map<EmbeddingKey, std::list<Entry>::iterator, KeyHash> index_;
};

// ---- image encoder ------------------------------------------------------------------------

struct ImageEncodeInfo {
  bool cached = false;
  double decode_ms = 0, encode_ms = 0;  // decode + preprocess; ViT + adapter (0 when cached)
};

class ImageEncoder {
 public:
  static constexpr size_t kDefaultCacheBytes = size_t(256) << 20;
  // keep_alive: whatever owns the memory the vision weights point into (the omni Model, for a
  // component inside its file; null when `vision` owns its file). identity names the encoder
  // in cache keys (its file path). n_embd_backbone: the adapter's output width must equal it
  // (kInvalidArgument naming both otherwise).
  static StatusOr<std::unique_ptr<ImageEncoder>> create(
      std::shared_ptr<const VisionModel> vision, std::shared_ptr<const void> keep_alive,
      std::string identity, int64_t n_embd_backbone, size_t cache_bytes = kDefaultCacheBytes);

  // The model family's preprocessing: CLIP style (class token: shortest edge + centre crop)
  // or SigLIP style (exact resize), at the trained image size, with the file's mean / std.
  const vision::PreprocessConfig& preprocess_config() const { return pre_; }
  const vision::ViTHParams& hparams() const { return vision_->weights.hp; }
  int64_t n_embd_out() const { return n_out_; }
  const std::string& identity() const { return identity_; }

  // Image file bytes -> [n_patches, n_embd_backbone] rows, from the cache when this encoder has
  // seen the same bytes (and mask). n_threads >= 1 for the ViT. Decoder statuses
  // (kCorruptFile, kOutOfRange for a too-large image, kUnsupported) pass through, prefixed.
  StatusOr<std::shared_ptr<const EmbeddingRows>> encode(const uint8_t* bytes, size_t n,
                                                        int n_threads,
                                                        const vision::PatchMask* mask = nullptr,
                                                        ImageEncodeInfo* info = nullptr);

  // Decoded pixels (an RGB buffer, a video frame) -> the rows encode() gives for a lossless file
  // (PNG, BMP) of the same pixels, without the round trip through a file. Cached under the
  // dimensions and pixels (a key no file's bytes share). The dimensions are checked against
  // decode_options as a decoder checks them (kCorruptFile for zero size, kOutOfRange beyond
  // the limits); kInvalidArgument when img.rgb is not width * height * 3 bytes.
  StatusOr<std::shared_ptr<const EmbeddingRows>> encode_image(const vision::Image& img,
                                                              int n_threads,
                                                              const vision::PatchMask* mask = nullptr,
                                                              ImageEncodeInfo* info = nullptr);

  EmbeddingCacheStats cache_stats() const { return cache_->stats(); }
  uint64_t n_encodes() const;        // ViT runs (cache misses that got as far as encoding)
  double total_encode_ms() const;
  vision::DecodeOptions decode_options;  // set before sharing the encoder

 private:
  ImageEncoder() = default;
  // image_seed: 0 for file bytes; odd, from the dimensions, for decoded pixels.
  EmbeddingKey key_for(const uint8_t* bytes, size_t n, const vision::PatchMask* mask,
                       uint64_t image_seed = 0) const;
  // Preprocess + ViT + adapter of decoded pixels, cached under key; mu_ held. t0: when the
  // decode began (inf.decode_ms runs to the end of preprocessing).
  StatusOr<std::shared_ptr<const EmbeddingRows>> encode_decoded(
      const vision::Image& img, const EmbeddingKey& key, int n_threads,
      const vision::PatchMask* mask, std::chrono::steady_clock::time_point t0, ImageEncodeInfo& inf);

  std::shared_ptr<const VisionModel> vision_;
  std::shared_ptr<const void> keep_alive_;
  std::string identity_;
  int64_t n_out_ = 0;
  vision::PreprocessConfig pre_;
  std::unique_ptr<EmbeddingCache> cache_;
  mutable std::mutex mu_;  // guards vit_, pool_ and the counters
  std::unique_ptr<vision::ViTEncoder> vit_;
  std::unique_ptr<ThreadPool> pool_;
  uint64_t n_encodes_ = 0;
  double total_encode_ms_ = 0;
};

}  // namespace omni
