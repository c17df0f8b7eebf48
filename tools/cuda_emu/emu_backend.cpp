// Host emulation of the CUDA layer under runtime/model/cuda_whisper.cpp's decoder, for checking
// its host logic (sizes, offsets, slots, chunking, error paths) on a machine without a GPU:
// device memory is host memory (poisoned with NaN bytes), each launcher the decoder uses is a
// plain loop with its kernel's contract (double sums), the others refuse. It checks nothing of
// the kernels themselves; the GPU tests do (bench/gpu/check.sh). Built and run by run.sh.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/fft_loader.h"
#include "kernels/cuda/ops_audio.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/ops_encoder.h"
#include "kernels/ref/ops_ref.h"

namespace omni::cuda {
Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  return internal_error(fmt("%s: emu error %d", what, int(err)));
}
StatusOr<int> device_count() { return 1; }
Status set_device(int) { return Status::Ok(); }
StatusOr<Stream> Stream::create() { return Stream(); }
Stream& Stream::operator=(Stream&& o) noexcept { s_ = o.s_; o.s_ = nullptr; return *this; }
Stream::~Stream() {}
Status Stream::synchronize() const { return Status::Ok(); }
StatusOr<DeviceArena> DeviceArena::create(size_t bytes) {
  DeviceArena a;
  a.base_ = static_cast<uint8_t*>(std::malloc(bytes ? bytes : 1));
  std::memset(a.base_, 0xFF, bytes);  // NaN poison
  a.capacity_ = bytes;
  return a;
}
DeviceArena& DeviceArena::operator=(DeviceArena&& o) noexcept {
  if (this != &o) {
    std::free(base_);
    base_ = o.base_; capacity_ = o.capacity_; used_ = o.used_;
    o.base_ = nullptr; o.capacity_ = o.used_ = 0;
  }
  return *this;
}
DeviceArena::~DeviceArena() { std::free(base_); }
StatusOr<void*> DeviceArena::alloc(size_t bytes, size_t align) {
  const size_t at = (used_ + align - 1) / align * align;
  if (at + bytes > capacity_) return internal_error(fmt("arena: need %zu bytes, %zu of %zu free", bytes, capacity_ - used_, capacity_));
  used_ = at + bytes;
  return static_cast<void*>(base_ + at);
}
StatusOr<PinnedBuffer> PinnedBuffer::create(size_t) { return unsupported("emu"); }
PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&&) noexcept { return *this; }
PinnedBuffer::~PinnedBuffer() {}
StatusOr<BlasHandle> BlasHandle::create(cudaStream_t) { return unsupported("emu: no cuBLAS"); }
BlasHandle& BlasHandle::operator=(BlasHandle&&) noexcept { return *this; }
BlasHandle::~BlasHandle() {}
Status attn_full_fast(const AttnFastParams&, const BlasHandle&) { return unsupported("emu"); }
Status check_params(const Im2colParams&) { return unsupported("emu"); }
Status check_params(const MaxParams&) { return unsupported("emu"); }
Status check_params(const MelFilterParams&) { return unsupported("emu"); }
Status check_params(const MelNormalizeParams&) { return unsupported("emu"); }
Status check_params(const MelWindowParams&) { return unsupported("emu"); }
Status cufft_status(int, const char*) { return unsupported("emu"); }
StatusOr<const FftApi*> fft_api() { return unsupported("emu: no cuFFT"); }
bool encoder_attn_exact_env() { return true; }
Status gemm_bf16(const GemmParams&, const BlasHandle&) { return unsupported("emu"); }
int64_t im2col_out_rows(const Im2colParams&) { return 0; }
cudaError_t launch_im2col(const Im2colParams&, cudaStream_t) { return cudaErrorInvalidValue; }
cudaError_t launch_max(const MaxParams&, cudaStream_t) { return cudaErrorInvalidValue; }
cudaError_t launch_mel_filter(const MelFilterParams&, cudaStream_t) { return cudaErrorInvalidValue; }
cudaError_t launch_mel_normalize(const MelNormalizeParams&, cudaStream_t) { return cudaErrorInvalidValue; }
cudaError_t launch_mel_window(const MelWindowParams&, cudaStream_t) { return cudaErrorInvalidValue; }

bool weight_type_supported(DType t) {
  switch (t) {
    case DType::kF32: case DType::kF16: case DType::kBF16: case DType::kQ8_0: case DType::kQ4_0:
    case DType::kQ5_0: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K: return true;
    default: return false;
  }
}
static long g_launches = 0;
cudaError_t launch_matvec(const MatvecParams& p, cudaStream_t) {
  ++g_launches;
  if (!weight_type_supported(p.w_type) || !p.w || !p.x || !p.y || p.n_tok < 1 || p.n_tok > kMatvecMaxTokens) return cudaErrorInvalidValue;
  const auto* xb = reinterpret_cast<const uint8_t*>(p.x);
  const auto* yb = reinterpret_cast<const uint8_t*>(p.y);
  if (xb < yb + p.n_tok * p.n_out * 4 && yb < xb + p.n_tok * p.n_in * 4) return cudaErrorInvalidValue;  // overlap
  const int64_t rb = dtype_row_bytes(p.w_type, p.n_in);
  std::vector<float> row(size_t(p.n_in));
  for (int64_t o = 0; o < p.n_out; ++o) {
    ref::dequantize_row(p.w_type, static_cast<const uint8_t*>(p.w) + o * rb, row.data(), p.n_in);
    for (int64_t t = 0; t < p.n_tok; ++t) {
      double s = 0;
      for (int64_t i = 0; i < p.n_in; ++i) s += double(row[size_t(i)]) * p.x[t * p.n_in + i];
      float v = float(s) + (p.bias ? p.bias[o] : 0.0f);
      float* dst = p.y + t * p.n_out + o;
      *dst = p.accumulate ? *dst + v : v;
    }
  }
  return cudaSuccess;
}
cudaError_t launch_layer_norm(const LayerNormParams& p, cudaStream_t) {
  if (!p.x || !p.y || !p.w || p.rows <= 0 || p.n <= 0) return cudaErrorInvalidValue;
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* x = p.x + r * p.n;
    double m = 0, v = 0;
    for (int64_t i = 0; i < p.n; ++i) m += x[i];
    m /= double(p.n);
    for (int64_t i = 0; i < p.n; ++i) v += (x[i] - m) * (x[i] - m);
    v /= double(p.n);
    const double inv = 1.0 / std::sqrt(v + p.eps);
    std::vector<float> y(size_t(p.n));
    for (int64_t i = 0; i < p.n; ++i) y[size_t(i)] = float((x[i] - m) * inv) * p.w[i] + (p.b ? p.b[i] : 0.0f);
    std::memcpy(p.y + r * p.n, y.data(), y.size() * 4);
  }
  return cudaSuccess;
}
Status check_params(const AttnFullParams& p) {
  if (!p.q || !p.k || !p.v || !p.out || p.n_q <= 0 || p.n_kv <= 0 || p.n_head <= 0 || p.n_kv_head <= 0 ||
      p.n_head % p.n_kv_head != 0 || p.head_dim <= 0 || p.head_dim > kEncAttnMaxHeadDim ||
      p.q_stride < p.n_head * p.head_dim || p.kv_stride < p.n_kv_head * p.head_dim || p.out_stride < p.n_head * p.head_dim)
    return invalid_argument("attn_full");
  return Status::Ok();
}
cudaError_t launch_attn_full(const AttnFullParams& p, cudaStream_t) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int64_t hd = p.head_dim, g = p.n_head / p.n_kv_head;
  std::vector<double> s(size_t(p.n_kv));
  for (int64_t i = 0; i < p.n_q; ++i)
    for (int64_t h = 0; h < p.n_head; ++h) {
      const float* q = p.q + i * p.q_stride + h * hd;
      const int64_t kh = h / g;
      double mx = -1e300;
      for (int64_t j = 0; j < p.n_kv; ++j) {
        const float* k = p.k + j * p.kv_stride + kh * hd;
        double d = 0;
        for (int64_t c = 0; c < hd; ++c) d += double(q[c]) * k[c];
        s[size_t(j)] = d * p.scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (auto& v : s) sum += (v = std::exp(v - mx));
      for (int64_t c = 0; c < hd; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < p.n_kv; ++j) acc += s[size_t(j)] * p.v[j * p.kv_stride + kh * hd + c];
        p.out[i * p.out_stride + h * hd + c] = float(acc / sum);
      }
    }
  return cudaSuccess;
}
cudaError_t launch_embed(const EmbedParams& p, cudaStream_t) {
  if (!check_params(p).ok()) return cudaErrorInvalidValue;
  const int64_t rb = dtype_row_bytes(p.w_type, p.n_embd);
  for (int64_t t = 0; t < p.n_tok; ++t) {
    const int32_t id = p.tokens[t];
    float* out = p.out + t * p.n_embd;
    if (id < 0 || id >= p.n_vocab) { for (int64_t i = 0; i < p.n_embd; ++i) out[i] = NAN; continue; }
    ref::dequantize_row(p.w_type, static_cast<const uint8_t*>(p.w) + id * rb, out, p.n_embd);
    for (int64_t i = 0; i < p.n_embd; ++i) out[i] *= p.scale;
  }
  return cudaSuccess;
}
Status check_params(const EmbedParams& p) {
  if (!weight_type_supported(p.w_type)) return unsupported("embed");
  if (!p.w || !p.tokens || !p.out || p.n_vocab <= 0 || p.n_embd <= 0 || p.n_tok <= 0) return invalid_argument("embed");
  return Status::Ok();
}
cudaError_t launch_add(const AddParams& p, cudaStream_t) {
  if (!p.a || !p.b || !p.y || p.n <= 0) return cudaErrorInvalidValue;
  for (int64_t i = 0; i < p.n; ++i) p.y[i] = p.a[i] + p.b[i];
  return cudaSuccess;
}
cudaError_t launch_bias_act(const BiasActParams& p, cudaStream_t) {
  if (!p.x || p.rows <= 0 || p.n <= 0 || p.act != EncAct::kGeluErf) return cudaErrorInvalidValue;
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t i = 0; i < p.n; ++i) {
      float& v = p.x[r * p.n + i];
      const float x = v + (p.bias ? p.bias[i] : 0.0f);
      v = 0.5f * x * (1.0f + std::erf(x / std::sqrt(2.0f)));
    }
  return cudaSuccess;
}
}  // namespace omni::cuda
