#include "kernels/core/huge_pages.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace omni {
namespace {

uintptr_t round_up(uintptr_t v, uintptr_t a) { return (v + a - 1) / a * a; }

// An address range [start, end) reserved with PROT_NONE, 2 MiB-aligned inside, the slack on both
// sides given back. nullptr on failure.
void* reserve_aligned(size_t bytes) {
  const size_t span = bytes + kHugePageBytes;
  void* r = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(r), aligned = round_up(base, kHugePageBytes);
  if (aligned > base) munmap(r, aligned - base);
  const uintptr_t end = aligned + bytes, span_end = base + span;
  if (span_end > end) munmap(reinterpret_cast<void*>(end), span_end - end);
  return reinterpret_cast<void*>(aligned);
}

}  // namespace

bool huge_pages_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("OMNIRT_HUGE_PAGES");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

bool advise_huge_pages(void* p, size_t bytes) {
  if (!p || bytes == 0 || !huge_pages_enabled()) return false;
#ifdef MADV_HUGEPAGE
  // madvise wants a page-aligned start; round the start down to its 4 KiB page.
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), start = a & ~uintptr_t{4095};
  return madvise(reinterpret_cast<void*>(start), bytes + (a - start), MADV_HUGEPAGE) == 0;
#else
  return false;
#endif
}

int64_t huge_mapped_bytes(const void* p, size_t bytes) {
  FILE* f = std::fopen("/proc/self/smaps", "re");
  if (!f) return -1;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + bytes;
  int64_t total = 0, overlap = 0;  // overlap of the current mapping with [lo, hi); 0 = not ours
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    unsigned long start = 0, end = 0;
    char dash = 0;
    // A mapping's header line: "start-end perms offset dev inode path".
    if (std::sscanf(line, "%lx%c%lx", &start, &dash, &end) == 3 && dash == '-') {
      const uintptr_t s = std::max<uintptr_t>(start, lo), e = std::min<uintptr_t>(end, hi);
      overlap = e > s ? static_cast<int64_t>(e - s) : 0;
      continue;
    }
    if (overlap == 0) continue;
    long long kb = 0;
    if (std::sscanf(line, "AnonHugePages: %lld kB", &kb) == 1 || std::sscanf(line, "FilePmdMapped: %lld kB", &kb) == 1 ||
        std::sscanf(line, "ShmemPmdMapped: %lld kB", &kb) == 1)
      total += std::min<int64_t>(kb * 1024, overlap);
  }
  std::fclose(f);
  return std::min<int64_t>(total, static_cast<int64_t>(bytes));
}

void* map_file_aligned(int fd, size_t bytes) {
  if (bytes == 0) {
    errno = EINVAL;
    return nullptr;
  }
  void* at = reserve_aligned(bytes);
  if (!at) return nullptr;
  void* m = mmap(at, bytes, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
  if (m == MAP_FAILED) {
    const int e = errno;
    munmap(at, bytes);
    errno = e;
    return nullptr;
  }
  return m;
}

HugeBuffer::HugeBuffer(size_t bytes) {
  if (bytes == 0) return;
  void* at = reserve_aligned(bytes);
  if (!at) return;
  void* m = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (m == MAP_FAILED) {
    munmap(at, bytes);
    return;
  }
  data_ = static_cast<uint8_t*>(m);
  size_ = bytes;
  advise_huge_pages(data_, size_);
}

HugeBuffer::~HugeBuffer() {
  if (data_) munmap(data_, size_);
}

HugeBuffer& HugeBuffer::operator=(HugeBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(data_, size_);
    data_ = o.data_, size_ = o.size_;
    o.data_ = nullptr, o.size_ = 0;
  }
  return *this;
}

}  // namespace omni
