// 2 MiB pages: the anonymous buffer, the smaps reading, and GgufFile::settle_pages() (which may
// drop a file's cached pages and read them again; the bytes must stay the file's).
#include "kernels/core/huge_pages.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "runtime/model/gguf.h"

namespace omni {
namespace {

// Writes w's file with one unbuffered 4 KiB write() after another.
void write_in_4k_pieces(const gguf::GgufWriter& w, const std::string& path) {
  const std::vector<uint8_t> bytes = w.to_bytes();
  ASSERT_FALSE(bytes.empty());
  FILE* out = std::fopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  std::setvbuf(out, nullptr, _IONBF, 0);
  for (size_t off = 0; off < bytes.size(); off += 4096) {
    const size_t len = std::min<size_t>(4096, bytes.size() - off);
    ASSERT_EQ(std::fwrite(bytes.data() + off, 1, len, out), len);
  }
  std::fclose(out);
}

TEST(HugePages, BufferIsAlignedZeroedAndMovable) {
  HugeBuffer b(3 * kHugePageBytes + 12345);
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kHugePageBytes, 0u);
  EXPECT_EQ(b.size(), 3 * kHugePageBytes + 12345);
  for (size_t i = 0; i < b.size(); i += 4093) EXPECT_EQ(b.data()[i], 0) << i;
  std::memset(b.data(), 0x3C, b.size());
  EXPECT_EQ(b.data()[b.size() - 1], 0x3C);

  const int64_t huge = huge_mapped_bytes(b.data(), b.size());
  EXPECT_GE(huge, -1);
  EXPECT_LE(huge, static_cast<int64_t>(b.size()));
  std::printf("[ info ] touched 6 MiB buffer: %lld bytes in 2 MiB pages (-1 = smaps unreadable)\n",
              static_cast<long long>(huge));

  uint8_t* p = b.data();
  HugeBuffer c(std::move(b));
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(b.size(), 0u);
  HugeBuffer d(kHugePageBytes);
  d = std::move(c);
  EXPECT_EQ(d.data(), p);
  EXPECT_EQ(d.data()[100], 0x3C);
}

TEST(HugePages, EmptyAndNullAreHarmless) {
  HugeBuffer empty(0);
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_FALSE(advise_huge_pages(nullptr, kHugePageBytes));
  int x = 0;
  EXPECT_FALSE(advise_huge_pages(&x, 0));
  EXPECT_EQ(map_file_aligned(-1, 0), nullptr);
  EXPECT_EQ(map_file_aligned(-1, 4096), nullptr);  // bad fd: nullptr, nothing left mapped
  // A range that no mapping covers.
  EXPECT_LE(huge_mapped_bytes(reinterpret_cast<const void*>(uintptr_t{4096}), 4096), 0);  // 0, or -1 without smaps
}

// A 40 MiB model-shaped file (one f32 tensor of random values), just written, so its page cache
// is dirty and in whatever folios the write path made: settle_pages() may write it back, drop
// it and read it again. The tensor's bytes must be the same after as before, and the report
// consistent with itself.
TEST(HugePages, SettlePagesKeepsTheBytes) {
  const int64_t n = int64_t{10} << 20;  // 40 MiB of f32
  std::vector<float> v(static_cast<size_t>(n));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& x : v) x = u(rng);
  gguf::GgufWriter w;
  w.add_string("general.architecture", "test");
  ASSERT_TRUE(w.add_tensor("t", DType::kF32, {n}, v.data(), v.size() * sizeof(float)).ok());
  const std::string path =
      (std::filesystem::temp_directory_path() / ("omnirt_settle_" + std::to_string(getpid()) + ".gguf")).string();
  // Written 4 KiB at a time, as a download arrives: the page cache then tends to hold it in small
  // folios, the case that settle_pages() reads again (on this CI's ext4 and kernel, it does).
  write_in_4k_pieces(w, path);

  for (bool allow_reread : {true, false}) {
    auto f = gguf::GgufFile::open(path);
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    const gguf::TensorInfo* t = (*f)->find_tensor("t");
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(t->n_bytes, v.size() * sizeof(float));
    EXPECT_EQ(std::memcmp(t->data, v.data(), t->n_bytes), 0);

    const gguf::PageReport r = (*f)->settle_pages(allow_reread);
    EXPECT_EQ(r.bytes, (*f)->file_size());
    EXPECT_GE(r.huge_before, -1);
    EXPECT_LE(r.huge_bytes, static_cast<int64_t>(r.bytes));
    EXPECT_GE(r.seconds, 0);
    if (!allow_reread) {
      EXPECT_FALSE(r.reread);
    }
    // A re-read is only done where the kernel gives 2 MiB pages (some already, or a 4 MiB trial).
    if (r.reread) {
      EXPECT_GE(r.huge_bytes, r.huge_before + static_cast<int64_t>(kHugePageBytes));
    }
    std::printf("[ info ] allow_reread %d: %lld -> %lld of %zu bytes in 2 MiB pages, re-read %d, %.3f s\n",
                allow_reread, static_cast<long long>(r.huge_before), static_cast<long long>(r.huge_bytes), r.bytes,
                r.reread, r.seconds);
    // The same pointers, the same bytes.
    EXPECT_EQ((*f)->find_tensor("t")->data, t->data);
    EXPECT_EQ(std::memcmp(t->data, v.data(), t->n_bytes), 0);
  }
  std::filesystem::remove(path);
}

// Bad input: the path now names another file of the same size (replaced after open). The
// mapping must keep the old file's bytes and settle_pages() must not gain anything from the new
// one. (Its dev/inode check skips the re-read; without it the re-read would drop the new file's
// cache and refault the old one, with the same visible result, so this checks the outcome.)
TEST(HugePages, SettlePagesSkipsAReplacedFile) {
  const int64_t n = int64_t{9} << 20;  // 36 MiB of f32, over the 32 MiB floor
  std::vector<float> v(static_cast<size_t>(n), 0.5f);
  gguf::GgufWriter w;
  w.add_string("general.architecture", "test");
  ASSERT_TRUE(w.add_tensor("t", DType::kF32, {n}, v.data(), v.size() * sizeof(float)).ok());
  const auto dir = std::filesystem::temp_directory_path();
  const std::string path = (dir / ("omnirt_replaced_" + std::to_string(getpid()) + ".gguf")).string();
  const std::string other = path + ".new";
  write_in_4k_pieces(w, path);  // small folios: settle_pages() would re-read it, were it the same file
  auto f = gguf::GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  std::vector<float> v2(static_cast<size_t>(n), -2.0f);
  gguf::GgufWriter w2;
  w2.add_string("general.architecture", "test");
  ASSERT_TRUE(w2.add_tensor("t", DType::kF32, {n}, v2.data(), v2.size() * sizeof(float)).ok());
  ASSERT_TRUE(w2.write(other).ok());
  std::filesystem::rename(other, path);  // same path, another inode

  const gguf::PageReport r = (*f)->settle_pages(true);
  EXPECT_FALSE(r.reread);
  const gguf::TensorInfo* t = (*f)->find_tensor("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::memcmp(t->data, v.data(), t->n_bytes), 0);
  std::filesystem::remove(path);
}

TEST(HugePages, SettlePagesOnMemoryIsANoOp) {
  gguf::GgufWriter w;
  w.add_string("general.architecture", "test");
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto f = gguf::GgufFile::from_memory(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok());
  const gguf::PageReport r = (*f)->settle_pages();
  EXPECT_EQ(r.bytes, bytes.size());
  EXPECT_EQ(r.huge_bytes, -1);
  EXPECT_FALSE(r.reread);
}

}  // namespace
}  // namespace omni
