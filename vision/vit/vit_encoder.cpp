#include "vision/vit/vit_encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/ops_cpu.h"

namespace omni::vision {
namespace {

enum Slot : size_t {
  kX = 0, kLn, kQ, kK, kV, kAttn, kFf, kMm, kCol, kKh, kVt, kHeadQ, kScores, kHeadOut, kPos,
  kNumSlots
};

void layer_norm(ThreadPool& pool, const float* x, const ViTLayerNorm& ln, float eps, float* y,
                int64_t n_tok, int64_t d) {
  pool.parallel_for(n_tok, 4, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      const float* xt = x + t * d;
      float* yt = y + t * d;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < d; ++i) mean += xt[i];
      mean /= static_cast<double>(d);
      for (int64_t i = 0; i < d; ++i) var += (xt[i] - mean) * (xt[i] - mean);
      const float inv = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(d) + eps));
      const float m = static_cast<float>(mean);
      for (int64_t i = 0; i < d; ++i) yt[i] = (xt[i] - m) * inv * ln.w[i] + ln.b[i];
    }
  });
}

void activate(ThreadPool& pool, ViTActivation act, float* x, int64_t n) {
  pool.parallel_for(n, 4096, [&](int64_t b, int64_t e, int) {
    switch (act) {
      case ViTActivation::kGeluErf:
        cpu::gelu_erf(x + b, e - b);
        break;
      case ViTActivation::kGeluTanh:
        cpu::gelu_tanh(x + b, e - b);
        break;
      case ViTActivation::kQuickGelu:
        for (int64_t i = b; i < e; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
        break;
    }
  });
}

void add_rows(ThreadPool& pool, float* y, const float* bias, int64_t n_tok, int64_t d) {
  pool.parallel_for(n_tok, 8, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) cpu::add(y + t * d, bias, y + t * d, d);
  });
}

// Keys' cubic convolution (A = -0.75), as torch's upsample_bicubic2d.
void cubic_weights(double t, double w[4]) {
  constexpr double A = -0.75;
  auto near = [](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };
  auto far = [](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}

}  // namespace

PatchMask PatchMask::keep_all(int64_t grid_w, int64_t grid_h) {
  PatchMask m;
  m.grid_w = grid_w;
  m.grid_h = grid_h;
  m.keep.assign(static_cast<size_t>(std::max<int64_t>(0, grid_w * grid_h)), 1);
  return m;
}

void PatchMask::drop_pixel_rect(int64_t patch_size, int64_t x0, int64_t y0, int64_t x1,
                                int64_t y1) {
  if (patch_size <= 0) return;
  for (int64_t gy = 0; gy < grid_h; ++gy) {
    for (int64_t gx = 0; gx < grid_w; ++gx) {
      const int64_t px0 = gx * patch_size, py0 = gy * patch_size;
      if (px0 < x1 && px0 + patch_size > x0 && py0 < y1 && py0 + patch_size > y0) {
        keep[static_cast<size_t>(gy * grid_w + gx)] = 0;
      }
    }
  }
}

int64_t PatchMask::n_kept() const {
  return std::count_if(keep.begin(), keep.end(), [](uint8_t k) { return k != 0; });
}

ViTEncoder::ViTEncoder(const ViTWeights& w) : w_(w), scratch_(kNumSlots) {}

float* ViTEncoder::buf(size_t slot, size_t n) {
  if (scratch_[slot].size() < n) scratch_[slot].resize(n);
  return scratch_[slot].data();
}

std::vector<float> ViTEncoder::patch_positions(int64_t grid_w, int64_t grid_h) const {
  const int64_t d = w_.hp.n_embd, g = w_.hp.grid();
  const float* table = w_.pos_embd.data() + (w_.class_embd.empty() ? 0 : d);
  std::vector<float> out(static_cast<size_t>(grid_w * grid_h * d));
  if (grid_w == g && grid_h == g) {
    std::memcpy(out.data(), table, out.size() * sizeof(float));
    return out;
  }
  // Separable: rows first (along y) into tmp [grid_h, g, d], then along x.
  auto taps = [](int64_t in, int64_t out_n, int64_t o, int64_t idx[4], double w[4]) {
    const double scale = static_cast<double>(in) / static_cast<double>(out_n);
    const double src = (static_cast<double>(o) + 0.5) * scale - 0.5;
    const double f = std::floor(src);
    cubic_weights(src - f, w);
    for (int k = 0; k < 4; ++k) {
      idx[k] = std::clamp<int64_t>(static_cast<int64_t>(f) - 1 + k, 0, in - 1);
    }
  };
  std::vector<double> tmp(static_cast<size_t>(grid_h * g * d), 0.0);
  for (int64_t oy = 0; oy < grid_h; ++oy) {
    int64_t iy[4];
    double wy[4];
    taps(g, grid_h, oy, iy, wy);
    for (int k = 0; k < 4; ++k) {
      for (int64_t x = 0; x < g; ++x) {
        const float* src = table + (iy[k] * g + x) * d;
        double* dst = tmp.data() + (oy * g + x) * d;
        for (int64_t i = 0; i < d; ++i) dst[i] += wy[k] * src[i];
      }
    }
  }
  for (int64_t ox = 0; ox < grid_w; ++ox) {
    int64_t ix[4];
    double wx[4];
    taps(g, grid_w, ox, ix, wx);
    for (int64_t oy = 0; oy < grid_h; ++oy) {
      float* dst = out.data() + (oy * grid_w + ox) * d;
      for (int64_t i = 0; i < d; ++i) {
        double s = 0;
        for (int k = 0; k < 4; ++k) s += wx[k] * tmp[static_cast<size_t>((oy * g + ix[k]) * d + i)];
        dst[i] = static_cast<float>(s);
      }
    }
  }
  return out;
}

Status ViTEncoder::encode(ThreadPool& pool, const PixelTensor& px, const PatchMask* mask,
                          ViTOutput* out) {
  const ViTHParams& hp = w_.hp;
  const int64_t p = hp.patch_size, d = hp.n_embd;
  if (px.width < p || px.height < p || px.chw.size() != size_t(3) * px.width * px.height) {
    return invalid_argument(fmt("vit: pixels %d x %d (%zu floats): need 3 x H x W with H and W "
                                "at least the patch size %lld", px.width, px.height,
                                px.chw.size(), static_cast<long long>(p)));
  }
  const int64_t gw = px.width / p, gh = px.height / p;
  if (gw * gh > 65536) {
    return invalid_argument(fmt("vit: %lld x %lld patches (at most 65536)",
                                static_cast<long long>(gw), static_cast<long long>(gh)));
  }
  std::vector<int32_t> kept;
  if (mask) {
    if (mask->grid_w != gw || mask->grid_h != gh || mask->keep.size() != size_t(gw * gh)) {
      return invalid_argument(fmt("vit: patch mask is %lld x %lld (%zu entries), the image has "
                                  "%lld x %lld patches", static_cast<long long>(mask->grid_w),
                                  static_cast<long long>(mask->grid_h), mask->keep.size(),
                                  static_cast<long long>(gw), static_cast<long long>(gh)));
    }
    for (int64_t i = 0; i < gw * gh; ++i) if (mask->keep[i]) kept.push_back(static_cast<int32_t>(i));
    if (kept.empty()) {
      return invalid_argument("vit: the patch mask drops every patch (nothing left to encode)");
    }
  } else {
    kept.resize(static_cast<size_t>(gw * gh));
    for (size_t i = 0; i < kept.size(); ++i) kept[i] = static_cast<int32_t>(i);
  }
  const bool cls = !w_.class_embd.empty();
  const int64_t n_patch = static_cast<int64_t>(kept.size());
  const int64_t n = n_patch + (cls ? 1 : 0);
  const int64_t row = 3 * p * p;

  // Patch embedding: col [n_patch, 3*p*p] ordered (c, y, x) -> [n_patch, d].
  float* col = buf(kCol, size_t(n_patch * row));
  pool.parallel_for(n_patch, 8, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t gy = kept[t] / gw, gx = kept[t] % gw;
      float* dst = col + t * row;
      for (int64_t c = 0; c < 3; ++c) {
        for (int64_t y = 0; y < p; ++y) {
          const float* src = px.chw.data() + (c * px.height + gy * p + y) * px.width + gx * p;
          std::memcpy(dst + (c * p + y) * p, src, size_t(p) * sizeof(float));
        }
      }
    }
  });
  float* x = buf(kX, size_t(n * d));
  float* mm = buf(kMm, size_t(cpu::matmul_scratch_floats(std::max({row, d, hp.n_ff, n}),
                                                          pool.n_threads())));
  float* patch_out = x + (cls ? d : 0);
  cpu::matmul(pool, w_.patch.type, w_.patch.data, d, row, col, n_patch, patch_out, mm);
  if (!w_.patch_bias.empty()) add_rows(pool, patch_out, w_.patch_bias.data(), n_patch, d);
  std::vector<float> pos = patch_positions(gw, gh);
  for (int64_t t = 0; t < n_patch; ++t) cpu::add(patch_out + t * d, pos.data() + kept[t] * d, patch_out + t * d, d);
  if (cls) cpu::add(w_.class_embd.data(), w_.pos_embd.data(), x, d);
  if (!w_.pre_ln.w.empty()) layer_norm(pool, x, w_.pre_ln, hp.eps, x, n, d);

  const int64_t H = hp.n_head, D = d / H, ff = hp.n_ff;
  float* ln = buf(kLn, size_t(n * d));
  float* q = buf(kQ, size_t(n * d));
  float* k = buf(kK, size_t(n * d));
  float* v = buf(kV, size_t(n * d));
  float* attn = buf(kAttn, size_t(n * d));
  float* hff = buf(kFf, size_t(n * ff));
  float* kh = buf(kKh, size_t(n * d));
  float* vt = buf(kVt, size_t(n * d));
  float* qh = buf(kHeadQ, size_t(n * D));
  float* scores = buf(kScores, size_t(n * n));
  float* oh = buf(kHeadOut, size_t(n * D));
  auto linear = [&](const ViTLinear& l, const float* in, float* o) {
    cpu::matmul(pool, l.w.type, l.w.data, l.w.n_out, l.w.n_in, in, n, o, mm);
    if (!l.b.empty()) add_rows(pool, o, l.b.data(), n, l.w.n_out);
  };
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  for (const ViTBlock& blk : w_.blocks) {
    layer_norm(pool, x, blk.ln1, hp.eps, ln, n, d);
    linear(blk.q, ln, q);
    linear(blk.k, ln, k);
    linear(blk.v, ln, v);
    // Per head: K_h [n, D] and V_h^T [D, n] play weight matrices for two matmuls.
    pool.parallel_for(H, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t h = b; h < e; ++h) {
        float* khh = kh + h * n * D;
        float* vth = vt + h * D * n;
        for (int64_t t = 0; t < n; ++t) {
          std::memcpy(khh + t * D, k + t * d + h * D, size_t(D) * sizeof(float));
          for (int64_t i = 0; i < D; ++i) vth[i * n + t] = v[t * d + h * D + i];
        }
      }
    });
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < D; ++i) qh[t * D + i] = q[t * d + h * D + i] * scale;
      cpu::matmul(pool, DType::kF32, kh + h * n * D, n, D, qh, n, scores, mm);
      pool.parallel_for(n, 4, [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) cpu::softmax(scores + t * n, n);
      });
      cpu::matmul(pool, DType::kF32, vt + h * D * n, D, n, scores, n, oh, mm);
      for (int64_t t = 0; t < n; ++t)
        std::memcpy(attn + t * d + h * D, oh + t * D, size_t(D) * sizeof(float));
    }
    linear(blk.out, attn, ln);
    pool.parallel_for(n, 8, [&](int64_t b, int64_t e, int) {
      cpu::add(x + b * d, ln + b * d, x + b * d, (e - b) * d);
    });
    layer_norm(pool, x, blk.ln2, hp.eps, ln, n, d);
    linear(blk.fc1, ln, hff);
    activate(pool, hp.act, hff, n * ff);
    linear(blk.fc2, hff, ln);
    pool.parallel_for(n, 8, [&](int64_t b, int64_t e, int) {
      cpu::add(x + b * d, ln + b * d, x + b * d, (e - b) * d);
    });
  }
  if (!w_.post_ln.w.empty()) layer_norm(pool, x, w_.post_ln, hp.eps, x, n, d);

  out->n_tokens = n;
  out->n_embd = d;
  out->class_token = cls;
  out->grid_w = gw;
  out->grid_h = gh;
  out->patches = std::move(kept);
  out->hidden.assign(x, x + n * d);
  return Status::Ok();
}

Status ViTEncoder::adapt(ThreadPool& pool, const ViTOutput& enc, std::vector<float>* embeds,
                         int64_t* n_out) {
  const int64_t d = enc.n_embd;
  const int64_t n = enc.n_tokens - (enc.class_token ? 1 : 0);
  if (d != w_.hp.n_embd || n <= 0 || enc.hidden.size() != size_t(enc.n_tokens * d)) {
    return invalid_argument(fmt("vit adapter: encoder output of %lld tokens x %lld (weights: "
                                "n_embd %lld)", static_cast<long long>(enc.n_tokens),
                                static_cast<long long>(d), static_cast<long long>(w_.hp.n_embd)));
  }
  const float* x = enc.hidden.data() + (enc.class_token ? d : 0);
  if (w_.hp.projector == ProjectorType::kNone) {
    embeds->assign(x, x + n * d);
    *n_out = d;
    return Status::Ok();
  }
  if (w_.hp.projector == ProjectorType::kGemma3Pool) return adapt_pooled(pool, enc, embeds, n_out);
  if (w_.hp.projector == ProjectorType::kIdefics3Merge) return adapt_merged(pool, enc, embeds, n_out);
  const ViTLinear& a = w_.mm0;
  const ViTLinear& b = w_.mm2;
  float* mm = buf(kMm, size_t(cpu::matmul_scratch_floats(std::max(a.w.n_in, b.w.n_in),
                                                          pool.n_threads())));
  float* hid = buf(kFf, size_t(n * a.w.n_out));
  cpu::matmul(pool, a.w.type, a.w.data, a.w.n_out, a.w.n_in, x, n, hid, mm);
  if (!a.b.empty()) add_rows(pool, hid, a.b.data(), n, a.w.n_out);
  activate(pool, ViTActivation::kGeluErf, hid, n * a.w.n_out);
  embeds->resize(size_t(n * b.w.n_out));
  cpu::matmul(pool, b.w.type, b.w.data, b.w.n_out, b.w.n_in, hid, n, embeds->data(), mm);
  if (!b.b.empty()) add_rows(pool, embeds->data(), b.b.data(), n, b.w.n_out);
  *n_out = b.w.n_out;
  return Status::Ok();
}


// Gemma 3: mean over each k x k window of the patch grid (windows that do not fit whole are
// cut, as torch's AvgPool2d), RMSNorm (eps = the encoder's), then the projection. With dropped
// patches a window averages its kept patches; a window with none kept yields no token.
Status ViTEncoder::adapt_pooled(ThreadPool& pool, const ViTOutput& enc,
                                std::vector<float>* embeds, int64_t* n_out) {
  const int64_t d = enc.n_embd, k = w_.hp.pool_kernel, dout = w_.hp.n_proj_out;
  const int64_t pw = k > 0 ? enc.grid_w / k : 0, ph = k > 0 ? enc.grid_h / k : 0;
  if (pw <= 0 || ph <= 0) {
    return invalid_argument(fmt("vit adapter: a %lld x %lld patch grid is smaller than the "
                                "%lld x %lld pooling window",
                                static_cast<long long>(enc.grid_w), static_cast<long long>(enc.grid_h),
                                static_cast<long long>(k), static_cast<long long>(k)));
  }
  const size_t n_rows = size_t(enc.n_tokens - (enc.class_token ? 1 : 0));
  if (enc.patches.size() != n_rows || int64_t(w_.mm_soft_emb_norm.size()) != d ||
      int64_t(w_.mm_input_proj.size()) != d * dout) {
    return invalid_argument(fmt("vit adapter: %zu patch indices for %zu rows, or pooling "
                                "weights of another width than %lld", enc.patches.size(), n_rows,
                                static_cast<long long>(d)));
  }
  for (int32_t g : enc.patches) {
    if (g < 0 || g >= enc.grid_w * enc.grid_h) {
      return invalid_argument(fmt("vit adapter: patch index %d outside the %lld x %lld grid", g,
                                  static_cast<long long>(enc.grid_w),
                                  static_cast<long long>(enc.grid_h)));
    }
  }
  const size_t n_win = size_t(pw * ph);
  std::vector<double> sum(n_win * size_t(d), 0.0);
  std::vector<int64_t> count(n_win, 0);
  const float* x = enc.hidden.data() + (enc.class_token ? d : 0);
  for (size_t t = 0; t < enc.patches.size(); ++t) {
    const int64_t gx = enc.patches[t] % enc.grid_w, gy = enc.patches[t] / enc.grid_w;
    if (gx >= pw * k || gy >= ph * k) continue;
    const size_t win = size_t((gy / k) * pw + gx / k);
    ++count[win];
    double* s = sum.data() + win * size_t(d);
    for (int64_t i = 0; i < d; ++i) s[i] += x[int64_t(t) * d + i];
  }
  std::vector<float> normed;
  for (size_t win = 0; win < n_win; ++win) {
    if (count[win] == 0) continue;
    const double* s = sum.data() + win * size_t(d);
    double ms = 0;
    for (int64_t i = 0; i < d; ++i) {
      const double m = s[i] / static_cast<double>(count[win]);
      ms += m * m;
    }
    const double inv = 1.0 / std::sqrt(ms / static_cast<double>(d) + w_.hp.eps);
    for (int64_t i = 0; i < d; ++i) {
      normed.push_back(static_cast<float>(s[i] / static_cast<double>(count[win]) * inv) *
                       w_.mm_soft_emb_norm[size_t(i)]);
    }
  }
  const int64_t n = static_cast<int64_t>(normed.size()) / d;
  if (n == 0) {
    return invalid_argument("vit adapter: every pooling window lost all its patches (mask)");
  }
  float* mm = buf(kMm, size_t(cpu::matmul_scratch_floats(d, pool.n_threads())));
  embeds->resize(size_t(n * dout));
  cpu::matmul(pool, DType::kF32, w_.mm_input_proj.data(), dout, d, normed.data(), n,
              embeds->data(), mm);
  *n_out = dout;
  return Status::Ok();
}


// Idefics3's pixel shuffle: token (wy, wx) = the rows of patches (wy k + m, wx k + j) for
// m, j in [0, k), concatenated with m major (transformers' view/permute/reshape), windows in
// row-major order; windows that do not fit whole are cut; then the bias-free Linear.
Status ViTEncoder::adapt_merged(ThreadPool& pool, const ViTOutput& enc,
                                std::vector<float>* embeds, int64_t* n_out) {
  const int64_t d = enc.n_embd, k = w_.hp.pool_kernel;
  const int64_t pw = k > 0 ? enc.grid_w / k : 0, ph = k > 0 ? enc.grid_h / k : 0;
  if (pw <= 0 || ph <= 0) {
    return invalid_argument(fmt("vit adapter: a %lld x %lld patch grid is smaller than the "
                                "%lld x %lld merge window",
                                static_cast<long long>(enc.grid_w), static_cast<long long>(enc.grid_h),
                                static_cast<long long>(k), static_cast<long long>(k)));
  }
  const size_t n_rows = size_t(enc.n_tokens - (enc.class_token ? 1 : 0));
  const ViTLinear& fc = w_.mm0;
  if (enc.patches.size() != n_rows || fc.w.n_in != d * k * k) {
    return invalid_argument(fmt("vit adapter: %zu patch indices for %zu rows, or a merge "
                                "projection of %lld inputs for width %lld x %lld^2",
                                enc.patches.size(), n_rows, static_cast<long long>(fc.w.n_in),
                                static_cast<long long>(d), static_cast<long long>(k)));
  }
  // Row of each grid cell (-1: dropped).
  std::vector<int64_t> row(size_t(enc.grid_w * enc.grid_h), -1);
  for (size_t t = 0; t < n_rows; ++t) {
    const int32_t g = enc.patches[t];
    if (g < 0 || g >= enc.grid_w * enc.grid_h) {
      return invalid_argument(fmt("vit adapter: patch index %d outside the %lld x %lld grid", g,
                                  static_cast<long long>(enc.grid_w),
                                  static_cast<long long>(enc.grid_h)));
    }
    row[size_t(g)] = int64_t(t);
  }
  const float* x = enc.hidden.data() + (enc.class_token ? d : 0);
  std::vector<float> merged;
  for (int64_t wy = 0; wy < ph; ++wy) {
    for (int64_t wx = 0; wx < pw; ++wx) {
      bool whole = true;
      for (int64_t m = 0; m < k && whole; ++m)
        for (int64_t j = 0; j < k && whole; ++j) whole = row[size_t((wy * k + m) * enc.grid_w + wx * k + j)] >= 0;
      if (!whole) continue;
      for (int64_t m = 0; m < k; ++m) {
        for (int64_t j = 0; j < k; ++j) {
          const float* r = x + row[size_t((wy * k + m) * enc.grid_w + wx * k + j)] * d;
          merged.insert(merged.end(), r, r + d);
        }
      }
    }
  }
  const int64_t n = static_cast<int64_t>(merged.size()) / (d * k * k);
  if (n == 0) {
    return invalid_argument("vit adapter: no merge window keeps all its patches (mask)");
  }
  float* mm = buf(kMm, size_t(cpu::matmul_scratch_floats(fc.w.n_in, pool.n_threads())));
  embeds->resize(size_t(n * fc.w.n_out));
  cpu::matmul(pool, fc.w.type, fc.w.data, fc.w.n_out, fc.w.n_in, merged.data(), n,
              embeds->data(), mm);
  if (!fc.b.empty()) add_rows(pool, embeds->data(), fc.b.data(), n, fc.w.n_out);
  *n_out = fc.w.n_out;
  return Status::Ok();
}

}  // namespace omni::vision
