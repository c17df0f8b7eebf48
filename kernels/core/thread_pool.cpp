#include "kernels/core/thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OMNI_CPU_RELAX() _mm_pause()
#else
#define OMNI_CPU_RELAX() ((void)0)
#endif

namespace omni {
namespace {

// How long an idle worker polls the generation counter before sleeping on the condition
// variable. Decode issues a job every few tens of microseconds; sleeping between them would
// add a futex wake-up to every op: ~5-20 us on bare metal, 50-100 us measured in a 2-vCPU VM
// (the idle vCPU halts and the hypervisor has to resume it).
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(40);
// The same after the last ThreadPool::Spin of a burst has ended: long enough to cover what a
// caller does between two decode steps (sampling over a 262k vocabulary: 40-200 us measured),
// so that the next step's first job does not have to wake a sleeping worker.
constexpr auto kSpinAfterBurst = std::chrono::microseconds(500);

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run(Job fn, void* ctx) {
  if (n_threads_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  job_ = fn;
  job_ctx_ = ctx;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    // Publishing under the mutex means a worker that checked the counter and is about to wait
    // cannot miss this notification.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  fn(ctx, 0, n_threads_);
  // Workers finish within microseconds of each other for balanced kernels: spin, then yield.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 4096) {
      OMNI_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto spin_until = std::chrono::steady_clock::now() + kSpinBeforeSleep;
    uint64_t gen = generation_.load(std::memory_order_acquire);
    // One pause between polls: PAUSE costs ~65 cycles on Zen (~140 on Skylake), so polling
    // only every 64 pauses (as before) added ~1.5 us of wake-up latency to every job. The
    // clock is read once per 256 polls.
    for (int polls = 1; gen == seen && !stop_.load(std::memory_order_relaxed); ++polls) {
      OMNI_CPU_RELAX();
      gen = generation_.load(std::memory_order_acquire);
      if (gen != seen || polls % 256 != 0) continue;
      const auto now = std::chrono::steady_clock::now();
      if (spin_.load(std::memory_order_relaxed) > 0) {
        spin_until = now + kSpinAfterBurst;  // inside a burst: never sleep
      } else if (now >= spin_until) {
        break;
      }
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        return generation_.load(std::memory_order_acquire) != seen ||
               stop_.load(std::memory_order_acquire);
      });
      gen = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = gen;
    job_(job_ctx_, index, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace omni
