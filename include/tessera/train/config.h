// The training config: a YAML file (sections model, data, optim, schedule, train) parsed
// and validated into plain structs, with --set overrides, dump, diff and a schema table
// that also generates docs/config.md.
#pragma once

#include <any>
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/autograd/dtype.h"
#include "tessera/models/registry.h"

namespace tessera::train {

// ---------------------------------------------------------------- model

using models::ModelInput;

// The model section: a registered model's name (models/registry.h), the preset it started
// from, and the model's own config struct with every key's value.
class ModelConfig {
 public:
  ModelConfig();                                 // the default model, vit, with its defaults
  explicit ModelConfig(std::string_view model);  // a registered model with its defaults
  const std::string& name() const { return name_; }
  const models::ModelSpec& spec() const { return models::model_spec(name_); }
  // The model's own config struct (std::bad_any_cast for another model's).
  template <class C> C& as() { return std::any_cast<C&>(values_); }
  template <class C> const C& as() const { return std::any_cast<const C&>(values_); }
  std::any& values() { return values_; }
  const std::any& values() const { return values_; }
  ModelInput input() const { return spec().input(values_); }
  // Replaces every key by the preset's value; ConfigError for an unknown preset.
  void apply_preset(std::string_view preset_name);

  std::optional<std::string> preset;  // recorded so a dump says where the values came from

  // Same model, same preset and the same value for every key.
  friend bool operator==(const ModelConfig& a, const ModelConfig& b);

 private:
  std::string name_;
  std::any values_;
};

// ---------------------------------------------------------------- data

struct Normalize {
  enum class Mode {
    dataset,  // YAML `auto`: the dataset's standard per-channel statistics
    none,     // pixels stay in [0, 1]
    custom,   // YAML {mean: [...], std: [...]}
  };
  Mode mode = Mode::dataset;
  std::vector<double> mean;    // custom only, one per channel
  std::vector<double> stddev;  // custom only, same length, each > 0

  friend bool operator==(const Normalize&, const Normalize&) = default;
};

struct Augment {
  std::int64_t random_crop_padding = 0;  // pad by this many pixels, crop back at random
  bool horizontal_flip = false;
  std::int64_t random_shift = 0;  // translate by up to this many pixels, zero fill

  friend bool operator==(const Augment&, const Augment&) = default;
};

struct SyntheticData {
  std::int64_t train_size = 1024;
  std::int64_t test_size = 256;

  friend bool operator==(const SyntheticData&, const SyntheticData&) = default;
};

// How images of another size than the model's are fitted to it.
enum class Fit { none, center, resize };

struct DataConfig {
  std::string dataset = "mnist";  // a name registered with datasets::register_dataset
  std::filesystem::path root;  // empty: data/<dataset> (see dataset_root)
  Fit fit = Fit::none;
  Normalize normalize;
  Augment augment;
  std::int64_t train_limit = 0;  // use only the first N samples; 0 = all
  std::int64_t test_limit = 0;
  SyntheticData synthetic;
  int workers = 1;   // loader threads; 0 = load on the training thread
  int prefetch = 2;  // batches prepared ahead

  friend bool operator==(const DataConfig&, const DataConfig&) = default;
};

// ---------------------------------------------------------------- optimisation

enum class OptimizerName { sgd, adam, adamw };
enum class ScheduleName { constant, step, cosine };

struct OptimConfig {
  OptimizerName name = OptimizerName::adamw;
  double lr = 1e-3;
  double weight_decay = 0.05;
  double momentum = 0.9;  // sgd only
  bool nesterov = false;  // sgd only
  std::array<double, 2> betas{0.9, 0.999};  // adam, adamw
  double eps = 1e-8;
  double layer_decay = 1.0;     // layer-wise lr decay (ViT); 1 = off
  double clip_grad_norm = 1.0;  // max global L2 norm of the gradients; 0 = off
  // Glob patterns ('*' any run, '?' one character) over parameter names whose parameters
  // get no weight decay. YAML `true` means this default; `false` means none.
  std::vector<std::string> no_weight_decay_on{"*bias", "*norm*", "cls_token", "pos_embed"};

  friend bool operator==(const OptimConfig&, const OptimConfig&) = default;
};

struct ScheduleConfig {
  ScheduleName name = ScheduleName::cosine;
  double warmup_epochs = 1.0;  // linear warm-up from 0, may be fractional
  double min_lr = 0.0;         // cosine floor
  int step_size = 30;          // step: epochs between decays
  double gamma = 0.1;          // step: decay factor

  friend bool operator==(const ScheduleConfig&, const ScheduleConfig&) = default;
};

// ---------------------------------------------------------------- the run

struct RunConfig {
  int epochs = 10;
  std::int64_t batch_size = 128;
  std::int64_t eval_batch_size = 256;
  std::uint64_t seed = 0;
  int threads = 0;  // 0 = all cores
  Device device = Device::cpu();
  std::filesystem::path output_dir = "runs/default";
  int eval_interval = 1;        // epochs between evaluations (the last epoch always evaluates)
  int checkpoint_interval = 1;  // epochs between checkpoints; 0 = only the last epoch
  int log_interval = 50;        // steps between log lines
  double label_smoothing = 0.0;
  DType precision = DType::f32;  // f32 or bf16
  double collective_timeout = 300;  // seconds; data-parallel runs (train/distributed.h)
  std::filesystem::path init_from;        // fine-tuning: initial weights (train/weights.h)
  std::vector<std::string> init_exclude;  // parameters init_from leaves alone

  friend bool operator==(const RunConfig&, const RunConfig&) = default;
};

struct TrainConfig {
  ModelConfig model;
  DataConfig data;
  OptimConfig optim;
  ScheduleConfig schedule;
  RunConfig train;

  friend bool operator==(const TrainConfig&, const TrainConfig&) = default;
};

// ---------------------------------------------------------------- loading

// One `--set key.path=value`: the value is YAML (a scalar or a flow node such as [32, 32]
// or {mean: [0.5], std: [0.5]}). A path may name a key or a whole map (`--set optim={...}`).
struct ConfigOverride {
  std::string path;
  std::string value;
};

// Splits "key.path=value" at the first '='; throws ConfigError when there is none.
ConfigOverride parse_override(std::string_view assignment);

// Reads, validates and resolves a config file, then applies the overrides. A missing
// section or key keeps its default. Throws ConfigError naming file:line:column and key.
TrainConfig load_config(const std::filesystem::path& file,
                        std::span<const ConfigOverride> overrides = {});
// The same from YAML text; `source` names it in error messages.
TrainConfig load_config_string(std::string_view yaml, std::string_view source = "<string>",
                               std::span<const ConfigOverride> overrides = {});

// Applies overrides to a resolved config, validating each like a file value; errors name
// `--set key.path`. A model.preset override is applied first and replaces every model
// key; the other overrides then apply in order. On error `cfg` is left unchanged.
void apply_overrides(TrainConfig& cfg, std::span<const ConfigOverride> overrides);

// The resolved config as YAML: every key, in schema order. load_config_string(dump) == cfg.
std::string dump_config(const TrainConfig& cfg);

// ---------------------------------------------------------------- comparing

struct ConfigDifference {
  std::string path;  // "model.dim"
  std::string left;  // the values as YAML flow text
  std::string right;
};

// Keys whose values differ, in schema order; `under` restricts to a section or key
// ("model" compares only model.*).
std::vector<ConfigDifference> diff_configs(const TrainConfig& left, const TrainConfig& right,
                                           std::string_view under = "");
// The model keys that differ; the preset's name is not one (the keys it set are compared).
std::vector<ConfigDifference> model_differences(const TrainConfig& saved, const TrainConfig& current);
// The keys that must match for a resumed run to continue exactly: every key but those that
// change only where, how fast, how often it reports or how it is evaluated (threads, device,
// output_dir, data.root, workers, prefetch, test_limit, eval_batch_size, the intervals,
// epochs). The preset's name is not one either.
std::vector<ConfigDifference> resume_differences(const TrainConfig& saved, const TrainConfig& current);
// On one line: "model.dim: 64 -> 128; model.pool: cls -> mean".
std::string format_differences(const std::vector<ConfigDifference>& diffs);

// ---------------------------------------------------------------- presets and helpers

// The dataset directory: data.root, or data/<dataset> when root is empty.
std::filesystem::path dataset_root(const DataConfig& data);


std::string_view to_string(OptimizerName v);
std::string_view to_string(ScheduleName v);

// ---------------------------------------------------------------- the schema

// One row of the schema table that drives parsing, validation, dumping, diffing and docs.
struct ConfigKey {
  std::string path;           // "optim.lr"
  std::string type;           // "float", "int or [h, w]", ...
  std::string range;          // "> 0", "sgd | adam | adamw", or empty
  std::string default_value;  // YAML flow text of TrainConfig{}'s value
  std::string description;
  std::optional<double> min, max;  // the bounds of a number (int or float) key
  std::string model;               // for a model's key: the model it belongs to (model.name)
};

// Every key of the config, each registered model's keys included.
std::vector<ConfigKey> config_schema();

// The key reference (one Markdown table per section) that docs/config.md embeds between
// the markers <!-- BEGIN CONFIG KEYS --> and <!-- END CONFIG KEYS -->.
std::string config_reference_markdown();

}  // namespace tessera::train
