// Datasets by name, as a config names them (data.dataset): a registry of specs. A dataset is
// one file (its reader and its spec) plus one line in the built-in list (factory.cpp); a
// program can register its own with register_dataset.
#pragma once

#include <filesystem>
#include <functional>
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

// What the registry knows of a dataset.
struct DatasetSpec {
  std::string name;     // "mnist": what data.dataset says
  std::string summary;  // one line for the docs
  // Opens one split from `root` (ignored by generated datasets). The registry then checks the
  // shape and, for fixed classes, the class list, and applies the limit.
  std::function<DatasetPtr(const std::filesystem::path& root, Split split, const DatasetOptions& options)> open;
  // The standard per-channel mean and std of the training split, as everyone normalises it;
  // empty: computed from the training split.
  ChannelStats normalization = {};
  bool fixed_classes = true;  // false: the classes come from the files (an image folder)
  bool generated = false;     // no files: made in memory at the model's input shape
  bool decoded_at_model_size = false;  // files decoded and resized to the model's input (images)
};

// Adds a dataset; ConfigError when the name is taken. The built-in ones come first.
void register_dataset(DatasetSpec spec);
// ConfigError for an unknown name, listing the known ones ('-', '_' and case ignored).
const DatasetSpec& dataset_spec(std::string_view name);
// The known names, built-in ones first, in the order error messages list them.
std::vector<std::string> dataset_names();

// A registered dataset's split: mnist, fashion_mnist, cifar10, image_folder, synthetic or one
// of the program's ('-' and '_' and case are ignored, so "Fashion-MNIST" works too). root:
// the directory holding the files (ignored by synthetic); image_folder looks for root/train
// or root/test (also root/val for test). ConfigError for an unknown name, listing the
// valid ones, or a negative limit.
DatasetPtr make_dataset(std::string_view name, const std::filesystem::path& root, Split split,
                        const DatasetOptions& options = {});
DatasetPtr make_dataset(std::string_view name, const std::filesystem::path& root,
                        std::string_view split, const DatasetOptions& options = {});

}  // namespace tessera::datasets
