#include "tessera/models/registry.h"

#include <deque>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/models/resnet.h"
#include "tessera/models/sagan_cnn.h"
#include "tessera/models/vit.h"

namespace tessera::models {
namespace {

// A deque: registering a model keeps references to the others valid.
struct Registry {
  std::mutex mutex;
  std::deque<ModelSpec> specs{vit_model_spec(), resnet_model_spec(), sagan_cnn_model_spec()};
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void check_images(std::string_view model, const Tensor& images, const ModelInput& in) {
  TESSERA_CHECK(images.dim() == 4 && images.size(1) == in.channels && images.size(2) == in.height &&
                    images.size(3) == in.width,
                ShapeError, "{}: images {} must be (B, {}, {}, {})", model, shape_str(images.shape()), in.channels,
                in.height, in.width);
}

void register_model(ModelSpec spec) {
  TESSERA_CHECK(!spec.name.empty() && spec.build && spec.input && spec.defaults.has_value(), ConfigError,
                "register_model: a model needs a name, defaults, an input and a builder");
  for (const ModelKey& k : spec.keys)
    TESSERA_CHECK(!k.key.empty() && k.get && k.set, ConfigError, "register_model: {}: a key needs a name, get and set",
                  spec.name);
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  for (const ModelSpec& m : r.specs)
    TESSERA_CHECK(m.name != spec.name, ConfigError, "register_model: a model named '{}' is already registered",
                  spec.name);
  r.specs.push_back(std::move(spec));
}

const ModelSpec& model_spec(std::string_view name) {
  Registry& r = registry();
  {
    std::lock_guard lock(r.mutex);
    for (const ModelSpec& m : r.specs)
      if (m.name == name) return m;
  }
  throw ConfigError(fmt::format("model.name: unknown model '{}'; the models are {}", name, fmt::join(model_names(), ", ")));
}

std::vector<std::string> model_names() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> names;
  for (const ModelSpec& m : r.specs) names.push_back(m.name);
  return names;
}

}  // namespace tessera::models
