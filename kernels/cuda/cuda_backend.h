// The CUDA backend's resources: device query, a device memory arena (one cudaMalloc up front,
// bump allocation after, so nothing is allocated on the per-token path), streams, events,
// pinned host staging, and a cuBLAS/cuBLASLt handle pair with its workspace per stream.
//
//   OMNI_ASSIGN_OR_RETURN(int n, cuda::device_count());     // kUnsupported "no CUDA device: ..."
//   OMNI_ASSIGN_OR_RETURN(auto arena, cuda::DeviceArena::create(1 << 30));
//   OMNI_ASSIGN_OR_RETURN(float* x, arena.alloc_array<float>(4096));
//
// Every fallible call returns a Status naming the CUDA/cuBLAS error; "no device" is a clean
// kUnsupported, never a crash. Thread-safety: objects are used by one thread at a time; the
// device itself may be shared by several (each with its own Stream and BlasHandle).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/core/status.h"

namespace omni::cuda {

// Ok for cudaSuccess, else kInternal (kOutOfMemory for allocation failures) "<what>: <error name>: <text>".
Status cuda_status(cudaError_t err, const char* what);
// The same for a cublasStatus_t passed as int (keeps cublas headers out of this one).
Status cublas_status(int status, const char* what);

// Number of devices; kUnsupported with the driver's reason when there is none (no driver, no
// GPU, CUDA_VISIBLE_DEVICES empty).
StatusOr<int> device_count();

struct DeviceInfo {
  int index = 0;
  std::string name;          // "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  size_t total_bytes = 0, free_bytes = 0;
  int l2_bytes = 0;
  int memory_bus_bits = 0;
};
StatusOr<DeviceInfo> device_info(int device);
// Selects `device` for this thread (cudaSetDevice).
Status set_device(int device);

// A region of device memory carved by bump allocation. alloc() never calls cudaMalloc, so it
// is safe on the decode path; mark()/rewind() free everything allocated after a mark.
class DeviceArena {
 public:
  static StatusOr<DeviceArena> create(size_t bytes);
  DeviceArena() = default;
  DeviceArena(DeviceArena&& o) noexcept { *this = static_cast<DeviceArena&&>(o); }
  DeviceArena& operator=(DeviceArena&& o) noexcept;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena();

  // kOutOfMemory "arena: need N bytes, M of C free" when it does not fit. align: power of two.
  StatusOr<void*> alloc(size_t bytes, size_t align = 256);
  template <class T>
  StatusOr<T*> alloc_array(size_t count) {
    OMNI_ASSIGN_OR_RETURN(void* p, alloc(count * sizeof(T), alignof(T) > 256 ? alignof(T) : 256));
    return static_cast<T*>(p);
  }
  size_t mark() const { return used_; }
  void rewind(size_t mark) { used_ = mark < used_ ? mark : used_; }
  size_t used() const { return used_; }
  size_t capacity() const { return capacity_; }

 private:
  uint8_t* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
};

// Page-locked host memory for asynchronous copies (and for CUDA-graph memcpy nodes, which read
// the same host address at every replay).
class PinnedBuffer {
 public:
  static StatusOr<PinnedBuffer> create(size_t bytes);
  PinnedBuffer() = default;
  PinnedBuffer(PinnedBuffer&& o) noexcept { *this = static_cast<PinnedBuffer&&>(o); }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer();
  void* data() const { return data_; }
  size_t size() const { return size_; }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

class Stream {
 public:
  static StatusOr<Stream> create();  // non-blocking with respect to the legacy default stream
  Stream() = default;
  Stream(Stream&& o) noexcept { *this = static_cast<Stream&&>(o); }
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();
  cudaStream_t get() const { return s_; }
  Status synchronize() const;

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  static StatusOr<Event> create(bool timing = true);
  Event() = default;
  Event(Event&& o) noexcept { *this = static_cast<Event&&>(o); }
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event();
  cudaEvent_t get() const { return e_; }
  Status record(cudaStream_t stream) const;
  Status synchronize() const;
  // Milliseconds between two recorded (and completed) timing events.
  static StatusOr<float> elapsed_ms(const Event& start, const Event& end);

 private:
  cudaEvent_t e_ = nullptr;
};

// cuBLAS + cuBLASLt handles bound to one stream, with a device workspace for both.
class BlasHandle {
 public:
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;
  static StatusOr<BlasHandle> create(cudaStream_t stream);
  BlasHandle() = default;
  BlasHandle(BlasHandle&& o) noexcept { *this = static_cast<BlasHandle&&>(o); }
  BlasHandle& operator=(BlasHandle&& o) noexcept;
  BlasHandle(const BlasHandle&) = delete;
  BlasHandle& operator=(const BlasHandle&) = delete;
  ~BlasHandle();
  void* blas() const { return blas_; }      // cublasHandle_t
  void* blas_lt() const { return lt_; }     // cublasLtHandle_t
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return kWorkspaceBytes; }
  cudaStream_t stream() const { return stream_; }

 private:
  void* blas_ = nullptr;
  void* lt_ = nullptr;
  void* workspace_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace omni::cuda
