// Warp and block reductions shared by the CUDA kernels (and the GLU arithmetic, below). Block versions need blockDim.x to be a
// multiple of 32 (at most 1024), are called by every thread of the block, and return the result
// to every thread.
#pragma once

#include <cuda_runtime.h>

namespace omni::cuda {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  v = warp_sum(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = blockDim.x >> 5;
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  return warp_sum(lane < n_warps ? partial[lane] : 0.0f);
}

__device__ __forceinline__ float block_max(float v) {
  __shared__ float partial[32];
  v = warp_max(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  return warp_max(lane < n_warps ? partial[lane] : -INFINITY);
}

// act(g) * u of the GLU kernel (elementwise.cu) and of the matvec GLU epilogue (matvec.cu), every
// rounding explicit so that both give the same bits. act: 0 SiLU, 1 GELU-tanh (GluAct).
__device__ __forceinline__ float glu_value(float g, float u, int act) {
  float a;
  if (act == 0) {
    a = __fdiv_rn(g, __fadd_rn(1.0f, expf(-g)));
  } else {
    const float k = 0.7978845608028654f;  // sqrt(2/pi)
    const float inner = __fmaf_rn(__fmul_rn(__fmul_rn(0.044715f, g), g), g, g);
    a = __fmul_rn(__fmul_rn(0.5f, g), __fadd_rn(1.0f, tanhf(__fmul_rn(k, inner))));
  }
  return __fmul_rn(a, u);
}

}  // namespace omni::cuda
