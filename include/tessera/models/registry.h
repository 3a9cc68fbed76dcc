// The model registry: every model a config can name (model.name), registered once with its
// name, its config section (keys with kinds, bounds, defaults and one-line docs), its presets
// and a builder returning an nn::UnaryModule (images (B, C, H, W) -> logits (B, classes)).
// The section is declared here as data; the training config (train/) reads, validates,
// dumps and documents it with the same machinery as its own keys. A program registers its
// own models the same way and gets every command of the CLI for them (tessera::cli::main).
#pragma once

#include <any>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "tessera/autograd/random.h"
#include "tessera/nn/module.h"

namespace tessera::models {

// Images up to 8192 pixels a side: far from any size's overflow.
constexpr std::int64_t kMaxImageSide = 8192;

// What the trainer needs of an image classifier: its input (C, H, W) and its classes.
struct ModelInput {
  std::int64_t channels = 0, height = 0, width = 0;
  std::int64_t num_classes = 0;
};

// ShapeError "<model>: images (...) must be (B, C, H, W)" unless `images` fit `in`: what
// every image model's forward checks first.
void check_images(std::string_view model, const Tensor& images, const ModelInput& in);

// The value of one key, whatever syntax the config gave it.
using ImageSide = std::array<std::int64_t, 2>;  // {height, width}
using KeyValue = std::variant<std::int64_t, double, bool, std::string, ImageSide>;

// One key of a model's config section, type-erased over the model's config struct.
struct ModelKey {
  enum class Kind { integer, number, boolean, choice, image_size };
  std::string key;  // "dim" (the config says model.dim)
  std::string description;
  Kind kind = Kind::integer;
  std::int64_t int_min = 0, int_max = 0;  // integer (and image_size: each side), both ends included
  double low = 0, high = 0;               // number, each end open or closed
  bool low_open = false, high_open = false;
  std::vector<std::string> choices;  // choice
  std::function<KeyValue(const std::any& config)> get;
  std::function<void(std::any& config, const KeyValue& value)> set;  // the value fits the key
};

// A model's section declared over its config struct C, key by key, in the order of the docs.
template <class C>
class ModelSchema {
 public:
  ModelSchema& integer(std::string key, std::int64_t C::*m, std::int64_t min, std::int64_t max, std::string doc) {
    ModelKey k = make(std::move(key), ModelKey::Kind::integer, std::move(doc));
    k.int_min = min, k.int_max = max;
    k.get = [m](const std::any& a) { return KeyValue(cfg(a).*m); };
    k.set = [m](std::any& a, const KeyValue& v) { cfg(a).*m = std::get<std::int64_t>(v); };
    return add(std::move(k));
  }
  // [0, 1): rates such as dropout; number() for other ranges.
  ModelSchema& rate(std::string key, double C::*m, std::string doc) {
    return number(std::move(key), m, 0.0, false, 1.0, true, std::move(doc));
  }
  ModelSchema& number(std::string key, double C::*m, double low, bool low_open, double high, bool high_open,
                      std::string doc) {
    ModelKey k = make(std::move(key), ModelKey::Kind::number, std::move(doc));
    k.low = low, k.low_open = low_open, k.high = high, k.high_open = high_open;
    k.get = [m](const std::any& a) { return KeyValue(cfg(a).*m); };
    k.set = [m](std::any& a, const KeyValue& v) { cfg(a).*m = std::get<double>(v); };
    return add(std::move(k));
  }
  ModelSchema& boolean(std::string key, bool C::*m, std::string doc) {
    ModelKey k = make(std::move(key), ModelKey::Kind::boolean, std::move(doc));
    k.get = [m](const std::any& a) { return KeyValue(cfg(a).*m); };
    k.set = [m](std::any& a, const KeyValue& v) { cfg(a).*m = std::get<bool>(v); };
    return add(std::move(k));
  }
  // One of `names`, each standing for a value of the struct's member (usually an enum).
  template <class E>
  ModelSchema& choice(std::string key, E C::*m, std::vector<std::pair<std::string, E>> names, std::string doc) {
    ModelKey k = make(std::move(key), ModelKey::Kind::choice, std::move(doc));
    for (const auto& [n, v] : names) k.choices.push_back(n);
    k.get = [m, names](const std::any& a) {
      for (const auto& [n, v] : names)
        if (v == cfg(a).*m) return KeyValue(n);
      return KeyValue(std::string("?"));
    };
    k.set = [m, names](std::any& a, const KeyValue& value) {
      for (const auto& [n, v] : names)
        if (n == std::get<std::string>(value)) cfg(a).*m = v;
    };
    return add(std::move(k));
  }
  // An int (square) or [height, width], each side 1 to kMaxImageSide.
  ModelSchema& image_size(std::string key, std::int64_t C::*height, std::int64_t C::*width, std::string doc) {
    ModelKey k = make(std::move(key), ModelKey::Kind::image_size, std::move(doc));
    k.int_min = 1, k.int_max = kMaxImageSide;
    k.get = [height, width](const std::any& a) { return KeyValue(ImageSide{cfg(a).*height, cfg(a).*width}); };
    k.set = [height, width](std::any& a, const KeyValue& v) {
      const auto [h, w] = std::get<ImageSide>(v);
      cfg(a).*height = h, cfg(a).*width = w;
    };
    return add(std::move(k));
  }
  const std::vector<ModelKey>& keys() const { return keys_; }

 private:
  static C& cfg(std::any& a) { return std::any_cast<C&>(a); }
  static const C& cfg(const std::any& a) { return std::any_cast<const C&>(a); }
  static ModelKey make(std::string key, ModelKey::Kind kind, std::string doc) {
    ModelKey k;
    k.key = std::move(key), k.kind = kind, k.description = std::move(doc);
    return k;
  }
  ModelSchema& add(ModelKey k) {
    keys_.push_back(std::move(k));
    return *this;
  }
  std::vector<ModelKey> keys_;
};

// A registered model.
struct ModelSpec {
  std::string name;     // what model.name says: "vit"
  std::string summary;  // one line for the docs
  std::any defaults;    // its config struct with the defaults of the config reference
  std::vector<ModelKey> keys;
  std::vector<std::pair<std::string, std::any>> presets;  // model.preset names
  std::function<void(const std::any&)> validate;          // ConfigError for what no key sees alone
  std::function<ModelInput(const std::any&)> input;
  std::function<std::unique_ptr<nn::UnaryModule>(const std::any&, Generator& init)> build;
};

// The spec of a model whose config struct is C: what a program registers. `validate` names
// the config keys it blames (model.dim, ...), since its messages reach the config's user.
template <class C>
ModelSpec model_spec(std::string name, std::string summary, C defaults, const ModelSchema<C>& schema,
                     std::function<ModelInput(const C&)> input,
                     std::function<std::unique_ptr<nn::UnaryModule>(const C&, Generator&)> build,
                     std::function<void(const C&)> validate = {},
                     std::vector<std::pair<std::string, C>> presets = {}) {
  ModelSpec s;
  s.name = std::move(name), s.summary = std::move(summary), s.defaults = std::move(defaults);
  s.keys = schema.keys();
  for (auto& [n, c] : presets) s.presets.emplace_back(n, std::any(std::move(c)));
  s.validate = [validate](const std::any& a) {
    if (validate) validate(std::any_cast<const C&>(a));
  };
  s.input = [input](const std::any& a) { return input(std::any_cast<const C&>(a)); };
  s.build = [build](const std::any& a, Generator& g) { return build(std::any_cast<const C&>(a), g); };
  return s;
}

// Adds a model; ConfigError when the name is taken or the spec is incomplete. The built-in
// models are registered from the start.
void register_model(ModelSpec spec);
// ConfigError for an unknown name, listing the known ones.
const ModelSpec& model_spec(std::string_view name);
std::vector<std::string> model_names();

}  // namespace tessera::models
