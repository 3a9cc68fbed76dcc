// make_dataset: a dataset by name, as a config names it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/datasets/dataset.h"

namespace tessera::datasets {

struct DatasetOptions {
  // image_folder: the decoded size (required). synthetic: the generated shape (default
  // (1,28,28)). Others: optional, and then it must match the files.
  std::optional<ImageShape> image_shape = {};
  bool preload = true;  // image_folder: decode up front when it fits (ImageFolderOptions)
  // The first `limit` samples only (train_limit / test_limit); 0: all. An image folder
  // never reads the files past it.
  std::int64_t limit = 0;
  // Empty: the dataset's own classes. Otherwise the classes labels must follow, the training
  // split's for a test split: an image folder maps its class folders to them by name
  // (DataError for a folder not among them); a dataset of fixed classes (MNIST,
  // Fashion-MNIST, CIFAR-10, synthetic) must have exactly these (DataError otherwise).
  std::vector<std::string> classes = {};

  // synthetic only
  std::int64_t size = 0;  // 0: 10000 for train, 2000 for test
  std::int64_t num_classes = 10;
  std::uint64_t seed = 0;
  double noise = 0.25;
};

// The valid names, in the order error messages list them.
std::vector<std::string> dataset_names();

// name: mnist, fashion_mnist, cifar10, image_folder or synthetic ('-' and '_' and case are
// ignored, so "Fashion-MNIST" and "cifar_10" work too). root: the directory holding the
// files (ignored by synthetic); image_folder looks for root/train or root/test (also
// root/val for test). ConfigError for an unknown name, listing the valid ones, or a
// negative limit.
DatasetPtr make_dataset(std::string_view name, const std::filesystem::path& root, Split split,
                        const DatasetOptions& options = {});
DatasetPtr make_dataset(std::string_view name, const std::filesystem::path& root,
                        std::string_view split, const DatasetOptions& options = {});

}  // namespace tessera::datasets
