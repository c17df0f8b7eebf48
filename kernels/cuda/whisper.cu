// The Whisper encoder's own kernel (ops_audio.h): im2col for the conv stem, whose GEMM is
// gemm_bf16 (conv1d k=3 stride 1, then stride 2, as audio/whisper/whisper_ops.cpp conv1d).
#include "kernels/cuda/ops_audio.h"

namespace omni::cuda {
namespace {

unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

__global__ void im2col_kernel(Im2colParams p, int64_t n_out_t) {
  const int64_t row = p.kernel * p.c_in;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n_out_t * row) return;
  const int64_t t = idx / row, r = idx % row, j = r / p.c_in, i = r % p.c_in;
  const int64_t src = p.stride * t + j - (p.kernel - 1) / 2;
  p.col[idx] = (src < 0 || src >= p.n_in_t) ? 0.0f : p.x[src * p.c_in + i];
}

}  // namespace

int64_t im2col_out_rows(const Im2colParams& p) { return p.stride > 0 ? (p.n_in_t - 1) / p.stride + 1 : 0; }

Status check_params(const Im2colParams& p) {
  if (!p.x || !p.col) return invalid_argument("im2col: x and col must be set");
  if (p.stride != 1 && p.stride != 2) return invalid_argument(fmt("im2col: stride = %d (need 1 or 2)", p.stride));
  if (p.kernel <= 0 || p.kernel % 2 == 0 || p.kernel > 31)
    return invalid_argument(fmt("im2col: kernel = %lld (need an odd size in 1 .. 31)", (long long)p.kernel));
  if (p.n_in_t <= 0 || p.c_in <= 0)
    return invalid_argument(fmt("im2col: n_in_t = %lld, c_in = %lld (need >= 1)", (long long)p.n_in_t,
                                (long long)p.c_in));
  if (im2col_out_rows(p) * p.kernel * p.c_in > (int64_t(1) << 40))
    return invalid_argument("im2col: output too large");
  return Status::Ok();
}

cudaError_t launch_im2col(const Im2colParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int64_t n = im2col_out_rows(p) * p.kernel * p.c_in;
  im2col_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(p, im2col_out_rows(p));
  return cudaGetLastError();
}

}  // namespace omni::cuda
