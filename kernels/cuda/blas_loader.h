// cuBLAS and cuBLASLt opened at run time (dlopen) instead of linked, so that binaries start on
// GPU machines whose CUDA install lacks them or has another major version: only the prefill GEMM
// needs them, and callers fall back to the matvec kernels when blas_api() fails.
// Search order: libcublas.so.13, .12, .so (with the matching libcublasLt), in the loader's
// path (LD_LIBRARY_PATH, ld cache), then /usr/local/cuda/lib64 and /usr/local/cuda/targets/*/lib.
// Thread-safety: blas_api() may be called from any thread; it loads once.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/core/status.h"

namespace omni::cuda {

struct BlasApi {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasDestroy_v2) destroy;
  decltype(&cublasSetStream_v2) set_stream;
  decltype(&cublasSetWorkspace_v2) set_workspace;
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
  // Strided batched GEMM (the fast encoder attention: one batch entry per head).
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                            const void*, const void*, cudaDataType, int, long long int, const void*,
                                            cudaDataType, int, long long int, const void*, void*, cudaDataType, int,
                                            long long int, int, cublasComputeType_t, cublasGemmAlgo_t);
  decltype(&cublasGetStatusName) status_name;
  decltype(&cublasGetStatusString) status_string;
  decltype(&cublasLtCreate) lt_create;
  decltype(&cublasLtDestroy) lt_destroy;
  decltype(&cublasLtMatmulDescCreate) lt_desc_create;
  decltype(&cublasLtMatmulDescSetAttribute) lt_desc_set;
  decltype(&cublasLtMatmulDescDestroy) lt_desc_destroy;
  decltype(&cublasLtMatrixLayoutCreate) lt_layout_create;
  decltype(&cublasLtMatrixLayoutDestroy) lt_layout_destroy;
  decltype(&cublasLtMatmulPreferenceCreate) lt_pref_create;
  decltype(&cublasLtMatmulPreferenceSetAttribute) lt_pref_set;
  decltype(&cublasLtMatmulPreferenceDestroy) lt_pref_destroy;
  decltype(&cublasLtMatmulAlgoGetHeuristic) lt_heuristic;
  decltype(&cublasLtMatmul) lt_matmul;
  const char* library;  // the libcublas path that was opened
};

// The loaded API, or kUnsupported "cuBLAS not available: <what dlopen said for each name>".
StatusOr<const BlasApi*> blas_api();

}  // namespace omni::cuda
