// Every config key at its extremes: each value is refused before training with a message
// naming the key, or it runs a training step of a tiny model. Never a signal, never an
// error that is not Tessera's. The keys come from the schema itself, every registered
// model's included, so keys and models added later are covered without editing this file.
#include <chrono>
#include <cmath>
#include <limits>

#include "support/test_support.h"
#include "tessera/train/trainer.h"

namespace tt = tessera::train;
namespace fs = std::filesystem;
using namespace tessera;

namespace {

// Smallest model and data that train: a step takes milliseconds.
constexpr const char* kTinyVit =
    "model: {image_size: 8, patch_size: 4, channels: 1, num_classes: 2, dim: 8, depth: 1, heads: 1, mlp_dim: 8}\n";
constexpr const char* kRun = R"(
data: {dataset: synthetic, synthetic: {train_size: 4, test_size: 2}, normalize: none}
schedule: {warmup_epochs: 0}
train: {epochs: 1, batch_size: 2, eval_batch_size: 2, threads: 1, output_dir: run}
)";

// The config a key is varied in: its model made tiny, so that one key at its largest value
// stays cheap (a wide model on small images, or large images through a narrow one).
std::string base_for(const tt::ConfigKey& key) {
  if (key.model.empty() || key.model == "vit") return kTinyVit + std::string(kRun);
  std::string model = "name: " + key.model;
  for (const auto& [k, v] : {std::pair{"image_size", "8"}, {"width", "16"}, {"stages", "2"}, {"qk_channels", "1"}})
    for (const models::ModelKey& mk : models::model_spec(key.model).keys)
      if (mk.key == k) model += fmt::format(", {}: {}", k, v);
  return fmt::format("model: {{{}}}\n", model) + kRun;
}

std::string number_text(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  if (std::abs(v) < 1e18 && v == std::floor(v)) return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", v);
}

// The values every key is driven through: the issue's list, then the key's own bounds and
// the integers just outside them.
std::vector<std::string> values_for(const tt::ConfigKey& key) {
  std::vector<std::string> v{"0",  "1", "-1", "2147483648", "9223372036854775807", "18446744073709551616",
                             "1e300", ".nan", ".inf", "-.inf", "0.5", "\"x\"", "[]", "{}"};
  if (key.min && key.max) {
    for (const double b : {*key.min, *key.max}) v.push_back(number_text(b));
    if (key.type == "int") {
      v.push_back(number_text(*key.min - 1));
      v.push_back(number_text(*key.max + 1));
    }
  }
  return v;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(extremes)

BOOST_AUTO_TEST_CASE(every_key_at_every_extreme_is_refused_or_trains) {
  test::TempDir dir("extremes");
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());  // relative output directories land here
  static std::FILE* devnull = std::fopen("/dev/null", "w");
  tt::TrainOptions opts;
  opts.out = devnull;
  opts.live_progress = false;
  opts.stop_at_step = 1;
  int refused = 0, trained = 0;
  for (const tt::ConfigKey& key : tt::config_schema()) {
    for (const std::string& value : values_for(key)) {
      const std::string what = key.path + "=" + value;
      const std::vector<tt::ConfigOverride> set{{key.path, value}};
      tt::TrainConfig cfg;
      try {
        cfg = tt::load_config_string(base_for(key), "base.yaml", set);
      } catch (const ConfigError& e) {
        ++refused;
        const std::string w = e.what();
        BOOST_TEST(w.find(key.path) != std::string::npos, what << ": " << w);
        BOOST_TEST(w.size() < 400u, what << ": a message of " << w.size() << " characters");
        continue;
      }
      if (cfg.train.device.is_cuda()) continue;  // no GPU here: refused by train(), tested elsewhere
      const auto start = std::chrono::steady_clock::now();
      try {
        const tt::TrainResult r = tt::train(cfg, opts);
        BOOST_TEST((r.status != tt::TrainResult::Status::diverged), what << ": " << r.message);
        ++trained;
      } catch (const Error& e) {
        // Refused by the trainer: before training, in the user's terms.
        ++refused;
        BOOST_TEST(std::string(e.what()).size() < 600u, what << ": " << e.what());
      } catch (const std::exception& e) {
        BOOST_ERROR(what << ": an error that is not Tessera's: " << e.what());
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (seconds > 1.0) BOOST_TEST_MESSAGE(fmt::format("{}: {:.1f} s", what, seconds));
      std::error_code ec;
      fs::remove_all(cfg.train.output_dir, ec);
    }
  }
  fs::current_path(cwd);
  BOOST_TEST_MESSAGE(refused << " values refused, " << trained << " trained a step");
  BOOST_TEST(trained > 50);  // the base and in-range values really train
  BOOST_TEST(refused > 500);
}

BOOST_AUTO_TEST_SUITE_END()
