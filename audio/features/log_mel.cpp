#include "audio/features/log_mel.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace omni::audio {
namespace {

constexpr int kPad = kWhisperNFft / 2;          // reflected samples at each end
constexpr int kBins = kWhisperNFft / 2 + 1;     // 201 rfft bins

// librosa's Slaney mel scale: linear below 1 kHz, logarithmic above.
double hz_to_mel(double hz) {
  constexpr double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return hz >= min_log_hz ? min_log_mel + std::log(hz / min_log_hz) / logstep : hz / f_sp;
}
double mel_to_hz(double mel) {
  constexpr double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return mel >= min_log_mel ? min_log_hz * std::exp(logstep * (mel - min_log_mel)) : f_sp * mel;
}

}  // namespace

std::vector<float> slaney_mel_filters(int sample_rate, int n_fft, int n_mels) {
  const int n_bins = n_fft / 2 + 1;
  std::vector<double> mel_f(static_cast<size_t>(n_mels + 2));
  const double mel_max = hz_to_mel(sample_rate / 2.0);
  for (int i = 0; i < n_mels + 2; ++i) mel_f[i] = mel_to_hz(mel_max * i / (n_mels + 1));
  std::vector<float> w(static_cast<size_t>(n_mels) * n_bins);
  for (int m = 0; m < n_mels; ++m) {
    const double lower_w = mel_f[m + 1] - mel_f[m], upper_w = mel_f[m + 2] - mel_f[m + 1];
    const double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
    for (int k = 0; k < n_bins; ++k) {
      const double f = static_cast<double>(k) * sample_rate / n_fft;
      const double lower = (f - mel_f[m]) / lower_w, upper = (mel_f[m + 2] - f) / upper_w;
      // librosa stores the triangle in f32, then scales it by enorm in f32.
      const float tri = static_cast<float>(std::max(0.0, std::min(lower, upper)));
      w[static_cast<size_t>(m) * n_bins + k] = tri * static_cast<float>(enorm);
    }
  }
  return w;
}

StatusOr<std::unique_ptr<LogMel>> LogMel::create(int n_mels) {
  if (n_mels != 80 && n_mels != 128)
    return invalid_argument(fmt("log-mel: n_mels %d is not supported (80 or 128)", n_mels));
  return std::unique_ptr<LogMel>(new LogMel(n_mels));
}

LogMel::LogMel(int n_mels)
    : n_mels_(n_mels),
      fft_(kWhisperNFft),
      filters_(slaney_mel_filters(kWhisperSampleRate, kWhisperNFft, n_mels)),
      window_(kWhisperNFft),
      fft_in_(kWhisperNFft),
      fft_out_(kWhisperNFft),
      fft_scratch_(kWhisperNFft),
      power_(kBins) {
  for (int m = 0; m < n_mels; ++m) {  // each triangle spans a few bins: skip the zeros
    const float* f = filters_.data() + static_cast<size_t>(m) * kBins;
    int b = 0, e = kBins;
    while (b < kBins && f[b] == 0.0f) ++b;
    while (e > b && f[e - 1] == 0.0f) --e;
    band_begin_.push_back(b);
    band_end_.push_back(e);
  }
  for (int i = 0; i < kWhisperNFft; ++i)  // torch.hann_window(400), periodic
    window_[i] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / kWhisperNFft);
}

void LogMel::reset() {
  buf_.clear();
  buf_start_ = 0;
  front_padded_ = false;
  finished_ = false;
  n_received_ = 0;
  next_frame_ = 0;
}

Status LogMel::push(const float* samples, size_t n, std::vector<float>* out) {
  if (finished_) return wrong_state("log-mel: push() after finish(); call reset() first");
  if (n > 0 && samples == nullptr) return invalid_argument("log-mel: null samples");
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(samples[i]))
      return invalid_argument(fmt("log-mel: sample %lld of this chunk is %f (not finite)",
                                  static_cast<long long>(i), static_cast<double>(samples[i])));
  }
  buf_.insert(buf_.end(), samples, samples + n);
  n_received_ += static_cast<int64_t>(n);
  if (!front_padded_) {
    if (n_received_ <= kPad) return Status::Ok();
    // padded[0..200) = x[200], x[199], ..., x[1]
    std::vector<float> front(buf_.begin() + 1, buf_.begin() + kPad + 1);
    std::reverse(front.begin(), front.end());
    buf_.insert(buf_.begin(), front.begin(), front.end());
    front_padded_ = true;
  }
  // Frame t covers padded [160 t, 160 t + 400); 200 + n_received padded samples exist.
  const int64_t end_frame = (n_received_ - kPad) / kWhisperHop + 1;
  if (end_frame > next_frame_) emit(end_frame, out);
  return Status::Ok();
}

Status LogMel::finish(std::vector<float>* out) {
  if (finished_) return wrong_state("log-mel: finish() called twice; call reset() first");
  if (n_received_ <= kPad)
    return invalid_argument(fmt("log-mel: %lld samples are too few for reflect padding (need > %d)",
                                static_cast<long long>(n_received_), kPad));
  finished_ = true;
  // padded[200 + n + j] = x[n - 2 - j], j in [0, 200); x[i] sits at buf_[200 + i - buf_start_].
  const int64_t n = n_received_;
  for (int j = 0; j < kPad; ++j) buf_.push_back(buf_[static_cast<size_t>(kPad + n - 2 - j - buf_start_)]);
  const int64_t end_frame = n / kWhisperHop;  // whisper drops torch.stft's last frame
  if (end_frame > next_frame_) emit(end_frame, out);
  return Status::Ok();
}

void LogMel::emit(int64_t end_frame, std::vector<float>* out) {
  const size_t base = out->size();
  out->resize(base + static_cast<size_t>(end_frame - next_frame_) * n_mels_);
  float* dst = out->data() + base;
  // A frame of zeros (Whisper's 30 s of padding after a short clip) has zero power in every
  // bin: its row is the floor's log10, the value the loop below computes for it, without the FFT.
  static const float kSilentRow = static_cast<float>(std::log10(std::max(0.0, 1e-10)));
  for (int64_t t = next_frame_; t < end_frame; ++t, dst += n_mels_) {
    const float* x = buf_.data() + (t * kWhisperHop - buf_start_);
    if (std::all_of(x, x + kWhisperNFft, [](float v) { return v == 0.0f; })) {
      std::fill(dst, dst + n_mels_, kSilentRow);
      continue;
    }
    for (int i = 0; i < kWhisperNFft; ++i) fft_in_[i] = {static_cast<double>(x[i]) * window_[i], 0.0};
    fft_.execute(fft_in_.data(), fft_out_.data(), fft_scratch_.data());
    for (int k = 0; k < kBins; ++k) power_[k] = static_cast<float>(std::norm(fft_out_[k]));
    for (int m = 0; m < n_mels_; ++m) {
      const float* f = filters_.data() + static_cast<size_t>(m) * kBins;
      double acc = 0.0;
      for (int k = band_begin_[m]; k < band_end_[m]; ++k) acc += static_cast<double>(f[k]) * power_[k];
      dst[m] = static_cast<float>(std::log10(std::max(acc, 1e-10)));
    }
  }
  next_frame_ = end_frame;
  // Keep padded samples from the next frame's start on.
  const int64_t keep_from = next_frame_ * kWhisperHop;
  if (keep_from > buf_start_) {
    const int64_t drop = std::min<int64_t>(keep_from - buf_start_, static_cast<int64_t>(buf_.size()));
    buf_.erase(buf_.begin(), buf_.begin() + drop);
    buf_start_ += drop;
  }
}

void whisper_normalize(float* log10_mel, size_t n, float max_value) {
  const float floor = max_value - 8.0f;
  for (size_t i = 0; i < n; ++i) log10_mel[i] = (std::max(log10_mel[i], floor) + 4.0f) / 4.0f;
}

StatusOr<std::vector<float>> whisper_log_mel(const float* audio, size_t n, int n_mels,
                                             size_t padding_zeros) {
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<LogMel> mel, LogMel::create(n_mels));
  std::vector<float> frames;
  frames.reserve((n + padding_zeros) / kWhisperHop * static_cast<size_t>(n_mels));
  OMNI_RETURN_IF_ERROR(mel->push(audio, n, &frames));
  const std::vector<float> zeros(16000, 0.0f);
  for (size_t left = padding_zeros; left > 0;) {
    const size_t k = std::min(left, zeros.size());
    OMNI_RETURN_IF_ERROR(mel->push(zeros.data(), k, &frames));
    left -= k;
  }
  OMNI_RETURN_IF_ERROR(mel->finish(&frames));
  if (!frames.empty()) {
    const float mx = *std::max_element(frames.begin(), frames.end());
    whisper_normalize(frames.data(), frames.size(), mx);
  }
  return frames;
}

}  // namespace omni::audio
