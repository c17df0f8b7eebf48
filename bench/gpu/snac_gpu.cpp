// omnirt_gpu_bench snac [--type f32|f16] [--reps 10]
// The SNAC 24 kHz decoder on the GPU (runtime/model/cuda_snac.h) at the real shape with random
// weights (synthetic preset snac-24khz, written to a temp dir): wall time of whole decodes of
// 1 s and 10 s of random codes (median of --reps after a warm-up; host latents, copies and the
// final synchronisation included, as a caller sees it) and of a steady-state streaming push of
// one frame group (85.3 ms of audio). Prints RESULT lines for bench/gpu/check.sh.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench.h"
#include "runtime/model/cuda_snac.h"
#include "runtime/model/snac_loader.h"

namespace omni {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

audio::SnacCodes random_codes(int64_t groups, int64_t codebook, uint32_t seed) {
  audio::SnacCodes c(3);
  uint32_t s = seed;
  for (size_t l = 0; l < 3; ++l)
    for (int64_t i = 0; i < groups * (int64_t(1) << l); ++i) {
      s = s * 1664525u + 1013904223u;
      c[l].push_back(int32_t((s >> 8) % uint32_t(codebook)));
    }
  return c;
}

audio::SnacCodes group(const audio::SnacCodes& c, int64_t g) {
  audio::SnacCodes out(3);
  for (size_t l = 0; l < 3; ++l) {
    const int64_t k = int64_t(1) << l;
    out[l].assign(c[l].begin() + g * k, c[l].begin() + (g + 1) * k);
  }
  return out;
}

int fail(const Status& st, const char* what) {
  std::printf("ERROR snac %s: %s\n", what, st.to_string().c_str());
  return 1;
}

int run_snac(int argc, char** argv) {
  std::string type_name = "f32";
  int reps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--type") type_name = v;
    else if (k == "--reps") reps = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "snac: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (reps < 1 || (type_name != "f32" && type_name != "f16")) {
    std::fprintf(stderr, "snac: --type f32|f16, --reps >= 1\n");
    return 2;
  }
  const DType type = type_name == "f16" ? DType::kF16 : DType::kF32;

  const char* tmp = std::getenv("TMPDIR");
  const std::string path =
      std::string(tmp ? tmp : "/tmp") + "/omnirt_snac_gpu_" + std::to_string(::getpid()) + ".gguf";
  if (Status st = create_synthetic_snac("snac-24khz", type, 1, path); !st.ok()) return fail(st, "create model");
  auto model = load_snac(path);
  std::remove(path.c_str());  // the mapping stays valid
  if (!model.ok()) return fail(model.status(), "load model");
  const audio::SnacWeights& w = (*model)->weights;
  auto dec_or = CudaSnacDecoder::create(w);
  if (!dec_or.ok()) return fail(dec_or.status(), "create decoder");
  CudaSnacDecoder& dec = **dec_or;
  const audio::SnacHParams& hp = w.hp;
  const int64_t spg = hp.samples_per_group();

  double rt_1s = 0;
  for (double seconds : {1.0, 10.0}) {
    const int64_t groups = (int64_t(seconds * double(hp.sampling_rate)) + spg - 1) / spg;
    const double audio_s = double(groups * spg) / double(hp.sampling_rate);
    const audio::SnacCodes codes = random_codes(groups, hp.codebook_size, 7);
    std::vector<float> pcm;
    if (Status st = dec.decode(codes, &pcm); !st.ok()) return fail(st, "warm-up decode");
    std::vector<double> ms;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      if (Status st = dec.decode(codes, &pcm); !st.ok()) return fail(st, "decode");
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    const double med = median(ms), xrt = audio_s * 1e3 / med;
    if (seconds == 1.0) rt_1s = xrt;
    std::printf("RESULT name=snac_gpu_decode_%gs value=%.3f unit=ms audio_s=%.3f xrt=%.1f type=%s card=\"%s\"\n",
                seconds, med, audio_s, xrt, type_name.c_str(), dec.device_name().c_str());
    if (seconds == 10.0)
      std::printf("RESULT name=snac_gpu_rt value=%.1f unit=xRT table=\"SNAC 24 kHz decode on GPU (x real time)\" "
                  "probe=\"1 s: %.1fx\" target=\">= 20\"\n",
                  xrt, rt_1s);
  }

  // Streaming: push one frame group at a time; the first pushes fill the receptive field, so
  // time pushes 6.. (steady state: each emits 2048 samples from a window of ~24 latent steps).
  const int warm = 5;
  const audio::SnacCodes codes = random_codes(warm + reps, hp.codebook_size, 9);
  CudaSnacStreamDecoder stream(dec);
  std::vector<float> pcm;
  std::vector<double> ms;
  for (int g = 0; g < warm + reps; ++g) {
    const audio::SnacCodes one = group(codes, g);
    const size_t before = pcm.size();
    const auto t0 = Clock::now();
    if (Status st = stream.push(one, &pcm); !st.ok()) return fail(st, "push");
    const double t = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (g >= warm) {
      ms.push_back(t);
      if (pcm.size() - before != size_t(spg)) {
        std::printf("ERROR snac push emitted %zu samples, expected %lld\n", pcm.size() - before, (long long)spg);
        return 1;
      }
    }
  }
  const double push_ms = median(ms);
  std::printf("RESULT name=snac_gpu_push value=%.3f unit=ms table=\"SNAC streaming push, one frame group\" "
              "probe=\"%.1f ms of audio\" target=\"(info)\"\n",
              push_ms, 1e3 * double(spg) / double(hp.sampling_rate));
  return 0;
}

const bool kRegistered = gpu_bench::add("snac", "snac [--type f32|f16] [--reps 10]", run_snac);

}  // namespace
}  // namespace omni
