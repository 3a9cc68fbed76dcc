#include "tessera/train/model_registry.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "train/config_yaml.h"

namespace tessera::train {
namespace {

using namespace yaml_codec;

// The built-in models: each spec lives beside its registration.
std::vector<ModelSpec>& registry() {
  static std::vector<ModelSpec> specs{vit_model_spec()};
  return specs;
}

template <class Codec>
ModelKey make_key(std::string key, const Codec& codec, std::string description) {
  ModelKey k{std::move(key), codec.type(), codec.range(), std::move(description), std::nullopt, std::nullopt, {}, {}};
  if constexpr (requires { codec.min; }) k.min = static_cast<double>(codec.min), k.max = static_cast<double>(codec.max);
  if constexpr (requires { codec.low; }) k.min = codec.low, k.max = codec.high;
  return k;
}

}  // namespace

namespace model_keys {

ModelKey integer(std::string key, std::function<std::int64_t&(std::any&)> at, std::int64_t min, std::int64_t max,
                 std::string description) {
  const Integer<std::int64_t> codec{min, max};
  ModelKey k = make_key(std::move(key), codec, std::move(description));
  k.parse = [codec, at](std::any& c, const Ctx& v) { codec.parse(v, at(c)); };
  k.dump = [codec, at](const std::any& c) { return codec.dump(at(const_cast<std::any&>(c))); };
  return k;
}

ModelKey number(std::string key, std::function<double&(std::any&)> at, double low, bool low_open, double high,
                bool high_open, std::string description) {
  const Number codec{low, !low_open, high, !high_open};
  ModelKey k = make_key(std::move(key), codec, std::move(description));
  k.parse = [codec, at](std::any& c, const Ctx& v) { codec.parse(v, at(c)); };
  k.dump = [codec, at](const std::any& c) { return codec.dump(at(const_cast<std::any&>(c))); };
  return k;
}

ModelKey boolean(std::string key, std::function<bool&(std::any&)> at, std::string description) {
  const Boolean codec;
  ModelKey k = make_key(std::move(key), codec, std::move(description));
  k.parse = [codec, at](std::any& c, const Ctx& v) { codec.parse(v, at(c)); };
  k.dump = [codec, at](const std::any& c) { return codec.dump(at(const_cast<std::any&>(c))); };
  return k;
}

ModelKey choice(std::string key, std::vector<std::string> names, std::function<std::string(const std::any&)> get,
                std::function<void(std::any&, const std::string&)> set, std::string description) {
  ModelKey k{std::move(key), "string", fmt::format("{}", fmt::join(names, " | ")), std::move(description),
             std::nullopt, std::nullopt, {}, {}};
  k.parse = [names, set](std::any& c, const Ctx& v) {
    if (const std::string* s = v.scalar(); s && std::find(names.begin(), names.end(), *s) != names.end())
      return set(c, *s);
    v.fail(fmt::format("expected one of {}, got {}{}", fmt::join(names, ", "), describe(v.node),
                       v.scalar() ? did_you_mean(*v.scalar(), names) : ""));
  };
  k.dump = get;
  return k;
}

ModelKey image_size(std::string key, std::function<std::int64_t&(std::any&)> height,
                    std::function<std::int64_t&(std::any&)> width, std::string description) {
  const ImageSize codec;
  ModelKey k = make_key(std::move(key), codec, std::move(description));
  k.min = 1, k.max = static_cast<double>(kMaxImageSide);
  k.parse = [codec, height, width](std::any& c, const Ctx& v) {
    std::array<std::int64_t, 2> hw{height(c), width(c)};
    codec.parse(v, hw);
    height(c) = hw[0], width(c) = hw[1];
  };
  k.dump = [codec, height, width](const std::any& c) {
    std::any& m = const_cast<std::any&>(c);
    return codec.dump({height(m), width(m)});
  };
  return k;
}

}  // namespace model_keys

void register_model(ModelSpec spec) {
  TESSERA_CHECK(!spec.name.empty() && spec.build && spec.input && spec.defaults.has_value(), ConfigError,
                "register_model: a model needs a name, defaults, an input and a builder");
  for (const ModelSpec& m : registry())
    TESSERA_CHECK(m.name != spec.name, ConfigError, "register_model: a model named '{}' is already registered",
                  spec.name);
  registry().push_back(std::move(spec));
}

const ModelSpec& model_spec(std::string_view name) {
  for (const ModelSpec& m : registry())
    if (m.name == name) return m;
  throw ConfigError(fmt::format("model.name: unknown model '{}'; the models are {}{}", name,
                                fmt::join(model_names(), ", "), did_you_mean(name, model_names())));
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const ModelSpec& m : registry()) names.push_back(m.name);
  return names;
}

ModelConfig::ModelConfig() : ModelConfig("vit") {}

ModelConfig::ModelConfig(std::string_view model) : name_(model), values_(model_spec(model).defaults) {}

void ModelConfig::apply_preset(std::string_view preset_name) {
  const ModelSpec& s = spec();
  for (const auto& [n, values] : s.presets)
    if (n == preset_name) {
      values_ = values;
      preset = n;
      return;
    }
  std::vector<std::string> names;
  for (const auto& [n, v] : s.presets) names.push_back(n);
  throw ConfigError(fmt::format("model.preset: {} has no preset '{}'; its presets are {}{}", name_, preset_name,
                                names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", ")),
                                did_you_mean(preset_name, names)));
}

bool operator==(const ModelConfig& a, const ModelConfig& b) {
  if (a.name_ != b.name_ || a.preset != b.preset) return false;
  for (const ModelKey& k : a.spec().keys)
    if (k.dump(a.values_) != k.dump(b.values_)) return false;
  return true;
}

}  // namespace tessera::train
