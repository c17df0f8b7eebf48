// Complex FFT of any size whose prime factors are small (Whisper's n_fft = 400 = 2^4 * 5^2),
// in double precision: mixed-radix Cooley-Tukey, decimation in time, with a generic radix-p
// butterfly. Its error is O(eps * log n), so log-mel values far below the loudest bin keep
// their digits (a direct f32 DFT would not).
// Thread-safety: a plan is immutable after construction; execute() may run on many threads
// at once, each with its own output and scratch.
#pragma once

#include <complex>
#include <cstdint>
#include <vector>

namespace omni::audio {

class FftPlan {
 public:
  // n >= 1. Any n works; sizes with large prime factors cost O(n * p) per stage.
  explicit FftPlan(int n);
  int size() const { return n_; }
  // out[k] = sum_j in[j] * exp(-2 pi i j k / n), k in [0, n). in and out must not overlap.
  // scratch: at least size() elements.
  void execute(const std::complex<double>* in, std::complex<double>* out,
               std::complex<double>* scratch) const;

 private:
  void recurse(const std::complex<double>* in, int64_t stride, int n, int factor_index,
               std::complex<double>* out, std::complex<double>* scratch) const;
  int n_;
  std::vector<int> factors_;                  // prime factors, applied outermost first
  std::vector<std::complex<double>> twiddle_;  // exp(-2 pi i e / n), e in [0, n)
};

}  // namespace omni::audio
