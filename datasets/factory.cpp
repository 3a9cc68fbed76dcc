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

// The built-in datasets: each spec lives with its reader.
std::vector<DatasetSpec>& registry() {
  static std::vector<DatasetSpec> specs{mnist_spec(), fashion_mnist_spec(), cifar10_spec(), image_folder_spec(),
                                        synthetic_spec()};
  return specs;
}

}  // namespace

void register_dataset(DatasetSpec spec) {
  TESSERA_CHECK(!spec.name.empty() && spec.open, ConfigError, "register_dataset: a dataset needs a name and an open function");
  for (const DatasetSpec& d : registry())
    TESSERA_CHECK(canonical(d.name) != canonical(spec.name), ConfigError,
                  "register_dataset: a dataset named '{}' is already registered", d.name);
  registry().push_back(std::move(spec));
}

const DatasetSpec& dataset_spec(std::string_view name) {
  for (const DatasetSpec& d : registry())
    if (canonical(d.name) == canonical(name)) return d;
  throw ConfigError(fmt::format("make_dataset: unknown dataset '{}' (valid: {})", name,
                                fmt::join(dataset_names(), ", ")));
}

std::vector<std::string> dataset_names() {
  std::vector<std::string> names;
  for (const DatasetSpec& d : registry()) names.push_back(d.name);
  return names;
}

DatasetPtr make_dataset(std::string_view name, const std::filesystem::path& root, Split split,
                        const DatasetOptions& o) {
  const DatasetSpec& spec = dataset_spec(name);
  TESSERA_CHECK(o.limit >= 0, ConfigError, "make_dataset: the limit must not be negative, got {}", o.limit);
  DatasetPtr d = check_shape(spec.open(root, split, o), o);
  if (!spec.fixed_classes) return d;  // limit and classes applied while reading
  return first_samples(check_classes(std::move(d), o), o.limit);
}

DatasetPtr make_dataset(std::string_view name, const std::filesystem::path& root,
                        std::string_view split, const DatasetOptions& options) {
  return make_dataset(name, root, parse_split(split), options);
}

}  // namespace tessera::datasets
