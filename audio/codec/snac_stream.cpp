// Streaming SNAC: keeps the latent steps the next window needs, decodes the window around the
// samples that just became final, and keeps only their slice. A window [a, b) of latent steps
// is decoded as a whole sequence, so its edges see zero padding; a sample whose dependency
// interval (SnacDecoder::dependency) lies in [a, b) never sees that padding, at any layer
// (each layer's window is [a, b) scaled by its rate, and cones only grow going inward), so
// it equals the whole decode. At the true start a = 0 and at flush() b = the true end, where
// the padding is the real one.
#include <algorithm>
#include <cstring>

#include "audio/codec/snac.h"

namespace omni::audio {

void SnacStreamDecoder::reset() {
  z_.clear();
  z_first_ = n_latent_ = emitted_ = 0;
  ended_ = false;
}

int64_t SnacStreamDecoder::samples_pending() const {
  return ended_ ? 0 : n_latent_ * dec_.hparams().hop_length - emitted_;
}

int64_t SnacStreamDecoder::stable_end() const {
  // Largest e such that samples [0, e) depend on latent steps < n_latent_ only. The upper end
  // of a sample's interval grows with the sample, so bisect.
  int64_t lo = emitted_, hi = n_latent_ * dec_.hparams().hop_length;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    int64_t l, h;
    dec_.dependency(mid - 1, mid, &l, &h);
    if (h < n_latent_) lo = mid; else hi = mid - 1;
  }
  return lo;
}

Status SnacStreamDecoder::emit(int64_t end, std::vector<float>* pcm) {
  if (end <= emitted_) return Status::Ok();
  const SnacHParams& hp = dec_.hparams();
  const int64_t D = hp.latent_dim, hop = hp.hop_length;
  int64_t lo, hi;
  dec_.dependency(emitted_, end, &lo, &hi);
  const int64_t a = std::max<int64_t>(lo, 0), b = std::min<int64_t>(hi + 1, n_latent_);
  if (a < z_first_) return internal_error("snac stream: a needed latent step was dropped");
  window_.resize(size_t((b - a) * hop));
  dec_.decode_latents(z_.data() + (a - z_first_) * D, b - a, a, window_.data());
  pcm->insert(pcm->end(), window_.begin() + (emitted_ - a * hop), window_.begin() + (end - a * hop));
  emitted_ = end;
  // Drop latent steps no later window reaches.
  dec_.dependency(emitted_, emitted_ + 1, &lo, &hi);
  const int64_t keep = std::clamp<int64_t>(lo, z_first_, n_latent_);
  z_.erase(z_.begin(), z_.begin() + (keep - z_first_) * D);
  z_first_ = keep;
  return Status::Ok();
}

Status SnacStreamDecoder::push(const SnacCodes& codes, std::vector<float>* pcm) {
  if (ended_) return wrong_state("snac stream: push after flush (call reset() first)");
  OMNI_ASSIGN_OR_RETURN(int64_t n_groups, dec_.check_codes(codes));
  if (n_groups == 0) return Status::Ok();
  dec_.latents(codes, &z_);
  n_latent_ += n_groups * dec_.hparams().vq_strides[0];
  return emit(stable_end(), pcm);
}

Status SnacStreamDecoder::flush(std::vector<float>* pcm) {
  if (ended_) return Status::Ok();
  ended_ = true;
  return emit(n_latent_ * dec_.hparams().hop_length, pcm);
}

}  // namespace omni::audio
