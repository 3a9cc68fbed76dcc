// Per-sample image transforms applied by the DataLoader (normalisation and augmentation),
// and the counter-based random streams that make augmentation reproducible.
//
// Every random choice for a sample comes from a Philox stream addressed by
// (seed, epoch, dataset index, transform position), never from shared state: a sample's
// augmentation is the same whichever thread prepares it, in whatever order, and can be
// recomputed on its own when a run resumes mid-epoch.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tessera/datasets/dataset.h"

namespace tessera::datasets {

// Philox counter layout (key = the loader seed):
//   counter_hi = domain << 56 | epoch           (epoch < 2^56)
//   counter_lo = sample << 24 | stream << 16 | block   (sample < 2^40, stream < 256)
// Each block yields four 32-bit words, so one stream holds 65536 * 4 draws.
enum class RngDomain : std::uint64_t { augment = 0, shuffle = 1, synthetic = 2 };

class SampleRng {
 public:
  SampleRng(std::uint64_t seed, RngDomain domain, std::uint64_t epoch, std::uint64_t sample,
            std::uint32_t stream);

  std::uint32_t next_u32();
  double uniform();                                          // [0, 1)
  std::int64_t uniform_int(std::int64_t lo, std::int64_t hi);  // [lo, hi], unbiased
  bool bernoulli(double p);

 private:
  std::uint64_t key_, hi_, lo_;
  std::uint32_t block_ = 0;
  std::array<std::uint32_t, 4> words_{};
  int used_ = 4;
};

// One step of the per-sample pipeline. Images arrive as floats in (C, H, W) order, already
// scaled to [0, 1]. Implementations are immutable and thread-safe: all randomness comes
// from the SampleRng they are handed.
class Transform {
 public:
  virtual ~Transform() = default;
  virtual std::string describe() const = 0;  // "random_crop(padding=4)"
  // The shape produced from `in`; ConfigError when this transform cannot take `in`.
  virtual ImageShape output_shape(const ImageShape& in) const { return in; }
  // in: in_shape floats; out: output_shape(in_shape) floats, never overlapping `in`.
  virtual void apply(std::span<const float> in, const ImageShape& in_shape, std::span<float> out,
                     SampleRng& rng) const = 0;
};

using TransformPtr = std::shared_ptr<const Transform>;

namespace transforms {

// (x - mean[c]) / std[c]; one value, or one per channel. ConfigError unless every std > 0.
TransformPtr normalize(std::vector<double> mean, std::vector<double> std);
TransformPtr normalize(const ChannelStats& stats);

// Pads every side with `padding` zeros, then cuts a uniformly placed height x width window
// (0 = the input's size): torchvision's RandomCrop(size, padding).
struct RandomCropOptions {
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::int64_t padding = 0;
};
TransformPtr random_crop(RandomCropOptions options);

// Mirrors left-right with probability p.
TransformPtr random_horizontal_flip(double p = 0.5);

// Translates by dy, dx drawn uniformly from [-max_shift, max_shift], filling with zeros.
TransformPtr random_shift(std::int64_t max_shift);

// The middle height x width window, zero-padded where the image is smaller (torchvision's
// CenterCrop): fits 28x28 images to a 32x32 model.
TransformPtr center_crop(std::int64_t height, std::int64_t width);

// Bilinear resize to height x width, align_corners=False (PyTorch's interpolate).
TransformPtr resize(std::int64_t height, std::int64_t width);

}  // namespace transforms

// The shape after a pipeline, checking each step accepts its input.
ImageShape pipeline_output_shape(const ImageShape& in, const std::vector<TransformPtr>& pipeline);

}  // namespace tessera::datasets
