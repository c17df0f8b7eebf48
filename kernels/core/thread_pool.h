// A fixed pool of worker threads for data-parallel kernels.
// Thread-safety: run() may be called from one thread at a time (the owner of the pool).
// run() does not allocate; workers spin briefly, then sleep, between jobs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
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
  static constexpr int kMaxBalancedThreads = 64;

  // Calls fn(ctx, thread_index, n_threads) once on each thread (index 0 is the caller) and
  // returns when all have finished.
  using Job = void (*)(void* ctx, int thread_index, int n_threads);
  void run(Job fn, void* ctx);

  // While at least one Spin object of this pool is alive, idle workers poll for the next job
  // without ever sleeping. For a burst of short jobs with serial work between them (a decode
  // step issues ~150): waking a sleeping worker costs a futex call and, in a VM, a halted
  // vCPU's wake-up (measured 50-100 us), against jobs of 5-100 us. Owner thread only.
  class Spin {
   public:
    explicit Spin(ThreadPool& pool) : pool_(pool) { pool_.spin_.fetch_add(1, std::memory_order_relaxed); }
    ~Spin() { pool_.spin_.fetch_sub(1, std::memory_order_relaxed); }
    Spin(const Spin&) = delete;
    Spin& operator=(const Spin&) = delete;

   private:
    ThreadPool& pool_;
  };

  // Splits [0, n) into contiguous chunks, one per thread, rounded to multiples of `grain`.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& body) {  // body(begin, end, thread_index)
    struct Ctx {
      std::remove_reference_t<F>* body;
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

  // Like parallel_for, for loops whose threads may not run at the same speed (a worker that
  // starts late, or reads its input from the other core's cache): [0, n) is cut into chunks of
  // `chunk` units, each thread takes the chunks of its own contiguous share in order and then
  // helps with what is left of the other shares. Every chunk runs exactly once; body(begin, end,
  // thread_index) may be called several times per thread, and a thread's ranges need not be
  // contiguous. Claiming a chunk is one atomic add on the share's own cache line.
  template <class F>
  void parallel_for_balanced(int64_t n, int64_t chunk, F&& body) {
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    if (n_threads_ == 1 || n_threads_ > kMaxBalancedThreads) return parallel_for(n, chunk, body);
    struct alignas(64) Share {
      std::atomic<int64_t> next;
      int64_t end;
    };
    struct Ctx {
      std::remove_reference_t<F>* body;
      int64_t chunk;
      Share share[kMaxBalancedThreads];
    } ctx;
    ctx.body = &body;
    ctx.chunk = chunk;
    const int nt = n_threads_;
    const int64_t chunks = (n + chunk - 1) / chunk, per = (chunks + nt - 1) / nt;
    for (int t = 0; t < nt; ++t) {
      const int64_t b = t * per * chunk, e = (t + 1) * per * chunk;
      ctx.share[t].next.store(b < n ? b : n, std::memory_order_relaxed);
      ctx.share[t].end = e < n ? e : n;
    }
    run(
        [](void* p, int ti, int nt) {
          auto* c = static_cast<Ctx*>(p);
          for (int k = 0; k < nt; ++k) {
            Share& s = c->share[(ti + k) % nt];
            for (;;) {
              const int64_t b = s.next.fetch_add(c->chunk, std::memory_order_relaxed);
              if (b >= s.end) break;
              (*c->body)(b, b + c->chunk < s.end ? b + c->chunk : s.end, ti);
            }
          }
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
  std::atomic<int> spin_{0};  // live Spin objects
  Job job_ = nullptr;
  void* job_ctx_ = nullptr;
};

}  // namespace omni
