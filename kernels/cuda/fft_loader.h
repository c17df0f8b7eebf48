// cuFFT opened at run time (dlopen), as blas_loader.h opens cuBLAS: binaries then start on GPU
// machines whose CUDA install lacks cuFFT or has another major version; only the CUDA log-mel
// (runtime/model/cuda_whisper.h) needs it, and it reports kUnsupported when it is missing.
// Search order: libcufft.so.12 (CUDA 12 and 13 ship cuFFT 12), .so.13, .so.11, .so, in the
// loader's path (LD_LIBRARY_PATH, ld cache), then /usr/local/cuda/lib64 and
// /usr/local/cuda/targets/*/lib.
// Thread-safety: fft_api() may be called from any thread; it loads once.
#pragma once

#include <cufft.h>

#include "kernels/core/status.h"

namespace omni::cuda {

struct FftApi {
  decltype(&cufftPlanMany) plan_many;
  decltype(&cufftExecD2Z) exec_d2z;
  decltype(&cufftSetStream) set_stream;
  decltype(&cufftDestroy) destroy;
  decltype(&cufftGetVersion) get_version;
  const char* library;  // the libcufft path that was opened
};

// The loaded API, or kUnsupported "cuFFT not available: <what dlopen said for each name>".
StatusOr<const FftApi*> fft_api();

// "cufft: <what>: CUFFT_<name> (<code>)" as kInternal (kOutOfMemory for CUFFT_ALLOC_FAILED);
// Ok for CUFFT_SUCCESS.
Status cufft_status(int result, const char* what);

}  // namespace omni::cuda
