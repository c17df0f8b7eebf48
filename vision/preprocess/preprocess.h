// Image preprocessing for vision encoders: resize, center crop, rescale + normalise to the
// planar float tensor a ViT takes, matching transformers' CLIPImageProcessor /
// SiglipImageProcessor (PIL backend) within one 8-bit level.
//
// Resampling reimplements Pillow's (separable, antialiased when shrinking: the kernel widens
// by the scale factor; 22-bit fixed-point coefficients; the horizontal pass is rounded to 8 bits
// before the vertical one), because that is what the reference processors, and so the models'
// training data, used. libswscale's bicubic has another kernel and no such widening, which puts
// it several levels away when shrinking; FFmpeg is used for decoding and pixel-format conversion.
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/core/status.h"
#include "vision/io/image.h"

namespace omni::vision {

enum class Resample : int { kBilinear = 2, kBicubic = 3 };  // Pillow's enum values

// width x height -> out_w x out_h. kInvalidArgument for an empty image or a size <= 0.
StatusOr<Image> resize(const Image& img, int out_w, int out_h, Resample filter);
// The centred crop_w x crop_h window (top = (h - crop_h) / 2, as transformers' center_crop).
// A crop larger than the image is padded with black (0) around it, as transformers does.
StatusOr<Image> center_crop(const Image& img, int crop_w, int crop_h);

// Planar float pixels: [3][height][width], channel order R, G, B.
struct PixelTensor {
  int width = 0, height = 0;
  std::vector<float> chw;
};

struct PreprocessConfig {
  enum class ResizeMode : int {
    kShortestEdge = 0,  // CLIP: shortest edge -> shortest_edge, aspect kept (long side truncated)
    kExact = 1,         // SigLIP: straight to resize_w x resize_h
  };
  ResizeMode mode = ResizeMode::kExact;
  int shortest_edge = 0;
  int resize_w = 0, resize_h = 0;
  int crop_w = 0, crop_h = 0;  // 0: no crop
  Resample filter = Resample::kBicubic;
  float mean[3] = {0.5f, 0.5f, 0.5f};
  float std[3] = {0.5f, 0.5f, 0.5f};

  // openai/clip-vit-*: shortest edge `size`, centre crop size x size, CLIP mean/std.
  static PreprocessConfig clip(int size);
  // google/siglip-*: resize to size x size, mean = std = 0.5.
  static PreprocessConfig siglip(int size);
};

// The CLIP shortest-edge rule: the short side becomes `shortest_edge`, the long side
// int(shortest_edge * long / short).
void shortest_edge_size(int width, int height, int shortest_edge, int* out_w, int* out_h);

// resize -> crop -> x / 255 -> (x - mean) / std. kInvalidArgument names a bad config value.
StatusOr<PixelTensor> preprocess(const Image& img, const PreprocessConfig& cfg);

}  // namespace omni::vision
