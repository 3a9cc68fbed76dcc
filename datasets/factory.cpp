#include "tessera/datasets/factory.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/datasets/cifar.h"
#include "tessera/datasets/idx.h"
#include "tessera/datasets/image_folder.h"
#include "tessera/datasets/synthetic.h"

namespace tessera::datasets {
namespace {

std::string canonical(std::string_view name) {
  std::string out;
  for (unsigned char c : name)
    if (c != '-' && c != '_') out.push_back(static_cast<char>(std::tolower(c)));
  return out;
}

DatasetPtr check_shape(DatasetPtr d, const DatasetOptions& o) {
  TESSERA_CHECK(!o.image_shape || *o.image_shape == d->image_shape(), ConfigError,
                "make_dataset: image_shape {} was given but {} images are {}",
                o.image_shape->str(), d->name(), d->image_shape().str());
  return d;
}

// A dataset of fixed classes is checked after loading: its class list is part of what it is.
DatasetPtr check_classes(DatasetPtr d, const DatasetOptions& o) {
  TESSERA_CHECK(o.classes.empty() || o.classes == d->class_names(), DataError,
                "make_dataset: {} has the classes ({}) but the classes ({}) were given (the training "
                "split's); labels would not mean the same classes",
                d->name(), fmt::join(d->class_names(), ", "), fmt::join(o.classes, ", "));
  return d;
}

DatasetPtr first_samples(DatasetPtr d, std::int64_t limit) {
  if (limit > 0 && limit < d->size()) return std::make_shared<SubsetDataset>(std::move(d), limit);
  return d;
}

}  // namespace

std::vector<std::string> dataset_names() {
  return {"mnist", "fashion_mnist", "cifar10", "image_folder", "synthetic"};
}

DatasetPtr make_dataset(std::string_view name, const std::filesystem::path& root, Split split,
                        const DatasetOptions& o) {
  namespace fs = std::filesystem;
  const std::string key = canonical(name);
  TESSERA_CHECK(o.limit >= 0, ConfigError, "make_dataset: the limit must not be negative, got {}", o.limit);
  auto fixed = [&](DatasetPtr d) { return first_samples(check_classes(check_shape(std::move(d), o), o), o.limit); };
  if (key == "mnist") return fixed(load_mnist(root, split));
  if (key == "fashionmnist") return fixed(load_fashion_mnist(root, split));
  if (key == "cifar10") return fixed(load_cifar10(root, split));
  if (key == "imagefolder") {
    TESSERA_CHECK(o.image_shape.has_value(), ConfigError,
                  "make_dataset: image_folder needs image_shape (channels, height, width)");
    std::vector<std::string> tried{std::string(split_name(split))};
    if (split == Split::test) tried.push_back("val");
    for (const auto& sub : tried)
      if (fs::is_directory(root / sub))
        return std::make_shared<ImageFolderDataset>(root / sub,
                                                    ImageFolderOptions{.channels = o.image_shape->channels,
                                                                       .height = o.image_shape->height,
                                                                       .width = o.image_shape->width,
                                                                       .preload = o.preload,
                                                                       .limit = o.limit,
                                                                       .classes = o.classes},
                                                    fmt::format("image_folder/{}", split_name(split)));
    throw IoError(fmt::format("{}: no {} folder for the {} split", root.string(),
                              fmt::join(tried, " or "), split_name(split)));
  }
  if (key == "synthetic") {
    SyntheticOptions s;
    s.size = o.size > 0 ? o.size : (split == Split::train ? 10000 : 2000);
    s.num_classes = o.num_classes;
    if (o.image_shape) s.shape = *o.image_shape;
    s.seed = o.seed;
    s.noise = o.noise;
    s.split = split;
    return fixed(std::make_shared<SyntheticDataset>(s));
  }
  throw ConfigError(fmt::format("make_dataset: unknown dataset '{}' (valid: {})", name,
                                fmt::join(dataset_names(), ", ")));
}

DatasetPtr make_dataset(std::string_view name, const std::filesystem::path& root,
                        std::string_view split, const DatasetOptions& options) {
  return make_dataset(name, root, parse_split(split), options);
}

}  // namespace tessera::datasets
