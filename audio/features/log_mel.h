// Whisper's log-mel spectrogram, computed incrementally as audio arrives.
//
//   LogMel mel(80);                        // or 128 (large-v3)
//   mel.push(chunk, n, &frames);           // appends the frames completed by this chunk
//   mel.finish(&frames);                   // the last frames (reflected tail), at end of audio
//   whisper_normalize(frames.data(), frames.size(), max_of(frames));
//
// Exactly whisper.log_mel_spectrogram: 16 kHz mono, n_fft 400 with a periodic Hann window,
// hop 160, reflect padding of n_fft/2 at both ends (torch.stft center=True), |STFT|^2, the
// last STFT frame dropped, Slaney mel filters (librosa's, as in whisper's mel_filters.npz),
// log10(max(mel, 1e-10)). Frames are rows of n_mels floats ([n_frames, n_mels], time-major);
// n samples give n / 160 frames. The last step, max(x, max - 8) then (x + 4) / 4, needs the
// maximum over the whole clip: whisper_normalize() applies it once that is known (a streaming
// caller may use the running maximum, equal to whisper's once the loudest frame has arrived).
// Thread-safety: one LogMel per stream; distinct objects are independent.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "audio/features/fft.h"
#include "kernels/core/status.h"

namespace omni::audio {

constexpr int kWhisperSampleRate = 16000;  // Hz
constexpr int kWhisperNFft = 400;          // samples (25 ms)
constexpr int kWhisperHop = 160;           // samples (10 ms)

// Slaney-style mel filterbank, librosa.filters.mel(sr, n_fft, n_mels) with fmin 0, fmax sr/2,
// htk=False, norm="slaney": [n_mels, n_fft/2 + 1] row-major, f32.
std::vector<float> slaney_mel_filters(int sample_rate, int n_fft, int n_mels);

class LogMel {
 public:
  // n_mels: 80 (Whisper up to large-v2) or 128 (large-v3); other values are invalid_argument.
  static StatusOr<std::unique_ptr<LogMel>> create(int n_mels);

  int n_mels() const { return n_mels_; }
  // Appends samples (16 kHz, mono, f32) and, to `out`, every frame they complete (rows of
  // n_mels log10 values, not yet normalized). Non-finite samples are invalid_argument (the
  // stream is left unchanged). After finish(), wrong_state until reset().
  Status push(const float* samples, size_t n, std::vector<float>* out);
  // End of audio: appends the frames that need the reflected tail. Fails (invalid_argument)
  // when fewer than n_fft/2 + 1 = 201 samples arrived in all, as torch.stft does.
  Status finish(std::vector<float>* out);
  void reset();
  int64_t samples_received() const { return n_received_; }
  int64_t frames_emitted() const { return next_frame_; }

 private:
  explicit LogMel(int n_mels);
  // Computes frames [next_frame_, end_frame) from buf_ (padded coordinates) and drops the
  // samples no later frame needs.
  void emit(int64_t end_frame, std::vector<float>* out);

  int n_mels_;
  FftPlan fft_;
  std::vector<float> filters_;  // [n_mels, 201]
  std::vector<int> band_begin_, band_end_;  // nonzero bins [begin, end) of each filter
  std::vector<double> window_;  // [400], periodic Hann
  // Padded signal (200 reflected samples, then the audio) from padded index buf_start_ on.
  std::vector<float> buf_;
  int64_t buf_start_ = 0;
  bool front_padded_ = false;  // the leading reflection needs samples 1..200 first
  bool finished_ = false;
  int64_t n_received_ = 0;
  int64_t next_frame_ = 0;
  std::vector<std::complex<double>> fft_in_, fft_out_, fft_scratch_;
  std::vector<float> power_;  // [201]
};

// In place over n values: x = (max(x, max_value - 8) + 4) / 4.
void whisper_normalize(float* log10_mel, size_t n, float max_value);

// whisper.log_mel_spectrogram(audio, n_mels, padding): the clip plus `padding_zeros` zero
// samples, normalized over all of it. [n_frames, n_mels] with n_frames = (n + padding) / 160.
StatusOr<std::vector<float>> whisper_log_mel(const float* audio, size_t n, int n_mels,
                                             size_t padding_zeros);

}  // namespace omni::audio
