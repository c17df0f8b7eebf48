// CudaLogMel and CudaWhisperEncoder: audio/features/log_mel.cpp and
// audio/whisper/whisper_encoder.cpp, step for step, on the CUDA kernels.
#include "runtime/model/cuda_whisper.h"

#if OMNIRT_HAVE_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>

#include "audio/features/log_mel.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/fft_loader.h"
#include "kernels/cuda/ops_audio.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/ops_encoder.h"
#include "kernels/ref/ops_ref.h"

namespace omni {
namespace {

constexpr int kPad = cuda::kMelNFft / 2;  // reflected samples at each end
constexpr int kFftBatch = 512;            // frames per cuFFT execution (the plan's batch)

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

Status launch_status(cudaError_t e, const char* what) { return cuda::cuda_status(e, what); }

// Sums the arena bytes of a list of allocations (each rounded to the arena's 256-byte alignment).
struct Sizer {
  size_t bytes = 0;
  void add(size_t n) { bytes += round_up(std::max<size_t>(n, 1), 256); }
};

}  // namespace

// ---- log-mel ----------------------------------------------------------------------------

struct CudaLogMel::Impl {
  int n_mels = 80;
  int64_t max_frames = 0;
  cuda::Stream stream;
  cuda::DeviceArena arena;
  cuda::PinnedBuffer staging;  // padded samples of one emit, f32
  const cuda::FftApi* fft = nullptr;
  cufftHandle plan = 0;
  bool have_plan = false;
  double* window = nullptr;    // [400]
  float* filters = nullptr;    // [n_mels, 201]
  float* padded = nullptr;     // [max_frames * 160 + 240]
  double* frames = nullptr;    // [round_up(max_frames, 512), 400]
  double* spec = nullptr;      // [round_up(max_frames, 512), 201] complex
  float* rows = nullptr;       // [max_frames, n_mels]
  float* max_value = nullptr;  // [1]
  int64_t n_rows = 0;          // rows kept on the device
  // Host stream state, exactly as audio::LogMel.
  std::vector<float> buf;
  int64_t buf_start = 0;
  bool front_padded = false, finished = false;
  int64_t n_received = 0, next_frame = 0;

  ~Impl() {
    if (have_plan) fft->destroy(plan);
  }
  size_t staging_floats() const { return static_cast<size_t>(max_frames) * cuda::kMelHop + cuda::kMelNFft; }
  Status emit(int64_t end_frame, std::vector<float>* out);
};

CudaLogMel::CudaLogMel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaLogMel::~CudaLogMel() = default;

StatusOr<std::unique_ptr<CudaLogMel>> CudaLogMel::create(int n_mels, int64_t max_frames,
                                                         const CudaWhisperOptions& options) {
  if (n_mels != 80 && n_mels != 128)
    return invalid_argument(fmt("cuda log-mel: n_mels %d is not supported (80 or 128)", n_mels));
  if (max_frames < 1 || max_frames > (int64_t(1) << 22))
    return invalid_argument(fmt("cuda log-mel: max_frames %lld is outside [1, 2^22]", (long long)max_frames));
  OMNI_RETURN_IF_ERROR(cuda::device_count().status());
  OMNI_RETURN_IF_ERROR(cuda::set_device(options.device));
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.n_mels = n_mels;
  m.max_frames = max_frames;
  OMNI_ASSIGN_OR_RETURN(m.fft, cuda::fft_api());
  OMNI_ASSIGN_OR_RETURN(m.stream, cuda::Stream::create());
  const size_t fft_rows = round_up(static_cast<size_t>(max_frames), kFftBatch);
  Sizer s;
  s.add(cuda::kMelNFft * sizeof(double));
  s.add(size_t(n_mels) * cuda::kMelBins * sizeof(float));
  s.add(m.staging_floats() * sizeof(float));
  s.add(fft_rows * cuda::kMelNFft * sizeof(double));
  s.add(fft_rows * cuda::kMelBins * 2 * sizeof(double));
  s.add(size_t(max_frames) * n_mels * sizeof(float));
  s.add(sizeof(float));
  OMNI_ASSIGN_OR_RETURN(m.arena, cuda::DeviceArena::create(s.bytes));
  OMNI_ASSIGN_OR_RETURN(m.window, m.arena.alloc_array<double>(cuda::kMelNFft));
  OMNI_ASSIGN_OR_RETURN(m.filters, m.arena.alloc_array<float>(size_t(n_mels) * cuda::kMelBins));
  OMNI_ASSIGN_OR_RETURN(m.padded, m.arena.alloc_array<float>(m.staging_floats()));
  OMNI_ASSIGN_OR_RETURN(m.frames, m.arena.alloc_array<double>(fft_rows * cuda::kMelNFft));
  OMNI_ASSIGN_OR_RETURN(m.spec, m.arena.alloc_array<double>(fft_rows * cuda::kMelBins * 2));
  OMNI_ASSIGN_OR_RETURN(m.rows, m.arena.alloc_array<float>(size_t(max_frames) * n_mels));
  OMNI_ASSIGN_OR_RETURN(m.max_value, m.arena.alloc_array<float>(1));
  OMNI_ASSIGN_OR_RETURN(m.staging, cuda::PinnedBuffer::create(m.staging_floats() * sizeof(float)));

  std::vector<double> window(cuda::kMelNFft);
  for (int i = 0; i < cuda::kMelNFft; ++i)  // torch.hann_window(400), periodic; as LogMel
    window[i] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / cuda::kMelNFft);
  const std::vector<float> filters = audio::slaney_mel_filters(audio::kWhisperSampleRate, cuda::kMelNFft, n_mels);
  OMNI_RETURN_IF_ERROR(launch_status(
      cudaMemcpy(m.window, window.data(), window.size() * sizeof(double), cudaMemcpyHostToDevice), "log-mel: window"));
  OMNI_RETURN_IF_ERROR(launch_status(
      cudaMemcpy(m.filters, filters.data(), filters.size() * sizeof(float), cudaMemcpyHostToDevice),
      "log-mel: filters"));
  // Frames past the last real one in an FFT batch are transformed too (ignored): keep them finite.
  OMNI_RETURN_IF_ERROR(launch_status(cudaMemset(m.frames, 0, fft_rows * cuda::kMelNFft * sizeof(double)),
                                     "log-mel: clear frames"));

  int n[1] = {cuda::kMelNFft};
  OMNI_RETURN_IF_ERROR(cuda::cufft_status(
      m.fft->plan_many(&m.plan, 1, n, nullptr, 1, cuda::kMelNFft, nullptr, 1, cuda::kMelBins, CUFFT_D2Z, kFftBatch),
      "plan (400-point D2Z)"));
  m.have_plan = true;
  OMNI_RETURN_IF_ERROR(cuda::cufft_status(m.fft->set_stream(m.plan, m.stream.get()), "set stream"));
  // The uploads and the memset above ran on the legacy stream, which our non-blocking stream
  // does not wait for.
  OMNI_RETURN_IF_ERROR(launch_status(cudaDeviceSynchronize(), "log-mel: create"));
  return std::unique_ptr<CudaLogMel>(new CudaLogMel(std::move(impl)));
}

int CudaLogMel::n_mels() const { return impl_->n_mels; }
int64_t CudaLogMel::samples_received() const { return impl_->n_received; }
int64_t CudaLogMel::frames_emitted() const { return impl_->next_frame; }
const float* CudaLogMel::device_data() const { return impl_->rows; }
int64_t CudaLogMel::device_frames() const { return impl_->n_rows; }
void CudaLogMel::clear_frames() { impl_->n_rows = 0; }

void CudaLogMel::reset() {
  Impl& m = *impl_;
  m.buf.clear();
  m.buf_start = 0;
  m.front_padded = m.finished = false;
  m.n_received = m.next_frame = 0;
  m.n_rows = 0;
}

Status CudaLogMel::push(const float* samples, size_t n, std::vector<float>* out) {
  Impl& m = *impl_;
  if (m.finished) return wrong_state("cuda log-mel: push() after finish(); call reset() first");
  if (n > 0 && samples == nullptr) return invalid_argument("cuda log-mel: null samples");
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(samples[i]))
      return invalid_argument(fmt("log-mel: sample %lld of this chunk is %f (not finite)", static_cast<long long>(i),
                                  static_cast<double>(samples[i])));
  }
  const int64_t received = m.n_received + static_cast<int64_t>(n);
  const int64_t end_frame = received > kPad ? (received - kPad) / cuda::kMelHop + 1 : 0;
  if (end_frame > m.next_frame && m.n_rows + (end_frame - m.next_frame) > m.max_frames)
    return out_of_range(fmt("cuda log-mel: %lld new frames do not fit beside the %lld kept (max_frames %lld); "
                            "call clear_frames() first",
                            (long long)(end_frame - m.next_frame), (long long)m.n_rows, (long long)m.max_frames));
  m.buf.insert(m.buf.end(), samples, samples + n);
  m.n_received = received;
  if (!m.front_padded) {
    if (m.n_received <= kPad) return Status::Ok();
    // padded[0..200) = x[200], x[199], ..., x[1]
    std::vector<float> front(m.buf.begin() + 1, m.buf.begin() + kPad + 1);
    std::reverse(front.begin(), front.end());
    m.buf.insert(m.buf.begin(), front.begin(), front.end());
    m.front_padded = true;
  }
  if (end_frame > m.next_frame) return m.emit(end_frame, out);
  return Status::Ok();
}

Status CudaLogMel::finish(std::vector<float>* out) {
  Impl& m = *impl_;
  if (m.finished) return wrong_state("cuda log-mel: finish() called twice; call reset() first");
  if (m.n_received <= kPad)
    return invalid_argument(fmt("log-mel: %lld samples are too few for reflect padding (need > %d)",
                                static_cast<long long>(m.n_received), kPad));
  const int64_t n = m.n_received;
  const int64_t end_frame = n / cuda::kMelHop;  // whisper drops torch.stft's last frame
  if (end_frame > m.next_frame && m.n_rows + (end_frame - m.next_frame) > m.max_frames)
    return out_of_range(fmt("cuda log-mel: %lld last frames do not fit beside the %lld kept (max_frames %lld)",
                            (long long)(end_frame - m.next_frame), (long long)m.n_rows, (long long)m.max_frames));
  m.finished = true;
  // padded[200 + n + j] = x[n - 2 - j], j in [0, 200); x[i] sits at buf[200 + i - buf_start].
  for (int j = 0; j < kPad; ++j) m.buf.push_back(m.buf[static_cast<size_t>(kPad + n - 2 - j - m.buf_start)]);
  if (end_frame > m.next_frame) return m.emit(end_frame, out);
  return Status::Ok();
}

Status CudaLogMel::Impl::emit(int64_t end_frame, std::vector<float>* out) {
  const int64_t nf = end_frame - next_frame;
  const size_t first = static_cast<size_t>(next_frame * cuda::kMelHop - buf_start);
  const size_t n_samples = static_cast<size_t>((nf - 1) * cuda::kMelHop + cuda::kMelNFft);
  cudaStream_t s = stream.get();
  std::memcpy(staging.data(), buf.data() + first, n_samples * sizeof(float));
  OMNI_RETURN_IF_ERROR(launch_status(
      cudaMemcpyAsync(padded, staging.data(), n_samples * sizeof(float), cudaMemcpyHostToDevice, s),
      "log-mel: upload samples"));
  cuda::MelWindowParams wp{padded, window, frames, nf};
  OMNI_RETURN_IF_ERROR(launch_status(cuda::launch_mel_window(wp, s), "log-mel: window"));
  for (int64_t b = 0; b < nf; b += kFftBatch) {
    OMNI_RETURN_IF_ERROR(cuda::cufft_status(
        fft->exec_d2z(plan, frames + b * cuda::kMelNFft, reinterpret_cast<cufftDoubleComplex*>(spec + b * cuda::kMelBins * 2)),
        "exec D2Z"));
  }
  float* dst = rows + n_rows * n_mels;
  cuda::MelFilterParams fp{spec, filters, dst, nf, n_mels};
  OMNI_RETURN_IF_ERROR(launch_status(cuda::launch_mel_filter(fp, s), "log-mel: filters"));
  if (out) {
    const size_t base = out->size();
    out->resize(base + static_cast<size_t>(nf) * n_mels);
    OMNI_RETURN_IF_ERROR(launch_status(cudaMemcpyAsync(out->data() + base, dst, size_t(nf) * n_mels * sizeof(float),
                                                       cudaMemcpyDeviceToHost, s),
                                       "log-mel: download frames"));
  }
  // The staging buffer is reused by the next emit: wait for the upload (and the download).
  OMNI_RETURN_IF_ERROR(stream.synchronize());
  n_rows += nf;
  next_frame = end_frame;
  const int64_t keep_from = next_frame * cuda::kMelHop;  // as LogMel::emit
  if (keep_from > buf_start) {
    const int64_t drop = std::min<int64_t>(keep_from - buf_start, static_cast<int64_t>(buf.size()));
    buf.erase(buf.begin(), buf.begin() + drop);
    buf_start += drop;
  }
  return Status::Ok();
}

StatusOr<float> CudaLogMel::normalize() {
  Impl& m = *impl_;
  if (m.n_rows == 0) return wrong_state("cuda log-mel: normalize() with no frames kept");
  cudaStream_t s = m.stream.get();
  const int64_t n = m.n_rows * m.n_mels;
  OMNI_RETURN_IF_ERROR(launch_status(cuda::launch_max({m.rows, m.max_value, n}, s), "log-mel: max"));
  OMNI_RETURN_IF_ERROR(launch_status(cuda::launch_mel_normalize({m.rows, m.max_value, n}, s), "log-mel: normalize"));
  float mx = 0.0f;
  OMNI_RETURN_IF_ERROR(
      launch_status(cudaMemcpyAsync(&mx, m.max_value, sizeof(float), cudaMemcpyDeviceToHost, s), "log-mel: max"));
  OMNI_RETURN_IF_ERROR(m.stream.synchronize());
  return mx;
}

StatusOr<std::vector<float>> CudaLogMel::download() const {
  const Impl& m = *impl_;
  std::vector<float> out(static_cast<size_t>(m.n_rows) * m.n_mels);
  if (!out.empty())
    OMNI_RETURN_IF_ERROR(launch_status(
        cudaMemcpyAsync(out.data(), m.rows, out.size() * sizeof(float), cudaMemcpyDeviceToHost, m.stream.get()),
        "log-mel: download"));
  OMNI_RETURN_IF_ERROR(m.stream.synchronize());
  return out;
}

StatusOr<std::vector<float>> cuda_whisper_log_mel(const float* audio, size_t n, int n_mels, size_t padding_zeros,
                                                  const CudaWhisperOptions& options) {
  const int64_t n_frames = static_cast<int64_t>((n + padding_zeros) / cuda::kMelHop);
  OMNI_ASSIGN_OR_RETURN(auto mel, CudaLogMel::create(n_mels, std::max<int64_t>(n_frames, 1), options));
  OMNI_RETURN_IF_ERROR(mel->push(audio, n, nullptr));
  const std::vector<float> zeros(16000, 0.0f);
  for (size_t left = padding_zeros; left > 0;) {
    const size_t k = std::min(left, zeros.size());
    OMNI_RETURN_IF_ERROR(mel->push(zeros.data(), k, nullptr));
    left -= k;
  }
  OMNI_RETURN_IF_ERROR(mel->finish(nullptr));
  if (mel->device_frames() > 0) OMNI_RETURN_IF_ERROR(mel->normalize().status());
  return mel->download();
}

// ---- encoder ----------------------------------------------------------------------------

namespace {

struct DevLinear {
  DType type = DType::kF16;
  const void* w = nullptr;     // [n_out, n_in] in `type`
  const float* b = nullptr;    // [n_out] or null
  int64_t n_in = 0, n_out = 0;
};

struct DevNorm {
  const float* w = nullptr;
  const float* b = nullptr;
};

struct DevBlock {
  DevNorm attn_ln, mlp_ln;
  DevLinear qkv, out, mlp0, mlp2;  // qkv: [3d, d] rows q, k, v; its bias has zeros for k
};

// f32 -> f16 as gemm's dequantization does (saturating at +-65504).
std::vector<uint16_t> to_f16(const float* x, size_t n) {
  std::vector<uint16_t> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = f32_to_f16(std::clamp(x[i], -65504.0f, 65504.0f));
  return h;
}

// Shape checks shared by the encoder and the decoder; `who` starts each message.
Status check_matrix(const audio::WhisperMatrix& m, int64_t n_in, int64_t n_out, const char* who, const char* name) {
  if (m.n_in != n_in || m.n_out != n_out || !m.data)
    return invalid_argument(fmt("%s: %s is [%lld, %lld] (want [%lld, %lld])", who, name, (long long)m.n_out,
                                (long long)m.n_in, (long long)n_out, (long long)n_in));
  if (!cuda::weight_type_supported(m.type))
    return unsupported(fmt("%s: %s has type %s, which has no CUDA kernel", who, name, dtype_name(m.type)));
  if (dtype_row_bytes(m.type, n_in) <= 0)
    return invalid_argument(fmt("%s: %s rows of %lld are not whole %s blocks", who, name, (long long)n_in,
                                dtype_name(m.type)));
  return Status::Ok();
}
Status check_linear(const audio::WhisperLinear& l, int64_t n_in, int64_t n_out, const char* who, const char* name) {
  OMNI_RETURN_IF_ERROR(check_matrix(l.w, n_in, n_out, who, name));
  if (!l.b.empty() && l.b.size() != size_t(n_out))
    return invalid_argument(fmt("%s: %s has %zu biases (want %lld)", who, name, l.b.size(), (long long)n_out));
  return Status::Ok();
}
Status check_norm(const audio::WhisperLayerNorm& n, int64_t d, const char* who, const char* name) {
  if (n.w.size() != size_t(d) || n.b.size() != size_t(d))
    return invalid_argument(fmt("%s: %s has %zu weights, %zu biases (want %lld)", who, name, n.w.size(), n.b.size(),
                                (long long)d));
  return Status::Ok();
}
// The parts every Whisper block has: attn_ln, mlp_ln, the self-attention and the MLP.
Status check_block(const audio::WhisperBlock& b, int64_t d, const char* who) {
  OMNI_RETURN_IF_ERROR(check_norm(b.attn_ln, d, who, "attn_ln"));
  OMNI_RETURN_IF_ERROR(check_norm(b.mlp_ln, d, who, "mlp_ln"));
  OMNI_RETURN_IF_ERROR(check_linear(b.attn.query, d, d, who, "attn.query"));
  OMNI_RETURN_IF_ERROR(check_linear(b.attn.key, d, d, who, "attn.key"));
  OMNI_RETURN_IF_ERROR(check_linear(b.attn.value, d, d, who, "attn.value"));
  OMNI_RETURN_IF_ERROR(check_linear(b.attn.out, d, d, who, "attn.out"));
  OMNI_RETURN_IF_ERROR(check_linear(b.mlp0, d, 4 * d, who, "mlp.0"));
  return check_linear(b.mlp2, 4 * d, d, who, "mlp.2");
}

}  // namespace

struct CudaWhisperEncoder::Impl {
  audio::WhisperHParams hp;
  cuda::Stream stream;
  cuda::BlasHandle blas;
  cuda::DeviceArena arena;
  DevLinear conv1, conv2;  // f16 [d, 3 * c_in], im2col layout
  const float* pos = nullptr;  // [n_audio_ctx, d]
  std::vector<DevBlock> blocks;
  DevNorm ln_post;
  size_t weight_bytes = 0;
  // Activations for the longest window (n_tok = n_audio_ctx, n_frames = 2 n_tok).
  float *mel = nullptr, *col = nullptr, *c1 = nullptr, *x = nullptr, *h = nullptr, *qkv = nullptr,
        *attn = nullptr, *mlp = nullptr;
  uint16_t* x_scratch = nullptr;
  uint16_t* w_scratch = nullptr;  // f16 [largest quantized matrix]; null when none is quantized

  Status gemm(const DevLinear& l, const float* x_in, int64_t n_tok, float* y, bool accumulate, bool bias) {
    cuda::GemmParams g;
    g.w_type = l.type;
    g.w = l.w;
    g.x = x_in;
    g.y = y;
    g.bias = bias ? l.b : nullptr;
    g.accumulate = accumulate;
    g.n_out = l.n_out;
    g.n_in = l.n_in;
    g.n_tok = n_tok;
    g.w_scratch = w_scratch;
    g.x_scratch = x_scratch;
    return cuda::gemm_bf16(g, blas);
  }
  Status run(const float* mel_in, int64_t n_frames, float* out, bool final_norm);
  Status encode_host(const float* mel_host, int64_t n_frames, std::vector<float>* out, bool final_norm);
};

CudaWhisperEncoder::CudaWhisperEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaWhisperEncoder::~CudaWhisperEncoder() = default;
int64_t CudaWhisperEncoder::n_state() const { return impl_->hp.n_audio_state; }
int64_t CudaWhisperEncoder::n_mels() const { return impl_->hp.n_mels; }
int64_t CudaWhisperEncoder::max_frames() const { return 2 * impl_->hp.n_audio_ctx; }
size_t CudaWhisperEncoder::device_weight_bytes() const { return impl_->weight_bytes; }

StatusOr<std::unique_ptr<CudaWhisperEncoder>> CudaWhisperEncoder::create(const audio::WhisperWeights& w,
                                                                         const CudaWhisperOptions& options) {
  const audio::WhisperHParams& hp = w.hp;
  const int64_t d = hp.n_audio_state, ctx = hp.n_audio_ctx, n_mels = hp.n_mels;
  if (d <= 0 || ctx <= 0 || n_mels <= 0 || hp.n_audio_head <= 0 || d % hp.n_audio_head != 0)
    return invalid_argument(fmt("cuda whisper encoder: n_audio_state %lld, n_audio_head %lld, n_audio_ctx %lld, "
                                "n_mels %lld do not make an encoder",
                                (long long)d, (long long)hp.n_audio_head, (long long)ctx, (long long)n_mels));
  const int64_t head_dim = d / hp.n_audio_head;
  if (head_dim > cuda::kEncAttnMaxHeadDim)
    return unsupported(fmt("cuda whisper encoder: head size %lld is over the attention kernel's %d",
                           (long long)head_dim, cuda::kEncAttnMaxHeadDim));
  auto conv_ok = [&](const audio::WhisperConv& c, int64_t n_in, const char* name) -> Status {
    if (c.n_in != n_in || c.n_out != d || c.kernel != 3 || c.w.size() != size_t(d * 3 * n_in) || c.b.size() != size_t(d))
      return invalid_argument(fmt("cuda whisper encoder: %s is [%lld, %lld, k %lld] with %zu weights, %zu biases "
                                  "(want [%lld, %lld, k 3])",
                                  name, (long long)c.n_out, (long long)c.n_in, (long long)c.kernel, c.w.size(),
                                  c.b.size(), (long long)d, (long long)n_in));
    return Status::Ok();
  };
  OMNI_RETURN_IF_ERROR(conv_ok(w.conv1, n_mels, "conv1"));
  OMNI_RETURN_IF_ERROR(conv_ok(w.conv2, d, "conv2"));
  if (w.enc_pos.size() < size_t(ctx * d))
    return invalid_argument(fmt("cuda whisper encoder: enc_pos has %zu values (want %lld)", w.enc_pos.size(),
                                (long long)(ctx * d)));
  constexpr const char* kWho = "cuda whisper encoder";
  OMNI_RETURN_IF_ERROR(check_norm(w.enc_ln_post, d, kWho, "ln_post"));
  if (w.enc_blocks.size() != size_t(hp.n_audio_layer))
    return invalid_argument(fmt("cuda whisper encoder: %zu blocks (n_audio_layer %lld)", w.enc_blocks.size(),
                                (long long)hp.n_audio_layer));
  for (const audio::WhisperBlock& b : w.enc_blocks) OMNI_RETURN_IF_ERROR(check_block(b, d, kWho));

  OMNI_RETURN_IF_ERROR(cuda::device_count().status());
  OMNI_RETURN_IF_ERROR(cuda::set_device(options.device));
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.hp = hp;
  OMNI_ASSIGN_OR_RETURN(m.stream, cuda::Stream::create());
  OMNI_ASSIGN_OR_RETURN(m.blas, cuda::BlasHandle::create(m.stream.get()));

  // How each matrix is stored on the device: F32 as f16; q/k/v fused when their types agree,
  // else all three as f16 (decoded on the host, as gemm would decode them to f16).
  auto stored_bytes = [](DType t, int64_t n_out, int64_t n_in) {
    return t == DType::kF32 ? size_t(n_out * n_in * 2) : size_t(dtype_row_bytes(t, n_in) * n_out);
  };
  auto fused_type = [](const audio::WhisperBlock& b) {
    const DType t = b.attn.query.w.type;
    if (b.attn.key.w.type != t || b.attn.value.w.type != t) return DType::kF16;  // re-encoded
    return t == DType::kF32 ? DType::kF16 : t;
  };
  auto is_quant = [](DType t) { return t != DType::kF16 && t != DType::kBF16 && t != DType::kF32; };
  Sizer s;
  size_t w_scratch = 0;
  s.add(size_t(d * 3 * n_mels) * 2);
  s.add(size_t(d * 3 * d) * 2);
  s.add(size_t(d) * 4 * 2);  // conv biases (x2 rounded generously)
  s.add(size_t(ctx * d) * 4);
  for (const audio::WhisperBlock& b : w.enc_blocks) {
    const DType qt = fused_type(b);
    s.add(stored_bytes(qt, 3 * d, d));
    s.add(stored_bytes(b.attn.out.w.type, d, d));
    s.add(stored_bytes(b.mlp0.w.type, 4 * d, d));
    s.add(stored_bytes(b.mlp2.w.type, d, 4 * d));
    for (int i = 0; i < 8; ++i) s.add(size_t(4 * d) * 4);  // norms and biases
    if (is_quant(qt)) w_scratch = std::max(w_scratch, size_t(3 * d * d));
    if (is_quant(b.attn.out.w.type)) w_scratch = std::max(w_scratch, size_t(d * d));
    if (is_quant(b.mlp0.w.type) || is_quant(b.mlp2.w.type)) w_scratch = std::max(w_scratch, size_t(4 * d * d));
  }
  s.add(size_t(d) * 4 * 2);
  s.bytes += (w.enc_blocks.size() * 16 + 16) * 256;  // slack: every allocation rounds to 256 bytes
  const size_t weights_end = s.bytes;
  const int64_t n_frames = 2 * ctx;
  const size_t col_floats = size_t(std::max(n_frames * 3 * n_mels, ctx * 3 * d));
  const size_t xs = size_t(std::max({n_frames * 3 * n_mels, ctx * 3 * d, ctx * 4 * d}));
  s.add(size_t(n_frames * n_mels) * 4);
  s.add(col_floats * 4);
  s.add(size_t(n_frames * d) * 4);
  for (int i = 0; i < 3; ++i) s.add(size_t(ctx * d) * 4);  // x, h, attn
  s.add(size_t(ctx * 3 * d) * 4);
  s.add(size_t(ctx * 4 * d) * 4);
  s.add(xs * 2);
  s.add(w_scratch * 2);
  OMNI_ASSIGN_OR_RETURN(m.arena, cuda::DeviceArena::create(s.bytes));

  auto upload = [&](const void* host, size_t bytes) -> StatusOr<void*> {
    OMNI_ASSIGN_OR_RETURN(void* dev, m.arena.alloc(bytes));
    OMNI_RETURN_IF_ERROR(launch_status(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice), "whisper: upload"));
    return dev;
  };
  auto upload_f32 = [&](const std::vector<float>& v) -> StatusOr<const float*> {
    OMNI_ASSIGN_OR_RETURN(void* p, upload(v.data(), v.size() * sizeof(float)));
    return static_cast<const float*>(p);
  };
  auto upload_conv = [&](const audio::WhisperConv& c, DevLinear* l) -> Status {
    const std::vector<uint16_t> h = to_f16(c.w.data(), c.w.size());
    OMNI_ASSIGN_OR_RETURN(l->w, upload(h.data(), h.size() * 2));
    OMNI_ASSIGN_OR_RETURN(l->b, upload_f32(c.b));
    l->type = DType::kF16;
    l->n_in = 3 * c.n_in;
    l->n_out = c.n_out;
    return Status::Ok();
  };
  auto upload_linear = [&](const audio::WhisperLinear& src, DevLinear* l) -> Status {
    const audio::WhisperMatrix& mt = src.w;
    l->n_in = mt.n_in;
    l->n_out = mt.n_out;
    if (mt.type == DType::kF32) {
      const std::vector<uint16_t> h = to_f16(static_cast<const float*>(mt.data), size_t(mt.n_in * mt.n_out));
      OMNI_ASSIGN_OR_RETURN(l->w, upload(h.data(), h.size() * 2));
      l->type = DType::kF16;
    } else {
      OMNI_ASSIGN_OR_RETURN(l->w, upload(mt.data, stored_bytes(mt.type, mt.n_out, mt.n_in)));
      l->type = mt.type;
    }
    if (!src.b.empty()) {
      OMNI_ASSIGN_OR_RETURN(l->b, upload_f32(src.b));
    }
    return Status::Ok();
  };
  OMNI_RETURN_IF_ERROR(upload_conv(w.conv1, &m.conv1));
  OMNI_RETURN_IF_ERROR(upload_conv(w.conv2, &m.conv2));
  OMNI_ASSIGN_OR_RETURN(void* pos, upload(w.enc_pos.data(), size_t(ctx * d) * sizeof(float)));
  m.pos = static_cast<const float*>(pos);
  for (const audio::WhisperBlock& b : w.enc_blocks) {
    DevBlock db;
    OMNI_ASSIGN_OR_RETURN(db.attn_ln.w, upload_f32(b.attn_ln.w));
    OMNI_ASSIGN_OR_RETURN(db.attn_ln.b, upload_f32(b.attn_ln.b));
    OMNI_ASSIGN_OR_RETURN(db.mlp_ln.w, upload_f32(b.mlp_ln.w));
    OMNI_ASSIGN_OR_RETURN(db.mlp_ln.b, upload_f32(b.mlp_ln.b));
    // q/k/v rows one after another; bias [bq | bk or 0 | bv] (Whisper's key has none).
    const audio::WhisperLinear* parts[3] = {&b.attn.query, &b.attn.key, &b.attn.value};
    const DType qt = fused_type(b);
    std::vector<uint8_t> bytes;
    for (const audio::WhisperLinear* p : parts) {
      const audio::WhisperMatrix& mt = p->w;
      if (qt == mt.type) {
        const auto* src = static_cast<const uint8_t*>(mt.data);
        bytes.insert(bytes.end(), src, src + stored_bytes(mt.type, d, d));
      } else {  // F32, or types that differ: decode to f32, store f16
        std::vector<float> row(static_cast<size_t>(d));
        const int64_t rb = dtype_row_bytes(mt.type, d);
        for (int64_t o = 0; o < d; ++o) {
          ref::dequantize_row(mt.type, static_cast<const uint8_t*>(mt.data) + o * rb, row.data(), d);
          const std::vector<uint16_t> h = to_f16(row.data(), row.size());
          const auto* hb = reinterpret_cast<const uint8_t*>(h.data());
          bytes.insert(bytes.end(), hb, hb + h.size() * 2);
        }
      }
    }
    OMNI_ASSIGN_OR_RETURN(db.qkv.w, upload(bytes.data(), bytes.size()));
    db.qkv.type = qt;
    db.qkv.n_in = d;
    db.qkv.n_out = 3 * d;
    std::vector<float> bias(size_t(3 * d), 0.0f);
    for (int i = 0; i < 3; ++i)
      if (!parts[i]->b.empty()) std::copy(parts[i]->b.begin(), parts[i]->b.end(), bias.begin() + i * d);
    OMNI_ASSIGN_OR_RETURN(db.qkv.b, upload_f32(bias));
    OMNI_RETURN_IF_ERROR(upload_linear(b.attn.out, &db.out));
    OMNI_RETURN_IF_ERROR(upload_linear(b.mlp0, &db.mlp0));
    OMNI_RETURN_IF_ERROR(upload_linear(b.mlp2, &db.mlp2));
    m.blocks.push_back(db);
  }
  OMNI_ASSIGN_OR_RETURN(m.ln_post.w, upload_f32(w.enc_ln_post.w));
  OMNI_ASSIGN_OR_RETURN(m.ln_post.b, upload_f32(w.enc_ln_post.b));
  m.weight_bytes = m.arena.used();
  if (m.weight_bytes > weights_end) return internal_error("cuda whisper encoder: weight sizing is wrong");

  OMNI_ASSIGN_OR_RETURN(m.mel, m.arena.alloc_array<float>(size_t(n_frames * n_mels)));
  OMNI_ASSIGN_OR_RETURN(m.col, m.arena.alloc_array<float>(col_floats));
  OMNI_ASSIGN_OR_RETURN(m.c1, m.arena.alloc_array<float>(size_t(n_frames * d)));
  OMNI_ASSIGN_OR_RETURN(m.x, m.arena.alloc_array<float>(size_t(ctx * d)));
  OMNI_ASSIGN_OR_RETURN(m.h, m.arena.alloc_array<float>(size_t(ctx * d)));
  OMNI_ASSIGN_OR_RETURN(m.attn, m.arena.alloc_array<float>(size_t(ctx * d)));
  OMNI_ASSIGN_OR_RETURN(m.qkv, m.arena.alloc_array<float>(size_t(ctx * 3 * d)));
  OMNI_ASSIGN_OR_RETURN(m.mlp, m.arena.alloc_array<float>(size_t(ctx * 4 * d)));
  OMNI_ASSIGN_OR_RETURN(m.x_scratch, m.arena.alloc_array<uint16_t>(xs));
  if (w_scratch > 0) {
    OMNI_ASSIGN_OR_RETURN(m.w_scratch, m.arena.alloc_array<uint16_t>(w_scratch));
  }
  // Pageable uploads may still be in flight on the legacy stream, which ours does not wait for.
  OMNI_RETURN_IF_ERROR(launch_status(cudaDeviceSynchronize(), "whisper: upload weights"));
  return std::unique_ptr<CudaWhisperEncoder>(new CudaWhisperEncoder(std::move(impl)));
}

Status CudaWhisperEncoder::Impl::run(const float* mel_in, int64_t n_frames, float* out, bool final_norm) {
  if (n_frames < 2 || n_frames % 2 != 0 || n_frames > 2 * hp.n_audio_ctx)
    return invalid_argument(fmt("whisper encoder: %lld mel frames (need an even count in [2, %lld])",
                                static_cast<long long>(n_frames), static_cast<long long>(2 * hp.n_audio_ctx)));
  if (!mel_in || !out) return invalid_argument("cuda whisper encoder: null mel or out");
  const int64_t d = hp.n_audio_state, n_tok = n_frames / 2, n_head = hp.n_audio_head, head_dim = d / n_head;
  cudaStream_t s = stream.get();
  auto ok = [](cudaError_t e, const char* what) { return launch_status(e, what); };

  // Conv stem: im2col + GEMM, bias + GELU (erf), twice (stride 1, then 2); + positions.
  cuda::Im2colParams ic{mel_in, col, n_frames, hp.n_mels, 3, 1};
  OMNI_RETURN_IF_ERROR(ok(cuda::launch_im2col(ic, s), "whisper: im2col conv1"));
  OMNI_RETURN_IF_ERROR(gemm(conv1, col, n_frames, c1, false, false));
  cuda::BiasActParams ba{c1, conv1.b, n_frames, d, cuda::EncAct::kGeluErf};
  OMNI_RETURN_IF_ERROR(ok(cuda::launch_bias_act(ba, s), "whisper: conv1 gelu"));
  ic = {c1, col, n_frames, d, 3, 2};
  OMNI_RETURN_IF_ERROR(ok(cuda::launch_im2col(ic, s), "whisper: im2col conv2"));
  OMNI_RETURN_IF_ERROR(gemm(conv2, col, n_tok, x, false, false));
  ba = {x, conv2.b, n_tok, d, cuda::EncAct::kGeluErf};
  OMNI_RETURN_IF_ERROR(ok(cuda::launch_bias_act(ba, s), "whisper: conv2 gelu"));
  OMNI_RETURN_IF_ERROR(ok(cuda::launch_add({x, pos, x, n_tok * d}, s), "whisper: positions"));

  for (const DevBlock& b : blocks) {
    cuda::LayerNormParams ln{x, h, b.attn_ln.w, b.attn_ln.b, n_tok, d, 1e-5f};
    OMNI_RETURN_IF_ERROR(ok(cuda::launch_layer_norm(ln, s), "whisper: attn_ln"));
    OMNI_RETURN_IF_ERROR(gemm(b.qkv, h, n_tok, qkv, false, true));
    cuda::AttnFullParams ap;
    ap.q = qkv;
    ap.k = qkv + d;
    ap.v = qkv + 2 * d;
    ap.out = attn;
    ap.n_q = ap.n_kv = n_tok;
    ap.n_head = ap.n_kv_head = n_head;
    ap.head_dim = head_dim;
    ap.q_stride = ap.kv_stride = 3 * d;
    ap.out_stride = d;
    ap.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    // Tensor-core attention (cuBLAS TF32, ops_encoder.h) with the scores in `mlp`, free until
    // the MLP: its n_tok x 4d floats hold 4d / n_tok heads of n_tok x n_tok (2 for small at
    // 1500 frames, chunked); OMNIRT_ENCODER_ATTN=exact keeps the exact flash kernel.
    const int64_t mlp_floats = n_tok * 4 * d;
    if (!cuda::encoder_attn_exact_env() && mlp_floats >= n_tok * n_tok) {
      OMNI_RETURN_IF_ERROR(cuda::attn_full_fast(cuda::AttnFastParams{ap, mlp, mlp_floats}, blas));
    } else {
      OMNI_RETURN_IF_ERROR(ok(cuda::launch_attn_full(ap, s), "whisper: attention"));
    }
    OMNI_RETURN_IF_ERROR(gemm(b.out, attn, n_tok, x, true, true));  // x += W_o attn + b_o

    ln = {x, h, b.mlp_ln.w, b.mlp_ln.b, n_tok, d, 1e-5f};
    OMNI_RETURN_IF_ERROR(ok(cuda::launch_layer_norm(ln, s), "whisper: mlp_ln"));
    OMNI_RETURN_IF_ERROR(gemm(b.mlp0, h, n_tok, mlp, false, false));
    ba = {mlp, b.mlp0.b, n_tok, 4 * d, cuda::EncAct::kGeluErf};
    OMNI_RETURN_IF_ERROR(ok(cuda::launch_bias_act(ba, s), "whisper: mlp gelu"));
    OMNI_RETURN_IF_ERROR(gemm(b.mlp2, mlp, n_tok, x, true, true));  // x += W_2 mlp + b_2
  }
  if (final_norm) {
    cuda::LayerNormParams ln{x, out, ln_post.w, ln_post.b, n_tok, d, 1e-5f};
    OMNI_RETURN_IF_ERROR(ok(cuda::launch_layer_norm(ln, s), "whisper: ln_post"));
  } else {
    OMNI_RETURN_IF_ERROR(ok(cudaMemcpyAsync(out, x, size_t(n_tok * d) * sizeof(float), cudaMemcpyDeviceToDevice, s),
                            "whisper: copy out"));
  }
  return stream.synchronize();
}

Status CudaWhisperEncoder::encode_device(const float* mel, int64_t n_frames, float* out, bool final_norm) {
  return impl_->run(mel, n_frames, out, final_norm);
}

Status CudaWhisperEncoder::Impl::encode_host(const float* mel_host, int64_t n_frames, std::vector<float>* out,
                                             bool final_norm) {
  Impl& m = *this;
  const float* mel = mel_host;
  if (n_frames < 2 || n_frames % 2 != 0 || n_frames > 2 * hp.n_audio_ctx)
    return invalid_argument(fmt("whisper encoder: %lld mel frames (need an even count in [2, %lld])",
                                static_cast<long long>(n_frames), static_cast<long long>(2 * hp.n_audio_ctx)));
  if (!mel || !out) return invalid_argument("cuda whisper encoder: null mel or out");
  for (int64_t i = 0; i < n_frames * hp.n_mels; ++i) {
    if (!std::isfinite(mel[i]))
      return invalid_argument(fmt("whisper encoder: mel value %lld is not finite", static_cast<long long>(i)));
  }
  cudaStream_t s = m.stream.get();
  OMNI_RETURN_IF_ERROR(launch_status(cudaMemcpyAsync(m.mel, mel, size_t(n_frames * hp.n_mels) * sizeof(float),
                                                     cudaMemcpyHostToDevice, s),
                                     "whisper: upload mel"));
  // The result goes to the attention buffer ([n_tok, d] fits), then to the host.
  OMNI_RETURN_IF_ERROR(m.run(m.mel, n_frames, m.attn, final_norm));
  const int64_t n = n_frames / 2 * hp.n_audio_state;
  out->resize(static_cast<size_t>(n));
  OMNI_RETURN_IF_ERROR(launch_status(
      cudaMemcpyAsync(out->data(), m.attn, size_t(n) * sizeof(float), cudaMemcpyDeviceToHost, s), "whisper: download"));
  return m.stream.synchronize();
}

Status CudaWhisperEncoder::encode(const float* mel, int64_t n_frames, std::vector<float>* out) {
  return impl_->encode_host(mel, n_frames, out, true);
}
Status CudaWhisperEncoder::encode_before_final_norm(const float* mel, int64_t n_frames, std::vector<float>* out) {
  return impl_->encode_host(mel, n_frames, out, false);
}

// ---- decoder ----------------------------------------------------------------------------

namespace {
constexpr int64_t kDecRows = cuda::kMatvecMaxTokens;  // rows per forward pass (prompt chunk, beams)
enum class LogitRows { kNone, kLast, kAll };
}  // namespace

struct CudaWhisperDecoder::Impl {
  audio::WhisperHParams hp;
  ThreadPool* pool = nullptr;
  cuda::Stream stream;
  cuda::DeviceArena arena;       // weights, then the work buffers
  cuda::DeviceArena slot_arena;  // the slots' self-attention caches
  struct Block {
    DevNorm attn_ln, cross_ln, mlp_ln;
    DevLinear q, k, v, o, cq, ck, cv, co, mlp0, mlp2;
  };
  DevLinear emb;                 // [n_vocab, d]: the token embedding and the output projection
  const float* pos = nullptr;    // [n_text_ctx, d]
  std::vector<Block> blocks;
  DevNorm ln;
  size_t weight_bytes = 0;
  // Work buffers for kDecRows rows; the audio input and every layer's cross K / V.
  float *x = nullptr, *h = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *attn = nullptr, *mlp = nullptr,
        *logits = nullptr, *audio = nullptr, *cross_k = nullptr, *cross_v = nullptr;
  int32_t* tok = nullptr;
  int64_t n_audio = 0;
  float* cache = nullptr;        // [n_slots][k, v][n_text_layer][n_text_ctx, d]
  std::vector<int64_t> n_past;   // per slot

  int64_t d() const { return hp.n_text_state; }
  size_t layer_floats() const { return size_t(hp.n_text_ctx * hp.n_text_state); }
  float* kc(int slot, int64_t l) { return cache + (size_t(slot) * 2 * size_t(hp.n_text_layer) + size_t(l)) * layer_floats(); }
  float* vc(int slot, int64_t l) {
    return cache + ((size_t(slot) * 2 + 1) * size_t(hp.n_text_layer) + size_t(l)) * layer_floats();
  }
  float* cross(float* base, int64_t l) { return base + size_t(l) * size_t(hp.n_audio_ctx * d()); }

  Status mv(const DevLinear& l, const float* in, int64_t rows, float* out, bool accumulate) {
    cuda::MatvecParams p;
    p.w_type = l.type;
    p.w = l.w;
    p.x = in;
    p.y = out;
    p.bias = l.b;
    p.accumulate = accumulate;
    p.n_out = l.n_out;
    p.n_in = l.n_in;
    p.n_tok = rows;
    return launch_status(cuda::launch_matvec(p, stream.get()), "whisper decoder: matvec");
  }
  Status layer_norm(const float* in, float* out, const DevNorm& n, int64_t rows) {
    cuda::LayerNormParams p{in, out, n.w, n.b, rows, d(), 1e-5f};
    return launch_status(cuda::launch_layer_norm(p, stream.get()), "whisper decoder: layer norm");
  }
  // out [n_q, d] = per head softmax(q k^T / sqrt(head_dim)) v over the first n_kv rows of k, v.
  Status attend(const float* q_in, int64_t n_q, const float* k_in, const float* v_in, int64_t n_kv, float* out) {
    cuda::AttnFullParams ap;
    ap.q = q_in;
    ap.k = k_in;
    ap.v = v_in;
    ap.out = out;
    ap.n_q = n_q;
    ap.n_kv = n_kv;
    ap.n_head = ap.n_kv_head = hp.n_text_head;
    ap.head_dim = d() / hp.n_text_head;
    ap.q_stride = ap.kv_stride = ap.out_stride = d();
    ap.scale = 1.0f / std::sqrt(static_cast<float>(ap.head_dim));
    return launch_status(cuda::launch_attn_full(ap, stream.get()), "whisper decoder: attention");
  }
  Status copy(float* dst, const float* src, int64_t floats, cudaMemcpyKind kind, const char* what) {
    return launch_status(cudaMemcpyAsync(dst, src, size_t(floats) * sizeof(float), kind, stream.get()), what);
  }

  Status check_slot(int slot) const { return audio::whisper_check_slot(slot, n_past.size()); }
  // Rows r in [0, m): token tokens[r] at position positions[r] of slot slots[r]'s cache (the
  // rows of one slot in increasing positions). Logits of the last row or of all rows to the host.
  Status forward(const int32_t* tokens, const int* slots, const int64_t* positions, int64_t m, LogitRows which,
                 float* logits_host);
  Status decode(int slot, const int32_t* tokens, int64_t n, float* logits, bool all_logits);
};

Status CudaWhisperDecoder::Impl::forward(const int32_t* tokens, const int* slots, const int64_t* positions, int64_t m,
                                         LogitRows which, float* logits_host) {
  cudaStream_t s = stream.get();
  const int64_t dd = d();
  auto ok = [](cudaError_t e, const char* what) { return launch_status(e, what); };
  OMNI_RETURN_IF_ERROR(ok(cudaMemcpyAsync(tok, tokens, size_t(m) * sizeof(int32_t), cudaMemcpyHostToDevice, s),
                          "whisper decoder: tokens"));
  cuda::EmbedParams ep;
  ep.w_type = emb.type;
  ep.w = emb.w;
  ep.tokens = tok;
  ep.out = x;
  ep.n_vocab = hp.n_vocab;
  ep.n_embd = dd;
  ep.n_tok = m;
  OMNI_RETURN_IF_ERROR(ok(cuda::launch_embed(ep, s), "whisper decoder: embedding"));
  bool consecutive = true;
  for (int64_t r = 1; r < m; ++r) consecutive = consecutive && positions[r] == positions[0] + r;
  if (consecutive) {
    OMNI_RETURN_IF_ERROR(ok(cuda::launch_add({x, pos + positions[0] * dd, x, m * dd}, s), "whisper decoder: positions"));
  } else {
    for (int64_t r = 0; r < m; ++r)
      OMNI_RETURN_IF_ERROR(
          ok(cuda::launch_add({x + r * dd, pos + positions[r] * dd, x + r * dd, dd}, s), "whisper decoder: positions"));
  }
  for (size_t l = 0; l < blocks.size(); ++l) {
    const Block& b = blocks[l];
    const auto li = static_cast<int64_t>(l);
    // Self-attention: k, v of the new rows into their caches first, so that row r sees the rows
    // of its own slot up to its position (causal within a prompt chunk).
    OMNI_RETURN_IF_ERROR(layer_norm(x, h, b.attn_ln, m));
    OMNI_RETURN_IF_ERROR(mv(b.q, h, m, q, false));
    OMNI_RETURN_IF_ERROR(mv(b.k, h, m, k, false));
    OMNI_RETURN_IF_ERROR(mv(b.v, h, m, v, false));
    for (int64_t r = 0; r < m; ++r) {
      OMNI_RETURN_IF_ERROR(copy(kc(slots[r], li) + positions[r] * dd, k + r * dd, dd, cudaMemcpyDeviceToDevice,
                                "whisper decoder: k to cache"));
      OMNI_RETURN_IF_ERROR(copy(vc(slots[r], li) + positions[r] * dd, v + r * dd, dd, cudaMemcpyDeviceToDevice,
                                "whisper decoder: v to cache"));
    }
    for (int64_t r = 0; r < m; ++r)
      OMNI_RETURN_IF_ERROR(attend(q + r * dd, 1, kc(slots[r], li), vc(slots[r], li), positions[r] + 1, attn + r * dd));
    OMNI_RETURN_IF_ERROR(mv(b.o, attn, m, x, true));  // x += W_o attn + b_o
    // Cross-attention over the audio.
    OMNI_RETURN_IF_ERROR(layer_norm(x, h, b.cross_ln, m));
    OMNI_RETURN_IF_ERROR(mv(b.cq, h, m, q, false));
    OMNI_RETURN_IF_ERROR(attend(q, m, cross(cross_k, li), cross(cross_v, li), n_audio, attn));
    OMNI_RETURN_IF_ERROR(mv(b.co, attn, m, x, true));
    // MLP.
    OMNI_RETURN_IF_ERROR(layer_norm(x, h, b.mlp_ln, m));
    OMNI_RETURN_IF_ERROR(mv(b.mlp0, h, m, mlp, false));
    cuda::BiasActParams ba{mlp, nullptr, m, 4 * dd, cuda::EncAct::kGeluErf};
    OMNI_RETURN_IF_ERROR(ok(cuda::launch_bias_act(ba, s), "whisper decoder: gelu"));
    OMNI_RETURN_IF_ERROR(mv(b.mlp2, mlp, m, x, true));
  }
  if (which != LogitRows::kNone) {
    const int64_t first = which == LogitRows::kAll ? 0 : m - 1, rows = m - first;
    OMNI_RETURN_IF_ERROR(layer_norm(x + first * dd, h, ln, rows));
    OMNI_RETURN_IF_ERROR(mv(emb, h, rows, logits, false));
    OMNI_RETURN_IF_ERROR(copy(logits_host, logits, rows * hp.n_vocab, cudaMemcpyDeviceToHost, "whisper decoder: logits"));
  }
  return stream.synchronize();
}

Status CudaWhisperDecoder::Impl::decode(int slot, const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
  if (n_audio == 0) return wrong_state("whisper decoder: decode() before set_audio()");
  if (n < 1) return invalid_argument(fmt("whisper decoder: %lld tokens", (long long)n));
  if (!logits) return invalid_argument("cuda whisper decoder: null logits");
  OMNI_RETURN_IF_ERROR(check_slot(slot));
  OMNI_RETURN_IF_ERROR(audio::whisper_check_tokens(tokens, n, hp.n_vocab));
  int64_t& past = n_past[size_t(slot)];
  if (past + n > hp.n_text_ctx)
    return out_of_range(fmt("whisper decoder: %lld + %lld tokens exceed the text context of %lld", (long long)past,
                            (long long)n, (long long)hp.n_text_ctx));
  int slots[kDecRows];
  int64_t positions[kDecRows];
  std::fill(slots, slots + kDecRows, slot);
  for (int64_t c0 = 0; c0 < n; c0 += kDecRows) {
    const int64_t m = std::min(kDecRows, n - c0);
    for (int64_t r = 0; r < m; ++r) positions[r] = past + r;
    const bool last = c0 + m == n;
    const LogitRows which = all_logits ? LogitRows::kAll : (last ? LogitRows::kLast : LogitRows::kNone);
    OMNI_RETURN_IF_ERROR(forward(tokens + c0, slots, positions, m, which, all_logits ? logits + c0 * hp.n_vocab : logits));
    past += m;
  }
  return Status::Ok();
}

CudaWhisperDecoder::CudaWhisperDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaWhisperDecoder::~CudaWhisperDecoder() = default;
ThreadPool& CudaWhisperDecoder::pool() const { return *impl_->pool; }
size_t CudaWhisperDecoder::device_weight_bytes() const { return impl_->weight_bytes; }

StatusOr<std::unique_ptr<CudaWhisperDecoder>> CudaWhisperDecoder::create(const audio::WhisperWeights& w,
                                                                         ThreadPool& pool,
                                                                         const CudaWhisperOptions& options) {
  const audio::WhisperHParams& hp = w.hp;
  const int64_t d = hp.n_text_state, da = hp.n_audio_state;
  if (d <= 0 || da <= 0 || hp.n_text_head <= 0 || d % hp.n_text_head != 0 || hp.n_text_ctx <= 0 ||
      hp.n_audio_ctx <= 0 || hp.n_vocab <= 0 || hp.n_text_layer <= 0)
    return invalid_argument(fmt("cuda whisper decoder: n_text_state %lld, n_text_head %lld, n_text_ctx %lld, "
                                "n_text_layer %lld, n_vocab %lld, n_audio_state %lld do not make a decoder",
                                (long long)d, (long long)hp.n_text_head, (long long)hp.n_text_ctx,
                                (long long)hp.n_text_layer, (long long)hp.n_vocab, (long long)da));
  if (d / hp.n_text_head > cuda::kEncAttnMaxHeadDim)
    return unsupported(fmt("cuda whisper decoder: head size %lld is over the attention kernel's %d",
                           (long long)(d / hp.n_text_head), cuda::kEncAttnMaxHeadDim));
  constexpr const char* kWho = "cuda whisper decoder";
  OMNI_RETURN_IF_ERROR(check_matrix(w.token_embedding, d, hp.n_vocab, kWho, "token_embedding"));
  if (w.dec_pos.size() < size_t(hp.n_text_ctx * d))
    return invalid_argument(fmt("cuda whisper decoder: dec_pos has %zu values (want %lld)", w.dec_pos.size(),
                                (long long)(hp.n_text_ctx * d)));
  OMNI_RETURN_IF_ERROR(check_norm(w.dec_ln, d, kWho, "ln"));
  if (w.dec_blocks.size() != size_t(hp.n_text_layer))
    return invalid_argument(fmt("cuda whisper decoder: %zu blocks (n_text_layer %lld)", w.dec_blocks.size(),
                                (long long)hp.n_text_layer));
  for (const audio::WhisperBlock& b : w.dec_blocks) {
    OMNI_RETURN_IF_ERROR(check_block(b, d, kWho));
    OMNI_RETURN_IF_ERROR(check_norm(b.cross_attn_ln, d, kWho, "cross_attn_ln"));
    OMNI_RETURN_IF_ERROR(check_linear(b.cross_attn.query, d, d, kWho, "cross_attn.query"));
    OMNI_RETURN_IF_ERROR(check_linear(b.cross_attn.key, da, d, kWho, "cross_attn.key"));
    OMNI_RETURN_IF_ERROR(check_linear(b.cross_attn.value, da, d, kWho, "cross_attn.value"));
    OMNI_RETURN_IF_ERROR(check_linear(b.cross_attn.out, d, d, kWho, "cross_attn.out"));
  }

  OMNI_RETURN_IF_ERROR(cuda::device_count().status());
  OMNI_RETURN_IF_ERROR(cuda::set_device(options.device));
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.hp = hp;
  m.pool = &pool;
  OMNI_ASSIGN_OR_RETURN(m.stream, cuda::Stream::create());

  auto mat_bytes = [](const audio::WhisperMatrix& mt) { return size_t(dtype_row_bytes(mt.type, mt.n_in) * mt.n_out); };
  Sizer s;
  s.add(mat_bytes(w.token_embedding));
  s.add(size_t(hp.n_text_ctx * d) * sizeof(float));
  s.add(size_t(d) * sizeof(float));
  s.add(size_t(d) * sizeof(float));
  for (const audio::WhisperBlock& b : w.dec_blocks) {
    for (const audio::WhisperLinear* l : {&b.attn.query, &b.attn.key, &b.attn.value, &b.attn.out, &b.cross_attn.query,
                                          &b.cross_attn.key, &b.cross_attn.value, &b.cross_attn.out, &b.mlp0, &b.mlp2}) {
      s.add(mat_bytes(l->w));
      s.add(l->b.size() * sizeof(float));
    }
    for (int i = 0; i < 6; ++i) s.add(size_t(d) * sizeof(float));
  }
  const size_t weights_end = s.bytes;
  for (int i = 0; i < 6; ++i) s.add(size_t(kDecRows * d) * sizeof(float));  // x h q k v attn
  s.add(size_t(kDecRows * 4 * d) * sizeof(float));
  s.add(size_t(kDecRows * hp.n_vocab) * sizeof(float));
  s.add(size_t(kDecRows) * sizeof(int32_t));
  s.add(size_t(hp.n_audio_ctx * da) * sizeof(float));
  s.add(size_t(hp.n_text_layer * hp.n_audio_ctx * d) * sizeof(float));
  s.add(size_t(hp.n_text_layer * hp.n_audio_ctx * d) * sizeof(float));
  OMNI_ASSIGN_OR_RETURN(m.arena, cuda::DeviceArena::create(s.bytes));

  auto upload = [&](const void* host, size_t bytes) -> StatusOr<void*> {
    OMNI_ASSIGN_OR_RETURN(void* dev, m.arena.alloc(bytes));
    OMNI_RETURN_IF_ERROR(launch_status(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice), "whisper decoder: upload"));
    return dev;
  };
  auto upload_f32 = [&](const std::vector<float>& v) -> StatusOr<const float*> {
    OMNI_ASSIGN_OR_RETURN(void* p, upload(v.data(), v.size() * sizeof(float)));
    return static_cast<const float*>(p);
  };
  auto upload_mat = [&](const audio::WhisperMatrix& mt, DevLinear* l) -> Status {
    OMNI_ASSIGN_OR_RETURN(l->w, upload(mt.data, mat_bytes(mt)));
    l->type = mt.type;
    l->n_in = mt.n_in;
    l->n_out = mt.n_out;
    return Status::Ok();
  };
  auto upload_linear = [&](const audio::WhisperLinear& src, DevLinear* l) -> Status {
    OMNI_RETURN_IF_ERROR(upload_mat(src.w, l));
    if (!src.b.empty()) {
      OMNI_ASSIGN_OR_RETURN(l->b, upload_f32(src.b));
    }
    return Status::Ok();
  };
  auto upload_norm = [&](const audio::WhisperLayerNorm& src, DevNorm* n) -> Status {
    OMNI_ASSIGN_OR_RETURN(n->w, upload_f32(src.w));
    OMNI_ASSIGN_OR_RETURN(n->b, upload_f32(src.b));
    return Status::Ok();
  };
  OMNI_RETURN_IF_ERROR(upload_mat(w.token_embedding, &m.emb));
  OMNI_ASSIGN_OR_RETURN(void* pos, upload(w.dec_pos.data(), size_t(hp.n_text_ctx * d) * sizeof(float)));
  m.pos = static_cast<const float*>(pos);
  OMNI_RETURN_IF_ERROR(upload_norm(w.dec_ln, &m.ln));
  for (const audio::WhisperBlock& b : w.dec_blocks) {
    Impl::Block db;
    OMNI_RETURN_IF_ERROR(upload_norm(b.attn_ln, &db.attn_ln));
    OMNI_RETURN_IF_ERROR(upload_norm(b.cross_attn_ln, &db.cross_ln));
    OMNI_RETURN_IF_ERROR(upload_norm(b.mlp_ln, &db.mlp_ln));
    OMNI_RETURN_IF_ERROR(upload_linear(b.attn.query, &db.q));
    OMNI_RETURN_IF_ERROR(upload_linear(b.attn.key, &db.k));
    OMNI_RETURN_IF_ERROR(upload_linear(b.attn.value, &db.v));
    OMNI_RETURN_IF_ERROR(upload_linear(b.attn.out, &db.o));
    OMNI_RETURN_IF_ERROR(upload_linear(b.cross_attn.query, &db.cq));
    OMNI_RETURN_IF_ERROR(upload_linear(b.cross_attn.key, &db.ck));
    OMNI_RETURN_IF_ERROR(upload_linear(b.cross_attn.value, &db.cv));
    OMNI_RETURN_IF_ERROR(upload_linear(b.cross_attn.out, &db.co));
    OMNI_RETURN_IF_ERROR(upload_linear(b.mlp0, &db.mlp0));
    OMNI_RETURN_IF_ERROR(upload_linear(b.mlp2, &db.mlp2));
    m.blocks.push_back(db);
  }
  m.weight_bytes = m.arena.used();
  if (m.weight_bytes > weights_end) return internal_error("cuda whisper decoder: weight sizing is wrong");
  for (float** p : {&m.x, &m.h, &m.q, &m.k, &m.v, &m.attn}) {
    OMNI_ASSIGN_OR_RETURN(*p, m.arena.alloc_array<float>(size_t(kDecRows * d)));
  }
  OMNI_ASSIGN_OR_RETURN(m.mlp, m.arena.alloc_array<float>(size_t(kDecRows * 4 * d)));
  OMNI_ASSIGN_OR_RETURN(m.logits, m.arena.alloc_array<float>(size_t(kDecRows * hp.n_vocab)));
  OMNI_ASSIGN_OR_RETURN(m.tok, m.arena.alloc_array<int32_t>(size_t(kDecRows)));
  OMNI_ASSIGN_OR_RETURN(m.audio, m.arena.alloc_array<float>(size_t(hp.n_audio_ctx * da)));
  OMNI_ASSIGN_OR_RETURN(m.cross_k, m.arena.alloc_array<float>(size_t(hp.n_text_layer * hp.n_audio_ctx * d)));
  OMNI_ASSIGN_OR_RETURN(m.cross_v, m.arena.alloc_array<float>(size_t(hp.n_text_layer * hp.n_audio_ctx * d)));
  // The uploads ran on the legacy stream, which ours does not wait for.
  OMNI_RETURN_IF_ERROR(launch_status(cudaDeviceSynchronize(), "whisper decoder: upload weights"));
  return std::unique_ptr<CudaWhisperDecoder>(new CudaWhisperDecoder(std::move(impl)));
}

Status CudaWhisperDecoder::set_audio(const float* encoder_out, int64_t n_audio) {
  Impl& m = *impl_;
  const audio::WhisperHParams& hp = m.hp;
  if (n_audio < 1 || n_audio > hp.n_audio_ctx)
    return invalid_argument(fmt("whisper decoder: %lld audio positions (need 1..%lld)", (long long)n_audio,
                                (long long)hp.n_audio_ctx));
  if (!encoder_out) return invalid_argument("cuda whisper decoder: null encoder output");
  const int64_t da = hp.n_audio_state, d = m.d();
  m.n_audio = 0;  // no decoding against half-made K / V if this fails
  OMNI_RETURN_IF_ERROR(m.copy(m.audio, encoder_out, n_audio * da, cudaMemcpyHostToDevice, "whisper decoder: audio"));
  for (size_t l = 0; l < m.blocks.size(); ++l) {
    const auto li = static_cast<int64_t>(l);
    for (int64_t t0 = 0; t0 < n_audio; t0 += kDecRows) {
      const int64_t rows = std::min(kDecRows, n_audio - t0);
      OMNI_RETURN_IF_ERROR(m.mv(m.blocks[l].ck, m.audio + t0 * da, rows, m.cross(m.cross_k, li) + t0 * d, false));
      OMNI_RETURN_IF_ERROR(m.mv(m.blocks[l].cv, m.audio + t0 * da, rows, m.cross(m.cross_v, li) + t0 * d, false));
    }
  }
  OMNI_RETURN_IF_ERROR(m.stream.synchronize());
  m.n_audio = n_audio;
  return Status::Ok();
}

Status CudaWhisperDecoder::reset_slots(int n_slots) {
  Impl& m = *impl_;
  if (n_slots < 1) return invalid_argument(fmt("whisper decoder: %d slots", n_slots));
  const size_t bytes = size_t(n_slots) * 2 * size_t(m.hp.n_text_layer) * m.layer_floats() * sizeof(float);
  if (m.slot_arena.capacity() < bytes) {
    OMNI_RETURN_IF_ERROR(m.stream.synchronize());  // nothing in flight may still use the old caches
    m.cache = nullptr;
    m.n_past.clear();
    m.slot_arena = cuda::DeviceArena();
    OMNI_ASSIGN_OR_RETURN(m.slot_arena, cuda::DeviceArena::create(bytes));
  }
  m.slot_arena.rewind(0);
  OMNI_ASSIGN_OR_RETURN(m.cache, m.slot_arena.alloc_array<float>(bytes / sizeof(float)));
  m.n_past.assign(size_t(n_slots), 0);
  return Status::Ok();
}

Status CudaWhisperDecoder::decode_slot(int slot, const int32_t* tokens, int64_t n, float* logits) {
  return impl_->decode(slot, tokens, n, logits, false);
}

Status CudaWhisperDecoder::decode_slot_all(int slot, const int32_t* tokens, int64_t n, float* logits) {
  return impl_->decode(slot, tokens, n, logits, true);
}

Status CudaWhisperDecoder::decode_slots(const int* slots, const int32_t* tokens, int64_t n, float* logits) {
  Impl& m = *impl_;
  if (m.n_audio == 0) return wrong_state("whisper decoder: decode() before set_audio()");
  if (n < 1 || n > kDecRows)
    return invalid_argument(fmt("cuda whisper decoder: %lld hypotheses (need 1..%lld)", (long long)n, (long long)kDecRows));
  if (!logits) return invalid_argument("cuda whisper decoder: null logits");
  OMNI_RETURN_IF_ERROR(audio::whisper_check_tokens(tokens, n, m.hp.n_vocab));
  OMNI_RETURN_IF_ERROR(audio::whisper_check_slots(slots, n, m.n_past.size()));
  int64_t positions[kDecRows];
  for (int64_t b = 0; b < n; ++b) {
    positions[b] = m.n_past[size_t(slots[b])];
    if (positions[b] + 1 > m.hp.n_text_ctx)
      return out_of_range(fmt("whisper decoder: %lld + 1 tokens exceed the text context of %lld",
                              (long long)positions[b], (long long)m.hp.n_text_ctx));
  }
  OMNI_RETURN_IF_ERROR(m.forward(tokens, slots, positions, n, LogitRows::kAll, logits));
  for (int64_t b = 0; b < n; ++b) m.n_past[size_t(slots[b])] += 1;
  return Status::Ok();
}

Status CudaWhisperDecoder::copy_slot(int dst, int src) {
  Impl& m = *impl_;
  OMNI_RETURN_IF_ERROR(m.check_slot(dst));
  OMNI_RETURN_IF_ERROR(m.check_slot(src));
  if (dst == src) return Status::Ok();
  const int64_t floats = m.n_past[size_t(src)] * m.d();
  for (int64_t l = 0; l < m.hp.n_text_layer; ++l) {
    if (floats == 0) break;
    OMNI_RETURN_IF_ERROR(m.copy(m.kc(dst, l), m.kc(src, l), floats, cudaMemcpyDeviceToDevice, "whisper decoder: copy k"));
    OMNI_RETURN_IF_ERROR(m.copy(m.vc(dst, l), m.vc(src, l), floats, cudaMemcpyDeviceToDevice, "whisper decoder: copy v"));
  }
  m.n_past[size_t(dst)] = m.n_past[size_t(src)];
  return Status::Ok();
}

}  // namespace omni

#else  // !OMNIRT_HAVE_CUDA: the types exist so callers compile; create() says why they cannot work.

namespace omni {

namespace {
Status no_cuda() { return unsupported("omnirt was built without CUDA (configure with -DOMNIRT_CUDA=ON where nvcc exists)"); }
}  // namespace

struct CudaLogMel::Impl {};
CudaLogMel::CudaLogMel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaLogMel::~CudaLogMel() = default;
StatusOr<std::unique_ptr<CudaLogMel>> CudaLogMel::create(int, int64_t, const CudaWhisperOptions&) { return no_cuda(); }
int CudaLogMel::n_mels() const { return 0; }
Status CudaLogMel::push(const float*, size_t, std::vector<float>*) { return no_cuda(); }
Status CudaLogMel::finish(std::vector<float>*) { return no_cuda(); }
void CudaLogMel::reset() {}
int64_t CudaLogMel::samples_received() const { return 0; }
int64_t CudaLogMel::frames_emitted() const { return 0; }
const float* CudaLogMel::device_data() const { return nullptr; }
int64_t CudaLogMel::device_frames() const { return 0; }
void CudaLogMel::clear_frames() {}
StatusOr<float> CudaLogMel::normalize() { return no_cuda(); }
StatusOr<std::vector<float>> CudaLogMel::download() const { return no_cuda(); }
StatusOr<std::vector<float>> cuda_whisper_log_mel(const float*, size_t, int, size_t, const CudaWhisperOptions&) {
  return no_cuda();
}

struct CudaWhisperEncoder::Impl {};
CudaWhisperEncoder::CudaWhisperEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaWhisperEncoder::~CudaWhisperEncoder() = default;
StatusOr<std::unique_ptr<CudaWhisperEncoder>> CudaWhisperEncoder::create(const audio::WhisperWeights&,
                                                                         const CudaWhisperOptions&) {
  return no_cuda();
}
Status CudaWhisperEncoder::encode(const float*, int64_t, std::vector<float>*) { return no_cuda(); }
Status CudaWhisperEncoder::encode_before_final_norm(const float*, int64_t, std::vector<float>*) { return no_cuda(); }
Status CudaWhisperEncoder::encode_device(const float*, int64_t, float*, bool) { return no_cuda(); }
int64_t CudaWhisperEncoder::n_state() const { return 0; }
int64_t CudaWhisperEncoder::n_mels() const { return 0; }
int64_t CudaWhisperEncoder::max_frames() const { return 0; }
size_t CudaWhisperEncoder::device_weight_bytes() const { return 0; }

struct CudaWhisperDecoder::Impl {
  ThreadPool* pool = nullptr;
};
CudaWhisperDecoder::CudaWhisperDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaWhisperDecoder::~CudaWhisperDecoder() = default;
StatusOr<std::unique_ptr<CudaWhisperDecoder>> CudaWhisperDecoder::create(const audio::WhisperWeights&, ThreadPool&,
                                                                         const CudaWhisperOptions&) {
  return no_cuda();
}
Status CudaWhisperDecoder::set_audio(const float*, int64_t) { return no_cuda(); }
Status CudaWhisperDecoder::reset_slots(int) { return no_cuda(); }
Status CudaWhisperDecoder::decode_slot(int, const int32_t*, int64_t, float*) { return no_cuda(); }
Status CudaWhisperDecoder::decode_slot_all(int, const int32_t*, int64_t, float*) { return no_cuda(); }
Status CudaWhisperDecoder::decode_slots(const int*, const int32_t*, int64_t, float*) { return no_cuda(); }
Status CudaWhisperDecoder::copy_slot(int, int) { return no_cuda(); }
ThreadPool& CudaWhisperDecoder::pool() const { return *impl_->pool; }
size_t CudaWhisperDecoder::device_weight_bytes() const { return 0; }

}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
