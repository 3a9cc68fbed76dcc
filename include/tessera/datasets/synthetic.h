// A seeded synthetic dataset for tests and benchmarks: any size, shape and class count,
// generated on demand (no memory per sample) and learnable: each class is a fixed random
// pattern, each sample that pattern plus Gaussian noise.
#pragma once

#include <vector>

#include "tessera/datasets/dataset.h"
#include "tessera/datasets/factory.h"

namespace tessera::datasets {

struct SyntheticOptions {
  std::int64_t size = 1024;
  std::int64_t num_classes = 10;
  ImageShape shape{1, 28, 28};
  std::uint64_t seed = 0;
  // Noise std as a fraction of the pixel range: 0 gives the class patterns themselves.
  double noise = 0.25;
  // The splits share the class patterns and differ in their noise, so accuracy on the test
  // split measures generalisation.
  Split split = Split::train;
};

class SyntheticDataset final : public Dataset {
 public:
  explicit SyntheticDataset(SyntheticOptions options);

  std::string name() const override;
  std::int64_t size() const override { return o_.size; }
  std::int64_t num_classes() const override { return o_.num_classes; }
  ImageShape image_shape() const override { return o_.shape; }
  // The generator's parameters: nothing is read from disk.
  Fingerprint fingerprint() const override;
  // The class patterns; samples are generated on each read.
  std::int64_t memory_bytes() const override { return static_cast<std::int64_t>(patterns_.size()); }

  // The noiseless pattern of class c, (C, H, W).
  std::span<const std::uint8_t> pattern(std::int64_t c) const;

 protected:
  // Labels cycle through the classes (i mod num_classes): exactly balanced.
  std::int64_t label_at(std::int64_t i) const override { return i % o_.num_classes; }
  void read_image_at(std::int64_t i, std::span<std::uint8_t> out) const override;

 private:
  SyntheticOptions o_;
  std::vector<std::uint8_t> patterns_;  // (num_classes, C, H, W)
};

// Its registry entry (factory.h).
DatasetSpec synthetic_spec();

}  // namespace tessera::datasets
