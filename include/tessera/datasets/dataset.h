// Datasets: the interface every image-classification source implements, an in-memory
// implementation, per-channel statistics, and the content fingerprint a trainer stores to
// detect dataset files that changed between runs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera::datasets {

// (C, H, W) of one image.
struct ImageShape {
  std::int64_t channels = 0;
  std::int64_t height = 0;
  std::int64_t width = 0;

  std::int64_t numel() const { return channels * height * width; }
  Shape shape() const { return {channels, height, width}; }
  std::string str() const;  // "(1,28,28)"
  friend bool operator==(const ImageShape&, const ImageShape&) = default;
};

enum class Split { train, test };
std::string_view split_name(Split split);
// "train" or "test"; anything else is a ConfigError naming the value.
Split parse_split(std::string_view text);

// One file (or group of files) a dataset was read from. `name` is relative to the dataset
// root, so a dataset copied to another machine keeps its fingerprint; `digest` is
// "crc32:<hex>" of the content (decompressed for .gz, so raw and gzipped copies match) or,
// where reading every byte up front would be too costly, "mtime:<hex>" of names, sizes and
// modification times.
struct FingerprintEntry {
  std::string name;
  std::uint64_t bytes = 0;
  std::string digest;
  friend bool operator==(const FingerprintEntry&, const FingerprintEntry&) = default;
};

struct Fingerprint {
  std::string dataset;  // "mnist/train"
  std::vector<FingerprintEntry> entries;

  // Canonical text, one entry per line ("name<TAB>bytes<TAB>digest" after a "dataset" line):
  // what a trainer stores in its checkpoint. parse() reads it back (DataError if malformed).
  std::string to_string() const;
  static Fingerprint parse(std::string_view text);
  friend bool operator==(const Fingerprint&, const Fingerprint&) = default;
};

// What changed from `stored` to `current`, one clause per difference
// ("train-images-idx3-ubyte: 47040016 bytes crc32:1a2b3c4d -> 1000 bytes crc32:..."); empty
// when they are equal.
std::string fingerprint_diff(const Fingerprint& stored, const Fingerprint& current);

// A labelled image dataset. Images are uint8 in (C, H, W) order; the loader converts them
// to float only when it assembles a batch. Implementations must make label() and
// read_image() safe to call from several threads at once (the loader's worker calls them).
class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual std::string name() const = 0;  // "mnist/train": used in error messages
  virtual std::int64_t size() const = 0;
  virtual std::int64_t num_classes() const = 0;
  virtual ImageShape image_shape() const = 0;
  // Class names in label order; "0", "1", ... unless the dataset knows better.
  virtual std::vector<std::string> class_names() const;
  virtual Fingerprint fingerprint() const = 0;
  // Bytes the dataset holds in memory (pixels and labels loaded or decoded up front), for a
  // trainer's check that a run fits: 0 for what is generated or decoded on each read.
  virtual std::int64_t memory_bytes() const { return 0; }

  // Both check the index (DataError naming the dataset) and then ask the implementation.
  std::int64_t label(std::int64_t i) const;
  // Writes image i into `out`, which must hold exactly image_shape().numel() bytes.
  void read_image(std::int64_t i, std::span<std::uint8_t> out) const;
  std::vector<std::uint8_t> image(std::int64_t i) const;  // a copy, for convenience

 protected:
  virtual std::int64_t label_at(std::int64_t i) const = 0;
  virtual void read_image_at(std::int64_t i, std::span<std::uint8_t> out) const = 0;

 private:
  void check_index(std::int64_t i, const char* what) const;
};

using DatasetPtr = std::shared_ptr<const Dataset>;

// Images and labels held in memory: what the IDX and CIFAR readers produce, and a direct
// way to wrap data of one's own.
class InMemoryDataset final : public Dataset {
 public:
  struct Info {
    std::string name = {};
    ImageShape shape = {};
    std::int64_t num_classes = 0;
    std::vector<std::string> class_names = {};  // empty: "0", "1", ...
    Fingerprint fingerprint = {};               // empty entries: none known
  };

  // pixels: size() * shape.numel() bytes starting at `pixel_offset` (so a whole file read
  // into memory can be kept without copying its header out). Checks every label is in
  // [0, num_classes) and the sizes agree; DataError naming the dataset otherwise.
  InMemoryDataset(Info info, std::vector<std::uint8_t> pixels, std::vector<std::int32_t> labels,
                  std::size_t pixel_offset = 0);

  std::string name() const override { return info_.name; }
  std::int64_t size() const override { return static_cast<std::int64_t>(labels_.size()); }
  std::int64_t num_classes() const override { return info_.num_classes; }
  ImageShape image_shape() const override { return info_.shape; }
  std::vector<std::string> class_names() const override;
  Fingerprint fingerprint() const override { return info_.fingerprint; }
  std::int64_t memory_bytes() const override;

  // Zero-copy access: all images back to back, (N, C, H, W).
  std::span<const std::uint8_t> pixels() const;

 protected:
  std::int64_t label_at(std::int64_t i) const override { return labels_[static_cast<std::size_t>(i)]; }
  void read_image_at(std::int64_t i, std::span<std::uint8_t> out) const override;

 private:
  Info info_;
  std::vector<std::uint8_t> pixels_;
  std::size_t offset_ = 0;
  std::vector<std::int32_t> labels_;
};

// The first `count` samples of another dataset (train_limit / test_limit in a config).
class SubsetDataset final : public Dataset {
 public:
  // ConfigError unless 0 < count <= base->size().
  SubsetDataset(DatasetPtr base, std::int64_t count);
  std::string name() const override;
  std::int64_t size() const override { return count_; }
  std::int64_t num_classes() const override { return base_->num_classes(); }
  ImageShape image_shape() const override { return base_->image_shape(); }
  std::vector<std::string> class_names() const override { return base_->class_names(); }
  Fingerprint fingerprint() const override { return base_->fingerprint(); }
  // The base is held whole, however few of its samples the subset shows.
  std::int64_t memory_bytes() const override { return base_->memory_bytes(); }

 protected:
  std::int64_t label_at(std::int64_t i) const override { return base_->label(i); }
  void read_image_at(std::int64_t i, std::span<std::uint8_t> out) const override { base_->read_image(i, out); }

 private:
  DatasetPtr base_;
  std::int64_t count_;
};

// Per-channel mean and standard deviation of the pixel values scaled to [0, 1], over the
// whole dataset (population std): the arguments of transforms::normalize. Computed exactly
// from per-channel histograms of the uint8 values.
struct ChannelStats {
  std::vector<double> mean;
  std::vector<double> std;
};
ChannelStats compute_channel_stats(const Dataset& dataset);

// Class counts, label order: for balance checks and reports.
std::vector<std::int64_t> class_counts(const Dataset& dataset);

}  // namespace tessera::datasets
