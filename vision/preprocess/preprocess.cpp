#include "vision/preprocess/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace omni::vision {
namespace {

// Pillow's filters (libImaging/Resample.c): bicubic with a = -0.5, support 2; triangle, support 1.
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

constexpr int kPrecisionBits = 32 - 8 - 2;

// Per output index: the first input index, the tap count and ksize fixed-point weights.
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // [out * 2]: xmin, count
  std::vector<int32_t> k;   // [out * ksize]
};

Coeffs precompute(int in_size, int out_size, Resample filter) {
  const double support_1 = filter == Resample::kBicubic ? 2.0 : 1.0;
  double (*f)(double) = filter == Resample::kBicubic ? bicubic_filter : bilinear_filter;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = support_1 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(size_t(out_size) * 2);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = f((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      v *= (1 << kPrecisionBits);
      c.k[size_t(xx) * c.ksize + x] = static_cast<int32_t>(v < 0 ? -0.5 + v : 0.5 + v);
    }
    c.bounds[size_t(xx) * 2] = xmin;
    c.bounds[size_t(xx) * 2 + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift, as Pillow's lookup index
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Resamples along x: in [h][in_w][3] -> out [h][out_w][3]. Each output pixel's taps are
// expanded to per-byte weights (k3[3 t + c] = k[t], zero-padded to a multiple of 24), so the
// sum runs over contiguous interleaved bytes in 24-lane blocks that vectorise; lane l holds
// channel l % 3. Reading up to 23 bytes past a pixel's last tap (weight 0) is allowed only
// while it stays inside the image (narrow images can run past the next row, found by
// fuzz_image); otherwise the scalar loop runs.
constexpr int kLanes = 24;

__attribute__((target_clones("avx2", "default")))
void pass_horizontal(const uint8_t* in, int in_w, int h, const Coeffs& c, int out_w, uint8_t* out) {
  const int k3_len = (3 * c.ksize + kLanes - 1) / kLanes * kLanes;
  std::vector<int32_t> k3(size_t(out_w) * k3_len, 0);
  for (int xx = 0; xx < out_w; ++xx) {
    const int32_t* k = &c.k[size_t(xx) * c.ksize];
    int32_t* d = &k3[size_t(xx) * k3_len];
    for (int t = 0; t < c.bounds[size_t(xx) * 2 + 1]; ++t) d[3 * t] = d[3 * t + 1] = d[3 * t + 2] = k[t];
  }
  const size_t row_len = size_t(in_w) * 3;
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = in + size_t(y) * row_len;
    uint8_t* orow = out + size_t(y) * out_w * 3;
    for (int xx = 0; xx < out_w; ++xx) {
      const int xmin = c.bounds[size_t(xx) * 2], n = c.bounds[size_t(xx) * 2 + 1];
      const uint8_t* p = row + size_t(xmin) * 3;
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      const size_t span = size_t(3 * n + kLanes - 1) / kLanes * kLanes;
      if (size_t(y) * row_len + size_t(xmin) * 3 + span <= size_t(h) * row_len) {
        const int32_t* kk = &k3[size_t(xx) * k3_len];
        int32_t acc[kLanes] = {};
        for (size_t j = 0; j < span; j += kLanes) {
          for (int l = 0; l < kLanes; ++l) acc[l] += p[j + l] * kk[j + l];
        }
        for (int l = 0; l < kLanes; l += 3) {
          s0 += acc[l];
          s1 += acc[l + 1];
          s2 += acc[l + 2];
        }
      } else {
        const int32_t* k = &c.k[size_t(xx) * c.ksize];
        for (int x = 0; x < n; ++x) {
          s0 += p[3 * x] * k[x];
          s1 += p[3 * x + 1] * k[x];
          s2 += p[3 * x + 2] * k[x];
        }
      }
      orow[3 * xx] = clip8(s0);
      orow[3 * xx + 1] = clip8(s1);
      orow[3 * xx + 2] = clip8(s2);
    }
  }
}

// Resamples along y: in [in_h][w][3] -> out [out_h][w][3]; row-wise accumulation so the inner
// loop runs over contiguous bytes.
__attribute__((target_clones("avx2", "default")))
void pass_vertical(const uint8_t* in, int w, const Coeffs& c, int out_h, uint8_t* out) {
  const size_t row_len = size_t(w) * 3;
  std::vector<int32_t> acc(row_len);
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = c.bounds[size_t(yy) * 2], n = c.bounds[size_t(yy) * 2 + 1];
    const int32_t* k = &c.k[size_t(yy) * c.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < n; ++y) {
      const uint8_t* row = in + size_t(ymin + y) * row_len;
      const int32_t ky = k[y];
      for (size_t i = 0; i < row_len; ++i) acc[i] += row[i] * ky;
    }
    uint8_t* orow = out + size_t(yy) * row_len;
    for (size_t i = 0; i < row_len; ++i) orow[i] = clip8(acc[i]);
  }
}

Status check_image(const Image& img, const char* what) {
  if (img.width <= 0 || img.height <= 0 ||
      img.rgb.size() != size_t(img.width) * size_t(img.height) * 3) {
    return invalid_argument(fmt("%s: image is empty or malformed (%d x %d, %zu bytes)", what,
                                img.width, img.height, img.rgb.size()));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Image> resize(const Image& img, int out_w, int out_h, Resample filter) {
  OMNI_RETURN_IF_ERROR(check_image(img, "resize"));
  if (out_w <= 0 || out_h <= 0 || out_w > 65535 || out_h > 65535) {
    return invalid_argument(fmt("resize: target size %d x %d (1..65535 each)", out_w, out_h));
  }
  if (filter != Resample::kBicubic && filter != Resample::kBilinear) {
    return invalid_argument(fmt("resize: unknown filter %d", static_cast<int>(filter)));
  }
  const bool need_h = out_w != img.width, need_v = out_h != img.height;
  if (!need_h && !need_v) return img;
  Image tmp;
  const Image* src = &img;
  if (need_h) {
    Coeffs ch = precompute(img.width, out_w, filter);
    tmp.width = out_w;
    tmp.height = img.height;
    tmp.rgb.resize(size_t(out_w) * img.height * 3);
    pass_horizontal(img.rgb.data(), img.width, img.height, ch, out_w, tmp.rgb.data());
    if (!need_v) return tmp;
    src = &tmp;
  }
  Coeffs cv = precompute(src->height, out_h, filter);
  Image out;
  out.width = src->width;
  out.height = out_h;
  out.rgb.resize(size_t(out.width) * out_h * 3);
  pass_vertical(src->rgb.data(), src->width, cv, out_h, out.rgb.data());
  return out;
}

StatusOr<Image> center_crop(const Image& img, int crop_w, int crop_h) {
  OMNI_RETURN_IF_ERROR(check_image(img, "center_crop"));
  if (crop_w <= 0 || crop_h <= 0 || crop_w > 65535 || crop_h > 65535) {
    return invalid_argument(fmt("center_crop: crop size %d x %d (1..65535 each)", crop_w, crop_h));
  }
  // Python's floor division: negative offsets (padding) round down too.
  auto floordiv2 = [](int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
  const int top = floordiv2(img.height - crop_h), left = floordiv2(img.width - crop_w);
  Image out;
  out.width = crop_w;
  out.height = crop_h;
  out.rgb.assign(size_t(crop_w) * crop_h * 3, 0);
  for (int y = 0; y < crop_h; ++y) {
    const int sy = top + y;
    if (sy < 0 || sy >= img.height) continue;
    const int x0 = std::max(0, -left), x1 = std::min(crop_w, img.width - left);
    if (x1 <= x0) continue;
    std::memcpy(&out.rgb[(size_t(y) * crop_w + x0) * 3], img.pixel(left + x0, sy),
                size_t(x1 - x0) * 3);
  }
  return out;
}

void shortest_edge_size(int width, int height, int shortest_edge, int* out_w, int* out_h) {
  const bool w_short = width <= height;
  const int s = w_short ? width : height, l = w_short ? height : width;
  const int new_long = static_cast<int>(static_cast<double>(shortest_edge) * l / s);
  *out_w = w_short ? shortest_edge : new_long;
  *out_h = w_short ? new_long : shortest_edge;
}

PreprocessConfig PreprocessConfig::clip(int size) {
  PreprocessConfig c;
  c.mode = ResizeMode::kShortestEdge;
  c.shortest_edge = size;
  c.crop_w = c.crop_h = size;
  const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  std::copy(mean, mean + 3, c.mean);
  std::copy(std, std + 3, c.std);
  return c;
}

PreprocessConfig PreprocessConfig::siglip(int size) {
  PreprocessConfig c;
  c.mode = ResizeMode::kExact;
  c.resize_w = c.resize_h = size;
  return c;
}

StatusOr<PixelTensor> preprocess(const Image& img, const PreprocessConfig& cfg) {
  OMNI_RETURN_IF_ERROR(check_image(img, "preprocess"));
  int rw = cfg.resize_w, rh = cfg.resize_h;
  if (cfg.mode == PreprocessConfig::ResizeMode::kShortestEdge) {
    if (cfg.shortest_edge <= 0 || cfg.shortest_edge > 65535) {
      return invalid_argument(fmt("preprocess: shortest_edge %d (1..65535)", cfg.shortest_edge));
    }
    shortest_edge_size(img.width, img.height, cfg.shortest_edge, &rw, &rh);
    if (rw <= 0 || rh <= 0 || rw > 65535 || rh > 65535) {
      return invalid_argument(fmt("preprocess: a %d x %d image resized to shortest edge %d gives "
                                  "%d x %d", img.width, img.height, cfg.shortest_edge, rw, rh));
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (!(cfg.std[i] > 0.0f) || !std::isfinite(cfg.std[i]) || !std::isfinite(cfg.mean[i])) {
      return invalid_argument(fmt("preprocess: mean[%d] = %g, std[%d] = %g (std must be > 0)", i,
                                  cfg.mean[i], i, cfg.std[i]));
    }
  }
  OMNI_ASSIGN_OR_RETURN(Image resized, resize(img, rw, rh, cfg.filter));
  Image cropped;
  const Image* src = &resized;
  if (cfg.crop_w > 0 || cfg.crop_h > 0) {
    OMNI_ASSIGN_OR_RETURN(cropped, center_crop(resized, cfg.crop_w, cfg.crop_h));
    src = &cropped;
  }
  PixelTensor t;
  t.width = src->width;
  t.height = src->height;
  const size_t plane = size_t(t.width) * t.height;
  t.chw.resize(plane * 3);
  for (int c = 0; c < 3; ++c) {
    // (v / 255 - mean) / std as one multiply-add per pixel, through a 256-entry table.
    float lut[256];
    for (int v = 0; v < 256; ++v) {
      lut[v] = static_cast<float>((v / 255.0 - cfg.mean[c]) / cfg.std[c]);
    }
    float* dst = t.chw.data() + plane * c;
    const uint8_t* p = src->rgb.data() + c;
    for (size_t i = 0; i < plane; ++i) dst[i] = lut[p[3 * i]];
  }
  return t;
}

}  // namespace omni::vision
