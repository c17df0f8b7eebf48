#include "kernels/cuda/fft_loader.h"

#include <dlfcn.h>

#include <string>

namespace omni::cuda {
namespace {

struct Loaded {
  FftApi api{};
  Status status;
  std::string library;
};

template <class F>
void bind(void* lib, const char* name, F* out, std::string* missing) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  if (!*out) *missing += std::string(name) + " ";
}

Loaded load() {
  Loaded L;
  static const char* const kSuffixes[] = {".so.12", ".so.13", ".so.11", ".so"};
  static const char* const kDirs[] = {"", "/usr/local/cuda/lib64/", "/usr/local/cuda/targets/x86_64-linux/lib/",
                                      "/usr/local/cuda/targets/sbsa-linux/lib/"};
  std::string tried;
  void* lib = nullptr;
  for (const char* suffix : kSuffixes) {
    for (const char* dir : kDirs) {
      const std::string name = std::string(dir) + "libcufft" + suffix;
      lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib) {
        L.library = name;
        break;
      }
      const char* e = dlerror();
      tried += name + ": " + (e ? e : "?") + "; ";
    }
    if (lib) break;
  }
  if (!lib) {
    L.status = unsupported("cuFFT not available: " + tried);
    return L;
  }
  std::string missing;
  FftApi& a = L.api;
  bind(lib, "cufftPlanMany", &a.plan_many, &missing);
  bind(lib, "cufftExecD2Z", &a.exec_d2z, &missing);
  bind(lib, "cufftSetStream", &a.set_stream, &missing);
  bind(lib, "cufftDestroy", &a.destroy, &missing);
  bind(lib, "cufftGetVersion", &a.get_version, &missing);
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
