// CudaViT: ViTEncoder::encode + adapt (vision/vit/vit_encoder.cpp), op for op, on the CUDA
// kernels (kernels/cuda/ops_cuda.h, ops_encoder.h).
#include "runtime/model/cuda_vision.h"

#if OMNIRT_HAVE_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/ops_encoder.h"

namespace omni {
namespace {

struct DevLinear {
  DType type = DType::kF32;
  const void* w = nullptr;   // device, [n_out, n_in] in `type`'s layout
  const float* b = nullptr;  // device [n_out] or null
  int64_t n_in = 0, n_out = 0;
};

struct DevNorm {
  const float* w = nullptr;  // null: no norm
  const float* b = nullptr;
};

struct DevBlock {
  DevNorm ln1, ln2;
  bool fused = false;     // qkv holds q, k, v rows in one matrix (same type)
  DevLinear qkv, q, k, v, out, fc1, fc2;
};

enum OpClass : int { kGemm = 0, kAttn = 1, kOther = 2 };

constexpr size_t kScoresCapBytes = size_t(256) << 20;

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

size_t matrix_bytes(const vision::ViTMatrix& m) {
  return static_cast<size_t>(dtype_row_bytes(m.type, m.n_in) * m.n_out);
}

cuda::EncAct enc_act(vision::ViTActivation a) {
  switch (a) {
    case vision::ViTActivation::kGeluErf: return cuda::EncAct::kGeluErf;
    case vision::ViTActivation::kGeluTanh: return cuda::EncAct::kGeluTanh;
    case vision::ViTActivation::kQuickGelu: return cuda::EncAct::kQuickGelu;
  }
  return cuda::EncAct::kNone;
}

}  // namespace

struct CudaViT::Impl {
  const vision::ViTWeights* w = nullptr;
  int device = 0;
  std::unique_ptr<vision::ViTEncoder> cpu;  // patch_positions() only
  cuda::Stream stream;
  cuda::BlasHandle blas;
  cuda::Event begin, end;
  cuda::DeviceArena weights, work;

  DevLinear patch, mm0, mm2, proj;  // proj: Gemma 3's f32 input projection [n_proj_out, d]
  const float* patch_bias = nullptr;
  const float* cls_row = nullptr;   // class_embd + pos_embd[0]
  const float* soft_norm = nullptr;
  DevNorm pre_ln, post_ln;
  std::vector<DevBlock> blocks;
  int64_t max_in = 0, max_w_scratch = 0, max_out = 0;
  bool fast_attn = true;  // cuda::attn_full_fast when the scores fit (scores_floats > 0)
  float* scores = nullptr;
  int64_t scores_floats = 0;

  // Work buffers for up to cap_cells grid cells (+1 class row) and cap_pixels floats.
  int64_t cap_cells = 0, cap_pixels = 0;
  float *pixels = nullptr, *col = nullptr, *x = nullptr, *ln = nullptr, *qkv = nullptr, *attn = nullptr;
  float *ff = nullptr, *pos = nullptr, *hid = nullptr, *outb = nullptr;
  int32_t *kept = nullptr, *idx = nullptr, *off = nullptr;
  uint16_t *x_scratch = nullptr, *w_scratch = nullptr;
  int64_t pos_gw = -1, pos_gh = -1;
  // Pinned staging for the pixels in and the result out (pageable copies cost ~2x); the result
  // is copied to pending_dst after the call's final synchronisation.
  cuda::PinnedBuffer pinned;
  float* pending_dst = nullptr;
  size_t pending_n = 0;
  std::vector<int32_t> h_idx, h_off;

  bool profiling = false;
  std::vector<cuda::Event> ev;  // pairs around each op while profiling
  std::vector<int> ev_class;
  size_t ev_used = 0;

  cudaStream_t s() const { return stream.get(); }

  template <class F>
  Status op(int cls, const char* what, F&& f) {
    const bool rec = profiling && ev_used + 2 <= ev.size();
    if (rec) OMNI_RETURN_IF_ERROR(ev[ev_used].record(s()));
    Status st = f();
    if (!st.ok()) return Status(st.code(), fmt("cuda vit: %s: %s", what, st.message().c_str()));
    if (rec) {
      OMNI_RETURN_IF_ERROR(ev[ev_used + 1].record(s()));
      ev_class.push_back(cls);
      ev_used += 2;
    }
    return Status::Ok();
  }

  Status gemm(const DevLinear& L, const float* in, int64_t n, float* y, bool acc) {
    return op(kGemm, "gemm", [&] {
      cuda::GemmParams g;
      g.w_type = L.type;
      g.w = L.w;
      g.x = in;
      g.y = y;
      g.bias = L.b;
      g.accumulate = acc;
      g.n_out = L.n_out;
      g.n_in = L.n_in;
      g.n_tok = n;
      g.w_scratch = w_scratch;
      g.x_scratch = x_scratch;
      return cuda::gemm_bf16(g, blas);
    });
  }
  template <class P>
  Status run(int cls, const char* what, const P& p, cudaError_t (*fn)(const P&, cudaStream_t)) {
    return op(cls, what, [&] {
      OMNI_RETURN_IF_ERROR(cuda::check_params(p));
      return cuda::cuda_status(fn(p, s()), what);
    });
  }
  Status layer_norm(const DevNorm& nrm, const float* in, float* y, int64_t rows) {
    cuda::LayerNormParams p;
    p.x = in;
    p.y = y;
    p.w = nrm.w;
    p.b = nrm.b;
    p.rows = rows;
    p.n = w->hp.n_embd;
    p.eps = w->hp.eps;
    return run(kOther, "layer_norm", p, cuda::launch_layer_norm);
  }

  Status ensure(int64_t cells, int64_t pixel_floats);
  Status upload_positions(int64_t gw, int64_t gh);
  Status encode_device(const vision::PixelTensor& px, const vision::PatchMask* mask, vision::ViTOutput* meta);
  Status adapt_device(const vision::ViTOutput& meta, std::vector<float>* embeds, int64_t* n_out);
  // The previous call ended with a synchronisation, so the staging buffer is free.
  const float* stage_pixels(const vision::PixelTensor& px) {
    std::memcpy(pinned.data(), px.chw.data(), px.chw.size() * 4);
    return pinned.as<float>();
  }
  Status download(float* host_dst, const float* dev, size_t n) {
    pending_dst = host_dst;
    pending_n = n;
    return cuda::cuda_status(cudaMemcpyAsync(pinned.data(), dev, n * 4, cudaMemcpyDeviceToHost, s()),
                             "cuda vit: copy result");
  }
  void begin_call() {
    pending_dst = nullptr;
    pending_n = 0;
    ev_used = 0;
    ev_class.clear();
  }
  Status finish_call(CudaViTProfile* prof, double* gpu_ms);
};

Status CudaViT::Impl::ensure(int64_t cells, int64_t pixel_floats) {
  if (cells <= cap_cells && pixel_floats <= cap_pixels) return Status::Ok();
  const vision::ViTHParams& hp = w->hp;
  const int64_t G = std::max(cells, cap_cells), P = std::max(pixel_floats, cap_pixels), N = G + 1;
  const int64_t d = hp.n_embd, row = 3 * hp.patch_size * hp.patch_size;
  // Fast attention's scores [heads, N, N] (34 MB for SigLIP-384's 730 rows x 16 heads), capped.
  const int64_t n_scores = fast_attn ? cuda::attn_fast_scores_floats(N, N, hp.n_head, kScoresCapBytes) : 0;
  OMNI_RETURN_IF_ERROR(stream.synchronize());  // the old buffers may still be in use
  work = cuda::DeviceArena();
  struct Item {
    void** ptr;
    size_t bytes;
  };
  const Item items[] = {
      {reinterpret_cast<void**>(&pixels), size_t(P) * 4},
      {reinterpret_cast<void**>(&col), size_t(G * row) * 4},
      {reinterpret_cast<void**>(&x), size_t(N * d) * 4},
      {reinterpret_cast<void**>(&ln), size_t(N * d) * 4},
      {reinterpret_cast<void**>(&qkv), size_t(N * 3 * d) * 4},
      {reinterpret_cast<void**>(&attn), size_t(N * d) * 4},
      {reinterpret_cast<void**>(&ff), size_t(N * hp.n_ff) * 4},
      {reinterpret_cast<void**>(&pos), size_t(G * d) * 4},
      {reinterpret_cast<void**>(&hid), size_t(N * std::max<int64_t>(mm0.n_out, 1)) * 4},
      {reinterpret_cast<void**>(&outb), size_t(N * max_out) * 4},
      {reinterpret_cast<void**>(&kept), size_t(G) * 4},
      {reinterpret_cast<void**>(&idx), size_t(G) * 4},
      {reinterpret_cast<void**>(&off), size_t(G + 1) * 4},
      {reinterpret_cast<void**>(&x_scratch), size_t(N * max_in) * 2},
      {reinterpret_cast<void**>(&w_scratch), size_t(std::max<int64_t>(max_w_scratch, 1)) * 2},
      {reinterpret_cast<void**>(&scores), size_t(std::max<int64_t>(n_scores, 1)) * 4},
  };
  size_t total = 0;
  for (const Item& it : items) total += round_up(it.bytes, 256);
  OMNI_ASSIGN_OR_RETURN(work, cuda::DeviceArena::create(total));
  for (const Item& it : items) {
    OMNI_ASSIGN_OR_RETURN(*it.ptr, work.alloc(it.bytes));
  }
  const size_t stage = size_t(std::max(P, N * std::max(d, max_out))) * 4;
  if (pinned.size() < stage) {
    OMNI_ASSIGN_OR_RETURN(pinned, cuda::PinnedBuffer::create(stage));
  }
  cap_cells = G;
  cap_pixels = P;
  scores_floats = n_scores;
  pos_gw = pos_gh = -1;
  return Status::Ok();
}

Status CudaViT::Impl::upload_positions(int64_t gw, int64_t gh) {
  if (gw == pos_gw && gh == pos_gh) return Status::Ok();
  // On the stream, after the previous image's reads of the old table; a pageable source is
  // staged before cudaMemcpyAsync returns, so `table` may go.
  const std::vector<float> table = cpu->patch_positions(gw, gh);
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(
      cudaMemcpyAsync(pos, table.data(), table.size() * sizeof(float), cudaMemcpyHostToDevice, s()),
      "cuda vit: upload positions"));
  pos_gw = gw;
  pos_gh = gh;
  return Status::Ok();
}

// The encoder on the device: x [n_tokens, d] holds the result; meta gets everything but hidden.
Status CudaViT::Impl::encode_device(const vision::PixelTensor& px, const vision::PatchMask* mask,
                                    vision::ViTOutput* meta) {
  const vision::ViTHParams& hp = w->hp;
  const int64_t p = hp.patch_size, d = hp.n_embd;
  if (px.width < p || px.height < p || px.chw.size() != size_t(3) * px.width * px.height) {
    return invalid_argument(fmt("cuda vit: pixels %d x %d (%zu floats): need 3 x H x W with H and W at least "
                                "the patch size %lld", px.width, px.height, px.chw.size(), static_cast<long long>(p)));
  }
  const int64_t gw = px.width / p, gh = px.height / p;
  if (gw * gh > 65536) {
    return invalid_argument(fmt("cuda vit: %lld x %lld patches (at most 65536)", static_cast<long long>(gw),
                                static_cast<long long>(gh)));
  }
  std::vector<int32_t> kept_h;
  if (mask) {
    if (mask->grid_w != gw || mask->grid_h != gh || mask->keep.size() != size_t(gw * gh)) {
      return invalid_argument(fmt("cuda vit: patch mask is %lld x %lld (%zu entries), the image has %lld x %lld "
                                  "patches", static_cast<long long>(mask->grid_w), static_cast<long long>(mask->grid_h),
                                  mask->keep.size(), static_cast<long long>(gw), static_cast<long long>(gh)));
    }
    for (int64_t i = 0; i < gw * gh; ++i)
      if (mask->keep[size_t(i)]) kept_h.push_back(static_cast<int32_t>(i));
    if (kept_h.empty()) return invalid_argument("cuda vit: the patch mask drops every patch (nothing left to encode)");
  } else {
    kept_h.resize(size_t(gw * gh));
    for (size_t i = 0; i < kept_h.size(); ++i) kept_h[i] = static_cast<int32_t>(i);
  }
  const bool cls = cls_row != nullptr;
  const int64_t n_patch = static_cast<int64_t>(kept_h.size()), n = n_patch + (cls ? 1 : 0);
  OMNI_RETURN_IF_ERROR(ensure(gw * gh, int64_t(px.chw.size())));
  OMNI_RETURN_IF_ERROR(upload_positions(gw, gh));
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(
      cudaMemcpyAsync(kept, kept_h.data(), kept_h.size() * 4, cudaMemcpyHostToDevice, s()), "cuda vit: copy patches"));
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(
      cudaMemcpyAsync(pixels, stage_pixels(px), px.chw.size() * 4, cudaMemcpyHostToDevice, s()), "cuda vit: copy pixels"));

  cuda::PatchGatherParams pg;
  pg.pixels = pixels;
  pg.patches = kept;
  pg.col = col;
  pg.width = px.width;
  pg.height = px.height;
  pg.patch = p;
  pg.grid_w = gw;
  pg.n_patch = n_patch;
  OMNI_RETURN_IF_ERROR(run(kOther, "patch_gather", pg, cuda::launch_patch_gather));
  float* patch_out = x + (cls ? d : 0);
  DevLinear pl = patch;
  pl.b = patch_bias;
  OMNI_RETURN_IF_ERROR(gemm(pl, col, n_patch, patch_out, false));
  cuda::GatherRowsParams pa;
  pa.src = pos;
  pa.idx = kept;
  pa.dst = patch_out;
  pa.rows = n_patch;
  pa.n = d;
  pa.accumulate = true;
  OMNI_RETURN_IF_ERROR(run(kOther, "add positions", pa, cuda::launch_gather_rows));
  if (cls) {
    OMNI_RETURN_IF_ERROR(cuda::cuda_status(
        cudaMemcpyAsync(x, cls_row, size_t(d) * 4, cudaMemcpyDeviceToDevice, s()), "cuda vit: class row"));
  }
  if (pre_ln.w) OMNI_RETURN_IF_ERROR(layer_norm(pre_ln, x, x, n));

  const int64_t H = hp.n_head, D = d / H;
  for (const DevBlock& b : blocks) {
    OMNI_RETURN_IF_ERROR(layer_norm(b.ln1, x, ln, n));
    cuda::AttnFullParams at;
    if (b.fused) {
      OMNI_RETURN_IF_ERROR(gemm(b.qkv, ln, n, qkv, false));
      at.q = qkv;
      at.k = qkv + d;
      at.v = qkv + 2 * d;
      at.q_stride = at.kv_stride = 3 * d;
    } else {
      OMNI_RETURN_IF_ERROR(gemm(b.q, ln, n, qkv, false));
      OMNI_RETURN_IF_ERROR(gemm(b.k, ln, n, qkv + n * d, false));
      OMNI_RETURN_IF_ERROR(gemm(b.v, ln, n, qkv + 2 * n * d, false));
      at.q = qkv;
      at.k = qkv + n * d;
      at.v = qkv + 2 * n * d;
      at.q_stride = at.kv_stride = d;
    }
    at.out = attn;
    at.out_stride = d;
    at.n_q = at.n_kv = n;
    at.n_head = at.n_kv_head = H;
    at.head_dim = D;
    at.scale = 1.0f / std::sqrt(static_cast<float>(D));
    if (scores_floats > 0) {
      const cuda::AttnFastParams fp{at, scores, scores_floats};
      OMNI_RETURN_IF_ERROR(op(kAttn, "attention", [&] { return cuda::attn_full_fast(fp, blas); }));
    } else {
      OMNI_RETURN_IF_ERROR(run(kAttn, "attention", at, cuda::launch_attn_full));
    }
    OMNI_RETURN_IF_ERROR(gemm(b.out, attn, n, x, true));
    OMNI_RETURN_IF_ERROR(layer_norm(b.ln2, x, ln, n));
    OMNI_RETURN_IF_ERROR(gemm(b.fc1, ln, n, ff, false));
    cuda::BiasActParams ba;
    ba.x = ff;
    ba.rows = n;
    ba.n = hp.n_ff;
    ba.act = enc_act(hp.act);
    OMNI_RETURN_IF_ERROR(run(kOther, "activation", ba, cuda::launch_bias_act));
    OMNI_RETURN_IF_ERROR(gemm(b.fc2, ff, n, x, true));
  }
  if (post_ln.w) OMNI_RETURN_IF_ERROR(layer_norm(post_ln, x, x, n));

  meta->n_tokens = n;
  meta->n_embd = d;
  meta->class_token = cls;
  meta->grid_w = gw;
  meta->grid_h = gh;
  meta->patches = std::move(kept_h);
  meta->hidden.clear();
  return Status::Ok();
}

// The adapter on x's patch rows (device); meta describes them (hidden unused).
Status CudaViT::Impl::adapt_device(const vision::ViTOutput& meta, std::vector<float>* embeds, int64_t* n_out) {
  const vision::ViTHParams& hp = w->hp;
  const int64_t d = hp.n_embd, n = meta.n_tokens - (meta.class_token ? 1 : 0);
  const float* xp = x + (meta.class_token ? d : 0);
  int64_t rows = n, width = d;
  const float* result = xp;
  if (hp.projector == vision::ProjectorType::kMlp) {
    OMNI_RETURN_IF_ERROR(gemm(mm0, xp, n, hid, false));
    cuda::BiasActParams ba;
    ba.x = hid;
    ba.rows = n;
    ba.n = mm0.n_out;
    ba.act = cuda::EncAct::kGeluErf;
    OMNI_RETURN_IF_ERROR(run(kOther, "projector activation", ba, cuda::launch_bias_act));
    OMNI_RETURN_IF_ERROR(gemm(mm2, hid, n, outb, false));
    width = mm2.n_out;
    result = outb;
  } else if (hp.projector == vision::ProjectorType::kGemma3Pool ||
             hp.projector == vision::ProjectorType::kIdefics3Merge) {
    const bool pool = hp.projector == vision::ProjectorType::kGemma3Pool;
    const int64_t k = hp.pool_kernel, gw = meta.grid_w, gh = meta.grid_h;
    const int64_t pw = k > 0 ? gw / k : 0, ph = k > 0 ? gh / k : 0;
    if (pw <= 0 || ph <= 0) {
      return invalid_argument(fmt("cuda vit adapter: a %lld x %lld patch grid is smaller than the %lld x %lld %s "
                                  "window", (long long)gw, (long long)gh, (long long)k, (long long)k,
                                  pool ? "pooling" : "merge"));
    }
    if (meta.patches.size() != size_t(n)) {
      return invalid_argument(fmt("cuda vit adapter: %zu patch indices for %lld rows", meta.patches.size(),
                                  (long long)n));
    }
    std::vector<int64_t> row_of(size_t(gw * gh), -1);
    for (size_t t = 0; t < meta.patches.size(); ++t) {
      const int32_t g = meta.patches[t];
      if (g < 0 || g >= gw * gh)
        return invalid_argument(fmt("cuda vit adapter: patch index %d outside the %lld x %lld grid", g,
                                    (long long)gw, (long long)gh));
      row_of[size_t(g)] = int64_t(t);
    }
    // Per window (row-major): its rows, the kept ones (pool) or all k*k when all are kept (merge).
    h_idx.clear();
    h_off.assign(1, 0);
    for (int64_t wy = 0; wy < ph; ++wy) {
      for (int64_t wx = 0; wx < pw; ++wx) {
        const size_t start = h_idx.size();
        bool whole = true;
        for (int64_t m = 0; m < k; ++m) {
          for (int64_t j = 0; j < k; ++j) {
            const int64_t r = row_of[size_t((wy * k + m) * gw + wx * k + j)];
            if (r >= 0) h_idx.push_back(static_cast<int32_t>(r));
            else whole = false;
          }
        }
        if (!pool && !whole) h_idx.resize(start);
        if (h_idx.size() > start) h_off.push_back(static_cast<int32_t>(h_idx.size()));
      }
    }
    const int64_t n_win = int64_t(h_off.size()) - 1;
    if (n_win == 0) {
      return invalid_argument(pool ? "cuda vit adapter: every pooling window lost all its patches (mask)"
                                   : "cuda vit adapter: no merge window keeps all its patches (mask)");
    }
    OMNI_RETURN_IF_ERROR(cuda::cuda_status(
        cudaMemcpyAsync(idx, h_idx.data(), h_idx.size() * 4, cudaMemcpyHostToDevice, s()), "cuda vit: copy windows"));
    if (pool) {
      OMNI_RETURN_IF_ERROR(cuda::cuda_status(
          cudaMemcpyAsync(off, h_off.data(), h_off.size() * 4, cudaMemcpyHostToDevice, s()), "cuda vit: copy windows"));
      cuda::MeanRowsParams mr;
      mr.src = xp;
      mr.idx = idx;
      mr.offsets = off;
      mr.dst = ln;
      mr.rows = n_win;
      mr.n = d;
      OMNI_RETURN_IF_ERROR(run(kOther, "window mean", mr, cuda::launch_mean_rows));
      cuda::RmsNormParams rn;
      rn.x = ln;
      rn.y = ln;
      rn.w = soft_norm;
      rn.rows = n_win;
      rn.n = d;
      rn.eps = hp.eps;
      OMNI_RETURN_IF_ERROR(run(kOther, "soft-embedding norm", rn, cuda::launch_rms_norm));
      OMNI_RETURN_IF_ERROR(gemm(proj, ln, n_win, outb, false));
      width = proj.n_out;
    } else {
      cuda::GatherRowsParams gr;
      gr.src = xp;
      gr.idx = idx;
      gr.dst = attn;
      gr.rows = int64_t(h_idx.size());
      gr.n = d;
      OMNI_RETURN_IF_ERROR(run(kOther, "pixel shuffle", gr, cuda::launch_gather_rows));
      OMNI_RETURN_IF_ERROR(gemm(mm0, attn, n_win, outb, false));
      width = mm0.n_out;
    }
    rows = n_win;
    result = outb;
  }
  embeds->resize(size_t(rows * width));
  OMNI_RETURN_IF_ERROR(download(embeds->data(), result, embeds->size()));
  *n_out = width;
  return Status::Ok();
}

Status CudaViT::Impl::finish_call(CudaViTProfile* prof, double* gpu_ms) {
  OMNI_RETURN_IF_ERROR(end.record(s()));
  OMNI_RETURN_IF_ERROR(stream.synchronize());
  if (pending_n > 0) std::memcpy(pending_dst, pinned.data(), pending_n * 4);
  pending_n = 0;
  OMNI_ASSIGN_OR_RETURN(float ms, cuda::Event::elapsed_ms(begin, end));
  *gpu_ms = ms;
  if (profiling && ev_used >= 2) {
    CudaViTProfile p;
    for (size_t i = 0; i + 1 < ev_used; i += 2) {
      OMNI_ASSIGN_OR_RETURN(float t, cuda::Event::elapsed_ms(ev[i], ev[i + 1]));
      const int c = ev_class[i / 2];
      (c == kGemm ? p.gemm_ms : c == kAttn ? p.attn_ms : p.other_ms) += t;
    }
    OMNI_ASSIGN_OR_RETURN(float tot, cuda::Event::elapsed_ms(ev[0], ev[ev_used - 1]));
    p.total_ms = tot;
    *prof = p;
  }
  return Status::Ok();
}

CudaViT::CudaViT() = default;
CudaViT::~CudaViT() = default;

StatusOr<std::unique_ptr<CudaViT>> CudaViT::create(const vision::ViTWeights& w, int device) {
  return create(w, device, CudaViTOptions{});
}

StatusOr<std::unique_ptr<CudaViT>> CudaViT::create(const vision::ViTWeights& w, int device,
                                                   const CudaViTOptions& options) {
  OMNI_ASSIGN_OR_RETURN(int n_dev, cuda::device_count());
  if (device < 0 || device >= n_dev)
    return invalid_argument(fmt("cuda vit: device %d of %d", device, n_dev));
  const vision::ViTHParams& hp = w.hp;
  const int64_t d = hp.n_embd;
  if (hp.n_head <= 0 || d % hp.n_head != 0 || d / hp.n_head > cuda::kEncAttnMaxHeadDim)
    return unsupported(fmt("cuda vit: n_embd %lld / n_head %lld: head size above the CUDA attention limit %d or "
                           "not whole", (long long)d, (long long)hp.n_head, cuda::kEncAttnMaxHeadDim));
  OMNI_RETURN_IF_ERROR(cuda::set_device(device));
  std::unique_ptr<CudaViT> self(new CudaViT());
  self->impl_ = std::make_unique<Impl>();
  Impl& I = *self->impl_;
  I.w = &w;
  I.device = device;
  I.fast_attn = !options.exact_attention && !cuda::encoder_attn_exact_env();
  I.cpu = std::make_unique<vision::ViTEncoder>(w);
  OMNI_ASSIGN_OR_RETURN(I.stream, cuda::Stream::create());
  OMNI_ASSIGN_OR_RETURN(I.blas, cuda::BlasHandle::create(I.stream.get()));
  OMNI_ASSIGN_OR_RETURN(I.begin, cuda::Event::create());
  OMNI_ASSIGN_OR_RETURN(I.end, cuda::Event::create());

  // ---- sizes: every matrix (q/k/v fused when they share a type), then every f32 vector.
  const bool pool = hp.projector == vision::ProjectorType::kGemma3Pool;
  const bool mlp = hp.projector == vision::ProjectorType::kMlp;
  const bool merge = hp.projector == vision::ProjectorType::kIdefics3Merge;
  std::vector<const vision::ViTMatrix*> mats = {&w.patch};
  for (const vision::ViTBlock& b : w.blocks)
    for (const vision::ViTLinear* l : {&b.q, &b.k, &b.v, &b.out, &b.fc1, &b.fc2}) mats.push_back(&l->w);
  if (mlp || merge) mats.push_back(&w.mm0.w);
  if (mlp) mats.push_back(&w.mm2.w);
  size_t total = 0;
  for (const vision::ViTMatrix* m : mats) {
    if (!m->data || m->n_in <= 0 || m->n_out <= 0)
      return invalid_argument("cuda vit: a weight matrix is missing (the loader checks shapes)");
    if (!cuda::weight_type_supported(m->type))
      return unsupported(fmt("cuda vit: weight type %s has no CUDA kernel", dtype_name(m->type)));
    total += round_up(matrix_bytes(*m), 256);
    I.max_in = std::max(I.max_in, m->n_in);
    if (m->type != DType::kBF16 && m->type != DType::kF16)
      I.max_w_scratch = std::max(I.max_w_scratch, m->n_in * m->n_out);
  }
  for (const vision::ViTBlock& b : w.blocks)  // a fused qkv matrix converted at once
    if (b.q.w.type != DType::kBF16 && b.q.w.type != DType::kF16)
      I.max_w_scratch = std::max(I.max_w_scratch, 3 * b.q.w.n_in * b.q.w.n_out);
  if (pool) {
    if (int64_t(w.mm_soft_emb_norm.size()) != d || int64_t(w.mm_input_proj.size()) != d * hp.n_proj_out ||
        hp.n_proj_out <= 0)
      return invalid_argument("cuda vit: Gemma 3 pooling weights of another width than n_embd");
    total += round_up(w.mm_input_proj.size() * 4, 256) + round_up(size_t(d) * 4, 256);
    I.max_in = std::max(I.max_in, d);
    I.max_w_scratch = std::max(I.max_w_scratch, int64_t(w.mm_input_proj.size()));
  }
  I.max_in = std::max(I.max_in, hp.n_ff);
  I.max_out = std::max<int64_t>({d, mlp ? w.mm2.w.n_out : 0, merge ? w.mm0.w.n_out : 0, pool ? hp.n_proj_out : 0});
  auto vec_bytes = [](const std::vector<float>& v) { return round_up(v.size() * 4, 256); };
  for (const vision::ViTBlock& b : w.blocks) {
    for (const auto* v : {&b.ln1.w, &b.ln1.b, &b.ln2.w, &b.ln2.b, &b.out.b, &b.fc1.b, &b.fc2.b}) total += vec_bytes(*v);
    total += round_up(size_t(3 * d) * 4, 256) * 2;  // fused bias, or q/k/v biases
  }
  for (const auto* v : {&w.patch_bias, &w.pre_ln.w, &w.pre_ln.b, &w.post_ln.w, &w.post_ln.b, &w.mm0.b, &w.mm2.b})
    total += vec_bytes(*v);
  total += round_up(size_t(d) * 4, 256);  // class row
  OMNI_ASSIGN_OR_RETURN(I.weights, cuda::DeviceArena::create(total + 4096));

  auto up = [&](void* dst, const void* src, size_t bytes) {
    return cuda::cuda_status(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cuda vit: upload weights");
  };
  auto upload_vec = [&](const std::vector<float>& v) -> StatusOr<const float*> {
    if (v.empty()) return static_cast<const float*>(nullptr);
    OMNI_ASSIGN_OR_RETURN(float* p, I.weights.alloc_array<float>(v.size()));
    OMNI_RETURN_IF_ERROR(up(p, v.data(), v.size() * 4));
    return static_cast<const float*>(p);
  };
  auto upload_lin = [&](const vision::ViTMatrix& m, const std::vector<float>& b) -> StatusOr<DevLinear> {
    DevLinear L;
    L.type = m.type;
    L.n_in = m.n_in;
    L.n_out = m.n_out;
    OMNI_ASSIGN_OR_RETURN(void* p, I.weights.alloc(matrix_bytes(m)));
    OMNI_RETURN_IF_ERROR(up(p, m.data, matrix_bytes(m)));
    L.w = p;
    if (!b.empty() && int64_t(b.size()) != m.n_out) return invalid_argument("cuda vit: a bias of the wrong size");
    OMNI_ASSIGN_OR_RETURN(L.b, upload_vec(b));
    return L;
  };
  auto upload_norm = [&](const vision::ViTLayerNorm& n) -> StatusOr<DevNorm> {
    DevNorm r;
    if (n.w.empty()) return r;
    if (int64_t(n.w.size()) != d || (!n.b.empty() && int64_t(n.b.size()) != d))
      return invalid_argument("cuda vit: a LayerNorm of another width than n_embd");
    OMNI_ASSIGN_OR_RETURN(r.w, upload_vec(n.w));
    OMNI_ASSIGN_OR_RETURN(r.b, upload_vec(n.b));
    return r;
  };
  OMNI_ASSIGN_OR_RETURN(I.patch, upload_lin(w.patch, {}));
  OMNI_ASSIGN_OR_RETURN(I.patch_bias, upload_vec(w.patch_bias));
  OMNI_ASSIGN_OR_RETURN(I.pre_ln, upload_norm(w.pre_ln));
  OMNI_ASSIGN_OR_RETURN(I.post_ln, upload_norm(w.post_ln));
  if (!w.class_embd.empty()) {
    if (int64_t(w.class_embd.size()) != d || int64_t(w.pos_embd.size()) < d)
      return invalid_argument("cuda vit: class embedding of another width than n_embd");
    std::vector<float> row(static_cast<size_t>(d));
    for (int64_t i = 0; i < d; ++i) row[size_t(i)] = w.class_embd[size_t(i)] + w.pos_embd[size_t(i)];
    OMNI_ASSIGN_OR_RETURN(I.cls_row, upload_vec(row));
  }
  for (const vision::ViTBlock& b : w.blocks) {
    DevBlock B;
    OMNI_ASSIGN_OR_RETURN(B.ln1, upload_norm(b.ln1));
    OMNI_ASSIGN_OR_RETURN(B.ln2, upload_norm(b.ln2));
    if (!B.ln1.w || !B.ln2.w) return invalid_argument("cuda vit: a block without its LayerNorms");
    B.fused = b.q.w.type == b.k.w.type && b.k.w.type == b.v.w.type && b.q.w.n_out == d && b.k.w.n_out == d &&
              b.v.w.n_out == d && b.q.w.n_in == d && b.k.w.n_in == d && b.v.w.n_in == d;
    if (B.fused) {
      const size_t one = matrix_bytes(b.q.w);
      B.qkv.type = b.q.w.type;
      B.qkv.n_in = d;
      B.qkv.n_out = 3 * d;
      OMNI_ASSIGN_OR_RETURN(void* p, I.weights.alloc(3 * one));
      OMNI_RETURN_IF_ERROR(up(p, b.q.w.data, one));
      OMNI_RETURN_IF_ERROR(up(static_cast<uint8_t*>(p) + one, b.k.w.data, one));
      OMNI_RETURN_IF_ERROR(up(static_cast<uint8_t*>(p) + 2 * one, b.v.w.data, one));
      B.qkv.w = p;
      if (!b.q.b.empty() || !b.k.b.empty() || !b.v.b.empty()) {
        std::vector<float> bias(size_t(3 * d), 0.0f);
        const std::vector<float>* parts[3] = {&b.q.b, &b.k.b, &b.v.b};
        for (int i = 0; i < 3; ++i) {
          if (parts[i]->empty()) continue;
          if (int64_t(parts[i]->size()) != d) return invalid_argument("cuda vit: a q/k/v bias of the wrong size");
          std::copy(parts[i]->begin(), parts[i]->end(), bias.begin() + i * d);
        }
        OMNI_ASSIGN_OR_RETURN(B.qkv.b, upload_vec(bias));
      }
    } else {
      if (b.q.w.n_out != d || b.k.w.n_out != d || b.v.w.n_out != d)
        return unsupported("cuda vit: q/k/v projections of another width than n_embd");
      OMNI_ASSIGN_OR_RETURN(B.q, upload_lin(b.q.w, b.q.b));
      OMNI_ASSIGN_OR_RETURN(B.k, upload_lin(b.k.w, b.k.b));
      OMNI_ASSIGN_OR_RETURN(B.v, upload_lin(b.v.w, b.v.b));
    }
    OMNI_ASSIGN_OR_RETURN(B.out, upload_lin(b.out.w, b.out.b));
    OMNI_ASSIGN_OR_RETURN(B.fc1, upload_lin(b.fc1.w, b.fc1.b));
    OMNI_ASSIGN_OR_RETURN(B.fc2, upload_lin(b.fc2.w, b.fc2.b));
    if (B.fc1.n_out != hp.n_ff || B.fc2.n_in != hp.n_ff || B.out.n_out != d || B.fc2.n_out != d)
      return invalid_argument("cuda vit: block shapes do not match n_embd / n_ff");
    I.blocks.push_back(B);
  }
  if (mlp || merge) {
    OMNI_ASSIGN_OR_RETURN(I.mm0, upload_lin(w.mm0.w, w.mm0.b));
  }
  if (mlp) {
    OMNI_ASSIGN_OR_RETURN(I.mm2, upload_lin(w.mm2.w, w.mm2.b));
  }
  if (merge && I.mm0.n_in != d * hp.pool_kernel * hp.pool_kernel)
    return invalid_argument("cuda vit: merge projection input is not n_embd * pool_kernel^2");
  if (pool) {
    OMNI_ASSIGN_OR_RETURN(I.soft_norm, upload_vec(w.mm_soft_emb_norm));
    I.proj.type = DType::kF32;
    I.proj.n_in = d;
    I.proj.n_out = hp.n_proj_out;
    OMNI_ASSIGN_OR_RETURN(I.proj.w, upload_vec(w.mm_input_proj));
  }
  // cudaMemcpy from pageable memory may return before its DMA lands, and the work stream does
  // not order against the legacy stream: wait for the uploads once here.
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(cudaDeviceSynchronize(), "cuda vit: upload weights"));
  // Scratch for the trained grid now, so the first image of that size allocates nothing.
  const int64_t g = std::max<int64_t>(hp.grid(), 1), side = std::max<int64_t>(hp.image_size, hp.patch_size);
  OMNI_RETURN_IF_ERROR(I.ensure(g * g, 3 * side * side));
  return self;
}

void CudaViT::set_profiling(bool on) {
  Impl& I = *impl_;
  if (on && I.ev.empty()) {
    for (int i = 0; i < 2048; ++i) {
      auto e = cuda::Event::create();
      if (!e.ok()) break;
      I.ev.push_back(std::move(e).value());
    }
  }
  I.profiling = on;
}

Status CudaViT::encode(const vision::PixelTensor& px, const vision::PatchMask* mask, vision::ViTOutput* out) {
  Impl& I = *impl_;
  OMNI_RETURN_IF_ERROR(cuda::set_device(I.device));
  I.begin_call();
  OMNI_RETURN_IF_ERROR(I.begin.record(I.s()));
  OMNI_RETURN_IF_ERROR(I.encode_device(px, mask, out));
  out->hidden.resize(size_t(out->n_tokens * out->n_embd));
  OMNI_RETURN_IF_ERROR(I.download(out->hidden.data(), I.x, out->hidden.size()));
  return I.finish_call(&profile_, &last_gpu_ms_);
}

Status CudaViT::adapt(const vision::ViTOutput& enc, std::vector<float>* embeds, int64_t* n_out) {
  Impl& I = *impl_;
  OMNI_RETURN_IF_ERROR(cuda::set_device(I.device));
  const int64_t d = enc.n_embd, n = enc.n_tokens - (enc.class_token ? 1 : 0);
  if (d != I.w->hp.n_embd || n <= 0 || enc.hidden.size() != size_t(enc.n_tokens * d) || enc.grid_w <= 0 ||
      enc.grid_h <= 0 || n > enc.grid_w * enc.grid_h || enc.class_token != (I.cls_row != nullptr)) {
    return invalid_argument(fmt("cuda vit adapter: encoder output of %lld tokens x %lld on a %lld x %lld grid "
                                "(weights: n_embd %lld)", (long long)enc.n_tokens, (long long)d,
                                (long long)enc.grid_w, (long long)enc.grid_h, (long long)I.w->hp.n_embd));
  }
  I.begin_call();
  OMNI_RETURN_IF_ERROR(I.ensure(enc.grid_w * enc.grid_h, 0));
  OMNI_RETURN_IF_ERROR(I.begin.record(I.s()));
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(
      cudaMemcpyAsync(I.x, enc.hidden.data(), enc.hidden.size() * 4, cudaMemcpyHostToDevice, I.s()),
      "cuda vit: copy hidden states"));
  OMNI_RETURN_IF_ERROR(I.adapt_device(enc, embeds, n_out));
  return I.finish_call(&profile_, &last_gpu_ms_);
}

Status CudaViT::encode_adapt(const vision::PixelTensor& px, const vision::PatchMask* mask,
                             std::vector<float>* embeds, int64_t* n_out, vision::ViTOutput* enc) {
  Impl& I = *impl_;
  OMNI_RETURN_IF_ERROR(cuda::set_device(I.device));
  I.begin_call();
  OMNI_RETURN_IF_ERROR(I.begin.record(I.s()));
  vision::ViTOutput meta;
  OMNI_RETURN_IF_ERROR(I.encode_device(px, mask, &meta));
  OMNI_RETURN_IF_ERROR(I.adapt_device(meta, embeds, n_out));
  OMNI_RETURN_IF_ERROR(I.finish_call(&profile_, &last_gpu_ms_));
  if (enc) *enc = std::move(meta);
  return Status::Ok();
}

}  // namespace omni

#else  // !OMNIRT_HAVE_CUDA: the type exists so callers compile; create() says why it cannot work.

namespace omni {

struct CudaViT::Impl {};

CudaViT::CudaViT() = default;
CudaViT::~CudaViT() = default;
StatusOr<std::unique_ptr<CudaViT>> CudaViT::create(const vision::ViTWeights&, int) {
  return unsupported("omnirt was built without CUDA (configure with -DOMNIRT_CUDA=ON where nvcc exists)");
}
StatusOr<std::unique_ptr<CudaViT>> CudaViT::create(const vision::ViTWeights& w, int device, const CudaViTOptions&) {
  return create(w, device);
}
Status CudaViT::encode(const vision::PixelTensor&, const vision::PatchMask*, vision::ViTOutput*) {
  return wrong_state("no CUDA");
}
Status CudaViT::adapt(const vision::ViTOutput&, std::vector<float>*, int64_t*) { return wrong_state("no CUDA"); }
Status CudaViT::encode_adapt(const vision::PixelTensor&, const vision::PatchMask*, std::vector<float>*, int64_t*,
                             vision::ViTOutput*) {
  return wrong_state("no CUDA");
}
void CudaViT::set_profiling(bool) {}

}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA
