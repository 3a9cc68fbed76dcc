// IDX files (LeCun's MNIST format, also Fashion-MNIST), raw or gzipped: strict readers that
// check the magic number, the dimensions, the exact size and the labels, and the loaders
// that find the standard file names in a dataset directory.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tessera/datasets/dataset.h"
#include "tessera/datasets/factory.h"

namespace tessera::datasets {

inline constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
inline constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension

struct IdxImages {
  std::int64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> content;  // the whole (decompressed) file; pixels start at offset
  std::size_t offset = 16;
  FingerprintEntry entry;
};

struct IdxLabels {
  std::vector<std::uint8_t> content;  // the whole (decompressed) file; labels start at offset
  std::size_t offset = 8;
  std::int64_t count() const { return static_cast<std::int64_t>(content.size() - offset); }
  FingerprintEntry entry;
};

// Both throw IoError when the file cannot be opened and DataError, naming the file, for a
// bad magic number, wrong dimension count, zero sizes, or a size that differs from what
// the header says (truncated or trailing data).
IdxImages read_idx_images(const std::filesystem::path& path);
IdxLabels read_idx_labels(const std::filesystem::path& path);

// Pairs an images file with a labels file: counts must agree and every label must be in
// [0, num_classes) (DataError naming the file, the label and its index otherwise).
std::shared_ptr<InMemoryDataset> load_idx(const std::filesystem::path& images,
                                          const std::filesystem::path& labels,
                                          std::int64_t num_classes, std::string name,
                                          std::vector<std::string> class_names = {});

struct IdxFiles {
  std::filesystem::path images, labels;
};
// Finds the standard names for a split in `dir`: train-images-idx3-ubyte (or
// train-images.idx3-ubyte), raw or .gz, and the same for labels and t10k-*; raw preferred.
// IoError listing what was looked for when one is missing.
IdxFiles find_idx_files(const std::filesystem::path& dir, Split split);

// MNIST and Fashion-MNIST from a directory holding the four standard files.
std::shared_ptr<InMemoryDataset> load_mnist(const std::filesystem::path& dir, Split split);
std::shared_ptr<InMemoryDataset> load_fashion_mnist(const std::filesystem::path& dir, Split split);

// Their registry entries (factory.h).
DatasetSpec mnist_spec();
DatasetSpec fashion_mnist_spec();

}  // namespace tessera::datasets
