// Streaming SNAC, stage by stage. A stage holds input steps [in_first, in_end) and has emitted
// outputs [0, out_done). Output o needs inputs [min_dep(o), max_dep(o)], so with in_end inputs
// known the outputs below the first o whose max_dep reaches in_end are final. To compute
// [out_done, avail) the stage runs its op on the input window [a, b) = [min_dep(out_done),
// max_dep(avail - 1) + 1] as a whole sequence: the window's zero padding is only seen by outputs
// whose inputs leave the window, and those are not taken. At the true start a = 0 and at
// flush() b = the true end, where the padding is the real one, so every emitted value equals
// the whole decode (a layer-by-layer induction; tests/snac_test.cpp checks it).
#include <algorithm>

#include "audio/codec/snac.h"

namespace omni::audio {
namespace {

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

int64_t SnacStreamDecoder::Stage::min_dep(int64_t o) const {
  if (kind != kUp) return o - half;
  const int64_t s = stride, p = (s + 1) / 2;  // transposed conv: kernel 2s, padding p
  return -floor_div(-(o + p - 2 * s + 1), s);
}

int64_t SnacStreamDecoder::Stage::max_dep(int64_t o) const {
  if (kind != kUp) return o + half;
  const int64_t s = stride, p = (s + 1) / 2;
  return floor_div(o + p, s);
}

SnacStreamDecoder::SnacStreamDecoder(SnacDecoder& dec) : dec_(dec) {
  const SnacHParams& hp = dec.hparams();
  Stage st{};
  st.kind = Stage::kInput;
  st.half = 3;  // kernel 7 depthwise conv
  st.c_in = hp.latent_dim;
  st.c_out = hp.decoder_dim;
  stages_.push_back(st);
  int64_t c = hp.decoder_dim;
  const int dil[3] = {1, 3, 9};
  for (size_t b = 0; b < hp.decoder_rates.size(); ++b) {
    st = Stage{};
    st.kind = Stage::kUp;
    st.block = b;
    st.stride = hp.decoder_rates[b];
    st.c_in = c;
    st.c_out = c / 2;
    stages_.push_back(st);
    c /= 2;
    for (int r = 0; r < 3; ++r) {
      st = Stage{};
      st.kind = Stage::kResidual;
      st.block = b;
      st.unit = r;
      st.half = 3 * dil[r];
      st.c_in = st.c_out = c;
      stages_.push_back(st);
    }
  }
  st = Stage{};
  st.kind = Stage::kOutput;
  st.half = 3;
  st.c_in = c;
  st.c_out = 1;
  stages_.push_back(st);
}

void SnacStreamDecoder::reset() {
  for (Stage& s : stages_) {
    s.in.clear();
    s.in_first = s.in_end = s.out_done = 0;
  }
  n_latent_ = emitted_ = 0;
  ended_ = false;
}

int64_t SnacStreamDecoder::samples_pending() const {
  return ended_ ? 0 : n_latent_ * dec_.hparams().hop_length - emitted_;
}

void SnacStreamDecoder::run_stage(size_t i, bool final, std::vector<float>* pcm) {
  Stage& st = stages_[i];
  const int64_t s = st.stride;
  const int64_t avail = final ? st.in_end * s
                              : (st.kind == Stage::kUp ? st.in_end * s - (s + 1) / 2 : st.in_end - st.half);
  if (avail <= st.out_done) return;
  const int64_t a = std::max<int64_t>(0, st.min_dep(st.out_done));
  const int64_t b = final ? st.in_end : std::min(st.in_end, st.max_dep(avail - 1) + 1);
  const int64_t T = b - a;
  const float* win = st.in.data() + (a - st.in_first) * st.c_in;  // a >= in_first: see the drop below
  const float* y = nullptr;
  switch (st.kind) {
    case Stage::kInput: y = dec_.run_input(win, T); break;
    case Stage::kUp: y = dec_.run_up(st.block, win, T, a * s); break;
    case Stage::kResidual: y = dec_.run_residual(st.block, st.unit, win, T); break;
    case Stage::kOutput:
      tmp_.resize(size_t(T));
      dec_.run_output(win, T, tmp_.data());
      y = tmp_.data();
      break;
  }
  const float* first = y + (st.out_done - a * s) * st.c_out;
  const int64_t n = avail - st.out_done;
  if (i + 1 < stages_.size()) {
    Stage& next = stages_[i + 1];
    next.in.insert(next.in.end(), first, first + n * st.c_out);
    next.in_end += n;
  } else {
    pcm->insert(pcm->end(), first, first + n);
    emitted_ += n;
  }
  st.out_done = avail;
  // Inputs below the next output's first dependency are never read again.
  const int64_t keep = std::clamp(st.min_dep(st.out_done), st.in_first, st.in_end);
  st.in.erase(st.in.begin(), st.in.begin() + (keep - st.in_first) * st.c_in);
  st.in_first = keep;
}

Status SnacStreamDecoder::push(const SnacCodes& codes, std::vector<float>* pcm) {
  if (ended_) return wrong_state("snac stream: push after flush (call reset() first)");
  OMNI_ASSIGN_OR_RETURN(int64_t n_groups, dec_.check_codes(codes));
  if (n_groups == 0) return Status::Ok();
  Stage& in = stages_[0];
  const ThreadPool::Spin spin(dec_.thread_pool());
  dec_.latents(codes, &in.in);
  const int64_t n = n_groups * dec_.hparams().vq_strides[0];
  in.in_end += n;
  n_latent_ += n;
  for (size_t i = 0; i < stages_.size(); ++i) run_stage(i, false, pcm);
  return Status::Ok();
}

Status SnacStreamDecoder::flush(std::vector<float>* pcm) {
  if (ended_) return Status::Ok();
  for (size_t i = 0; i < stages_.size(); ++i) run_stage(i, true, pcm);
  ended_ = true;
  return Status::Ok();
}

}  // namespace omni::audio
