// omnirt_gpu_bench whisper [--preset whisper-small-enc] [--type f16] [--reps 10]
// The CUDA Whisper front end and encoder (runtime/model/cuda_whisper.h), median of --reps runs
// after one warm-up:
//   mel30s                 log-mel of 30 s of audio (push all, finish, normalize on the device),
//                          as x real time (30 s / wall time; samples from host memory, rows kept
//                          on the device)
//   <preset>_30s / _1s     the encoder on a 30 s window (3000 frames) and a 1 s chunk (100
//                          frames), device mel in, device rows out, wall time to completion (ms)
// The encoder's weights are a synthetic preset (runtime/model/synthetic_audio.cpp) written to a
// temporary directory and removed after.
//
// omnirt_gpu_bench whisper_decoder [--type f16] [--reps 10]
// CudaWhisperDecoder at Whisper small's text shape (d 768, 12 heads, 12 layers, 51864 tokens;
// random weights, tests/whisper_test_util.h), median of --reps after a warm-up:
//   whisper_small_dec_audio   set_audio of a 30 s window (1500 encoder rows -> every layer's K, V)
//   whisper_small_dec_greedy  one greedy step (one token after a 4-token prompt, logits to the host)
//   whisper_small_dec_beam5   one beam step (5 hypotheses, copied slots, logits to the host)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "bench/gpu/gpu_bench.h"
#include "kernels/core/dtype.h"
#include "kernels/core/thread_pool.h"
#include "runtime/model/audio_loader.h"
#include "runtime/model/cuda_whisper.h"
#include "runtime/model/gguf.h"
#include "tests/whisper_test_util.h"

namespace omni {
namespace {

using Clock = std::chrono::steady_clock;

int fail(const Status& st, const char* what) {
  std::printf("ERROR whisper %s: %s\n", what, st.to_string().c_str());
  return 1;
}

template <class F>
StatusOr<double> median_ms(int reps, F&& run) {
  OMNI_RETURN_IF_ERROR(run());  // warm-up (first-use costs: cuBLASLt heuristics, cuFFT kernels)
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    OMNI_RETURN_IF_ERROR(run());
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int run_whisper(int argc, char** argv) {
  std::string preset = "whisper-small-enc", type_name = "f16";
  int reps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--type") type_name = v;
    else if (k == "--reps") reps = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "whisper: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (reps < 1 || reps > 1000) {
    std::fprintf(stderr, "whisper: --reps must be in [1, 1000]\n");
    return 2;
  }
  DType type = DType::kF16;
  if (type_name == "f32") type = DType::kF32;
  else if (type_name == "bf16") type = DType::kBF16;
  else if (type_name == "q8_0") type = DType::kQ8_0;
  else if (type_name != "f16") {
    std::fprintf(stderr, "whisper: --type must be f32, f16, bf16 or q8_0\n");
    return 2;
  }

  // ---- log-mel of 30 s ----
  const size_t n_samples = 30 * 16000;
  std::vector<float> audio(n_samples);
  std::mt19937 rng(1);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  for (size_t i = 0; i < n_samples; ++i)
    audio[i] = 0.3f * std::sin(2.0f * 3.14159265f * 440.0f * float(i) / 16000.0f) + noise(rng);
  auto mel = CudaLogMel::create(80, 3000);
  if (!mel.ok()) return fail(mel.status(), "log-mel create");
  auto mel_ms = median_ms(reps, [&]() -> Status {
    (*mel)->reset();
    OMNI_RETURN_IF_ERROR((*mel)->push(audio.data(), audio.size(), nullptr));
    OMNI_RETURN_IF_ERROR((*mel)->finish(nullptr));
    return (*mel)->normalize().status();
  });
  if (!mel_ms.ok()) return fail(mel_ms.status(), "log-mel");
  std::printf("RESULT name=mel30s value=%.0f unit=xRT ms=%.3f table=\"log-mel 30 s on GPU (%.2f ms)\" target=\"(info)\"\n",
              30000.0 / *mel_ms, *mel_ms, *mel_ms);

  // ---- encoder ----
  char dir_tmpl[] = "/tmp/omnirt-whisper-bench-XXXXXX";
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/omnirt-whisper-bench-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const char* dir = mkdtemp(buf.data());
  if (!dir) dir = mkdtemp(dir_tmpl);
  if (!dir) return fail(io_error("mkdtemp failed"), "temp dir");
  const std::string path = std::string(dir) + "/enc.gguf";
  {
    gguf::GgufWriter w;
    w.add_string("general.architecture", "clip");
    w.add_bool("omnirt.synthetic", true);
    Status st = add_synthetic_audio_encoder(w, preset, 896, type, 3);
    if (st.ok()) st = w.write(path);
    if (!st.ok()) return fail(st, "synthetic encoder");
  }
  auto model = load_audio_encoder(path);
  unlink(path.c_str());
  rmdir(dir);
  if (!model.ok()) return fail(model.status(), "load encoder");
  const audio::WhisperWeights& ww = (*model)->weights.whisper;
  auto enc = CudaWhisperEncoder::create(ww);
  if (!enc.ok()) return fail(enc.status(), "encoder create");
  const int64_t d = ww.hp.n_audio_state, max_frames = (*enc)->max_frames();
  // Input: the 30 s log-mel above (normalized, on the device), 3000 frames.
  float* out = nullptr;
  if (cudaMalloc(&out, size_t(max_frames / 2 * d) * sizeof(float)) != cudaSuccess)
    return fail(internal_error("cudaMalloc"), "encoder output");
  const float* mel_dev = (*mel)->device_data();
  // Matrix weights per position: 12 d^2 per block, conv2 3 d^2; conv1 (3 n_mels d) runs on 2 frames per position.
  const double per_pos = 12.0 * double(d * d) * double(ww.hp.n_audio_layer) + 3.0 * double(d * d) +
                         2.0 * 3.0 * double(ww.hp.n_mels * d);
  struct Case {
    int64_t frames;
    const char* suffix;
    const char* title;
  };
  const std::string short_name = preset.substr(0, preset.find("-enc")) ;
  const int64_t window = std::min<int64_t>(3000, max_frames);  // a preset with fewer positions: its longest window
  const std::string window_title = window == 3000 ? "30 s window" : fmt("%lld-frame window", (long long)window);
  for (const Case& c : {Case{window, "30s", window_title.c_str()}, Case{100, "1s", "1 s chunk"}}) {
    auto ms = median_ms(reps, [&]() { return (*enc)->encode_device(mel_dev, c.frames, out); });
    if (!ms.ok()) {
      cudaFree(out);
      return fail(ms.status(), "encode");
    }
    // FLOPs: 2 per matrix weight per position + attention (q k^T and p v: 4 n^2 d per block).
    const double n_tok = double(c.frames / 2);
    const double flops = 2.0 * per_pos * n_tok + 4.0 * n_tok * n_tok * double(d) * double(ww.hp.n_audio_layer);
    std::string name = preset;
    for (char& ch : name) if (ch == '-') ch = '_';
    std::printf("RESULT name=%s_%s value=%.3f unit=ms tflops=%.3g table=\"%s encoder %s, %s, GPU\" target=\"(info)\"\n",
                name.c_str(), c.suffix, *ms, flops / (*ms * 1e-3) / 1e12, short_name.c_str(), type_name.c_str(),
                c.title);
  }
  cudaFree(out);
  return 0;
}

int run_whisper_decoder(int argc, char** argv) {
  std::string type_name = "f16";
  int reps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--type") type_name = v;
    else if (k == "--reps") reps = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "whisper_decoder: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  DType type = DType::kF16;
  if (type_name == "f32") type = DType::kF32;
  else if (type_name == "q8_0") type = DType::kQ8_0;
  else if (type_name != "f16") {
    std::fprintf(stderr, "whisper_decoder: --type must be f32, f16 or q8_0\n");
    return 2;
  }
  if (reps < 1 || reps > 1000) {
    std::fprintf(stderr, "whisper_decoder: --reps must be in [1, 1000]\n");
    return 2;
  }
  test::WhisperDecoderShape shape;  // Whisper small's decoder
  shape.d = 768;
  shape.n_head = 12;
  shape.n_layer = 12;
  shape.n_vocab = 51864;
  shape.n_text_ctx = 448;
  shape.d_audio = 768;
  shape.n_audio_ctx = 1500;
  auto hw = test::make_whisper_decoder(shape, type, 5);
  ThreadPool pool(2);
  auto dec = CudaWhisperDecoder::create(hw->w, pool);
  if (!dec.ok()) return fail(dec.status(), "decoder create");
  CudaWhisperDecoder& g = **dec;
  std::vector<float> enc(size_t(shape.n_audio_ctx * shape.d_audio));
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (float& x : enc) x = uni(rng);
  auto audio_ms = median_ms(reps, [&]() { return g.set_audio(enc.data(), shape.n_audio_ctx); });
  if (!audio_ms.ok()) return fail(audio_ms.status(), "set_audio");
  const int beam = 5;
  std::vector<float> logits(size_t(beam * shape.n_vocab));
  const int32_t prompt[4] = {50257, 50362, 440, 1029};
  auto prepare = [&]() -> Status {
    OMNI_RETURN_IF_ERROR(g.reset_slots(2 * beam));
    OMNI_RETURN_IF_ERROR(g.decode_slot(0, prompt, 4, logits.data()));
    for (int b = 1; b < beam; ++b) OMNI_RETURN_IF_ERROR(g.copy_slot(b, 0));
    return Status::Ok();
  };
  if (Status st = prepare(); !st.ok()) return fail(st, "prompt");
  int32_t next = 11;
  auto greedy_ms = median_ms(reps, [&]() -> Status {
    next = (next * 31 + 7) % 50000;
    return g.decode_slot(0, &next, 1, logits.data());
  });
  if (!greedy_ms.ok()) return fail(greedy_ms.status(), "greedy step");
  if (Status st = prepare(); !st.ok()) return fail(st, "prompt");
  const int slots[beam] = {0, 1, 2, 3, 4};
  int32_t toks[beam] = {11, 12, 13, 14, 15};
  auto beam_ms = median_ms(reps, [&]() -> Status {
    for (int32_t& t : toks) t = (t * 31 + 7) % 50000;
    return g.decode_slots(slots, toks, beam, logits.data());
  });
  if (!beam_ms.ok()) return fail(beam_ms.status(), "beam step");
  const double mb = double(g.device_weight_bytes()) / 1e6;
  std::printf("RESULT name=whisper_small_dec_audio value=%.3f unit=ms table=\"whisper small decoder %s, set_audio 1500 rows, "
              "GPU\" target=\"(info)\"\n", *audio_ms, type_name.c_str());
  std::printf("RESULT name=whisper_small_dec_greedy value=%.3f unit=ms table=\"whisper small decoder %s, greedy step "
              "(%.0f MB of weights), GPU\" target=\"(info)\"\n", *greedy_ms, type_name.c_str(), mb);
  std::printf("RESULT name=whisper_small_dec_beam5 value=%.3f unit=ms table=\"whisper small decoder %s, beam-5 step, GPU\" "
              "target=\"(info)\"\n", *beam_ms, type_name.c_str());
  return 0;
}

const bool kRegistered = gpu_bench::add("whisper", "whisper [--preset whisper-small-enc] [--type f16] [--reps 10]",
                                        run_whisper);
const bool kRegisteredDecoder =
    gpu_bench::add("whisper_decoder", "whisper_decoder [--type f16] [--reps 10]", run_whisper_decoder);

}  // namespace
}  // namespace omni
