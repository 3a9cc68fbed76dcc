#include "tessera/datasets/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/autograd/random.h"

namespace tessera::datasets {

SampleRng::SampleRng(std::uint64_t seed, RngDomain domain, std::uint64_t epoch,
                     std::uint64_t sample, std::uint32_t stream)
    : key_(seed) {
  TESSERA_CHECK(epoch < (std::uint64_t{1} << 56), Error, "SampleRng: epoch {} exceeds 2^56", epoch);
  TESSERA_CHECK(sample < (std::uint64_t{1} << 40), Error, "SampleRng: sample {} exceeds 2^40", sample);
  TESSERA_CHECK(stream < 256, Error, "SampleRng: stream {} exceeds 255", stream);
  hi_ = (static_cast<std::uint64_t>(domain) << 56) | epoch;
  lo_ = (sample << 24) | (std::uint64_t{stream} << 16);
}

std::uint32_t SampleRng::next_u32() {
  if (used_ == 4) {
    // Past 65536 blocks the counter would run into the next stream's.
    TESSERA_CHECK(block_ < (1u << 16), Error, "SampleRng: a stream holds at most {} draws",
                  4u << 16);
    words_ = philox4x32(key_, lo_ | block_++, hi_);
    used_ = 0;
  }
  return words_[used_++];
}

double SampleRng::uniform() { return to_unit(next_u32()); }

std::int64_t SampleRng::uniform_int(std::int64_t lo, std::int64_t hi) {
  TESSERA_CHECK(lo <= hi && hi - lo < (std::int64_t{1} << 32), Error,
                "SampleRng::uniform_int: bad range [{}, {}]", lo, hi);
  const std::uint64_t range = static_cast<std::uint64_t>(hi - lo) + 1;
  if (range == 1) return lo;
  // Rejection keeps every value equally likely (plain modulo would favour small ones).
  const std::uint64_t limit = (std::uint64_t{1} << 32) - ((std::uint64_t{1} << 32) % range);
  std::uint64_t x;
  do x = next_u32(); while (x >= limit);
  return lo + static_cast<std::int64_t>(x % range);
}

bool SampleRng::bernoulli(double p) { return uniform() < p; }

namespace {

// out(c, y, x) = in(c, y + oy, x + ox), zero outside `in`. in: (C,H,W)  out: (C,h,w).
void window(std::span<const float> in, const ImageShape& s, std::span<float> out, std::int64_t h,
            std::int64_t w, std::int64_t oy, std::int64_t ox) {
  std::fill(out.begin(), out.end(), 0.0f);
  const std::int64_t x0 = std::max<std::int64_t>(0, -ox), x1 = std::min(w, s.width - ox);
  if (x1 <= x0) return;
  for (std::int64_t c = 0; c < s.channels; ++c)
    for (std::int64_t y = 0; y < h; ++y) {
      const std::int64_t sy = y + oy;
      if (sy < 0 || sy >= s.height) continue;
      const float* src = in.data() + (c * s.height + sy) * s.width + (ox + x0);
      float* dst = out.data() + (c * h + y) * w + x0;
      std::memcpy(dst, src, static_cast<std::size_t>(x1 - x0) * sizeof(float));
    }
}

class Normalize final : public Transform {
 public:
  Normalize(std::vector<double> mean, std::vector<double> std) : mean_(std::move(mean)), std_(std::move(std)) {
    TESSERA_CHECK(!mean_.empty() && mean_.size() == std_.size(), ConfigError,
                  "normalize: mean has {} values and std {}; give one per channel (or one for all)",
                  mean_.size(), std_.size());
    for (std::size_t c = 0; c < std_.size(); ++c)
      TESSERA_CHECK(std_[c] > 0 && std::isfinite(std_[c]) && std::isfinite(mean_[c]), ConfigError,
                    "normalize: channel {} has mean {} and std {}; std must be positive and both finite",
                    c, mean_[c], std_[c]);
  }
  std::string describe() const override {
    return fmt::format("normalize(mean=[{}], std=[{}])", fmt::join(mean_, ", "), fmt::join(std_, ", "));
  }
  ImageShape output_shape(const ImageShape& in) const override {
    TESSERA_CHECK(mean_.size() == 1 || static_cast<std::int64_t>(mean_.size()) == in.channels,
                  ConfigError, "normalize: {} mean/std values for images {} with {} channels",
                  mean_.size(), in.str(), in.channels);
    return in;
  }
  void apply(std::span<const float> in, const ImageShape& s, std::span<float> out,
             SampleRng&) const override {
    const std::int64_t plane = s.height * s.width;
    for (std::int64_t c = 0; c < s.channels; ++c) {
      const std::size_t k = mean_.size() == 1 ? 0 : static_cast<std::size_t>(c);
      const auto m = static_cast<float>(mean_[k]), sd = static_cast<float>(std_[k]);
      for (std::int64_t p = c * plane; p < (c + 1) * plane; ++p) out[p] = (in[p] - m) / sd;
    }
  }

 private:
  std::vector<double> mean_, std_;
};

class RandomCrop final : public Transform {
 public:
  explicit RandomCrop(transforms::RandomCropOptions o) : o_(o) {
    TESSERA_CHECK(o_.height >= 0 && o_.width >= 0 && o_.padding >= 0, ConfigError,
                  "random_crop: height {}, width {} and padding {} must not be negative", o_.height,
                  o_.width, o_.padding);
  }
  std::string describe() const override {
    return fmt::format("random_crop(height={}, width={}, padding={})", o_.height, o_.width, o_.padding);
  }
  ImageShape output_shape(const ImageShape& in) const override {
    const ImageShape out{in.channels, o_.height ? o_.height : in.height, o_.width ? o_.width : in.width};
    TESSERA_CHECK(out.height <= in.height + 2 * o_.padding && out.width <= in.width + 2 * o_.padding,
                  ConfigError, "random_crop: a {}x{} window does not fit images {} padded by {}",
                  out.height, out.width, in.str(), o_.padding);
    return out;
  }
  void apply(std::span<const float> in, const ImageShape& s, std::span<float> out,
             SampleRng& rng) const override {
    const ImageShape o = output_shape(s);
    const std::int64_t oy = rng.uniform_int(0, s.height + 2 * o_.padding - o.height);
    const std::int64_t ox = rng.uniform_int(0, s.width + 2 * o_.padding - o.width);
    window(in, s, out, o.height, o.width, oy - o_.padding, ox - o_.padding);
  }

 private:
  transforms::RandomCropOptions o_;
};

class RandomShift final : public Transform {
 public:
  explicit RandomShift(std::int64_t k) : k_(k) {
    TESSERA_CHECK(k_ >= 0, ConfigError, "random_shift: max_shift {} must not be negative", k_);
  }
  std::string describe() const override { return fmt::format("random_shift(max_shift={})", k_); }
  void apply(std::span<const float> in, const ImageShape& s, std::span<float> out,
             SampleRng& rng) const override {
    const std::int64_t dy = rng.uniform_int(-k_, k_);
    const std::int64_t dx = rng.uniform_int(-k_, k_);
    window(in, s, out, s.height, s.width, -dy, -dx);  // content moves down/right by dy/dx
  }

 private:
  std::int64_t k_;
};

class RandomHorizontalFlip final : public Transform {
 public:
  explicit RandomHorizontalFlip(double p) : p_(p) {
    TESSERA_CHECK(p_ >= 0 && p_ <= 1, ConfigError, "random_horizontal_flip: p = {} is not in [0, 1]", p_);
  }
  std::string describe() const override { return fmt::format("random_horizontal_flip(p={})", p_); }
  void apply(std::span<const float> in, const ImageShape& s, std::span<float> out,
             SampleRng& rng) const override {
    if (!rng.bernoulli(p_)) {
      std::copy(in.begin(), in.end(), out.begin());
      return;
    }
    for (std::int64_t row = 0; row < s.channels * s.height; ++row) {
      const float* src = in.data() + row * s.width;
      std::reverse_copy(src, src + s.width, out.data() + row * s.width);
    }
  }

 private:
  double p_;
};

// A transform to a fixed height x width, named for its messages.
class ToSize : public Transform {
 public:
  ToSize(const char* name, std::int64_t height, std::int64_t width) : name_(name), h_(height), w_(width) {
    TESSERA_CHECK(h_ > 0 && w_ > 0, ConfigError, "{}: size {}x{} must be positive", name_, h_, w_);
  }
  std::string describe() const override { return fmt::format("{}({}x{})", name_, h_, w_); }
  ImageShape output_shape(const ImageShape& in) const override { return {in.channels, h_, w_}; }

 protected:
  const char* name_;
  std::int64_t h_, w_;
};

// The middle height x width window, zero-padded where the image is smaller: torchvision's
// CenterCrop. No randomness.
class CenterCrop final : public ToSize {
 public:
  CenterCrop(std::int64_t height, std::int64_t width) : ToSize("center_crop", height, width) {}
  void apply(std::span<const float> in, const ImageShape& s, std::span<float> out, SampleRng&) const override {
    // As torchvision: a smaller image is padded by (to - from) // 2 before; a larger one is
    // cut from round((from - to) / 2), halves to even.
    const auto offset = [](std::int64_t from, std::int64_t to) {
      return to > from ? -((to - from) / 2) : static_cast<std::int64_t>(std::nearbyint((from - to) / 2.0));
    };
    window(in, s, out, h_, w_, offset(s.height, h_), offset(s.width, w_));
  }
};

// Bilinear resize to height x width with align_corners=False (PyTorch's interpolate, no
// antialiasing). No randomness.
class Resize final : public ToSize {
 public:
  Resize(std::int64_t height, std::int64_t width) : ToSize("resize", height, width) {}
  void apply(std::span<const float> in, const ImageShape& s, std::span<float> out, SampleRng&) const override {
    // Source position of an output pixel, clamped at the near edge as PyTorch does.
    const auto taps = [](std::int64_t from, std::int64_t to, std::int64_t i) {
      const double scale = static_cast<double>(from) / static_cast<double>(to);
      const double src = std::max(0.0, (static_cast<double>(i) + 0.5) * scale - 0.5);
      const auto i0 = std::min(static_cast<std::int64_t>(src), from - 1);
      return std::tuple{i0, std::min(i0 + 1, from - 1), src - static_cast<double>(i0)};
    };
    for (std::int64_t y = 0; y < h_; ++y) {
      const auto [y0, y1, fy] = taps(s.height, h_, y);
      for (std::int64_t x = 0; x < w_; ++x) {
        const auto [x0, x1, fx] = taps(s.width, w_, x);
        for (std::int64_t c = 0; c < s.channels; ++c) {
          const float* p = in.data() + c * s.height * s.width;
          const double top = (1 - fx) * p[y0 * s.width + x0] + fx * p[y0 * s.width + x1];
          const double bottom = (1 - fx) * p[y1 * s.width + x0] + fx * p[y1 * s.width + x1];
          out[static_cast<std::size_t>((c * h_ + y) * w_ + x)] = static_cast<float>((1 - fy) * top + fy * bottom);
        }
      }
    }
  }
};

}  // namespace

namespace transforms {

TransformPtr center_crop(std::int64_t height, std::int64_t width) {
  return std::make_shared<CenterCrop>(height, width);
}
TransformPtr resize(std::int64_t height, std::int64_t width) { return std::make_shared<Resize>(height, width); }

TransformPtr normalize(std::vector<double> mean, std::vector<double> std) {
  return std::make_shared<Normalize>(std::move(mean), std::move(std));
}
TransformPtr normalize(const ChannelStats& stats) { return normalize(stats.mean, stats.std); }
TransformPtr random_crop(RandomCropOptions options) { return std::make_shared<RandomCrop>(options); }
TransformPtr random_horizontal_flip(double p) { return std::make_shared<RandomHorizontalFlip>(p); }
TransformPtr random_shift(std::int64_t max_shift) { return std::make_shared<RandomShift>(max_shift); }

}  // namespace transforms

ImageShape pipeline_output_shape(const ImageShape& in, const std::vector<TransformPtr>& pipeline) {
  ImageShape s = in;
  for (const auto& t : pipeline) {
    TESSERA_CHECK(t != nullptr, ConfigError, "transform pipeline: a null transform");
    s = t->output_shape(s);
  }
  return s;
}

}  // namespace tessera::datasets
