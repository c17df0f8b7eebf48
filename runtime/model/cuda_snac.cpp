// CudaSnacDecoder: SnacDecoder::decode_latents stage for stage on the kernels of ops_codec.h;
// CudaSnacStreamDecoder: exact streaming by re-decoding bounded windows (see push()).
#include "runtime/model/cuda_snac.h"

#include <algorithm>
#include <utility>

#include "kernels/core/thread_pool.h"

#if OMNIRT_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/ops_codec.h"
#include "kernels/ref/ops_ref.h"
#endif

namespace omni {

// What both builds share: the host decoder that checks codes, computes latents and answers
// dependency questions (one thread: its work is tiny), and the noise setting.
struct SnacHostPart {
  explicit SnacHostPart(const audio::SnacWeights& w) : weights(w), pool(1), dec(w, pool) {}
  const audio::SnacWeights& weights;
  ThreadPool pool;
  audio::SnacDecoder dec;
  bool noise_on = true;
  uint64_t seed = 0;
};

#if OMNIRT_HAVE_CUDA

namespace {

constexpr int kConvK = 7;  // every non-transposed conv of the decoder has kernel 7

struct DevSnake {
  const float* alpha = nullptr;      // [C]
  const float* inv_alpha = nullptr;  // [C]
};

struct DevResidual {
  int dilation = 1;
  DevSnake snake1, snake2;
  const float *dw_w = nullptr, *dw_b = nullptr;  // [7, C], [C]
  const float *pw = nullptr, *pw_b = nullptr;    // [C, C], [C]
};

struct DevBlock {
  int64_t in_dim = 0, out_dim = 0;
  int stride = 1;
  DevSnake snake;                                // [in_dim]
  const float *up = nullptr, *up_b = nullptr;    // [2 * stride * out_dim, in_dim], [out_dim]
  const float* noise = nullptr;                  // [out_dim, out_dim] or null
  DevResidual res[3];
};

// Every weight as f32 in one host blob (offsets aligned to 256 bytes), uploaded in one copy.
class WeightBlob {
 public:
  size_t add(const float* v, size_t n) {
    const size_t at = (host_.size() + 63) / 64 * 64;
    host_.resize(at + n);
    std::copy(v, v + n, host_.begin() + static_cast<std::ptrdiff_t>(at));
    return at;
  }
  size_t add(const std::vector<float>& v) { return add(v.data(), v.size()); }
  size_t add(const audio::SnacMatrix& m) {
    const size_t at = (host_.size() + 63) / 64 * 64;
    host_.resize(at + size_t(m.n_out * m.n_in));
    const int64_t row_bytes = dtype_row_bytes(m.type, m.n_in);
    for (int64_t o = 0; o < m.n_out; ++o)
      ref::dequantize_row(m.type, static_cast<const uint8_t*>(m.data) + o * row_bytes,
                          host_.data() + at + size_t(o * m.n_in), m.n_in);
    return at;
  }
  const std::vector<float>& host() const { return host_; }

 private:
  std::vector<float> host_;
};

}  // namespace

struct CudaSnacDecoder::Impl {
  explicit Impl(const audio::SnacWeights& w) : host(w) {}
  ~Impl() {
    if (scratch) cudaFree(scratch);
    if (weights) cudaFree(weights);
  }

  SnacHostPart host;
  cuda::Stream stream;
  std::string device_name;
  float* weights = nullptr;  // the uploaded blob
  size_t weight_bytes = 0;

  const float *in_dw_w = nullptr, *in_dw_b = nullptr;  // [7, latent], [latent]
  const float *in_pw = nullptr, *in_pw_b = nullptr;    // [dim, latent], [dim]
  std::vector<DevBlock> blocks;
  DevSnake out_snake;                                  // [C_last]
  const float* out_w = nullptr;                        // [7, C_last]

  // Scratch for windows of up to scratch_T latent steps (sizes in floats, see reserve()).
  float* scratch = nullptr;
  size_t scratch_floats = 0;
  int64_t scratch_T = 0;
  float *z = nullptr, *act_a = nullptr, *act_b = nullptr, *wide = nullptr, *noise = nullptr, *pcm = nullptr;

  Status upload();
  Status run(int64_t T, int64_t t0);  // z -> pcm on the device
};

Status CudaSnacDecoder::Impl::upload() {
  const audio::SnacWeights& w = host.weights;
  WeightBlob blob;
  const size_t o_in_dw_w = blob.add(w.in_dw_w), o_in_dw_b = blob.add(w.in_dw_b);
  const size_t o_in_pw = blob.add(w.in_pw), o_in_pw_b = blob.add(w.in_pw_b);
  struct Offsets {
    size_t snake_a, snake_i, up, up_b, noise;
    size_t s1a[3], s1i[3], s2a[3], s2i[3], dw_w[3], dw_b[3], pw[3], pw_b[3];
  };
  std::vector<Offsets> off(w.blocks.size());
  for (size_t bi = 0; bi < w.blocks.size(); ++bi) {
    const audio::SnacBlock& b = w.blocks[bi];
    Offsets& o = off[bi];
    o.snake_a = blob.add(b.snake.alpha);
    o.snake_i = blob.add(b.snake.inv_alpha);
    o.up = blob.add(b.up);
    o.up_b = blob.add(b.up_b);
    o.noise = b.noise.data ? blob.add(b.noise) : SIZE_MAX;
    for (int r = 0; r < 3; ++r) {
      const audio::SnacResidualUnit& u = b.res[r];
      o.s1a[r] = blob.add(u.snake1.alpha);
      o.s1i[r] = blob.add(u.snake1.inv_alpha);
      o.s2a[r] = blob.add(u.snake2.alpha);
      o.s2i[r] = blob.add(u.snake2.inv_alpha);
      o.dw_w[r] = blob.add(u.dw_w);
      o.dw_b[r] = blob.add(u.dw_b);
      o.pw[r] = blob.add(u.pw);
      o.pw_b[r] = blob.add(u.pw_b);
    }
  }
  const size_t o_out_a = blob.add(w.out_snake.alpha), o_out_i = blob.add(w.out_snake.inv_alpha);
  const size_t o_out_w = blob.add(w.out_w);

  weight_bytes = blob.host().size() * sizeof(float);
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(cudaMalloc(&weights, weight_bytes), "snac: weights"));
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(
      cudaMemcpy(weights, blob.host().data(), weight_bytes, cudaMemcpyHostToDevice), "snac: upload weights"));
  auto at = [&](size_t o) -> const float* { return o == SIZE_MAX ? nullptr : weights + o; };
  in_dw_w = at(o_in_dw_w);
  in_dw_b = at(o_in_dw_b);
  in_pw = at(o_in_pw);
  in_pw_b = at(o_in_pw_b);
  blocks.resize(w.blocks.size());
  for (size_t bi = 0; bi < w.blocks.size(); ++bi) {
    const audio::SnacBlock& b = w.blocks[bi];
    const Offsets& o = off[bi];
    DevBlock& d = blocks[bi];
    d.in_dim = b.in_dim;
    d.out_dim = b.out_dim;
    d.stride = b.stride;
    d.snake = {at(o.snake_a), at(o.snake_i)};
    d.up = at(o.up);
    d.up_b = at(o.up_b);
    d.noise = at(o.noise);
    for (int r = 0; r < 3; ++r) {
      d.res[r].dilation = b.res[r].dilation;
      d.res[r].snake1 = {at(o.s1a[r]), at(o.s1i[r])};
      d.res[r].snake2 = {at(o.s2a[r]), at(o.s2i[r])};
      d.res[r].dw_w = at(o.dw_w[r]);
      d.res[r].dw_b = at(o.dw_b[r]);
      d.res[r].pw = at(o.pw[r]);
      d.res[r].pw_b = at(o.pw_b[r]);
    }
  }
  out_snake = {at(o_out_a), at(o_out_i)};
  out_w = at(o_out_w);
  return Status::Ok();
}

#define SNAC_LAUNCH(call, what) OMNI_RETURN_IF_ERROR(cuda::cuda_status((call), "snac: " what))

// SnacDecoder::decode_latents on the device. Buffers: act_a / act_b hold [steps, channels]
// activations (the current x and a temporary), wide the transposed convs' tap products, the
// residual units' depthwise output and the output taps.
Status CudaSnacDecoder::Impl::run(int64_t T, int64_t t0) {
  const audio::SnacHParams& hp = host.weights.hp;
  cudaStream_t s = stream.get();
  {
    cuda::SnacDwConvParams p;
    p.x = z;
    p.y = wide;
    p.w = in_dw_w;
    p.bias = in_dw_b;
    p.T = T;
    p.C = hp.latent_dim;
    p.k = kConvK;
    SNAC_LAUNCH(cuda::launch_snac_dwconv(p, s), "input depthwise conv");
  }
  float* x = act_a;
  float* other = act_b;
  {
    cuda::SnacMatmulParams p;
    p.x = wide;
    p.w = in_pw;
    p.y = x;
    p.bias = in_pw_b;
    p.n_tok = T;
    p.n_in = hp.latent_dim;
    p.n_out = hp.decoder_dim;
    SNAC_LAUNCH(cuda::launch_snac_matmul(p, s), "input 1x1 conv");
  }
  const bool noise_on = host.noise_on && hp.noise;
  int64_t rate = 1;  // steps per latent step before this block
  int64_t C = hp.decoder_dim;
  for (size_t bi = 0; bi < blocks.size(); ++bi) {
    const DevBlock& b = blocks[bi];
    const int st = b.stride;
    const int64_t T_in = T * rate, Tn = T_in * st;
    SNAC_LAUNCH(cuda::launch_snac_snake({x, other, b.snake.alpha, b.snake.inv_alpha, T_in, b.in_dim}, s), "block snake");
    {
      cuda::SnacMatmulParams p;
      p.x = other;
      p.w = b.up;
      p.y = wide;
      p.n_tok = T_in;
      p.n_in = b.in_dim;
      p.n_out = 2 * st * b.out_dim;
      SNAC_LAUNCH(cuda::launch_snac_matmul(p, s), "transposed conv taps");
    }
    SNAC_LAUNCH(cuda::launch_snac_overlap_add({wide, x, b.up_b, T_in, b.out_dim, 2 * st, st, (st + 1) / 2}, s),
                "transposed conv overlap-add");
    if (noise_on && b.noise) {
      cuda::SnacNoiseParams np;
      np.noise = noise;
      np.n = Tn;
      np.t0 = t0 * rate * st;
      np.seed = host.seed;
      np.block = static_cast<int>(bi);
      SNAC_LAUNCH(cuda::launch_snac_noise(np, s), "noise");
      cuda::SnacMatmulParams p;
      p.x = x;
      p.w = b.noise;
      p.y = other;
      p.add = x;
      p.row_scale = noise;
      p.n_tok = Tn;
      p.n_in = p.n_out = b.out_dim;
      SNAC_LAUNCH(cuda::launch_snac_matmul(p, s), "noise block");
      std::swap(x, other);
    }
    rate *= st;
    C = b.out_dim;
    for (const DevResidual& u : b.res) {
      cuda::SnacDwConvParams dp;
      dp.x = x;
      dp.y = wide;
      dp.w = u.dw_w;
      dp.bias = u.dw_b;
      dp.in_alpha = u.snake1.alpha;
      dp.in_inv_alpha = u.snake1.inv_alpha;
      dp.out_alpha = u.snake2.alpha;
      dp.out_inv_alpha = u.snake2.inv_alpha;
      dp.T = Tn;
      dp.C = C;
      dp.k = kConvK;
      dp.dilation = u.dilation;
      SNAC_LAUNCH(cuda::launch_snac_dwconv(dp, s), "residual depthwise conv");
      cuda::SnacMatmulParams p;
      p.x = wide;
      p.w = u.pw;
      p.y = x;
      p.bias = u.pw_b;
      p.add = x;
      p.n_tok = Tn;
      p.n_in = p.n_out = C;
      SNAC_LAUNCH(cuda::launch_snac_matmul(p, s), "residual 1x1 conv");
    }
  }
  const int64_t Tn = T * rate;
  SNAC_LAUNCH(cuda::launch_snac_snake({x, other, out_snake.alpha, out_snake.inv_alpha, Tn, C}, s), "output snake");
  {
    cuda::SnacMatmulParams p;
    p.x = other;
    p.w = out_w;
    p.y = wide;
    p.n_tok = Tn;
    p.n_in = C;
    p.n_out = kConvK;
    SNAC_LAUNCH(cuda::launch_snac_matmul(p, s), "output conv taps");
  }
  SNAC_LAUNCH(cuda::launch_snac_taps_tanh({wide, pcm, Tn, kConvK, host.weights.out_b}, s), "output tanh");
  return Status::Ok();
}

#undef SNAC_LAUNCH

CudaSnacDecoder::CudaSnacDecoder() = default;
CudaSnacDecoder::~CudaSnacDecoder() = default;

StatusOr<std::unique_ptr<CudaSnacDecoder>> CudaSnacDecoder::create(const audio::SnacWeights& w, int device) {
  OMNI_ASSIGN_OR_RETURN(int n_dev, cuda::device_count());
  if (device < 0 || device >= n_dev)
    return invalid_argument(fmt("snac: CUDA device %d does not exist (%d found)", device, n_dev));
  OMNI_RETURN_IF_ERROR(cuda::set_device(device));
  OMNI_ASSIGN_OR_RETURN(cuda::DeviceInfo info, cuda::device_info(device));
  std::unique_ptr<CudaSnacDecoder> dec(new CudaSnacDecoder());
  dec->impl_ = std::make_unique<Impl>(w);
  Impl& im = *dec->impl_;
  im.device_name = info.name;
  OMNI_ASSIGN_OR_RETURN(im.stream, cuda::Stream::create());
  OMNI_RETURN_IF_ERROR(im.upload());
  return dec;
}

Status CudaSnacDecoder::reserve(int64_t T) {
  Impl& im = *impl_;
  if (T <= im.scratch_T) return Status::Ok();
  const audio::SnacHParams& hp = im.host.weights.hp;
  // Floats per latent step of each buffer, following Impl::run.
  int64_t act = hp.decoder_dim, wide = hp.latent_dim, rate = 1;
  for (const DevBlock& b : im.blocks) {
    wide = std::max(wide, rate * 2 * b.stride * b.out_dim);
    rate *= b.stride;
    act = std::max(act, rate * b.out_dim);
    wide = std::max(wide, rate * b.out_dim);
  }
  wide = std::max<int64_t>(wide, rate * kConvK);
  const int64_t per_step[6] = {hp.latent_dim, act, act, wide, rate, rate};  // z, a, b, wide, noise, pcm
  size_t total = 0, offs[6];
  for (int i = 0; i < 6; ++i) {
    offs[i] = total;
    total += (size_t(per_step[i] * T) + 63) / 64 * 64;
  }
  OMNI_RETURN_IF_ERROR(im.stream.synchronize());
  if (im.scratch) cudaFree(im.scratch);
  im.scratch = nullptr;
  im.scratch_floats = 0;
  im.scratch_T = 0;
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(cudaMalloc(&im.scratch, total * sizeof(float)), "snac: scratch"));
  im.scratch_floats = total;
  im.scratch_T = T;
  float* base = im.scratch;
  im.z = base + offs[0];
  im.act_a = base + offs[1];
  im.act_b = base + offs[2];
  im.wide = base + offs[3];
  im.noise = base + offs[4];
  im.pcm = base + offs[5];
  return Status::Ok();
}

Status CudaSnacDecoder::decode_latents(const float* z, int64_t T, int64_t t0, float* pcm) {
  if (T <= 0 || t0 < 0)
    return invalid_argument(fmt("snac: decode_latents of T = %lld steps at t0 = %lld", (long long)T, (long long)t0));
  OMNI_RETURN_IF_ERROR(reserve(T));
  Impl& im = *impl_;
  const audio::SnacHParams& hp = im.host.weights.hp;
  cudaStream_t s = im.stream.get();
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(
      cudaMemcpyAsync(im.z, z, size_t(T * hp.latent_dim) * sizeof(float), cudaMemcpyHostToDevice, s), "snac: upload latents"));
  OMNI_RETURN_IF_ERROR(im.run(T, t0));
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(
      cudaMemcpyAsync(pcm, im.pcm, size_t(T * hp.hop_length) * sizeof(float), cudaMemcpyDeviceToHost, s), "snac: download pcm"));
  return im.stream.synchronize();
}

std::string CudaSnacDecoder::device_name() const { return impl_->device_name; }
size_t CudaSnacDecoder::device_weight_bytes() const { return impl_->weight_bytes; }
size_t CudaSnacDecoder::device_scratch_bytes() const { return impl_->scratch_floats * sizeof(float); }

#else  // !OMNIRT_HAVE_CUDA: the types exist so callers compile; create() says why they cannot work.

struct CudaSnacDecoder::Impl {
  explicit Impl(const audio::SnacWeights& w) : host(w) {}
  SnacHostPart host;
};

CudaSnacDecoder::CudaSnacDecoder() = default;
CudaSnacDecoder::~CudaSnacDecoder() = default;
StatusOr<std::unique_ptr<CudaSnacDecoder>> CudaSnacDecoder::create(const audio::SnacWeights&, int) {
  return unsupported("omnirt was built without CUDA (configure with -DOMNIRT_CUDA=ON where nvcc exists)");
}
Status CudaSnacDecoder::reserve(int64_t) { return wrong_state("no CUDA"); }
Status CudaSnacDecoder::decode_latents(const float*, int64_t, int64_t, float*) { return wrong_state("no CUDA"); }
std::string CudaSnacDecoder::device_name() const { return {}; }
size_t CudaSnacDecoder::device_weight_bytes() const { return 0; }
size_t CudaSnacDecoder::device_scratch_bytes() const { return 0; }

#endif  // OMNIRT_HAVE_CUDA

// ---- shared by both builds ---------------------------------------------------------------

const audio::SnacHParams& CudaSnacDecoder::hparams() const { return impl_->host.weights.hp; }
void CudaSnacDecoder::set_noise(bool on, uint64_t seed) {
  impl_->host.noise_on = on;
  impl_->host.seed = seed;
  impl_->host.dec.set_noise(on, seed);
}
bool CudaSnacDecoder::noise_on() const { return impl_->host.noise_on && impl_->host.weights.hp.noise; }
const audio::SnacDecoder& CudaSnacDecoder::host() const { return impl_->host.dec; }

StatusOr<int64_t> CudaSnacDecoder::check_codes(const audio::SnacCodes& codes) const {
  return impl_->host.dec.check_codes(codes);
}

Status CudaSnacDecoder::decode(const audio::SnacCodes& codes, std::vector<float>* pcm) {
  OMNI_ASSIGN_OR_RETURN(int64_t n_groups, check_codes(codes));
  const audio::SnacHParams& hp = hparams();
  pcm->assign(size_t(n_groups * hp.samples_per_group()), 0.0f);
  if (n_groups == 0) return Status::Ok();
  const int64_t T = n_groups * hp.vq_strides[0];
  if (T > kMaxWholeLatent) {  // bounded windows, same samples
    std::vector<float> out;
    out.reserve(pcm->size());
    CudaSnacStreamDecoder stream(*this);
    OMNI_RETURN_IF_ERROR(stream.push(codes, &out));
    OMNI_RETURN_IF_ERROR(stream.flush(&out));
    *pcm = std::move(out);
    return Status::Ok();
  }
  std::vector<float> z;
  host().latents(codes, &z);
  return decode_latents(z.data(), T, 0, pcm->data());
}

// ---- streaming -----------------------------------------------------------------------------
// Output sample n depends on latent steps [lo(n), hi(n)] (SnacDecoder::dependency); a window
// of latent steps [a, b) decoded as a whole sequence gives the whole decode's value for every
// sample whose dependency lies inside it (the window's zero padding is read only by outputs that
// reach outside; the CPU stream decoder's stage-by-stage argument, composed). With n_latent
// steps known, samples n with hi(n) < n_latent are final; since dependency shifts by one latent
// step per hop samples, that is n < n_latent * hop - held_back.

CudaSnacStreamDecoder::CudaSnacStreamDecoder(CudaSnacDecoder& dec) : dec_(dec) {
  const audio::SnacHParams& hp = dec.hparams();
  hop_ = hp.hop_length;
  const int64_t N = 256;  // latent steps, far more than the receptive field
  int64_t n = N * hop_, lo = 0, hi = 0;
  for (; n > 0; --n) {
    dec.host().dependency(n - 1, n, &lo, &hi);
    if (hi <= N - 1) break;
  }
  held_back_ = N * hop_ - n;
  dec.host().dependency(n, n + 1, &lo, &hi);
  // A window spans the new steps plus the steps between the first unemitted sample's first
  // dependency and the previously known end.
  max_window_ = kMaxNewLatent + (N - lo) + 1;
}

void CudaSnacStreamDecoder::reset() {
  z_.clear();
  z_first_ = n_latent_ = emitted_ = 0;
  ended_ = false;
}

int64_t CudaSnacStreamDecoder::samples_pending() const { return ended_ ? 0 : n_latent_ * hop_ - emitted_; }

Status CudaSnacStreamDecoder::emit(int64_t avail, bool final, std::vector<float>* pcm) {
  if (avail <= emitted_) return Status::Ok();
  const int64_t D = dec_.hparams().latent_dim;
  int64_t lo = 0, hi = 0;
  dec_.host().dependency(emitted_, avail, &lo, &hi);
  const int64_t a = std::max<int64_t>(0, lo);
  const int64_t b = final ? n_latent_ : std::min(n_latent_, hi + 1);
  if (a < z_first_ || b <= a)  // internal invariant: the latents kept cover every window
    return internal_error(fmt("snac stream: window [%lld, %lld) outside the kept latents [%lld, %lld)",
                              (long long)a, (long long)b, (long long)z_first_, (long long)n_latent_));
  const int64_t T = b - a;
  window_pcm_.resize(size_t(T * hop_));
  OMNI_RETURN_IF_ERROR(dec_.decode_latents(z_.data() + (a - z_first_) * D, T, a, window_pcm_.data()));
  const float* first = window_pcm_.data() + (emitted_ - a * hop_);
  pcm->insert(pcm->end(), first, first + (avail - emitted_));
  emitted_ = avail;
  // Latents below the next sample's first dependency are never read again.
  dec_.host().dependency(avail, avail + 1, &lo, &hi);
  const int64_t keep = std::clamp(lo, z_first_, n_latent_);
  z_.erase(z_.begin(), z_.begin() + (keep - z_first_) * D);
  z_first_ = keep;
  return Status::Ok();
}

Status CudaSnacStreamDecoder::push(const audio::SnacCodes& codes, std::vector<float>* pcm) {
  if (ended_) return wrong_state("snac stream: push after flush (call reset() first)");
  OMNI_ASSIGN_OR_RETURN(int64_t n_groups, dec_.check_codes(codes));
  if (n_groups == 0) return Status::Ok();
  OMNI_RETURN_IF_ERROR(dec_.reserve(max_window_));  // grows once, at the first push
  dec_.host().latents(codes, &z_);
  const int64_t total = n_latent_ + n_groups * dec_.hparams().vq_strides[0];
  while (n_latent_ < total) {  // windows of at most kMaxNewLatent new steps
    n_latent_ = std::min(total, n_latent_ + kMaxNewLatent);
    OMNI_RETURN_IF_ERROR(emit(std::max<int64_t>(0, n_latent_ * hop_ - held_back_), false, pcm));
  }
  return Status::Ok();
}

Status CudaSnacStreamDecoder::flush(std::vector<float>* pcm) {
  if (ended_) return Status::Ok();
  OMNI_RETURN_IF_ERROR(emit(n_latent_ * hop_, true, pcm));
  ended_ = true;
  return Status::Ok();
}

}  // namespace omni
