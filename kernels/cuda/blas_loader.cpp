#include "kernels/cuda/blas_loader.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace omni::cuda {
namespace {

struct Loaded {
  BlasApi api{};
  Status status;
  std::string library;
};

void* open_first(const char* const* names, std::string* tried) {
  for (const char* const* n = names; *n; ++n) {
    if (void* h = dlopen(*n, RTLD_NOW | RTLD_LOCAL)) return h;
    const char* e = dlerror();
    *tried += std::string(*n) + ": " + (e ? e : "?") + "; ";
  }
  return nullptr;
}

template <class F>
bool bind(void* lib, const char* name, F* out, std::string* missing) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  if (!*out) *missing += std::string(name) + " ";
  return *out != nullptr;
}

Loaded load() {
  Loaded L;
  static const char* const kMajors[] = {"13", "12", ""};
  static const char* const kDirs[] = {"", "/usr/local/cuda/lib64/", "/usr/local/cuda/targets/x86_64-linux/lib/",
                                      "/usr/local/cuda/targets/sbsa-linux/lib/"};
  std::string tried;
  void* blas = nullptr;
  void* lt = nullptr;
  for (const char* major : kMajors) {
    for (const char* dir : kDirs) {
      const std::string suffix = *major ? std::string(".so.") + major : std::string(".so");
      const std::string lt_name = std::string(dir) + "libcublasLt" + suffix;
      const std::string blas_name = std::string(dir) + "libcublas" + suffix;
      const char* lt_names[] = {lt_name.c_str(), nullptr};
      const char* blas_names[] = {blas_name.c_str(), nullptr};
      lt = open_first(lt_names, &tried);
      if (!lt) continue;
      blas = open_first(blas_names, &tried);
      if (blas) {
        L.library = blas_name;
        break;
      }
      dlclose(lt);
      lt = nullptr;
    }
    if (blas) break;
  }
  if (!blas) {
    L.status = unsupported("cuBLAS not available: " + tried);
    return L;
  }
  std::string missing;
  BlasApi& a = L.api;
  bind(blas, "cublasCreate_v2", &a.create, &missing);
  bind(blas, "cublasDestroy_v2", &a.destroy, &missing);
  bind(blas, "cublasSetStream_v2", &a.set_stream, &missing);
  bind(blas, "cublasSetWorkspace_v2", &a.set_workspace, &missing);
  bind(blas, "cublasGemmEx", &a.gemm_ex, &missing);
  bind(blas, "cublasGemmStridedBatchedEx", &a.gemm_strided_batched_ex, &missing);
  bind(blas, "cublasGetStatusName", &a.status_name, &missing);
  bind(blas, "cublasGetStatusString", &a.status_string, &missing);
  bind(lt, "cublasLtCreate", &a.lt_create, &missing);
  bind(lt, "cublasLtDestroy", &a.lt_destroy, &missing);
  bind(lt, "cublasLtMatmulDescCreate", &a.lt_desc_create, &missing);
  bind(lt, "cublasLtMatmulDescSetAttribute", &a.lt_desc_set, &missing);
  bind(lt, "cublasLtMatmulDescDestroy", &a.lt_desc_destroy, &missing);
  bind(lt, "cublasLtMatrixLayoutCreate", &a.lt_layout_create, &missing);
  bind(lt, "cublasLtMatrixLayoutDestroy", &a.lt_layout_destroy, &missing);
  bind(lt, "cublasLtMatmulPreferenceCreate", &a.lt_pref_create, &missing);
  bind(lt, "cublasLtMatmulPreferenceSetAttribute", &a.lt_pref_set, &missing);
  bind(lt, "cublasLtMatmulPreferenceDestroy", &a.lt_pref_destroy, &missing);
  bind(lt, "cublasLtMatmulAlgoGetHeuristic", &a.lt_heuristic, &missing);
  bind(lt, "cublasLtMatmul", &a.lt_matmul, &missing);
  if (!missing.empty()) {
    L.status = unsupported("cuBLAS at " + L.library + " lacks: " + missing);
    return L;
  }
  return L;  // the libraries stay open for the life of the process
}

}  // namespace

StatusOr<const BlasApi*> blas_api() {
  static const Loaded* loaded = [] {
    auto* l = new Loaded(load());
    l->api.library = l->library.c_str();
    return l;
  }();
  if (!loaded->status.ok()) return loaded->status;
  return &loaded->api;
}

}  // namespace omni::cuda
