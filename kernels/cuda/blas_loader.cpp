#include "kernels/cuda/blas_loader.h"

#include <string>

#include "kernels/cuda/dl_loader.h"

namespace omni::cuda {
namespace {

struct Loaded {
  BlasApi api{};
  Status status;
  std::string library;
};

Loaded load() {
  Loaded L;
  // libcublas needs the libcublasLt of its own version: both come from one directory.
  auto opened = dl_open_first({"libcublasLt", "libcublas"}, {".so.13", ".so.12", ".so"}, "cuBLAS");
  if (!opened.ok()) {
    L.status = opened.status();
    return L;
  }
  void* lt = opened->handles[0];
  void* blas = opened->handles[1];
  L.library = opened->paths[1];
  std::string missing;
  BlasApi& a = L.api;
  dl_bind(blas, "cublasCreate_v2", &a.create, &missing);
  dl_bind(blas, "cublasDestroy_v2", &a.destroy, &missing);
  dl_bind(blas, "cublasSetStream_v2", &a.set_stream, &missing);
  dl_bind(blas, "cublasSetWorkspace_v2", &a.set_workspace, &missing);
  dl_bind(blas, "cublasGemmEx", &a.gemm_ex, &missing);
  dl_bind(blas, "cublasGemmStridedBatchedEx", &a.gemm_strided_batched_ex, &missing);
  dl_bind(blas, "cublasGetStatusName", &a.status_name, &missing);
  dl_bind(blas, "cublasGetStatusString", &a.status_string, &missing);
  dl_bind(lt, "cublasLtCreate", &a.lt_create, &missing);
  dl_bind(lt, "cublasLtDestroy", &a.lt_destroy, &missing);
  dl_bind(lt, "cublasLtMatmulDescCreate", &a.lt_desc_create, &missing);
  dl_bind(lt, "cublasLtMatmulDescSetAttribute", &a.lt_desc_set, &missing);
  dl_bind(lt, "cublasLtMatmulDescDestroy", &a.lt_desc_destroy, &missing);
  dl_bind(lt, "cublasLtMatrixLayoutCreate", &a.lt_layout_create, &missing);
  dl_bind(lt, "cublasLtMatrixLayoutDestroy", &a.lt_layout_destroy, &missing);
  dl_bind(lt, "cublasLtMatmulPreferenceCreate", &a.lt_pref_create, &missing);
  dl_bind(lt, "cublasLtMatmulPreferenceSetAttribute", &a.lt_pref_set, &missing);
  dl_bind(lt, "cublasLtMatmulPreferenceDestroy", &a.lt_pref_destroy, &missing);
  dl_bind(lt, "cublasLtMatmulAlgoGetHeuristic", &a.lt_heuristic, &missing);
  dl_bind(lt, "cublasLtMatmul", &a.lt_matmul, &missing);
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
