#include "audio/features/fft.h"

#include <cmath>
#include <numbers>

namespace omni::audio {

FftPlan::FftPlan(int n) : n_(n < 1 ? 1 : n) {
  int m = n_;
  for (int p : {4, 2, 3, 5}) {
    while (m % p == 0) {
      factors_.push_back(p);
      m /= p;
    }
  }
  for (int p = 7; m > 1; p += 2) {
    while (m % p == 0) {
      factors_.push_back(p);
      m /= p;
    }
  }
  twiddle_.resize(static_cast<size_t>(n_));
  for (int e = 0; e < n_; ++e) {
    const double a = -2.0 * std::numbers::pi * static_cast<double>(e) / n_;
    twiddle_[e] = {std::cos(a), std::sin(a)};
  }
}

void FftPlan::execute(const std::complex<double>* in, std::complex<double>* out,
                      std::complex<double>* scratch) const {
  recurse(in, 1, n_, 0, out, scratch);
}

// out[0..n) = DFT of in[0], in[stride], ..., in[(n-1) stride]. n = p * m with p =
// factors_[factor_index]: p sub-transforms of length m over the residues j mod p, then
// X[k + m q] = sum_r W_n^{r (k + m q)} Y_r[k]  (radix-p butterfly, O(p^2) per k).
void FftPlan::recurse(const std::complex<double>* in, int64_t stride, int n, int factor_index,
                      std::complex<double>* out, std::complex<double>* scratch) const {
  if (n == 1) {
    out[0] = in[0];
    return;
  }
  const int p = factors_[static_cast<size_t>(factor_index)];
  const int m = n / p;
  // Sub-transform r lands in scratch[r * m .. r * m + m); it uses out as its own scratch.
  for (int r = 0; r < p; ++r)
    recurse(in + r * stride, stride * p, m, factor_index + 1, scratch + r * m, out + r * m);
  const int64_t tw_step = n_ / n;  // W_n^e = W_N^{e * N / n}
  std::complex<double> t[64];
  std::vector<std::complex<double>> t_big;
  std::complex<double>* tv = t;
  if (p > 64) {
    t_big.resize(static_cast<size_t>(p));
    tv = t_big.data();
  }
  for (int k = 0; k < m; ++k) {
    for (int r = 0; r < p; ++r) {
      const int64_t e = (static_cast<int64_t>(r) * k % n) * tw_step;
      tv[r] = scratch[r * m + k] * twiddle_[static_cast<size_t>(e)];
    }
    for (int q = 0; q < p; ++q) {
      std::complex<double> acc = tv[0];
      for (int r = 1; r < p; ++r) {
        const int64_t e = (static_cast<int64_t>(r) * q % p) * (n_ / p);  // W_p^{r q}
        acc += tv[r] * twiddle_[static_cast<size_t>(e)];
      }
      out[k + m * q] = acc;
    }
  }
}

}  // namespace omni::audio
