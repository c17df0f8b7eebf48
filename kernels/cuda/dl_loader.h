// The dlopen search shared by the run-time loaded CUDA libraries (blas_loader.h, fft_loader.h):
// for each version suffix in the caller's order, each directory in turn: the loader's own path
// (LD_LIBRARY_PATH, ld cache), then /usr/local/cuda/lib64 and /usr/local/cuda/targets/*/lib.
// Thread-safety: the functions keep no state; callers load once (a function-local static).
#pragma once

#include <dlfcn.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/core/status.h"

namespace omni::cuda {

// Libraries opened together from one directory and version suffix; they stay open for the life
// of the process.
struct DlOpened {
  std::vector<void*> handles;      // one per stem, in the order given
  std::vector<std::string> paths;  // the name each was opened by ("libcufft.so.12", "/usr/...")
};

// Opens every stem (e.g. {"libcublasLt", "libcublas"}) with the first suffix and directory for
// which all of them open (RTLD_NOW | RTLD_LOCAL); stems are tried in order and a partial group
// is closed again. On failure: kUnsupported "<what> not available: <name>: <dlerror>; ..." for
// every name tried.
StatusOr<DlOpened> dl_open_first(std::initializer_list<const char*> stems,
                                 std::initializer_list<const char*> suffixes, const char* what);

// *out = the symbol `name` of `lib`; when absent, appends "name " to *missing.
template <class F>
void dl_bind(void* lib, const char* name, F* out, std::string* missing) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  if (!*out) *missing += std::string(name) + " ";
}

}  // namespace omni::cuda
