// 2 MiB pages for the big buffers that the decode loops stream: the weights (a file mapping) and
// the bench's probe and microbenchmark buffers.
//
// Why: with 4 KiB pages every 4 KiB of weights needs its own TLB entry, and the L2 hardware
// prefetcher stops at each 4 KiB page edge. On the Intel AVX-512 VM of sessions 9-11 one core
// read 13.0 GB/s from 4 KiB anonymous pages and 15.5 GB/s from 2 MiB ones, 25.6 and ~29 GB/s on
// two cores; Gemma 3 270M decode went from 77 to 92 tok/s with its file mapped with 2 MiB pages
// (docs/PERFORMANCE.md, session 11).
//
// Linux only gives them when asked (transparent_hugepage "madvise" mode, the usual default) and,
// for a file, only where the page cache holds the file in 2 MiB folios: a file read from disk
// through a huge-page mapping does (ext4, xfs, btrfs on recent kernels), one just written or
// downloaded usually does not. gguf::GgufFile::settle_pages() deals with that case.
//
// Env OMNIRT_HUGE_PAGES=0 turns all of it off (A/B measurements, or a kernel that misbehaves).
#pragma once

#include <cstddef>
#include <cstdint>

namespace omni {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// False when OMNIRT_HUGE_PAGES=0 (read once).
bool huge_pages_enabled();

// madvise(MADV_HUGEPAGE) on [p, p + bytes). Returns whether the kernel took the advice (false when
// disabled, on a null or empty range, or where the kernel has no transparent huge pages).
bool advise_huge_pages(void* p, size_t bytes);

// Bytes of [p, p + bytes) that are mapped with 2 MiB page-table entries now (AnonHugePages +
// FilePmdMapped + ShmemPmdMapped of the mappings that overlap the range, each capped at the
// overlap), from /proc/self/smaps; -1 when that cannot be read.
int64_t huge_mapped_bytes(const void* p, size_t bytes);

// Maps `bytes` (> 0) of `fd` from offset 0, read-only and private, at a 2 MiB-aligned address, so
// that whole 2 MiB folios of the page cache can be mapped by one entry each. Returns nullptr and
// leaves errno set on failure. Unmap with munmap(p, bytes).
void* map_file_aligned(int fd, size_t bytes);

// Anonymous read-write memory, 2 MiB-aligned, advised for huge pages. The kernel zero-fills it on
// first touch. Move-only.
class HugeBuffer {
 public:
  HugeBuffer() = default;
  explicit HugeBuffer(size_t bytes);  // empty (data() == nullptr) if the mapping fails
  ~HugeBuffer();
  HugeBuffer(HugeBuffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  HugeBuffer& operator=(HugeBuffer&& o) noexcept;
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace omni
