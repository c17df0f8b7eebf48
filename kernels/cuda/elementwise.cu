// Normalization, rotary embedding, GLU, add/scale, embedding gather and KV append.
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/quant_cuda.cuh"
#include "kernels/cuda/reduce.cuh"

namespace omni::cuda {
namespace {

unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

__global__ void rms_norm_kernel(RmsNormParams p) {
  const int64_t off = static_cast<int64_t>(blockIdx.x) * p.n;
  const float* x = p.x + off;
  const float* res = p.residual ? p.residual + off : nullptr;
  float* xs = p.residual ? p.x_sum_out + off : nullptr;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) {
    float v = x[i];
    if (res) {
      v += res[i];
      xs[i] = v;
    }
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(p.n) + p.eps);
  float* y = p.y + off;
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) {
    const float v = res ? xs[i] : x[i];  // this thread wrote xs[i] above
    y[i] = p.w ? v * inv * p.w[i] : v * inv;
  }
}

// As rms_norm_kernel with the row held in registers (PER values per thread): every load of the
// row is issued before any store, so the loads overlap instead of waiting on possible aliasing
// (x_sum_out and y may alias x). Same summation order as rms_norm_kernel.
template <int PER>
__global__ void rms_norm_regs(RmsNormParams p) {
  const int64_t off = static_cast<int64_t>(blockIdx.x) * p.n;
  const float* x = p.x + off;
  const float* res = p.residual ? p.residual + off : nullptr;
  float v[PER], wv[PER];  // the norm weights are loaded with the row, not after the reduction
#pragma unroll
  for (int k = 0; k < PER; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
    v[k] = 0.0f;
    wv[k] = 1.0f;
    if (i < p.n) {
      v[k] = res ? x[i] + res[i] : x[i];
      if (p.w) wv[k] = __ldg(p.w + i);
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < PER; ++k) ss = fmaf(v[k], v[k], ss);
  if (res) {
    float* xs = p.x_sum_out + off;
#pragma unroll
    for (int k = 0; k < PER; ++k) {
      const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
      if (i < p.n) xs[i] = v[k];
    }
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(p.n) + p.eps);
  float* y = p.y + off;
#pragma unroll
  for (int k = 0; k < PER; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
    if (i < p.n) y[i] = p.w ? v[k] * inv * wv[k] : v[k] * inv;
  }
}

// Rotates pair j (< rot_dim / 2) of one head v[0, head_dim) by position pos; returns the pair's
// indices. Shared by rope_kernel and rope_kv_append_kernel so both give the same bits.
__device__ __forceinline__ void rope_pair(float* v, int64_t j, int64_t rot_dim, int32_t pos, float freq_base,
                                          float freq_scale, RopeStyle style, int64_t* i0, int64_t* i1) {
  const int64_t half = rot_dim / 2;
  // Double precision like the reference: positions reach 1e5 and float theta would be off by 1e-2 rad.
  const double theta = static_cast<double>(pos) * static_cast<double>(freq_scale) *
                       pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(j) / static_cast<double>(rot_dim));
  double s, c;
  sincos(theta, &s, &c);
  *i0 = style == RopeStyle::kNeox ? j : 2 * j;
  *i1 = style == RopeStyle::kNeox ? j + half : 2 * j + 1;
  const double a = v[*i0], b = v[*i1];
  v[*i0] = static_cast<float>(a * c - b * s);
  v[*i1] = static_cast<float>(a * s + b * c);
}

__global__ void rope_kernel(RopeParams p) {
  const int64_t half = p.rot_dim / 2;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= p.n_tok * p.n_head * half) return;
  const int64_t j = g % half, th = g / half;  // th = t * n_head + h
  const int64_t t = th / p.n_head;
  int64_t i0, i1;
  rope_pair(p.x + th * p.head_dim, j, p.rot_dim, p.pos[t], p.freq_base, p.freq_scale, p.style, &i0, &i1);
}

// Threads: [q pairs | k items | v elements]. A k item is a rotation pair (j < half) or one
// unrotated dim (rot_dim + j - half); it writes its rotated values to k and, as f16, to the cache.
__global__ void rope_kv_append_kernel(RopeKvAppendParams p) {
  const int64_t half = p.rot_dim / 2, k_items = half + (p.head_dim - p.rot_dim);
  const int64_t nq = p.n_tok * p.n_head * half, nk = p.n_tok * p.n_kv_head * k_items;
  const int64_t row = p.n_kv_head * p.head_dim;
  int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < nq) {
    const int64_t j = g % half, th = g / half;
    int64_t i0, i1;
    rope_pair(p.q + th * p.head_dim, j, p.rot_dim, p.pos[th / p.n_head], p.freq_base, p.freq_scale, p.style, &i0, &i1);
    return;
  }
  g -= nq;
  if (g < nk) {
    const int64_t j = g % k_items, th = g / k_items, t = th / p.n_kv_head;
    const int32_t pos = p.pos[t];
    float* v = p.k + th * p.head_dim;
    const bool store = pos >= 0 && pos < p.n_ctx;
    uint16_t* dst = p.k_cache + t * p.seq_stride + static_cast<int64_t>(store ? pos : 0) * row + (th % p.n_kv_head) * p.head_dim;
    if (j < half) {
      int64_t i0, i1;
      rope_pair(v, j, p.rot_dim, pos, p.freq_base, p.freq_scale, p.style, &i0, &i1);
      if (store) {
        dst[i0] = __half_as_ushort(__float2half_rn(v[i0]));
        dst[i1] = __half_as_ushort(__float2half_rn(v[i1]));
      }
    } else if (store) {
      const int64_t i = p.rot_dim + (j - half);
      dst[i] = __half_as_ushort(__float2half_rn(v[i]));
    }
    return;
  }
  g -= nk;
  if (g >= p.n_tok * row) return;
  const int64_t t = g / row, i = g - t * row;
  const int32_t pos = p.pos[t];
  if (pos < 0 || pos >= p.n_ctx) return;
  p.v_cache[t * p.seq_stride + static_cast<int64_t>(pos) * row + i] = __half_as_ushort(__float2half_rn(p.v[g]));
}

__global__ void glu_kernel(GluParams p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n) return;
  p.out[i] = glu_value(p.gate[i], p.up[i], static_cast<int>(p.act));  // reduce.cuh
}

// Rows on grid y (strided), V outputs per thread on x (4 where n and ld are multiples of 4 and
// the pointers 16-byte aligned); a row's gate and up halves are ld apart from the next row's.
// No 64-bit division per element (g / n made this 17% slower than glu_kernel).
template <int V>
__global__ void glu_rows_kernel(GluRowsParams p) {
  for (int64_t t = blockIdx.y; t < p.rows; t += gridDim.y) {
    const float* row = p.gate_up + t * p.ld;
    float* out = p.out + t * p.n;
    for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * V; i < p.n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x * V) {
      if constexpr (V == 4) {
        const float4 g = *reinterpret_cast<const float4*>(row + i), u = *reinterpret_cast<const float4*>(row + p.n + i);
        const int a = static_cast<int>(p.act);
        *reinterpret_cast<float4*>(out + i) =
            make_float4(glu_value(g.x, u.x, a), glu_value(g.y, u.y, a), glu_value(g.z, u.z, a), glu_value(g.w, u.w, a));
      } else {
        out[i] = glu_value(row[i], row[p.n + i], static_cast<int>(p.act));  // reduce.cuh, as glu_kernel
      }
    }
  }
}

__global__ void add_kernel(AddParams p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < p.n) p.y[i] = p.a[i] + p.b[i];
}

__global__ void scale_kernel(ScaleParams p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.n) return;
  p.x[i] = p.softcap > 0.0f ? p.softcap * tanhf(p.x[i] / p.softcap) : p.x[i] * p.s;
}

template <DType T>
__global__ void embed_octets(EmbedParams p, int64_t row_bytes) {
  const int64_t n8 = p.n_embd / 8;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= p.n_tok * n8) return;
  const int64_t t = g / n8, k = g - t * n8;
  const int32_t id = p.tokens[t];
  float* out = p.out + t * p.n_embd + 8 * k;
  if (id < 0 || id >= p.n_vocab) {
    for (int i = 0; i < 8; ++i) out[i] = __int_as_float(0x7fc00000);
    return;
  }
  float w[8];
  Quant<T>::load8(static_cast<const uint8_t*>(p.w) + id * row_bytes, k, w);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = p.scale != 1.0f ? w[i] * p.scale : w[i];
}

template <DType T>
__global__ void embed_scalar(EmbedParams p, int64_t row_bytes) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= p.n_tok * p.n_embd) return;
  const int64_t t = g / p.n_embd, i = g - t * p.n_embd;
  const int32_t id = p.tokens[t];
  if (id < 0 || id >= p.n_vocab) {
    p.out[g] = __int_as_float(0x7fc00000);
    return;
  }
  const float w = Quant<T>::load1(static_cast<const uint8_t*>(p.w) + id * row_bytes, i);
  p.out[g] = p.scale != 1.0f ? w * p.scale : w;
}

__global__ void kv_append_kernel(KvAppendParams p) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= p.n_tok * p.row) return;
  const int64_t t = g / p.row, i = g - t * p.row;
  const int32_t pos = p.pos[t];
  if (pos < 0 || pos >= p.n_ctx) return;
  p.dst[t * p.seq_stride + static_cast<int64_t>(pos) * p.row + i] = __half_as_ushort(__float2half_rn(p.src[g]));
}

}  // namespace

Status check_params(const RmsNormParams& p) {
  if (!p.x || !p.y) return invalid_argument("rms_norm: x and y must be set");
  if (p.residual && !p.x_sum_out) return invalid_argument("rms_norm: x_sum_out is required with residual");
  if (p.rows <= 0 || p.n <= 0 || p.rows > INT32_MAX)
    return invalid_argument(fmt("rms_norm: bad shape rows = %lld, n = %lld", (long long)p.rows, (long long)p.n));
  if (!(p.eps >= 0.0f)) return invalid_argument("rms_norm: eps must be >= 0");
  return Status::Ok();
}

cudaError_t launch_rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int threads = p.n >= 4096 ? 1024 : p.n >= 1024 ? 256 : 128;
  const unsigned grid = static_cast<unsigned>(p.rows);
  const int64_t per = (p.n + threads - 1) / threads;
  if (per <= 1) rms_norm_regs<1><<<grid, threads, 0, stream>>>(p);
  else if (per <= 2) rms_norm_regs<2><<<grid, threads, 0, stream>>>(p);
  else if (per <= 4) rms_norm_regs<4><<<grid, threads, 0, stream>>>(p);
  else if (per <= 8) rms_norm_regs<8><<<grid, threads, 0, stream>>>(p);
  else if (per <= 16) rms_norm_regs<16><<<grid, threads, 0, stream>>>(p);
  else rms_norm_kernel<<<grid, threads, 0, stream>>>(p);  // rows longer than 16384
  return cudaGetLastError();
}

Status check_params(const RopeParams& p) {
  if (!p.x || !p.pos) return invalid_argument("rope: x and pos must be set");
  if (p.n_tok <= 0 || p.n_head <= 0 || p.head_dim <= 0)
    return invalid_argument(fmt("rope: bad shape n_tok = %lld, n_head = %lld, head_dim = %lld", (long long)p.n_tok,
                                (long long)p.n_head, (long long)p.head_dim));
  if (p.rot_dim < 0 || p.rot_dim > p.head_dim || p.rot_dim % 2 != 0)
    return invalid_argument(fmt("rope: rot_dim = %lld must be even and in [0, head_dim = %lld]", (long long)p.rot_dim,
                                (long long)p.head_dim));
  if (p.style != RopeStyle::kNormal && p.style != RopeStyle::kNeox) return invalid_argument("rope: unknown style");
  return Status::Ok();
}

cudaError_t launch_rope(const RopeParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int64_t n = p.n_tok * p.n_head * (p.rot_dim / 2);
  if (n == 0) return cudaSuccess;
  rope_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const GluParams& p) {
  if (!p.gate || !p.up || !p.out) return invalid_argument("glu: gate, up and out must be set");
  if (p.n <= 0) return invalid_argument(fmt("glu: n = %lld must be > 0", (long long)p.n));
  if (p.act != GluAct::kSilu && p.act != GluAct::kGeluTanh) return invalid_argument("glu: unknown activation");
  return Status::Ok();
}

cudaError_t launch_glu(const GluParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  glu_kernel<<<blocks_for(p.n, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const GluRowsParams& p) {
  if (!p.gate_up || !p.out) return invalid_argument("glu_rows: gate_up and out must be set");
  if (p.rows <= 0 || p.n <= 0 || p.ld < 2 * p.n)
    return invalid_argument(fmt("glu_rows: bad shape rows = %lld, n = %lld, ld = %lld (ld must be >= 2 n)",
                                (long long)p.rows, (long long)p.n, (long long)p.ld));
  if (p.act != GluAct::kSilu && p.act != GluAct::kGeluTanh) return invalid_argument("glu_rows: unknown activation");
  const auto in_lo = reinterpret_cast<uintptr_t>(p.gate_up);
  const auto in_hi = reinterpret_cast<uintptr_t>(p.gate_up + (p.rows - 1) * p.ld + 2 * p.n);
  const auto out_lo = reinterpret_cast<uintptr_t>(p.out), out_hi = reinterpret_cast<uintptr_t>(p.out + p.rows * p.n);
  if (out_lo < in_hi && in_lo < out_hi) return invalid_argument("glu_rows: out overlaps gate_up");
  return Status::Ok();
}

cudaError_t launch_glu_rows(const GluRowsParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const bool vec4 = p.n % 4 == 0 && p.ld % 4 == 0 &&
                    ((reinterpret_cast<uintptr_t>(p.gate_up) | reinterpret_cast<uintptr_t>(p.out)) & 15) == 0;
  const int64_t per_thread = vec4 ? 4 : 1;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((p.n / per_thread + 255) / 256, 65535)),
                  static_cast<unsigned>(std::min<int64_t>(p.rows, 65535)));
  if (vec4)
    glu_rows_kernel<4><<<grid, 256, 0, stream>>>(p);
  else
    glu_rows_kernel<1><<<grid, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const AddParams& p) {
  if (!p.a || !p.b || !p.y) return invalid_argument("add: a, b and y must be set");
  if (p.n <= 0) return invalid_argument(fmt("add: n = %lld must be > 0", (long long)p.n));
  return Status::Ok();
}

cudaError_t launch_add(const AddParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  add_kernel<<<blocks_for(p.n, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const ScaleParams& p) {
  if (!p.x) return invalid_argument("scale: x must be set");
  if (p.n <= 0) return invalid_argument(fmt("scale: n = %lld must be > 0", (long long)p.n));
  return Status::Ok();
}

cudaError_t launch_scale(const ScaleParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  scale_kernel<<<blocks_for(p.n, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const EmbedParams& p) {
  if (!weight_type_supported(p.w_type)) return unsupported("embed: weight type has no CUDA kernel");
  if (!p.w || !p.tokens || !p.out) return invalid_argument("embed: w, tokens and out must be set");
  if (p.n_vocab <= 0 || p.n_embd <= 0 || p.n_tok <= 0 || dtype_row_bytes(p.w_type, p.n_embd) < 0)
    return invalid_argument(fmt("embed: bad shape n_vocab = %lld, n_embd = %lld, n_tok = %lld", (long long)p.n_vocab,
                                (long long)p.n_embd, (long long)p.n_tok));
  if (!is_plain_type(p.w_type) && (reinterpret_cast<uintptr_t>(p.w) & 15))
    return invalid_argument("embed: quantized weights must be 16-byte aligned");
  return Status::Ok();
}

cudaError_t launch_embed(const EmbedParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int64_t row_bytes = dtype_row_bytes(p.w_type, p.n_embd);
  const bool octets = p.n_embd % 8 == 0 && row_bytes % 16 == 0 && (reinterpret_cast<uintptr_t>(p.w) & 15) == 0;
  cudaError_t err = cudaErrorInvalidValue;
  dispatch_weight_type(p.w_type, [&]<DType T>() {
    if constexpr (is_plain_type(T)) {
      if (!octets) {
        embed_scalar<T><<<blocks_for(p.n_tok * p.n_embd, 256), 256, 0, stream>>>(p, row_bytes);
        err = cudaGetLastError();
        return;
      }
    }
    embed_octets<T><<<blocks_for(p.n_tok * (p.n_embd / 8), 256), 256, 0, stream>>>(p, row_bytes);
    err = cudaGetLastError();
  });
  return err;
}

Status check_params(const KvAppendParams& p) {
  if (!p.src || !p.dst || !p.pos) return invalid_argument("kv_append: src, dst and pos must be set");
  if (p.n_tok <= 0 || p.row <= 0 || p.n_ctx <= 0 || p.seq_stride < 0)
    return invalid_argument(fmt("kv_append: bad shape n_tok = %lld, row = %lld, n_ctx = %lld", (long long)p.n_tok,
                                (long long)p.row, (long long)p.n_ctx));
  if (p.seq_stride != 0 && p.seq_stride < p.n_ctx * p.row)
    return invalid_argument("kv_append: seq_stride is smaller than one sequence's cache");
  return Status::Ok();
}

cudaError_t launch_kv_append(const KvAppendParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  kv_append_kernel<<<blocks_for(p.n_tok * p.row, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

Status check_params(const RopeKvAppendParams& p) {
  if (!p.q || !p.k || !p.v || !p.k_cache || !p.v_cache || !p.pos)
    return invalid_argument("rope_kv_append: q, k, v, k_cache, v_cache and pos must be set");
  if (p.n_tok <= 0 || p.n_head <= 0 || p.n_kv_head <= 0 || p.head_dim <= 0 || p.n_ctx <= 0 || p.seq_stride < 0)
    return invalid_argument(fmt("rope_kv_append: bad shape n_tok = %lld, n_head = %lld, n_kv_head = %lld, "
                                "head_dim = %lld, n_ctx = %lld",
                                (long long)p.n_tok, (long long)p.n_head, (long long)p.n_kv_head, (long long)p.head_dim,
                                (long long)p.n_ctx));
  if (p.rot_dim < 0 || p.rot_dim > p.head_dim || p.rot_dim % 2 != 0)
    return invalid_argument(fmt("rope_kv_append: rot_dim = %lld must be even and in [0, head_dim = %lld]",
                                (long long)p.rot_dim, (long long)p.head_dim));
  if (p.style != RopeStyle::kNormal && p.style != RopeStyle::kNeox)
    return invalid_argument("rope_kv_append: unknown style");
  if (p.seq_stride != 0 && p.seq_stride < p.n_ctx * p.n_kv_head * p.head_dim)
    return invalid_argument("rope_kv_append: seq_stride is smaller than one sequence's cache");
  return Status::Ok();
}

cudaError_t launch_rope_kv_append(const RopeKvAppendParams& p, cudaStream_t stream) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int64_t half = p.rot_dim / 2;
  const int64_t n = p.n_tok * p.n_head * half + p.n_tok * p.n_kv_head * (half + p.head_dim - p.rot_dim) +
                    p.n_tok * p.n_kv_head * p.head_dim;
  rope_kv_append_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace omni::cuda
