// SpscRing: a lock-free single-producer/single-consumer ring of float samples, the only thing
// an audio callback touches. push()/pop() never allocate, lock or block, so they are safe inside
// a real-time callback; the storage is allocated once, by the constructor.
// Thread-safety: exactly one thread produces (push) and exactly one other thread consumes
// (pop, pop_or_silence); size() and the counters may be read from any thread.
//
//   SpscRing ring(1 << 15);                 // capacity rounded up to a power of two
//   producer: ring.push(in, n);             // returns how many fit; the rest count as overrun
//             ring.try_push(in, n);         // returns how many fit; the caller retries the rest
//   consumer: ring.pop(out, n);             // returns how many were there
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

namespace omni::audio {

class SpscRing {
 public:
  // capacity in samples, rounded up to a power of two (at least 2).
  explicit SpscRing(size_t capacity) {
    size_t cap = 2;
    while (cap < capacity) cap <<= 1;
    capacity_ = cap;
    mask_ = cap - 1;
    data_ = std::make_unique<float[]>(cap);
  }
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  size_t capacity() const { return capacity_; }
  // Samples readable now (exact for the consumer, a lower bound for the producer).
  size_t size() const {
    return write_.load(std::memory_order_acquire) - read_.load(std::memory_order_acquire);
  }

  // Producer: copies up to n samples in and returns how many fit (a writer that will retry).
  size_t try_push(const float* in, size_t n) {
    const uint64_t w = write_.load(std::memory_order_relaxed);
    const uint64_t r = read_.load(std::memory_order_acquire);
    const size_t space = capacity_ - static_cast<size_t>(w - r);
    const size_t k = std::min(n, space);
    copy_in(w, in, k);
    write_.store(w + k, std::memory_order_release);
    return k;
  }

  // Producer inside a capture callback: what does not fit is dropped and counted as overrun.
  size_t push(const float* in, size_t n) {
    const size_t k = try_push(in, n);
    if (k < n) overrun_.fetch_add(n - k, std::memory_order_relaxed);
    return k;
  }

  // Consumer: copies up to n samples out and returns how many.
  size_t pop(float* out, size_t n) {
    const uint64_t r = read_.load(std::memory_order_relaxed);
    const uint64_t w = write_.load(std::memory_order_acquire);
    const size_t k = std::min(n, static_cast<size_t>(w - r));
    copy_out(r, out, k);
    read_.store(r + k, std::memory_order_release);
    return k;
  }

  // Consumer inside a playback callback: fills all n samples, zeros where the ring ran dry
  // (counted as underrun). Returns the samples that came from the ring.
  size_t pop_or_silence(float* out, size_t n) {
    size_t k = pop(out, n);
    if (k < n) {
      std::memset(out + k, 0, (n - k) * sizeof(float));
      underrun_.fetch_add(n - k, std::memory_order_relaxed);
    }
    return k;
  }

  uint64_t overrun_samples() const { return overrun_.load(std::memory_order_relaxed); }
  uint64_t underrun_samples() const { return underrun_.load(std::memory_order_relaxed); }
  uint64_t total_pushed() const { return write_.load(std::memory_order_acquire); }

 private:
  void copy_in(uint64_t pos, const float* in, size_t k) {
    if (k == 0 || in == nullptr) return;
    const size_t start = static_cast<size_t>(pos) & mask_;
    const size_t first = std::min(k, capacity_ - start);
    std::memcpy(data_.get() + start, in, first * sizeof(float));
    if (k > first) std::memcpy(data_.get(), in + first, (k - first) * sizeof(float));
  }
  void copy_out(uint64_t pos, float* out, size_t k) const {
    if (k == 0 || out == nullptr) return;
    const size_t start = static_cast<size_t>(pos) & mask_;
    const size_t first = std::min(k, capacity_ - start);
    std::memcpy(out, data_.get() + start, first * sizeof(float));
    if (k > first) std::memcpy(out + first, data_.get(), (k - first) * sizeof(float));
  }

  size_t capacity_ = 0;
  size_t mask_ = 0;
  std::unique_ptr<float[]> data_;  // [capacity_] samples
  // Monotonic sample counts (never wrap in practice: 2^64 samples); on separate cache lines so
  // the producer and consumer do not contend.
  alignas(64) std::atomic<uint64_t> write_{0};
  alignas(64) std::atomic<uint64_t> read_{0};
  alignas(64) std::atomic<uint64_t> overrun_{0};
  std::atomic<uint64_t> underrun_{0};
};

}  // namespace omni::audio
