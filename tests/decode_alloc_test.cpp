// The decode step allocates nothing after warm-up: global operator new is replaced in this test
// binary by a counting version, and a window of decode steps (eval of one token + sampling) must
// not call it once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "runtime/model/context.h"
#include "runtime/model/model.h"
#include "runtime/model/sampler.h"
#include "tests/test_util.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// The replacements below pair operator new with malloc and operator delete with free; GCC's
// -Wmismatched-new-delete cannot see that pairing once they are inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
// The nothrow forms too (std::stable_sort's temporary buffer uses them): every operator new in
// this binary must come from malloc, because every operator delete below frees with free().
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t al = static_cast<std::size_t>(a);
  return std::aligned_alloc(al, (n + al - 1) / al * al);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
  return operator new(n, a, t);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace omni {
namespace {

TEST(DecodeStep, NoAllocationAfterWarmUp) {
  auto m = Model::load(test::source_path("tests/data/model_bad/valid_llama.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  for (DType kv : {DType::kF16, DType::kF32}) {
    ContextParams cp;
    cp.n_ctx = 48;
    cp.n_threads = 2;
    cp.kv_type = kv;
    auto ctx = Context::create(**m, cp);
    ASSERT_TRUE(ctx.ok());
    SamplerParams sp;
    sp.temperature = 0.8f;
    sp.repeat_penalty = 1.1f;
    auto sampler = Sampler::create(sp, (*m)->hparams().n_vocab);
    ASSERT_TRUE(sampler.ok());
    std::vector<int32_t> history;
    history.reserve(64);
    std::vector<int32_t> prompt = {1, 2, 3, 4};
    ASSERT_TRUE((*ctx)->eval(prompt, false).ok());
    history.insert(history.end(), prompt.begin(), prompt.end());
    int32_t tok = sampler->sample((*ctx)->last_logits(), history);
    ASSERT_TRUE((*ctx)->eval(std::span<const int32_t>(&tok, 1), false).ok());  // warm-up step

    const long before = g_allocations.load();
    for (int i = 0; i < 32; ++i) {
      tok = sampler->sample((*ctx)->last_logits(), history);
      history.push_back(tok);
      Status s = (*ctx)->eval(std::span<const int32_t>(&tok, 1), false);
      if (!s.ok()) {
        ADD_FAILURE() << s.to_string();
        break;
      }
    }
    EXPECT_EQ(g_allocations.load() - before, 0) << "allocations in 32 decode steps, kv " << dtype_name(kv);
  }
}

}  // namespace
}  // namespace omni
