// omnirt_gpu_bench attn [--reps 10]
// Prefill attention alone (launch_attn_prefill), both kernels: flash (tensor cores) and tiled
// (CUDA cores, OMNIRT_CUDA_PREFILL_ATTN=tiled), one causal chunk of 512 and of 4096 queries
// from position 0, for qwen2.5-7b's heads (28 q / 4 kv, head_dim 128) and gemma 2's (16 q /
// 8 kv, head_dim 256, softcap 50). Median device time of --reps launches (events around each)
// after a warm-up; TFLOP/s counts the causal FLOPs 2 * 2 * n_head * head_dim * n_q (n_q + 1) / 2.
// Also the relative L2 difference between the two kernels' outputs (flash: f16 operands).
// Prints RESULT lines for bench/gpu/check.sh: one table row per shape (flash TFLOP/s, the tiled
// kernel's as the probe, the speed-up as the ratio).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench.h"
#include "kernels/core/dtype.h"
#include "kernels/cuda/ops_cuda.h"

namespace omni {
namespace {

struct AttnShape {
  const char* name;
  int64_t n_head, n_kv_head, head_dim;
  float softcap;
};

template <class T>
struct DeviceBuf {
  T* p = nullptr;
  explicit DeviceBuf(size_t n) {
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) p = nullptr;
  }
  ~DeviceBuf() {
    if (p) cudaFree(p);
  }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
};

int cuda_fail(cudaError_t e, const char* what) {
  std::printf("ERROR attn %s: %s: %s\n", what, cudaGetErrorName(e), cudaGetErrorString(e));
  return 1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median milliseconds of `reps` launches of the current kernel choice (after one warm-up).
int time_kernel(const cuda::AttnPrefillParams& p, int reps, double* ms_out) {
  cudaEvent_t e0, e1;
  if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) return cuda_fail(cudaGetLastError(), "events");
  int rc = 0;
  std::vector<double> ms;
  cudaError_t err = cuda::launch_attn_prefill(p, nullptr);
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  for (int r = 0; r < reps && err == cudaSuccess; ++r) {
    cudaEventRecord(e0, nullptr);
    err = cuda::launch_attn_prefill(p, nullptr);
    cudaEventRecord(e1, nullptr);
    if (err == cudaSuccess) err = cudaEventSynchronize(e1);
    float t = 0;
    if (err == cudaSuccess) err = cudaEventElapsedTime(&t, e0, e1);
    ms.push_back(t);
  }
  if (err != cudaSuccess) rc = cuda_fail(err, "launch_attn_prefill");
  else *ms_out = median(ms);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return rc;
}

int run_attn(int argc, char** argv) {
  int reps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--reps") reps = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "attn: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (reps < 1) {
    std::fprintf(stderr, "attn: --reps >= 1\n");
    return 2;
  }
  const cuda::PrefillAttnKernel saved = cuda::prefill_attn_kernel();
  const AttnShape shapes[] = {{"qwen2.5-7b", 28, 4, 128, 0.0f}, {"gemma2", 16, 8, 256, 50.0f}};
  for (const AttnShape& s : shapes) {
    for (const int64_t n_q : {int64_t(512), int64_t(4096)}) {
      const int64_t hd = s.head_dim, q_n = n_q * s.n_head * hd, kv_n = n_q * s.n_kv_head * hd;
      std::mt19937 rng(7);
      std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
      std::vector<float> q(static_cast<size_t>(q_n));
      for (float& x : q) x = dist(rng);
      std::vector<uint16_t> k(static_cast<size_t>(kv_n)), v(static_cast<size_t>(kv_n));
      for (uint16_t& x : k) x = f32_to_f16(dist(rng));
      for (uint16_t& x : v) x = f32_to_f16(dist(rng));
      std::vector<int32_t> pos(static_cast<size_t>(n_q));
      std::iota(pos.begin(), pos.end(), 0);
      DeviceBuf<float> dq(q.size()), dout(q.size());
      DeviceBuf<uint16_t> dk(k.size()), dv(v.size());
      DeviceBuf<int32_t> dp(pos.size());
      if (!dq.p || !dout.p || !dk.p || !dv.p || !dp.p) return cuda_fail(cudaErrorMemoryAllocation, "cudaMalloc");
      cudaMemcpy(dq.p, q.data(), q.size() * sizeof(float), cudaMemcpyHostToDevice);
      cudaMemcpy(dk.p, k.data(), k.size() * sizeof(uint16_t), cudaMemcpyHostToDevice);
      cudaMemcpy(dv.p, v.data(), v.size() * sizeof(uint16_t), cudaMemcpyHostToDevice);
      if (cudaError_t e = cudaMemcpy(dp.p, pos.data(), pos.size() * sizeof(int32_t), cudaMemcpyHostToDevice);
          e != cudaSuccess)
        return cuda_fail(e, "upload");
      cuda::AttnPrefillParams p;
      p.q = dq.p;
      p.k = dk.p;
      p.v = dv.p;
      p.pos = dp.p;
      p.out = dout.p;
      p.n_q = n_q;
      p.n_head = s.n_head;
      p.n_kv_head = s.n_kv_head;
      p.head_dim = hd;
      p.scale = 1.0f / std::sqrt(float(hd));
      p.softcap = s.softcap;
      const double flops = 2.0 * 2.0 * double(s.n_head) * double(hd) * double(n_q) * double(n_q + 1) / 2.0;
      double ms[2] = {0, 0};
      std::vector<float> out[2];
      const cuda::PrefillAttnKernel kernels[2] = {cuda::PrefillAttnKernel::kFlash, cuda::PrefillAttnKernel::kTiled};
      for (int i = 0; i < 2; ++i) {
        cuda::set_prefill_attn_kernel(kernels[i]);
        if (int rc = time_kernel(p, reps, &ms[i]); rc != 0) {
          cuda::set_prefill_attn_kernel(saved);
          return rc;
        }
        out[i].resize(q.size());
        if (cudaError_t e = cudaMemcpy(out[i].data(), dout.p, q.size() * sizeof(float), cudaMemcpyDeviceToHost);
            e != cudaSuccess) {
          cuda::set_prefill_attn_kernel(saved);
          return cuda_fail(e, "download");
        }
        std::printf("RESULT name=attn_prefill_%s_%lld_%s value=%.4f unit=ms tflops=%.1f flash=%d\n", s.name,
                    (long long)n_q, i == 0 ? "flash" : "tiled", ms[i], flops / (ms[i] * 1e9),
                    i == 0 ? int(cuda::attn_prefill_uses_flash(p)) : 0);
      }
      double num = 0, den = 0;
      for (size_t j = 0; j < out[0].size(); ++j) {
        const double d = double(out[0][j]) - double(out[1][j]);
        num += d * d;
        den += double(out[1][j]) * out[1][j];
      }
      const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
      const double tf_flash = flops / (ms[0] * 1e9), tf_tiled = flops / (ms[1] * 1e9);
      std::printf("RESULT name=attn_prefill_%s_%lld value=%.1f unit=TFLOP/s flash_ms=%.4f tiled_ms=%.4f "
                  "rel_l2_flash_vs_tiled=%.3g table=\"prefill attention %s %lld q (%lld/%lld heads x %lld), flash\" "
                  "probe=\"tiled %.1f TFLOP/s\" ratio=\"%.1fx\" target=\"(info)\"\n",
                  s.name, (long long)n_q, tf_flash, ms[0], ms[1], rel, s.name, (long long)n_q, (long long)s.n_head,
                  (long long)s.n_kv_head, (long long)hd, tf_tiled, ms[1] / ms[0]);
      std::fflush(stdout);
    }
  }
  cuda::set_prefill_attn_kernel(saved);
  return 0;
}

const bool kRegistered = gpu_bench::add("attn", "attn [--reps 10]", run_attn);

}  // namespace
}  // namespace omni
