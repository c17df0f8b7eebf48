#include "runtime/model/multimodal.h"

#include <chrono>
#include <cmath>
#include <cstring>

namespace omni {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t mix64(uint64_t x) {  // murmur3's finaliser
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

uint64_t hash_lane(const uint8_t* p, size_t n, uint64_t seed) {
  uint64_t h = mix64(seed ^ (uint64_t(n) * 0x9e3779b97f4a7c15ULL));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = ((h ^ mix64(w + seed)) << 27 | (h ^ mix64(w + seed)) >> 37) * 5 + 0x52dce729ULL;
  }
  uint64_t tail = 0;
  for (size_t k = 0; i + k < n; ++k) tail |= uint64_t(p[i + k]) << (8 * k);
  return mix64(h ^ mix64(tail ^ seed) ^ n);
}

}  // namespace

void hash128(const void* data, size_t n, uint64_t seed, uint64_t out[2]) {
  const auto* p = static_cast<const uint8_t*>(data);
  out[0] = hash_lane(p, n, seed ^ 0x243f6a8885a308d3ULL);
  out[1] = hash_lane(p, n, seed ^ 0x13198a2e03707344ULL);
}

// ---- prompt -------------------------------------------------------------------------------

ImageWrapTokens image_wrap_tokens(const Model& model) {
  ImageWrapTokens w;
  const bool gemma = model.hparams().arch == Arch::kGemma3 ||
                     model.chat_template() == ChatTemplate::kGemma;
  if (!gemma) return w;
  const int32_t b = model.tokenizer().find_piece("<start_of_image>");
  const int32_t e = model.tokenizer().find_piece("<end_of_image>");
  if (b >= 0 && e >= 0) {
    w.begin = b;
    w.end = e;
  }
  return w;
}

size_t count_image_markers(std::string_view text) {
  size_t n = 0;
  for (size_t at = text.find(kImageMarker); at != std::string_view::npos;
       at = text.find(kImageMarker, at + kImageMarker.size())) {
    ++n;
  }
  return n;
}

StatusOr<std::vector<InputChunk>> build_multimodal_prompt(
    const Tokenizer& tokenizer, ImageWrapTokens wrap, std::string_view text,
    const std::vector<std::shared_ptr<const EmbeddingRows>>& images, bool add_bos,
    bool parse_special) {
  const size_t n_markers = count_image_markers(text);
  if (n_markers > 0 && n_markers != images.size()) {
    return invalid_argument(fmt("the prompt has %zu image marker%s (%.*s) but %zu image%s given",
                                n_markers, n_markers == 1 ? "" : "s",
                                static_cast<int>(kImageMarker.size()), kImageMarker.data(),
                                images.size(), images.size() == 1 ? " was" : "s were"));
  }
  for (size_t i = 0; i < images.size(); ++i) {
    if (!images[i] || images[i]->n_rows <= 0) {
      return invalid_argument(fmt("image %zu has no embedding rows", i));
    }
  }
  std::vector<InputChunk> chunks;
  std::vector<int32_t> cur;
  if (add_bos && tokenizer.add_bos() && tokenizer.bos() >= 0) cur.push_back(tokenizer.bos());
  auto flush = [&] {
    if (cur.empty()) return;
    chunks.push_back(InputChunk{std::move(cur), nullptr});
    cur.clear();
  };
  auto put_image = [&](size_t i) {
    if (wrap.begin >= 0) cur.push_back(wrap.begin);
    flush();
    chunks.push_back(InputChunk{{}, images[i]});
    if (wrap.end >= 0) cur.push_back(wrap.end);
  };
  auto put_text = [&](std::string_view t) -> Status {
    if (t.empty()) return Status::Ok();
    OMNI_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.encode(t, false, parse_special));
    cur.insert(cur.end(), ids.begin(), ids.end());
    return Status::Ok();
  };
  if (n_markers == 0) {
    for (size_t i = 0; i < images.size(); ++i) put_image(i);
    OMNI_RETURN_IF_ERROR(put_text(text));
  } else {
    size_t pos = 0;
    for (size_t i = 0; i < n_markers; ++i) {
      const size_t at = text.find(kImageMarker, pos);
      OMNI_RETURN_IF_ERROR(put_text(text.substr(pos, at - pos)));
      put_image(i);
      pos = at + kImageMarker.size();
    }
    OMNI_RETURN_IF_ERROR(put_text(text.substr(pos)));
  }
  flush();
  return chunks;
}

Status check_chunks(const Context& ctx, const std::vector<InputChunk>& chunks) {
  const int64_t n_embd = ctx.model().hparams().n_embd, n_vocab = ctx.model().hparams().n_vocab;
  int64_t total = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const InputChunk& ch = chunks[c];
    if (ch.rows) {
      const EmbeddingRows& r = *ch.rows;
      if (r.n_embd != n_embd) {
        return invalid_argument(fmt("input %zu has rows of width %lld, but the model's embedding "
                                    "width (n_embd) is %lld", c, static_cast<long long>(r.n_embd),
                                    static_cast<long long>(n_embd)));
      }
      if (r.n_rows <= 0 || static_cast<int64_t>(r.data.size()) != r.n_rows * r.n_embd) {
        return invalid_argument(fmt("input %zu: %lld rows of %lld do not match its %zu values", c,
                                    static_cast<long long>(r.n_rows),
                                    static_cast<long long>(r.n_embd), r.data.size()));
      }
      for (size_t i = 0; i < r.data.size(); ++i) {
        if (!std::isfinite(r.data[i])) {
          return invalid_argument(fmt("input %zu: embedding row %lld, column %lld is not finite", c,
                                      static_cast<long long>(int64_t(i) / n_embd),
                                      static_cast<long long>(int64_t(i) % n_embd)));
        }
      }
    } else {
      OMNI_RETURN_IF_ERROR(check_token_ids(ch.tokens, n_vocab));
    }
    total += ch.n_positions();
  }
  if (total == 0) return invalid_argument("the input is empty (no tokens, no embedding rows)");
  const int64_t free_slots = ctx.n_ctx() - ctx.n_past();
  if (total > free_slots) {
    return out_of_range(fmt("%lld positions (tokens and image rows) do not fit in the context: "
                            "n_ctx %lld, %lld used, %lld free",
                            static_cast<long long>(total), static_cast<long long>(ctx.n_ctx()),
                            static_cast<long long>(ctx.n_past()),
                            static_cast<long long>(free_slots)));
  }
  return Status::Ok();
}

Status eval_chunks(Context& ctx, const std::vector<InputChunk>& chunks) {
  OMNI_RETURN_IF_ERROR(check_chunks(ctx, chunks));
  const int64_t start = ctx.n_past();
  for (const InputChunk& ch : chunks) {
    if (ch.n_positions() == 0) continue;
    Status st = ch.rows ? ctx.eval_embeddings(ch.rows->data.data(), ch.rows->n_rows, false)
                        : ctx.eval(ch.tokens, false);
    if (!st.ok()) {
      (void)ctx.rewind(start);  // start <= n_past: cannot fail
      return st;
    }
  }
  return Status::Ok();
}

// ---- cache --------------------------------------------------------------------------------

std::shared_ptr<const EmbeddingRows> EmbeddingCache::find(const EmbeddingKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void EmbeddingCache::insert(const EmbeddingKey& key, std::shared_ptr<const EmbeddingRows> rows) {
  if (!rows) return;
  std::lock_guard<std::mutex> lock(mu_);
  const size_t b = rows->bytes();
  if (b > max_bytes_) return;
  if (auto it = index_.find(key); it != index_.end()) {
    bytes_ -= it->second->second->bytes();
    lru_.erase(it->second);
    index_.erase(it);
  }
  while (bytes_ + b > max_bytes_ && !lru_.empty()) {
    bytes_ -= lru_.back().second->bytes();
    index_.erase(lru_.back().first);
    lru_.pop_back();
    ++evictions_;
  }
  lru_.emplace_front(key, std::move(rows));
  index_[key] = lru_.begin();
  bytes_ += b;
}

EmbeddingCacheStats EmbeddingCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EmbeddingCacheStats s;
  s.hits = hits_;
  s.misses = misses_;
  s.evictions = evictions_;
  s.entries = lru_.size();
  s.bytes = bytes_;
  s.max_bytes = max_bytes_;
  return s;
}

void EmbeddingCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  lru_.clear();
  index_.clear();
  bytes_ = 0;
}

// ---- encoder ------------------------------------------------------------------------------

StatusOr<std::unique_ptr<ImageEncoder>> ImageEncoder::create(
    std::shared_ptr<const VisionModel> vision, std::shared_ptr<const void> keep_alive,
    std::string identity, int64_t n_embd_backbone, size_t cache_bytes) {
  if (!vision) return invalid_argument("image encoder: no vision model");
  const vision::ViTHParams& hp = vision->weights.hp;
  const int64_t out = hp.projector == vision::ProjectorType::kNone ? hp.n_embd : hp.n_proj_out;
  if (out != n_embd_backbone) {
    return invalid_argument(fmt("the vision encoder's adapter outputs rows of width %lld, but the "
                                "model's embedding width (n_embd) is %lld: the mmproj file does "
                                "not belong to this model",
                                static_cast<long long>(out),
                                static_cast<long long>(n_embd_backbone)));
  }
  std::unique_ptr<ImageEncoder> e(new ImageEncoder());
  e->n_out_ = out;
  e->identity_ = std::move(identity);
  // CLIP's processor (class token) resizes the shortest edge and crops; SigLIP's resizes exactly.
  const int size = static_cast<int>(hp.image_size);
  e->pre_ = vision->weights.class_embd.empty() ? vision::PreprocessConfig::siglip(size)
                                               : vision::PreprocessConfig::clip(size);
  for (int i = 0; i < 3; ++i) {
    e->pre_.mean[i] = hp.image_mean[i];
    e->pre_.std[i] = hp.image_std[i];
  }
  e->vit_ = std::make_unique<vision::ViTEncoder>(vision->weights);
  e->vision_ = std::move(vision);
  e->keep_alive_ = std::move(keep_alive);
  e->cache_ = std::make_unique<EmbeddingCache>(cache_bytes);
  return e;
}

EmbeddingKey ImageEncoder::key_for(const uint8_t* bytes, size_t n, const vision::PatchMask* mask,
                                   uint64_t image_seed) const {
  EmbeddingKey k;
  hash128(bytes, n, image_seed, k.image);
  // Everything else that changes the rows, as text then hashed: preprocessing, encoder, mask.
  std::string cfg = fmt("pre %d %d %d %d %d %d %d|%g %g %g|%g %g %g|enc %s|max %lld %lld|",
                        static_cast<int>(pre_.mode), pre_.shortest_edge, pre_.resize_w,
                        pre_.resize_h, pre_.crop_w, pre_.crop_h, static_cast<int>(pre_.filter),
                        pre_.mean[0], pre_.mean[1], pre_.mean[2], pre_.std[0], pre_.std[1],
                        pre_.std[2], identity_.c_str(),
                        static_cast<long long>(decode_options.max_pixels),
                        static_cast<long long>(decode_options.max_side));
  if (mask) {
    cfg += fmt("mask %lld %lld ", static_cast<long long>(mask->grid_w),
               static_cast<long long>(mask->grid_h));
    cfg.append(mask->keep.begin(), mask->keep.end());
  } else {
    cfg += "mask none";
  }
  hash128(cfg.data(), cfg.size(), 1, k.config);
  return k;
}

StatusOr<std::shared_ptr<const EmbeddingRows>> ImageEncoder::encode(
    const uint8_t* bytes, size_t n, int n_threads, const vision::PatchMask* mask,
    ImageEncodeInfo* info) {
  if (bytes == nullptr && n > 0) return invalid_argument("image: bytes are null");
  if (n == 0) return corrupt_file("image: 0 bytes");
  if (n_threads < 1) n_threads = 1;
  ImageEncodeInfo local;
  ImageEncodeInfo& inf = info ? *info : local;
  inf = ImageEncodeInfo{};
  // One encode at a time: the ViT's scratch and pool are shared, and two sessions asking for
  // the same new image wait for one encode instead of running two.
  std::lock_guard<std::mutex> lock(mu_);
  const EmbeddingKey key = key_for(bytes, n, mask);
  if (std::shared_ptr<const EmbeddingRows> hit = cache_->find(key)) {
    inf.cached = true;
    return hit;
  }
  const auto t0 = std::chrono::steady_clock::now();
  OMNI_ASSIGN_OR_RETURN(vision::Image img,
                        vision::decode_image_memory(bytes, n, decode_options, "image"));
  return encode_decoded(img, key, n_threads, mask, t0, inf);
}

StatusOr<std::shared_ptr<const EmbeddingRows>> ImageEncoder::encode_image(
    const vision::Image& img, int n_threads, const vision::PatchMask* mask, ImageEncodeInfo* info) {
  OMNI_RETURN_IF_ERROR(vision::check_image_dimensions(img.width, img.height, decode_options, "image"));
  const size_t expect = size_t(img.width) * size_t(img.height) * 3;
  if (img.rgb.size() != expect) {
    return invalid_argument(fmt("image: %d x %d pixels need %zu RGB bytes, got %zu", img.width,
                                img.height, expect, img.rgb.size()));
  }
  if (n_threads < 1) n_threads = 1;
  ImageEncodeInfo local;
  ImageEncodeInfo& inf = info ? *info : local;
  inf = ImageEncodeInfo{};
  std::lock_guard<std::mutex> lock(mu_);  // as encode(): one at a time
  // The pixels hashed with the dimensions as the seed (a 1 x 6 and a 2 x 3 image differ); odd,
  // so never seed 0, which file bytes use.
  const uint64_t seed = ((uint64_t(uint32_t(img.width)) << 32 | uint32_t(img.height)) << 1) | 1;
  const EmbeddingKey key = key_for(img.rgb.data(), img.rgb.size(), mask, seed);
  if (std::shared_ptr<const EmbeddingRows> hit = cache_->find(key)) {
    inf.cached = true;
    return hit;
  }
  return encode_decoded(img, key, n_threads, mask, std::chrono::steady_clock::now(), inf);
}

StatusOr<std::shared_ptr<const EmbeddingRows>> ImageEncoder::encode_decoded(
    const vision::Image& img, const EmbeddingKey& key, int n_threads,
    const vision::PatchMask* mask, std::chrono::steady_clock::time_point t0, ImageEncodeInfo& inf) {
  OMNI_ASSIGN_OR_RETURN(vision::PixelTensor pixels, vision::preprocess(img, pre_));
  inf.decode_ms = ms_since(t0);
  t0 = std::chrono::steady_clock::now();
  if (!pool_ || pool_->n_threads() != n_threads) pool_ = std::make_unique<ThreadPool>(n_threads);
  vision::ViTOutput out;
  OMNI_RETURN_IF_ERROR(vit_->encode(*pool_, pixels, mask, &out));
  auto rows = std::make_shared<EmbeddingRows>();
  int64_t width = 0;
  OMNI_RETURN_IF_ERROR(vit_->adapt(*pool_, out, &rows->data, &width));
  if (width != n_out_ || width <= 0) {
    return internal_error(fmt("image: the adapter gave width %lld, expected %lld",
                              static_cast<long long>(width), static_cast<long long>(n_out_)));
  }
  rows->n_embd = width;
  rows->n_rows = static_cast<int64_t>(rows->data.size()) / width;
  inf.encode_ms = ms_since(t0);
  ++n_encodes_;
  total_encode_ms_ += inf.encode_ms;
  cache_->insert(key, rows);
  return std::shared_ptr<const EmbeddingRows>(std::move(rows));
}

uint64_t ImageEncoder::n_encodes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return n_encodes_;
}

double ImageEncoder::total_encode_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_encode_ms_;
}

}  // namespace omni
