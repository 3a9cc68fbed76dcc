// The models a config can name (model.name): each registered once with its name, its config
// section (keys with types, bounds, defaults and one-line docs, validated and documented by
// the same machinery as the rest of the config), its presets and a builder returning an
// nn::UnaryModule (images (B, C, H, W) -> logits (B, classes)). The trainer, the checkpoints
// and every command work through this registry only, so a model registered by a program of
// one's own gets all of them (see tessera::cli::main).
#pragma once

#include <any>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tessera/autograd/random.h"
#include "tessera/nn/module.h"

namespace tessera::train {

namespace yaml_codec {
struct Ctx;  // a YAML value being parsed (train/config_yaml.h)
}

// What the trainer needs of an image classifier: its input (C, H, W) and its classes.
struct ModelInput {
  std::int64_t channels = 0, height = 0, width = 0;
  std::int64_t num_classes = 0;
};

// One key of a model's config section, type-erased over the model's config struct.
struct ModelKey {
  std::string key;  // "dim" (the config says model.dim)
  std::string type, range, description;
  std::optional<double> min, max;  // numeric keys' bounds
  std::function<void(std::any& config, const yaml_codec::Ctx& value)> parse;
  std::function<std::string(const std::any& config)> dump;  // flow YAML
};

// The key kinds a model section is made of (train/model_registry.cpp: the codecs behind them).
namespace model_keys {
ModelKey integer(std::string key, std::function<std::int64_t&(std::any&)> at, std::int64_t min, std::int64_t max,
                 std::string description);
// A number in [low, high] (low_open / high_open exclude the end).
ModelKey number(std::string key, std::function<double&(std::any&)> at, double low, bool low_open, double high,
                bool high_open, std::string description);
ModelKey boolean(std::string key, std::function<bool&(std::any&)> at, std::string description);
// One of `names`; get and set convert the struct's value (an enum) to and from its name.
ModelKey choice(std::string key, std::vector<std::string> names, std::function<std::string(const std::any&)> get,
                std::function<void(std::any&, const std::string&)> set, std::string description);
// An int (square) or [height, width], each side 1 to 8192.
ModelKey image_size(std::string key, std::function<std::int64_t&(std::any&)> height,
                    std::function<std::int64_t&(std::any&)> width, std::string description);
}  // namespace model_keys

// A model's section declared over its config struct C, key by key, in the order of the docs.
template <class C>
class ModelSchema {
 public:
  ModelSchema& integer(std::string key, std::int64_t C::*m, std::int64_t min, std::int64_t max, std::string doc) {
    keys_.push_back(model_keys::integer(std::move(key), ref(m), min, max, std::move(doc)));
    return *this;
  }
  // [low, high): rates such as dropout; use number_in for other ends.
  ModelSchema& rate(std::string key, double C::*m, std::string doc) {
    return number_in(std::move(key), m, 0.0, false, 1.0, true, std::move(doc));
  }
  ModelSchema& number_in(std::string key, double C::*m, double low, bool low_open, double high, bool high_open,
                         std::string doc) {
    keys_.push_back(model_keys::number(std::move(key), ref(m), low, low_open, high, high_open, std::move(doc)));
    return *this;
  }
  ModelSchema& boolean(std::string key, bool C::*m, std::string doc) {
    keys_.push_back(model_keys::boolean(std::move(key), ref(m), std::move(doc)));
    return *this;
  }
  template <class E>
  ModelSchema& choice(std::string key, E C::*m, std::vector<std::pair<std::string, E>> names, std::string doc) {
    std::vector<std::string> list;
    for (const auto& [n, v] : names) list.push_back(n);
    auto get = [m, names](const std::any& a) {
      for (const auto& [n, v] : names)
        if (v == std::any_cast<const C&>(a).*m) return n;
      return std::string("?");
    };
    auto set = [m, names](std::any& a, const std::string& name) {
      for (const auto& [n, v] : names)
        if (n == name) std::any_cast<C&>(a).*m = v;
    };
    keys_.push_back(model_keys::choice(std::move(key), std::move(list), get, set, std::move(doc)));
    return *this;
  }
  ModelSchema& image_size(std::string key, std::int64_t C::*height, std::int64_t C::*width, std::string doc) {
    keys_.push_back(model_keys::image_size(std::move(key), ref(height), ref(width), std::move(doc)));
    return *this;
  }
  std::vector<ModelKey> keys() const { return keys_; }

 private:
  template <class T>
  static std::function<T&(std::any&)> ref(T C::*m) {
    return [m](std::any& a) -> T& { return std::any_cast<C&>(a).*m; };
  }
  std::vector<ModelKey> keys_;
};

// A registered model.
struct ModelSpec {
  std::string name;     // "vit": what model.name says
  std::string summary;  // one line for the docs
  std::any defaults;    // its config struct with the defaults of the config reference
  std::vector<ModelKey> keys;
  std::vector<std::pair<std::string, std::any>> presets;  // model.preset names
  std::function<void(const std::any&)> validate;          // ConfigError for what no key sees alone
  std::function<ModelInput(const std::any&)> input;
  std::function<std::unique_ptr<nn::UnaryModule>(const std::any&, Generator& init)> build;
};

// The spec of a model whose config struct is C; what a program registers.
template <class C>
ModelSpec model_spec(std::string name, std::string summary, C defaults, const ModelSchema<C>& schema,
                     std::function<ModelInput(const C&)> input,
                     std::function<std::unique_ptr<nn::UnaryModule>(const C&, Generator&)> build,
                     std::function<void(const C&)> validate = {},
                     std::vector<std::pair<std::string, C>> presets = {}) {
  ModelSpec s{std::move(name), std::move(summary), std::move(defaults), schema.keys(), {}, {}, {}, {}};
  for (auto& [n, c] : presets) s.presets.emplace_back(n, std::any(std::move(c)));
  s.validate = [validate](const std::any& a) {
    if (validate) validate(std::any_cast<const C&>(a));
  };
  s.input = [input](const std::any& a) { return input(std::any_cast<const C&>(a)); };
  s.build = [build](const std::any& a, Generator& g) { return build(std::any_cast<const C&>(a), g); };
  return s;
}

// Adds a model; ConfigError when the name is taken. The built-in ones (vit, ...) come first.
void register_model(ModelSpec spec);
// ConfigError for an unknown name, listing the known ones.
const ModelSpec& model_spec(std::string_view name);
std::vector<std::string> model_names();

// The model section of a config: a registered model's name, the preset it started from, and
// its config struct.
class ModelConfig {
 public:
  ModelConfig();                                // the default model, vit, with its defaults
  explicit ModelConfig(std::string_view model);  // a registered model with its defaults
  const std::string& name() const { return name_; }
  const ModelSpec& spec() const { return model_spec(name_); }
  // The model's own config struct; std::bad_any_cast names the mismatch.
  template <class C> C& as() { return std::any_cast<C&>(values_); }
  template <class C> const C& as() const { return std::any_cast<const C&>(values_); }
  std::any& values() { return values_; }
  const std::any& values() const { return values_; }
  ModelInput input() const { return spec().input(values_); }
  // Replaces every key by the preset's value; ConfigError for an unknown preset.
  void apply_preset(std::string_view preset_name);

  std::optional<std::string> preset;  // recorded so a dump says where the values came from

  // Same model and same key values (the preset's name aside).
  friend bool operator==(const ModelConfig& a, const ModelConfig& b);

 private:
  std::string name_;
  std::any values_;
};

// The registered models' built-in entries (each beside its registration in train/).
ModelSpec vit_model_spec();

}  // namespace tessera::train
