#include "kernels/cuda/fft_loader.h"

#include <string>

#include "kernels/cuda/dl_loader.h"

namespace omni::cuda {
namespace {

struct Loaded {
  FftApi api{};
  Status status;
  std::string library;
};

Loaded load() {
  Loaded L;
  // CUDA 12 and 13 both ship cuFFT 12.
  auto opened = dl_open_first({"libcufft"}, {".so.12", ".so.13", ".so.11", ".so"}, "cuFFT");
  if (!opened.ok()) {
    L.status = opened.status();
    return L;
  }
  void* lib = opened->handles[0];
  L.library = opened->paths[0];
  std::string missing;
  FftApi& a = L.api;
  dl_bind(lib, "cufftPlanMany", &a.plan_many, &missing);
  dl_bind(lib, "cufftExecD2Z", &a.exec_d2z, &missing);
  dl_bind(lib, "cufftSetStream", &a.set_stream, &missing);
  dl_bind(lib, "cufftDestroy", &a.destroy, &missing);
  dl_bind(lib, "cufftGetVersion", &a.get_version, &missing);
  if (!missing.empty()) L.status = unsupported("cuFFT at " + L.library + " lacks: " + missing);
  return L;  // the library stays open for the life of the process
}

const char* result_name(int r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "CUFFT_(unknown)";
  }
}

}  // namespace

StatusOr<const FftApi*> fft_api() {
  static const Loaded* loaded = [] {
    auto* l = new Loaded(load());
    l->api.library = l->library.c_str();
    return l;
  }();
  if (!loaded->status.ok()) return loaded->status;
  return &loaded->api;
}

Status cufft_status(int result, const char* what) {
  if (result == CUFFT_SUCCESS) return Status::Ok();
  const std::string m = fmt("cufft: %s: %s (%d)", what, result_name(result), result);
  if (result == CUFFT_ALLOC_FAILED) return {StatusCode::kOutOfMemory, m};
  return internal_error(m);
}

}  // namespace omni::cuda
