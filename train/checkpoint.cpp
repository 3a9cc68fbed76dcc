#include "tessera/train/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <nlohmann/json.hpp>

namespace tessera::train {
namespace {

using json = nlohmann::json;

std::string number(double v) { return fmt::format("{:.17g}", v); }

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const nn::Module& model,
                     const nn::NamedTensors& optimizer_state, const CheckpointInfo& info) {
  io::TensorMap tensors;
  for (const auto& [name, t] : model.state_dict()) tensors.emplace(name, t);
  for (const auto& [name, t] : optimizer_state) {
    TESSERA_CHECK(name.starts_with("optim."), Error, "save_checkpoint: optimizer state '{}' lacks the optim. prefix",
                  name);
    tensors.emplace(name, t);
  }
  const TrainState& s = info.state;
  io::Metadata meta{
      {"format", kCheckpointFormat},
      {"epoch", std::to_string(s.epoch)},
      {"batch", std::to_string(s.batch)},
      {"global_step", std::to_string(s.global_step)},
      {"best_accuracy", number(s.best_accuracy)},
      {"generator_seed", std::to_string(s.generator.seed)},
      {"generator_offset", std::to_string(s.generator.offset)},
      {"epoch_loss_sum", number(s.epoch_loss_sum)},
      {"epoch_correct", std::to_string(s.epoch_correct)},
      {"epoch_samples", std::to_string(s.epoch_samples)},
      {"config", info.config_yaml},
      {"train_fingerprint", info.train_fingerprint},
      {"test_fingerprint", info.test_fingerprint},
      {"class_names", json(info.class_names).dump()},
      {"normalize_mean", json(info.normalize_mean).dump()},
      {"normalize_std", json(info.normalize_std).dump()},
  };
  io::save_safetensors(path, tensors, meta);
}

Checkpoint load_checkpoint(const std::filesystem::path& path) {
  io::SafetensorsFile file = io::load_safetensors(path);
  const io::Metadata& m = file.metadata;
  auto get = [&](const char* key) -> const std::string& {
    auto it = m.find(key);
    TESSERA_CHECK(it != m.end(), IoError, "{}: not a Tessera checkpoint: metadata '{}' is missing", path.string(), key);
    return it->second;
  };
  TESSERA_CHECK(get("format") == kCheckpointFormat, IoError, "{}: unsupported checkpoint format '{}' (expected {})",
                path.string(), get("format"), kCheckpointFormat);
  // Metadata is validated like a config: the type, a range, finiteness.
  auto unsigned_integer = [&](const char* key, std::uint64_t max) {
    const std::string& text = get(key);
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    TESSERA_CHECK(ec == std::errc() && end == text.data() + text.size() && v <= max, IoError,
                  "{}: metadata '{}' is not an integer from 0 to {}: '{}'", path.string(), key, max,
                  text.substr(0, 40));
    return v;
  };
  auto integer = [&](const char* key) {
    return static_cast<std::int64_t>(unsigned_integer(key, std::uint64_t{1} << 62));
  };
  auto real = [&](const char* key) {
    const std::string& text = get(key);
    try {
      std::size_t used = 0;
      const double v = std::stod(text, &used);
      if (used == text.size() && std::isfinite(v)) return v;
    } catch (const std::exception&) {
    }
    throw IoError(fmt::format("{}: metadata '{}' is not a finite number: '{}'", path.string(), key, text.substr(0, 40)));
  };
  auto json_list = [&]<class T>(const char* key, std::vector<T>& out) {
    try {
      out = json::parse(get(key)).get<std::vector<T>>();
    } catch (const json::exception& e) {
      throw IoError(fmt::format("{}: metadata '{}' is not a JSON list: {}", path.string(), key, e.what()));
    }
  };

  Checkpoint c;
  TrainState& s = c.info.state;
  s.epoch = integer("epoch");
  s.batch = integer("batch");
  s.global_step = integer("global_step");
  s.best_accuracy = real("best_accuracy");
  s.generator = {unsigned_integer("generator_seed", UINT64_MAX), unsigned_integer("generator_offset", UINT64_MAX)};
  s.epoch_loss_sum = real("epoch_loss_sum");
  s.epoch_correct = integer("epoch_correct");
  s.epoch_samples = integer("epoch_samples");
  TESSERA_CHECK(s.epoch_correct <= s.epoch_samples && s.epoch_loss_sum >= 0 && s.best_accuracy >= -1 &&
                    s.best_accuracy <= 1,
                IoError, "{}: inconsistent training statistics in the metadata (correct {} of {}, loss sum {}, best {})",
                path.string(), s.epoch_correct, s.epoch_samples, s.epoch_loss_sum, s.best_accuracy);
  c.info.config_yaml = get("config");
  c.info.train_fingerprint = get("train_fingerprint");
  c.info.test_fingerprint = get("test_fingerprint");
  json_list("class_names", c.info.class_names);
  json_list("normalize_mean", c.info.normalize_mean);
  json_list("normalize_std", c.info.normalize_std);
  const auto& mean = c.info.normalize_mean;
  const auto& std = c.info.normalize_std;
  TESSERA_CHECK(mean.size() == std.size() &&
                    std::all_of(mean.begin(), mean.end(), [](double v) { return std::isfinite(v); }) &&
                    std::all_of(std.begin(), std.end(), [](double v) { return std::isfinite(v) && v > 0; }),
                IoError, "{}: metadata normalize_mean / normalize_std are not finite per-channel values with std > 0",
                path.string());
  for (auto& [name, t] : file.tensors) {
    const std::int64_t bad = count_non_finite(t);
    TESSERA_CHECK(bad == 0, DataError, "{}: tensor '{}' holds {} NaN or infinite values of {}: the weights are "
                  "unusable (was the run diverging when it was saved?)", path.string(), name, bad, t.numel());
    (name.starts_with("optim.") ? c.optimizer : c.model).emplace_back(name, std::move(t));
  }
  return c;
}

}  // namespace tessera::train
