#include "tessera/datasets/synthetic.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "tessera/autograd/random.h"

namespace tessera::datasets {
namespace {

// Counter layout within RngDomain::synthetic: counter_hi = domain << 56 | stream, where
// stream 0 holds the class patterns and 1 + split the sample noise; counter_lo = item << 32
// | block, item being the class or the sample index.
constexpr std::uint64_t kDomain = std::uint64_t{2} << 56;

std::uint8_t to_pixel(double v) { return static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace

SyntheticDataset::SyntheticDataset(SyntheticOptions options) : o_(options) {
  const ImageShape& s = o_.shape;
  TESSERA_CHECK(o_.size > 0 && o_.size < (std::int64_t{1} << 32), ConfigError,
                "synthetic: size {} must be in [1, 2^32)", o_.size);
  TESSERA_CHECK(o_.num_classes > 0 && o_.num_classes < (std::int64_t{1} << 31), ConfigError,
                "synthetic: num_classes {} must be positive", o_.num_classes);
  TESSERA_CHECK(s.channels > 0 && s.height > 0 && s.width > 0 && s.numel() < (std::int64_t{1} << 33),
                ConfigError, "synthetic: image shape {} must be positive (and under 2^33 pixels)", s.str());
  TESSERA_CHECK(o_.noise >= 0 && std::isfinite(o_.noise), ConfigError,
                "synthetic: noise {} must be finite and not negative", o_.noise);
  const auto numel = static_cast<std::uint64_t>(s.numel());
  patterns_.resize(static_cast<std::size_t>(o_.num_classes) * numel);
  for (std::uint64_t c = 0; c < static_cast<std::uint64_t>(o_.num_classes); ++c)
    for (std::uint64_t p = 0; p < numel; p += 4) {
      const auto r = philox4x32(o_.seed, (c << 32) | (p / 4), kDomain);
      for (std::uint64_t k = 0; k < 4 && p + k < numel; ++k)
        patterns_[c * numel + p + k] = static_cast<std::uint8_t>(r[k] >> 24);
    }
}

std::string SyntheticDataset::name() const { return fmt::format("synthetic/{}", split_name(o_.split)); }

Fingerprint SyntheticDataset::fingerprint() const {
  return {name(),
          {{fmt::format("synthetic(size={}, classes={}, shape={}, seed={}, noise={})", o_.size,
                        o_.num_classes, o_.shape.str(), o_.seed, o_.noise),
            0, "generated"}}};
}

std::span<const std::uint8_t> SyntheticDataset::pattern(std::int64_t c) const {
  TESSERA_CHECK(c >= 0 && c < o_.num_classes, DataError, "{}: class {} is out of range [0, {})",
                name(), c, o_.num_classes);
  const auto numel = static_cast<std::size_t>(o_.shape.numel());
  return std::span(patterns_).subspan(static_cast<std::size_t>(c) * numel, numel);
}

void SyntheticDataset::read_image_at(std::int64_t i, std::span<std::uint8_t> out) const {
  const std::span<const std::uint8_t> base = pattern(label_at(i));
  const double sigma = o_.noise * 255.0;
  const std::uint64_t hi = kDomain | (1 + static_cast<std::uint64_t>(o_.split));
  const std::uint64_t item = static_cast<std::uint64_t>(i) << 32;
  // Two normals per Philox block (Box-Muller on words 0-1 and 2-3).
  for (std::size_t p = 0; p < out.size(); p += 2) {
    const auto r = philox4x32(o_.seed, item | (p / 2), hi);
    out[p] = to_pixel(base[p] + sigma * normal_from(r));
    if (p + 1 < out.size()) out[p + 1] = to_pixel(base[p + 1] + sigma * normal_from({r[2], r[3], 0, 0}));
  }
}

DatasetSpec synthetic_spec() {
  return {.name = "synthetic",
          .summary = "generated in memory at the model's input shape: a learnable pattern per class (no files)",
          .open = [](const std::filesystem::path&, Split split, const DatasetOptions& o) -> DatasetPtr {
            SyntheticOptions s;
            s.size = o.size > 0 ? o.size : (split == Split::train ? 10000 : 2000);
            s.num_classes = o.num_classes;
            if (o.image_shape) s.shape = *o.image_shape;
            s.seed = o.seed;
            s.noise = o.noise;
            s.split = split;
            return std::make_shared<SyntheticDataset>(s);
          },
          .generated = true};
}

}  // namespace tessera::datasets
