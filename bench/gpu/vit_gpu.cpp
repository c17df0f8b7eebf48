// omnirt_gpu_bench vit [--file F] [--preset P] [--reps 20]
// The ViT encoder + adapter on the GPU (runtime/model/cuda_vision.h) for one image at the
// preset's size: siglip-so400m-384 (27 x 27 patches of 14, 27 blocks of width 1152) with BF16
// matrices, written to a temp dir (or the vision file given with --file). Times encode_adapt
// after two warm-ups: median of --reps of the wall time (pixel upload, embeddings download and
// the final synchronisation included, as a caller sees it) and of the GPU time (events around
// the call); then one profiled run splits the GPU time into GEMMs, attention and the rest.
// Twice: the default (tensor-core attention) and with CudaViTOptions::exact_attention.
// Prints RESULT lines for bench/gpu/check.sh.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench.h"
#include "runtime/model/cuda_vision.h"
#include "runtime/model/vision_loader.h"

namespace omni {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int fail(const Status& st, const char* what) {
  std::printf("ERROR vit %s: %s\n", what, st.to_string().c_str());
  return 1;
}

int run_vit(int argc, char** argv) {
  std::string file, preset = "siglip-so400m-384";
  int reps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--file") file = v;
    else if (k == "--preset") preset = v;
    else if (k == "--reps") reps = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "vit: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (reps < 1) {
    std::fprintf(stderr, "vit: --reps >= 1\n");
    return 2;
  }
  std::string path = file;
  const auto t_create = Clock::now();
  if (file.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    path = std::string(tmp ? tmp : "/tmp") + "/omnirt_vit_gpu_" + std::to_string(::getpid()) + ".gguf";
    if (Status st = create_synthetic_vision({preset, DType::kBF16, 1}, path); !st.ok()) return fail(st, "create model");
  }
  auto model = load_vision(path);
  if (file.empty()) std::remove(path.c_str());  // the mapping stays valid
  if (!model.ok()) return fail(model.status(), "load model");
  const vision::ViTWeights& w = (*model)->weights;
  const double create_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_create).count();
  const int side = static_cast<int>(w.hp.image_size);
  vision::PixelTensor px;
  px.width = px.height = side;
  px.chw.resize(size_t(3) * side * side);
  for (size_t i = 0; i < px.chw.size(); ++i) px.chw[i] = std::sin(0.01f * float(i % 9973));

  struct Timing {
    double wall_ms = 0, gpu_ms = 0;
    CudaViTProfile prof;
    int64_t tokens = 0, width = 0;
  };
  // One encoder at a time (the exact one after the default one is gone: one copy of the weights).
  auto measure = [&](bool exact, Timing* t) -> int {
    CudaViTOptions opt;
    opt.exact_attention = exact;
    auto vit_or = CudaViT::create(w, 0, opt);
    if (!vit_or.ok()) return fail(vit_or.status(), "create encoder");
    CudaViT& vit = **vit_or;
    std::vector<float> emb;
    int64_t width = 0;
    for (int i = 0; i < 2; ++i)
      if (Status st = vit.encode_adapt(px, nullptr, &emb, &width); !st.ok()) return fail(st, "warm-up");
    std::vector<double> wall, gpu;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      if (Status st = vit.encode_adapt(px, nullptr, &emb, &width); !st.ok()) return fail(st, "encode");
      wall.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      gpu.push_back(vit.last_gpu_ms());
    }
    t->wall_ms = median(wall);
    t->gpu_ms = median(gpu);
    t->width = width;
    t->tokens = int64_t(emb.size()) / std::max<int64_t>(width, 1);
    vit.set_profiling(true);
    if (Status st = vit.encode_adapt(px, nullptr, &emb, &width); !st.ok()) return fail(st, "profiled encode");
    t->prof = vit.last_profile();
    return 0;
  };
  Timing fast, exact;
  if (int rc = measure(false, &fast)) return rc;
  std::printf("RESULT name=vit_%s_wall value=%.3f unit=ms gpu_ms=%.3f tokens=%lld width=%lld create_ms=%.0f\n",
              preset.c_str(), fast.wall_ms, fast.gpu_ms, (long long)fast.tokens, (long long)fast.width, create_ms);
  std::printf("RESULT name=vit_%s_split value=%.3f unit=ms gemm_ms=%.3f attn_ms=%.3f other_ms=%.3f "
              "note=\"one profiled run, an event pair around every op\"\n",
              preset.c_str(), fast.prof.total_ms, fast.prof.gemm_ms, fast.prof.attn_ms, fast.prof.other_ms);
  if (int rc = measure(true, &exact)) return rc;
  std::printf("RESULT name=vit_%s_exact_attn_wall value=%.3f unit=ms gpu_ms=%.3f gemm_ms=%.3f attn_ms=%.3f "
              "other_ms=%.3f note=\"exact flash attention kernel (CudaViTOptions::exact_attention)\"\n",
              preset.c_str(), exact.wall_ms, exact.gpu_ms, exact.prof.gemm_ms, exact.prof.attn_ms,
              exact.prof.other_ms);
  if (preset == "siglip-so400m-384" && file.empty()) {
    std::printf("RESULT name=vit_siglip384_bf16 value=%.3f unit=ms table=\"ViT siglip-so400m-384 bf16, one image\" "
                "probe=\"gpu %.2f ms: gemm %.2f, attn %.2f (TF32 tensor cores), rest %.2f\" target=\"<= 10 ms\"\n",
                fast.wall_ms, fast.gpu_ms, fast.prof.gemm_ms, fast.prof.attn_ms, fast.prof.other_ms);
    std::printf("RESULT name=vit_siglip384_bf16_exact_attn value=%.3f unit=ms "
                "table=\"ViT siglip-so400m-384 bf16, exact attention kernel\" "
                "probe=\"gpu %.2f ms: gemm %.2f, attn %.2f (flash, CUDA cores), rest %.2f\" "
                "ratio=\"default path %.2fx faster\" target=\"reference for the default row\"\n",
                exact.wall_ms, exact.gpu_ms, exact.prof.gemm_ms, exact.prof.attn_ms, exact.prof.other_ms,
                exact.wall_ms / std::max(fast.wall_ms, 1e-9));
  }
  return 0;
}

const bool kRegistered = gpu_bench::add("vit", "vit [--file F] [--preset P] [--reps 20]", run_vit);

}  // namespace
}  // namespace omni
