#include "kernels/cuda/cuda_backend.h"

#include <utility>

#include "kernels/cuda/blas_loader.h"

namespace omni::cuda {

Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  const StatusCode code = err == cudaErrorMemoryAllocation ? StatusCode::kOutOfMemory
                          : (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
                              ? StatusCode::kUnsupported
                              : StatusCode::kInternal;
  return Status(code, fmt("%s: %s: %s", what, cudaGetErrorName(err), cudaGetErrorString(err)));
}

Status cublas_status(int status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  const auto s = static_cast<cublasStatus_t>(status);
  auto api = blas_api();
  const char* name = api.ok() ? (*api)->status_name(s) : "cublasStatus";
  const char* text = api.ok() ? (*api)->status_string(s) : "";
  return Status(s == CUBLAS_STATUS_ALLOC_FAILED ? StatusCode::kOutOfMemory : StatusCode::kInternal,
                fmt("%s: %s (%d): %s", what, name, status, text));
}

StatusOr<int> device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return Status(StatusCode::kUnsupported,
                  fmt("no CUDA device: cudaGetDeviceCount failed: %s: %s", cudaGetErrorName(err),
                      cudaGetErrorString(err)));
  }
  if (n <= 0) return Status(StatusCode::kUnsupported, "no CUDA device: cudaGetDeviceCount returned 0");
  return n;
}

StatusOr<DeviceInfo> device_info(int device) {
  OMNI_ASSIGN_OR_RETURN(int n, device_count());
  if (device < 0 || device >= n)
    return invalid_argument(fmt("CUDA device %d does not exist (%d devices)", device, n));
  cudaDeviceProp prop{};
  OMNI_RETURN_IF_ERROR(cuda_status(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties"));
  DeviceInfo info;
  info.index = device;
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.l2_bytes = prop.l2CacheSize;
  info.memory_bus_bits = prop.memoryBusWidth;
  info.total_bytes = prop.totalGlobalMem;
  int prev = 0;
  OMNI_RETURN_IF_ERROR(cuda_status(cudaGetDevice(&prev), "cudaGetDevice"));
  OMNI_RETURN_IF_ERROR(cuda_status(cudaSetDevice(device), "cudaSetDevice"));
  size_t free_b = 0, total_b = 0;
  const cudaError_t err = cudaMemGetInfo(&free_b, &total_b);
  (void)cudaSetDevice(prev);
  OMNI_RETURN_IF_ERROR(cuda_status(err, "cudaMemGetInfo"));
  info.free_bytes = free_b;
  return info;
}

Status set_device(int device) {
  OMNI_ASSIGN_OR_RETURN(int n, device_count());
  if (device < 0 || device >= n)
    return invalid_argument(fmt("CUDA device %d does not exist (%d devices)", device, n));
  return cuda_status(cudaSetDevice(device), "cudaSetDevice");
}

// ---- DeviceArena -------------------------------------------------------------------------

StatusOr<DeviceArena> DeviceArena::create(size_t bytes) {
  OMNI_RETURN_IF_ERROR(device_count().status());
  DeviceArena a;
  if (bytes > 0) {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return Status(StatusCode::kOutOfMemory,
                    fmt("cannot allocate a %.1f MiB device arena: %s", double(bytes) / (1 << 20),
                        cudaGetErrorString(err)));
    }
    a.base_ = static_cast<uint8_t*>(p);
  }
  a.capacity_ = bytes;
  return a;
}

DeviceArena& DeviceArena::operator=(DeviceArena&& o) noexcept {
  if (this != &o) {
    if (base_) cudaFree(base_);
    base_ = std::exchange(o.base_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    used_ = std::exchange(o.used_, 0);
  }
  return *this;
}

DeviceArena::~DeviceArena() {
  if (base_) cudaFree(base_);
}

StatusOr<void*> DeviceArena::alloc(size_t bytes, size_t align) {
  if (align == 0 || (align & (align - 1)) != 0) return invalid_argument(fmt("arena alignment %zu is not a power of two", align));
  const size_t start = (used_ + align - 1) & ~(align - 1);
  if (start > capacity_ || bytes > capacity_ - start)
    return Status(StatusCode::kOutOfMemory, fmt("device arena: need %zu bytes, %zu of %zu free", bytes,
                                                capacity_ - (start < capacity_ ? start : capacity_), capacity_));
  used_ = start + bytes;
  return static_cast<void*>(base_ + start);
}

// ---- PinnedBuffer ------------------------------------------------------------------------

StatusOr<PinnedBuffer> PinnedBuffer::create(size_t bytes) {
  OMNI_RETURN_IF_ERROR(device_count().status());
  PinnedBuffer b;
  if (bytes > 0) {
    const cudaError_t err = cudaMallocHost(&b.data_, bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();
      b.data_ = nullptr;
      return Status(StatusCode::kOutOfMemory, fmt("cannot allocate %zu bytes of pinned host memory: %s", bytes,
                                                  cudaGetErrorString(err)));
    }
  }
  b.size_ = bytes;
  return b;
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) cudaFreeHost(data_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

PinnedBuffer::~PinnedBuffer() {
  if (data_) cudaFreeHost(data_);
}

// ---- Stream / Event ----------------------------------------------------------------------

StatusOr<Stream> Stream::create() {
  OMNI_RETURN_IF_ERROR(device_count().status());
  Stream s;
  OMNI_RETURN_IF_ERROR(cuda_status(cudaStreamCreateWithFlags(&s.s_, cudaStreamNonBlocking), "cudaStreamCreate"));
  return s;
}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    if (s_) cudaStreamDestroy(s_);
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}

Status Stream::synchronize() const { return cuda_status(cudaStreamSynchronize(s_), "cudaStreamSynchronize"); }

StatusOr<Event> Event::create(bool timing) {
  OMNI_RETURN_IF_ERROR(device_count().status());
  Event e;
  OMNI_RETURN_IF_ERROR(cuda_status(cudaEventCreateWithFlags(&e.e_, timing ? cudaEventDefault : cudaEventDisableTiming),
                                   "cudaEventCreate"));
  return e;
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (e_) cudaEventDestroy(e_);
    e_ = std::exchange(o.e_, nullptr);
  }
  return *this;
}

Event::~Event() {
  if (e_) cudaEventDestroy(e_);
}

Status Event::record(cudaStream_t stream) const { return cuda_status(cudaEventRecord(e_, stream), "cudaEventRecord"); }
Status Event::synchronize() const { return cuda_status(cudaEventSynchronize(e_), "cudaEventSynchronize"); }

StatusOr<float> Event::elapsed_ms(const Event& start, const Event& end) {
  float ms = 0;
  OMNI_RETURN_IF_ERROR(cuda_status(cudaEventElapsedTime(&ms, start.e_, end.e_), "cudaEventElapsedTime"));
  return ms;
}

// ---- BlasHandle --------------------------------------------------------------------------

StatusOr<BlasHandle> BlasHandle::create(cudaStream_t stream) {
  OMNI_RETURN_IF_ERROR(device_count().status());
  OMNI_ASSIGN_OR_RETURN(const BlasApi* api, blas_api());
  BlasHandle h;
  h.stream_ = stream;
  cublasHandle_t blas = nullptr;
  OMNI_RETURN_IF_ERROR(cublas_status(api->create(&blas), "cublasCreate"));
  h.blas_ = blas;
  cublasLtHandle_t lt = nullptr;
  OMNI_RETURN_IF_ERROR(cublas_status(api->lt_create(&lt), "cublasLtCreate"));
  h.lt_ = lt;
  OMNI_RETURN_IF_ERROR(cuda_status(cudaMalloc(&h.workspace_, kWorkspaceBytes), "cudaMalloc(cuBLAS workspace)"));
  OMNI_RETURN_IF_ERROR(cublas_status(api->set_stream(blas, stream), "cublasSetStream"));
  OMNI_RETURN_IF_ERROR(cublas_status(api->set_workspace(blas, h.workspace_, kWorkspaceBytes), "cublasSetWorkspace"));
  return h;
}

BlasHandle& BlasHandle::operator=(BlasHandle&& o) noexcept {
  if (this != &o) {
    this->~BlasHandle();
    blas_ = std::exchange(o.blas_, nullptr);
    lt_ = std::exchange(o.lt_, nullptr);
    workspace_ = std::exchange(o.workspace_, nullptr);
    stream_ = std::exchange(o.stream_, nullptr);
  }
  return *this;
}

BlasHandle::~BlasHandle() {
  if (blas_ || lt_) {
    auto api = blas_api();  // loaded: the handles could not exist otherwise
    if (api.ok() && blas_) (*api)->destroy(static_cast<cublasHandle_t>(blas_));
    if (api.ok() && lt_) (*api)->lt_destroy(static_cast<cublasLtHandle_t>(lt_));
  }
  if (workspace_) cudaFree(workspace_);
  blas_ = lt_ = workspace_ = nullptr;
}

}  // namespace omni::cuda
