// A fixed pool of worker threads for data-parallel kernels.
// Thread-safety: run() may be called from one thread at a time (the owner of the pool).
// run() does not allocate; workers spin briefly, then sleep, between jobs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace omni {

class ThreadPool {
 public:
  // n_threads >= 1 counts the calling thread: ThreadPool(1) runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  // Calls fn(ctx, thread_index, n_threads) once on each thread (index 0 is the caller) and
  // returns when all have finished.
  using Job = void (*)(void* ctx, int thread_index, int n_threads);
  void run(Job fn, void* ctx);

  // Splits [0, n) into contiguous chunks, one per thread, rounded to multiples of `grain`.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& body) {  // body(begin, end, thread_index)
    struct Ctx {
      F* body;
      int64_t n, grain;
    } ctx{&body, n, grain < 1 ? 1 : grain};
    run(
        [](void* p, int ti, int nt) {
          auto* c = static_cast<Ctx*>(p);
          const int64_t units = (c->n + c->grain - 1) / c->grain;
          const int64_t per = (units + nt - 1) / nt;
          int64_t b = ti * per * c->grain, e = (ti + 1) * per * c->grain;
          if (e > c->n) e = c->n;
          if (b < e) (*c->body)(b, e, ti);
        },
        &ctx);
  }

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  Job job_ = nullptr;
  void* job_ctx_ = nullptr;
};

}  // namespace omni
