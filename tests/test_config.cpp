// The training config: defaults, presets, every error kind with its position, --set
// overrides, dump/load round trips, diffs, and docs/config.md against the schema.
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "support/test_support.h"
#include "tessera/train/config.h"

using namespace tessera;
using namespace tessera::train;

using tessera::test::vit;

namespace {

// Runs f, which must throw ConfigError, and returns the message.
template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  BOOST_ERROR("expected a ConfigError, none was thrown");
  return "";
}

std::string load_error(std::string_view yaml) {
  return config_error([&] { load_config_string(yaml, "config.yaml"); });
}

std::string override_error(std::vector<ConfigOverride> overrides, std::string_view yaml = "") {
  return config_error([&] { load_config_string(yaml, "config.yaml", overrides); });
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every key set away from its default (model keys also away from the preset's values).
constexpr std::string_view kEveryKey = R"(
model:
  preset: vit-tiny/16
  image_size: [32, 48]
  patch_size: 8
  channels: 2
  num_classes: 100
  dim: 96
  depth: 3
  heads: 6
  mlp_dim: 200
  pool: mean
  class_token: false
  fc_norm: true
  dropout: 0.1
  emb_dropout: 0.2
  attn_dropout: 0.05
  drop_path: 0.3
  norm: post
  pos_embed: sincos
  layer_norm_eps: 1.0e-5
data:
  dataset: cifar10
  root: /tmp/cifar
  fit: resize
  normalize: {mean: [0.49, 0.48], std: [0.25, 0.24]}
  augment:
    random_crop_padding: 4
    horizontal_flip: true
    random_shift: 2
  train_limit: 5000
  test_limit: 1000
  synthetic: {train_size: 64, test_size: 32}
  workers: 3
  prefetch: 4
optim:
  name: sgd
  lr: 0.1
  weight_decay: 5e-4
  momentum: 0.8
  nesterov: true
  betas: [0.8, 0.99]
  eps: 1e-6
  layer_decay: 0.75
  clip_grad_norm: 0
  no_weight_decay_on: ["*.bias"]
schedule:
  name: step
  warmup_epochs: 0.5
  min_lr: 1e-6
  step_size: 5
  gamma: 0.5
train:
  epochs: 3
  batch_size: 64
  eval_batch_size: 500
  seed: 18446744073709551615
  threads: 2
  device: cuda:1
  output_dir: runs/cifar
  eval_interval: 2
  checkpoint_interval: 0
  log_interval: 10
  label_smoothing: 0.1
  precision: bf16
  collective_timeout: 30
  init_from: runs/pretrained/best.safetensors
  init_exclude: ["head.*"]
)";

}  // namespace

BOOST_AUTO_TEST_SUITE(config)

// ---------------------------------------------------------------- defaults and values

BOOST_AUTO_TEST_CASE(missing_sections_and_keys_keep_the_defaults) {
  const TrainConfig defaults;
  BOOST_TEST((load_config_string("") == defaults));
  BOOST_TEST((load_config_string("{}") == defaults));
  BOOST_TEST((load_config_string("model:\noptim:\n") == defaults));  // null sections
  BOOST_TEST((load_config_string("# only a comment\n") == defaults));

  const TrainConfig c = load_config_string("data:\n  dataset: synthetic\n");
  BOOST_TEST((c.data.dataset == "synthetic"));
  BOOST_TEST((c.model == defaults.model));
  BOOST_TEST((c.optim == defaults.optim));
  BOOST_TEST(c.data.workers == defaults.data.workers);

  // The documented defaults themselves.
  BOOST_TEST(!defaults.model.preset.has_value());
  BOOST_TEST(vit(defaults).layer_norm_eps == 1e-6);
  BOOST_TEST((defaults.optim.name == OptimizerName::adamw));
  BOOST_TEST(defaults.optim.lr == 1e-3);
  BOOST_TEST((defaults.data.normalize.mode == Normalize::Mode::dataset));
  BOOST_TEST(defaults.train.threads == 0);
  BOOST_TEST((defaults.train.device == Device::cpu()));
  BOOST_TEST((defaults.train.precision == DType::f32));
}

BOOST_AUTO_TEST_CASE(every_key_is_read) {
  const TrainConfig c = load_config_string(kEveryKey);
  BOOST_TEST(c.model.preset.value() == "vit-tiny/16");
  BOOST_TEST(vit(c).image_h == 32);
  BOOST_TEST(vit(c).image_w == 48);
  BOOST_TEST(vit(c).dim == 96);  // explicit keys beat the preset's 192
  BOOST_TEST((vit(c).pool == models::Pool::mean));
  BOOST_TEST(!vit(c).class_token);
  BOOST_TEST(vit(c).fc_norm);
  BOOST_TEST((vit(c).norm == nn::NormPlacement::post));
  BOOST_TEST((vit(c).pos_embed == models::PosEmbed::sincos));
  BOOST_TEST(vit(c).layer_norm_eps == 1e-5);
  BOOST_TEST(vit(c).drop_path == 0.3);
  BOOST_TEST((c.data.dataset == "cifar10"));
  BOOST_TEST(c.data.root == "/tmp/cifar");
  BOOST_TEST((c.data.fit == Fit::resize));
  BOOST_TEST((c.data.normalize.mode == Normalize::Mode::custom));
  BOOST_TEST((c.data.normalize.mean == std::vector<double>{0.49, 0.48}));
  BOOST_TEST((c.data.normalize.stddev == std::vector<double>{0.25, 0.24}));
  BOOST_TEST(c.data.augment.random_crop_padding == 4);
  BOOST_TEST(c.data.augment.horizontal_flip);
  BOOST_TEST(c.data.synthetic.test_size == 32);
  BOOST_TEST((c.optim.name == OptimizerName::sgd));
  BOOST_TEST(c.optim.weight_decay == 5e-4);
  BOOST_TEST(c.optim.betas[1] == 0.99);
  BOOST_TEST((c.optim.no_weight_decay_on == std::vector<std::string>{"*.bias"}));
  BOOST_TEST((c.schedule.name == ScheduleName::step));
  BOOST_TEST(c.schedule.warmup_epochs == 0.5);
  BOOST_TEST(c.train.seed == 18446744073709551615ull);
  BOOST_TEST((c.train.device == Device::cuda(1)));
  BOOST_TEST(c.train.output_dir == "runs/cifar");
  BOOST_TEST((c.train.precision == DType::bf16));
  BOOST_TEST(c.train.collective_timeout == 30);
  BOOST_TEST(c.optim.layer_decay == 0.75);
  BOOST_TEST(c.train.init_from == "runs/pretrained/best.safetensors");
  BOOST_TEST((c.train.init_exclude == std::vector<std::string>{"head.*"}));

  // Every key of the schema moved away from its default: none was silently ignored,
  // and each one takes part in the comparison.
  // (model.name aside: this config keeps the default model.)
  std::vector<ConfigKey> keys = config_schema();
  std::erase_if(keys, [](const ConfigKey& k) { return k.path == "model.name" || (!k.model.empty() && k.model != "vit"); });
  const auto diffs = diff_configs(TrainConfig{}, c);
  BOOST_TEST_REQUIRE(diffs.size() == keys.size());
  for (std::size_t i = 0; i < diffs.size(); ++i) BOOST_TEST(diffs[i].path == keys[i].path);
}

BOOST_AUTO_TEST_CASE(image_size_normalize_device_and_weight_decay_forms) {
  BOOST_TEST(vit(load_config_string("model: {image_size: 32}")).image_w == 32);
  BOOST_TEST((load_config_string("data: {normalize: none}").data.normalize.mode == Normalize::Mode::none));
  BOOST_TEST((load_config_string("data: {normalize: auto}").data.normalize == Normalize{}));
  BOOST_TEST((load_config_string("train: {device: cuda}").train.device == Device::cuda(0)));
  BOOST_TEST((load_config_string("train: {device: cpu}").train.device == Device::cpu()));
  BOOST_TEST(load_config_string("optim: {no_weight_decay_on: false}").optim.no_weight_decay_on.empty());
  BOOST_TEST((load_config_string("optim: {no_weight_decay_on: [x]}\n").optim.no_weight_decay_on.size() == 1));
  BOOST_TEST((load_config_string("optim: {no_weight_decay_on: true}").optim.no_weight_decay_on ==
              OptimConfig{}.no_weight_decay_on));
  BOOST_TEST(load_config_string("optim: {lr: 1}").optim.lr == 1.0);  // an int where a float goes
  BOOST_TEST(load_config_string("optim: {lr: \"0.5\"}").optim.lr == 0.5);
  BOOST_TEST(load_config_string("schedule: {gamma: 1}").schedule.gamma == 1.0);  // (0, 1]
}

BOOST_AUTO_TEST_CASE(dataset_root_defaults_per_dataset) {
  DataConfig d;
  BOOST_TEST(dataset_root(d) == std::filesystem::path("data/mnist"));
  d.dataset = "cifar10";
  BOOST_TEST(dataset_root(d) == std::filesystem::path("data/cifar10"));
  d.root = "/datasets/c10";
  BOOST_TEST(dataset_root(d) == std::filesystem::path("/datasets/c10"));
  BOOST_TEST(to_string(OptimizerName::adamw) == "adamw");
}

// ---------------------------------------------------------------- presets

BOOST_AUTO_TEST_CASE(presets_fill_the_model_and_are_recorded) {
  const ModelConfig base = load_config_string("model:\n  preset: vit-base/16\n").model;
  BOOST_TEST(base.preset.value() == "vit-base/16");
  BOOST_TEST(vit(base).image_h == 224);
  BOOST_TEST(vit(base).image_w == 224);
  BOOST_TEST(vit(base).patch_size == 16);
  BOOST_TEST(vit(base).channels == 3);
  BOOST_TEST(vit(base).num_classes == 1000);
  BOOST_TEST(vit(base).dim == 768);
  BOOST_TEST(vit(base).depth == 12);
  BOOST_TEST(vit(base).heads == 12);
  BOOST_TEST(vit(base).mlp_dim == 3072);

  auto preset = [](const char* name) {
    ModelConfig m;
    m.apply_preset(name);
    return m;
  };
  BOOST_TEST(vit(preset("vit-tiny/16")).dim == 192);
  BOOST_TEST(vit(preset("vit-tiny/16")).heads == 3);
  BOOST_TEST(vit(preset("vit-small/16")).dim == 384);
  const ModelConfig seed = preset("seed-mnist");
  BOOST_TEST(vit(seed).image_h == 28);
  BOOST_TEST(vit(seed).patch_size == 7);
  BOOST_TEST(vit(seed).dim == 512);
  BOOST_TEST(vit(seed).depth == 1);
  BOOST_TEST(vit(seed).heads == 2);
  BOOST_TEST(vit(seed).mlp_dim == 1024);

  // Explicit keys win whether they come before or after the preset.
  const ModelConfig a = load_config_string("model:\n  depth: 4\n  preset: vit-small/16\n").model;
  const ModelConfig b = load_config_string("model:\n  preset: vit-small/16\n  depth: 4\n").model;
  BOOST_TEST((a == b));
  BOOST_TEST(vit(a).depth == 4);
  BOOST_TEST(vit(a).dim == 384);

  // The dump records the model, the preset and the resolved values.
  const std::string dumped = dump_config(load_config_string("model: {preset: vit-base/16}"));
  BOOST_TEST(contains(dumped, "name: vit"));
  BOOST_TEST(contains(dumped, "preset: \"vit-base/16\""));
  BOOST_TEST(contains(dumped, "dim: 768"));
  BOOST_TEST(ModelConfig().spec().presets.size() == 4u);
}

BOOST_AUTO_TEST_CASE(unknown_presets_and_models_are_errors) {
  BOOST_TEST(load_error("model:\n  preset: vit-tiny/32\n") ==
             "config.yaml:2:11: model.preset: expected a preset of vit (vit-tiny/16, vit-small/16, "
             "vit-base/16, seed-mnist) or null, got \"vit-tiny/32\" (did you mean vit-tiny/16?)");
  BOOST_TEST(contains(config_error([] { ModelConfig().apply_preset("vit-huge/14"); }),
                      "model.preset: vit has no preset \"vit-huge/14\""));
  BOOST_TEST(load_error("model:\n  name: vitt\n") ==
             "config.yaml:2:9: model.name: expected one of " + fmt::format("{}", fmt::join(models::model_names(), ", ")) +
                 ", got \"vitt\" (did you mean vit?)");
  // A key of another model is unknown to this one, and the message lists this one's.
  BOOST_TEST(contains(load_error("model:\n  name: vit\n  widths: [8]\n"), "model.widths: unknown key"));
}

// ---------------------------------------------------------------- errors with their position

BOOST_AUTO_TEST_CASE(wrong_types_name_the_key_and_position) {
  BOOST_TEST(load_error("optim:\n  lr: fast\n") ==
             "config.yaml:2:7: optim.lr: expected a number in (0, 10], got \"fast\"");
  BOOST_TEST(load_error("train:\n  epochs: 2.5\n") ==
             "config.yaml:2:11: train.epochs: expected an integer from 1 to 1000000, got 2.5");
  BOOST_TEST(load_error("optim:\n  nesterov: yes\n") ==
             "config.yaml:2:13: optim.nesterov: expected true or false, got \"yes\"");
  BOOST_TEST(load_error("optim:\n  lr:\n") ==  // null: the key's position
             "config.yaml:2:3: optim.lr: expected a number in (0, 10], got null");
  BOOST_TEST(load_error("optim:\n  lr: [1, 2]\n") ==
             "config.yaml:2:7: optim.lr: expected a number in (0, 10], got a list [1, 2]");
  BOOST_TEST(load_error("data:\n  root: {a: 1}\n") ==
             "config.yaml:2:9: data.root: expected a path, got a map {\"a\": 1}");
  BOOST_TEST(load_error("optim:\n  name: adamW\n") ==
             "config.yaml:2:9: optim.name: expected one of sgd, adam, adamw, got \"adamW\" (did you mean adamw?)");
  BOOST_TEST(load_error("train:\n  device: gpu\n") ==
             "config.yaml:2:11: train.device: expected cpu, cuda or cuda:N, got \"gpu\" (did you mean cuda?)");
  BOOST_TEST(contains(load_error("train: {device: \"cuda:x\"}"), "train.device: expected cpu, cuda or cuda:N"));
  BOOST_TEST(contains(load_error("train: {precision: f64}"), "train.precision: expected one of f32, bf16"));
  BOOST_TEST(contains(load_error("optim: {no_weight_decay_on: maybe}"),
                      "optim.no_weight_decay_on: expected true, false or a list"));
  BOOST_TEST(load_error("optim:\n  no_weight_decay_on: [a, \"\"]\n") ==
             "config.yaml:2:27: optim.no_weight_decay_on[1]: expected a non-empty pattern, got \"\"");
}

BOOST_AUTO_TEST_CASE(keys_that_must_agree_are_checked_together) {
  BOOST_TEST(load_error("train: {epochs: 1}\n") ==
             "config.yaml: schedule.warmup_epochs: 1 warm-up epochs leave none for the cosine decay; "
             "train.epochs is 1");
  BOOST_TEST(load_error("optim: {lr: 0.001}\nschedule: {min_lr: 0.01}\n") ==
             "config.yaml: schedule.min_lr: 0.01 exceeds the peak learning rate optim.lr = 0.001");
  BOOST_CHECK_NO_THROW(load_config_string("train: {epochs: 1}\nschedule: {name: constant}\n", "c.yaml"));
  BOOST_CHECK_NO_THROW(load_config_string("train: {epochs: 1}\nschedule: {warmup_epochs: 0.5}\n", "c.yaml"));
}

BOOST_AUTO_TEST_CASE(out_of_range_values_are_errors) {
  BOOST_TEST(load_error("optim:\n  momentum: 1.5\n") ==
             "config.yaml:2:13: optim.momentum: expected a number in [0, 1), got 1.5");
  BOOST_TEST(load_error("optim:\n  lr: 0\n") == "config.yaml:2:7: optim.lr: expected a number in (0, 10], got 0");
  BOOST_TEST(load_error("optim:\n  weight_decay: -0.1\n") ==
             "config.yaml:2:17: optim.weight_decay: expected a number in [0, 10], got -0.1");
  BOOST_TEST(load_error("model:\n  depth: 0\n") ==
             "config.yaml:2:10: model.depth: expected an integer from 1 to 1024, got 0");
  BOOST_TEST(load_error("data:\n  train_limit: -1\n") ==
             "config.yaml:2:16: data.train_limit: expected an integer from 0 to 2147483648, got -1");
  BOOST_TEST(load_error("schedule:\n  gamma: 0\n") ==
             "config.yaml:2:10: schedule.gamma: expected a number in (0, 1], got 0");
  BOOST_TEST(contains(load_error("model: {dropout: 1.0}"), "model.dropout: expected a number in [0, 1), got 1.0"));
  BOOST_TEST(contains(load_error("model: {layer_norm_eps: 0}"), "model.layer_norm_eps: expected a number in (0, 1]"));
  BOOST_TEST(contains(load_error("train: {label_smoothing: 1}"), "train.label_smoothing: expected a number in [0, 1)"));
  BOOST_TEST(contains(load_error("optim: {lr: .inf}"), "optim.lr: expected a number in (0, 10]"));
  BOOST_TEST(contains(load_error("optim: {lr: nan}"), "optim.lr: expected a number in (0, 10]"));
  BOOST_TEST(contains(load_error("train: {seed: -1}"), "train.seed: expected an integer from 0 to 18446744073709551615, got -1"));
  BOOST_TEST(contains(load_error("train: {threads: 99999999999}"),
                      "train.threads: expected an integer from 0 to 256, got 99999999999"));
  BOOST_TEST(contains(load_error("train: {seed: 18446744073709551616}"),
                      "train.seed: expected an integer from 0 to 18446744073709551615"));
  BOOST_TEST(load_error("model:\n  image_size: [28, 0]\n") ==
             "config.yaml:2:20: model.image_size[1]: expected an integer from 1 to 8192, got 0");
  BOOST_TEST(load_error("model:\n  image_size: [28]\n") ==
             "config.yaml:2:15: model.image_size: expected an integer from 1 to 8192 or [height, width], got a list [28]");
  BOOST_TEST(load_error("optim:\n  betas: [0.9, 1.0]\n") ==
             "config.yaml:2:16: optim.betas[1]: expected a number in [0, 1), got 1.0");
  BOOST_TEST(contains(load_error("optim: {betas: 0.9}"), "optim.betas: expected [beta1, beta2], each in [0, 1)"));
}

BOOST_AUTO_TEST_CASE(normalize_values_are_checked) {
  BOOST_TEST(load_error("data:\n  normalize: {mean: [0.5], std: [0]}\n") ==
             "config.yaml:2:34: data.normalize.std[0]: expected a number in (0, 1000000], got 0");
  BOOST_TEST(load_error("data:\n  normalize: {mean: [0.5, 0.4], std: [0.2]}\n") ==
             "config.yaml:2:38: data.normalize.std: has 1 values but mean has 2; give one per channel");
  BOOST_TEST(load_error("data:\n  normalize: {mean: [0.5], stdev: [0.2]}\n") ==
             "config.yaml:2:28: data.normalize.stdev: unknown key; expected mean and std (did you mean std?)");
  BOOST_TEST(contains(load_error("data: {normalize: {mean: [0.5]}}"),
                      "data.normalize: a custom normalization needs both mean and std"));
  BOOST_TEST(contains(load_error("data: {normalize: zscore}"),
                      "data.normalize: expected auto, none or a map {mean: [...], std: [...]}, got \"zscore\""));
  BOOST_TEST(contains(load_error("data: {normalize: {mean: [], std: []}}"),
                      "data.normalize.mean: expected a non-empty list of numbers"));
  BOOST_TEST(contains(load_error("data: {normalize: {mean: [a], std: [1]}}"),
                      "data.normalize.mean[0]: expected a number in [-1000000, 1000000], got \"a\""));
}

BOOST_AUTO_TEST_CASE(unknown_keys_suggest_the_intended_one) {
  BOOST_TEST(load_error("optim:\n  lrr: 0.1\n") ==
             "config.yaml:2:3: optim.lrr: unknown key; did you mean optim.lr?");
  BOOST_TEST(load_error("train:\n  batchsize: 32\n") ==
             "config.yaml:2:3: train.batchsize: unknown key; did you mean train.batch_size?");
  // The right key in the wrong section.
  BOOST_TEST(load_error("train:\n  lr: 0.1\n") ==
             "config.yaml:2:3: train.lr: unknown key; did you mean optim.lr?");
  BOOST_TEST(load_error("data:\n  augment:\n    horizontal_flp: true\n") ==
             "config.yaml:3:5: data.augment.horizontal_flp: unknown key; did you mean data.augment.horizontal_flip?");
  BOOST_TEST(load_error("trian:\n  epochs: 1\n") == "config.yaml:1:1: trian: unknown section; did you mean train?");
  // Nothing close: the valid keys are listed.
  BOOST_TEST(load_error("schedule:\n  zzzzzz: 1\n") ==
             "config.yaml:2:3: schedule.zzzzzz: unknown key; the keys of schedule are name, "
             "warmup_epochs, min_lr, step_size, gamma");
  BOOST_TEST(load_error("zzzzzz: 1\n") ==
             "config.yaml:1:1: zzzzzz: unknown section; the sections are model, data, optim, schedule, train");
}

BOOST_AUTO_TEST_CASE(structural_errors) {
  // A section that is not a map.
  BOOST_TEST(load_error("optim: 5\n") ==
             "config.yaml:1:8: optim: expected a map of settings (name, lr, weight_decay, momentum, "
             "nesterov, betas, eps, layer_decay, clip_grad_norm, no_weight_decay_on), got 5");
  BOOST_TEST(contains(load_error("data:\n  augment: [1]\n"),
                      "config.yaml:2:12: data.augment: expected a map of settings (random_crop_padding, "
                      "horizontal_flip, random_shift), got a list [1]"));
  // A document that is not a map.
  BOOST_TEST(load_error("- a\n- b\n") ==
             "config.yaml:1:1: expected a map of sections (model, data, optim, schedule, train), got a list [\"a\", \"b\"]");
  BOOST_TEST(load_error("hello") ==
             "config.yaml:1:1: expected a map of sections (model, data, optim, schedule, train), got \"hello\"");
  // Duplicates, at any depth.
  BOOST_TEST(load_error("optim:\n  lr: 0.1\n  lr: 0.2\n") ==
             "config.yaml:3:3: optim.lr: duplicate key (first given at 2:3)");
  BOOST_TEST(load_error("train: {}\ntrain: {}\n") == "config.yaml:2:1: train: duplicate key (first given at 1:1)");
  BOOST_TEST(contains(load_error("? [a]\n: 1\n"), "config.yaml:1:3: keys must be plain names"));
  BOOST_TEST(contains(load_error("train: {}\n---\ntrain: {}\n"), "expected one YAML document"));
}

BOOST_AUTO_TEST_CASE(malformed_yaml_reports_the_parser_position) {
  BOOST_TEST(load_error("optim:\n  lr: 0.1\n   eps: 2\n") == "config.yaml:3:7: invalid YAML: illegal map value");
  BOOST_TEST(load_error("optim: {lr: [0.1}\n") == "config.yaml:1:17: invalid YAML: illegal flow end");
  BOOST_TEST(contains(load_error("model: {dim: 3\n"), "config.yaml:"));
  BOOST_TEST(contains(load_error("model: {dim: 3\n"), "invalid YAML"));
  // yaml-cpp 0.7's LoadAll loops forever on these (found by fuzz_config); they must fail.
  BOOST_TEST(load_error(",ptm=r.l3e,4") == "config.yaml:1:1: invalid YAML: unexpected \",\"");
  BOOST_TEST(load_error(",") == "config.yaml:1:1: invalid YAML: unexpected \",\"");
}

BOOST_AUTO_TEST_CASE(files_are_named_in_errors) {
  test::TempDir dir("config_file");
  const auto path = dir / "run.yaml";
  std::ofstream(path) << "model:\n  preset: seed-mnist\noptim:\n  lr: -1\n";
  const std::string message = config_error([&] { load_config(path); });
  BOOST_TEST(message == path.string() + ":4:7: optim.lr: expected a number in (0, 10], got -1");

  std::ofstream(path) << "model:\n  preset: seed-mnist\n";
  BOOST_TEST(vit(load_config(path)).dim == 512);
  BOOST_TEST(vit(load_config(path, std::vector<ConfigOverride>{{"model.dim", "256"}})).dim == 256);
  BOOST_TEST(contains(config_error([&] { load_config(dir / "absent.yaml"); }),
                      "load_config: '" + (dir / "absent.yaml").string() + "': cannot open"));
}

// ---------------------------------------------------------------- overrides

BOOST_AUTO_TEST_CASE(override_assignments_are_parsed) {
  const ConfigOverride a = parse_override("optim.lr=3e-4");
  BOOST_TEST(a.path == "optim.lr");
  BOOST_TEST(a.value == "3e-4");
  BOOST_TEST(parse_override(" optim.lr = 3e-4").path == "optim.lr");
  BOOST_TEST(parse_override("train.output_dir=runs/a=b").value == "runs/a=b");
  BOOST_TEST(parse_override("optim.lr=").value == "");
  BOOST_TEST(config_error([] { parse_override("optim.lr"); }) ==
             "--set \"optim.lr\": expected key.path=value, e.g. optim.lr=3e-4");
  BOOST_TEST(contains(config_error([] { parse_override("=3"); }), "expected key.path=value"));
}

BOOST_AUTO_TEST_CASE(overrides_set_keys_and_maps) {
  const std::string yaml = "data:\n  augment:\n    random_shift: 2\n";
  const TrainConfig c = load_config_string(
      yaml, "config.yaml",
      std::vector<ConfigOverride>{{"optim.lr", "3e-4"},
                                  {"model.image_size", "[32, 64]"},
                                  {"data.normalize", "{mean: [0.5], std: [0.25]}"},
                                  {"data.augment", "{horizontal_flip: true}"},
                                  {"train.device", "cuda:2"},
                                  {"train.output_dir", "runs/x"},
                                  {"optim.lr", "5e-4"}});  // later wins
  BOOST_TEST(c.optim.lr == 5e-4);
  BOOST_TEST(vit(c).image_h == 32);
  BOOST_TEST(vit(c).image_w == 64);
  BOOST_TEST((c.data.normalize.stddev == std::vector<double>{0.25}));
  BOOST_TEST(c.data.augment.horizontal_flip);
  BOOST_TEST(c.data.augment.random_shift == 2);  // a map override sets only the keys it names
  BOOST_TEST((c.train.device == Device::cuda(2)));
  BOOST_TEST(c.train.output_dir == "runs/x");
}

BOOST_AUTO_TEST_CASE(a_preset_override_applies_first_and_replaces_the_model) {
  const std::string yaml = "model:\n  dim: 32\n  depth: 2\n";
  const TrainConfig c = load_config_string(
      yaml, "config.yaml",
      std::vector<ConfigOverride>{{"model.heads", "2"}, {"model.preset", "vit-small/16"}});
  BOOST_TEST(c.model.preset.value() == "vit-small/16");
  BOOST_TEST(vit(c).dim == 384);  // the file's dim is replaced by the preset
  BOOST_TEST(vit(c).depth == 12);
  BOOST_TEST(vit(c).heads == 2);  // given before the preset, still applied after it

  TrainConfig d = c;
  apply_overrides(d, std::vector<ConfigOverride>{{"model.preset", "null"}});
  BOOST_TEST(!d.model.preset.has_value());
  BOOST_TEST(vit(d).dim == 384);  // clearing the name keeps the values
}

BOOST_AUTO_TEST_CASE(override_errors_name_the_set_key) {
  BOOST_TEST(override_error({{"optim.lr", "fast"}}) == "--set optim.lr: expected a number in (0, 10], got \"fast\"");
  BOOST_TEST(override_error({{"optim.lr", ""}}) == "--set optim.lr: expected a number in (0, 10], got null");
  BOOST_TEST(override_error({{"optim.lrr", "1"}}) == "--set optim.lrr: unknown key; did you mean optim.lr?");
  BOOST_TEST(override_error({{"optimizer.lr", "1"}}) == "--set optimizer.lr: unknown key; did you mean optim.lr?");
  BOOST_TEST(override_error({{"optim.zzzzzz", "1"}}) ==
             "--set optim.zzzzzz: unknown key; the keys of optim are name, lr, weight_decay, momentum, "
             "nesterov, betas, eps, layer_decay, clip_grad_norm, no_weight_decay_on");
  BOOST_TEST(override_error({{"optim", "{lr: fast}"}}) ==
             "--set optim: optim.lr: expected a number in (0, 10], got \"fast\"");
  BOOST_TEST(override_error({{"optim", "3"}}) ==
             "--set optim: expected a map of settings (name, lr, weight_decay, momentum, nesterov, "
             "betas, eps, layer_decay, clip_grad_norm, no_weight_decay_on), got 3");
  BOOST_TEST(override_error({{"model.image_size", "[28, -1]"}}) ==
             "--set model.image_size: model.image_size[1]: expected an integer from 1 to 8192, got -1");
  BOOST_TEST(contains(override_error({{"optim.betas", "[0.9"}}),
                      "--set optim.betas: invalid YAML value \"[0.9\": "));
  BOOST_TEST(override_error({{"model.preset", "vit-base"}}) ==
             "--set model.preset: expected a preset of vit (vit-tiny/16, vit-small/16, vit-base/16, seed-mnist) "
             "or null, got \"vit-base\" (did you mean vit-base/16?)");
}

BOOST_AUTO_TEST_CASE(a_failed_override_leaves_the_config_unchanged) {
  TrainConfig c;
  const std::vector<ConfigOverride> overrides{{"optim.lr", "0.5"}, {"optim.eps", "-1"}};
  BOOST_CHECK_THROW(apply_overrides(c, overrides), ConfigError);
  BOOST_TEST((c == TrainConfig{}));
  apply_overrides(c, std::vector<ConfigOverride>{{"optim.lr", "0.5"}});
  BOOST_TEST(c.optim.lr == 0.5);
}

// ---------------------------------------------------------------- dump, round trips, diff

BOOST_AUTO_TEST_CASE(dump_then_load_gives_the_same_config) {
  const TrainConfig defaults;
  BOOST_TEST((load_config_string(dump_config(defaults)) == defaults));

  const TrainConfig every = load_config_string(kEveryKey);
  const std::string dumped = dump_config(every);
  BOOST_TEST((load_config_string(dumped) == every), dumped);
  BOOST_TEST(dump_config(load_config_string(dumped)) == dumped);  // a fixed point

  // Values that YAML would misread if written plainly.
  TrainConfig tricky;
  tricky.train.output_dir = "null";
  tricky.data.root = "*not an alias* with \"quotes\", a \\ backslash: and unicode données";
  tricky.optim.no_weight_decay_on = {};
  tricky.optim.lr = 0.1 + 0.2;  // not a short decimal
  vit(tricky).layer_norm_eps = 1e-12;
  vit(tricky).image_h = 30;
  vit(tricky).image_w = 40;
  vit(tricky).patch_size = 10;
  tricky.data.normalize = {Normalize::Mode::custom, {0.1, -0.2, 3.0}, {1.0 / 3, 2.0, 5e-7}};
  tricky.train.seed = 18446744073709551615ull;
  tricky.train.device = Device::cuda(0);
  const std::string text = dump_config(tricky);
  BOOST_TEST((load_config_string(text) == tricky), text);

  // The dump is readable YAML with every key, nested maps indented.
  BOOST_TEST(contains(dumped, "optim:\n  name: sgd\n  lr: 0.1\n"));
  BOOST_TEST(contains(dumped, "data:\n  dataset: cifar10\n"));
  BOOST_TEST(contains(dumped, "  augment:\n    random_crop_padding: 4\n    horizontal_flip: true\n"));
  BOOST_TEST(contains(dumped, "  normalize: {mean: [0.49, 0.48], std: [0.25, 0.24]}\n"));
  BOOST_TEST(contains(dump_config(defaults), "  layer_norm_eps: 1e-06\n"));
  BOOST_TEST(contains(dump_config(defaults), "  preset: null\n"));
  BOOST_TEST(contains(dump_config(defaults), "  no_weight_decay_on: [\"*bias\", \"*norm*\", \"cls_token\", \"pos_embed\"]\n"));
  for (const ConfigKey& key : config_schema())
    if (key.model.empty() || key.model == every.model.name())  // other models' keys are not in its dump
      BOOST_TEST(contains(dumped, std::string(key.path.substr(key.path.rfind('.') + 1)) + ": "), key.path);
}

BOOST_AUTO_TEST_CASE(diff_lists_differing_keys_with_both_values) {
  const TrainConfig a;
  const TrainConfig b = load_config_string("model: {dim: 128, pool: mean}\noptim: {lr: 0.01}\n");
  const auto all = diff_configs(a, b);
  BOOST_TEST_REQUIRE(all.size() == 3u);
  BOOST_TEST(all[0].path == "model.dim");
  BOOST_TEST(all[0].left == "64");
  BOOST_TEST(all[0].right == "128");
  BOOST_TEST(all[1].path == "model.pool");
  BOOST_TEST(all[2].path == "optim.lr");
  BOOST_TEST(all[2].left == "0.001");
  BOOST_TEST(all[2].right == "0.01");

  // Restricted to a section, as a resume check uses it.
  const auto model = diff_configs(a, b, "model");
  BOOST_TEST(model.size() == 2u);
  BOOST_TEST(diff_configs(a, b, "optim.lr").size() == 1u);
  BOOST_TEST(diff_configs(a, b, "data").empty());
  BOOST_TEST(diff_configs(b, b).empty());
  BOOST_TEST(format_differences(model) == "model.dim: 64 -> 128; model.pool: cls -> mean");
  BOOST_TEST(config_error([&] { diff_configs(a, b, "modle"); }) ==
             "diff_configs: 'modle' is not a config key or section (did you mean model?)");

  // Nested and composite values are compared whole.
  const TrainConfig c = load_config_string("data: {augment: {random_shift: 3}, normalize: none}");
  const auto nested = diff_configs(a, c, "data");
  BOOST_TEST_REQUIRE(nested.size() == 2u);
  BOOST_TEST(nested[0].path == "data.normalize");
  BOOST_TEST(nested[0].right == "none");
  BOOST_TEST(nested[1].path == "data.augment.random_shift");
}

// ---------------------------------------------------------------- the schema and the docs

BOOST_AUTO_TEST_CASE(schema_rows_are_complete_and_unique) {
  const auto& schema = config_schema();
  BOOST_TEST(schema.size() >= 50u);
  std::set<std::string> paths, model_paths;
  for (const ConfigKey& k : schema) {
    // A path is unique within its model (every model has its own model.image_size, ...).
    BOOST_TEST(model_paths.insert(k.model + "/" + k.path).second, "duplicate " << k.path << " of " << k.model);
    paths.insert(k.path);
    BOOST_TEST(!k.type.empty(), k.path);
    BOOST_TEST(!k.default_value.empty(), k.path);
    BOOST_TEST(k.description.size() > 10u, k.path);
    // Each default reads back through its own key (the schema's defaults are valid values).
    std::vector<ConfigOverride> set{{k.path, k.default_value}};
    if (!k.model.empty()) set.insert(set.begin(), {"model.name", k.model});
    BOOST_CHECK_NO_THROW(load_config_string(std::string{}, "x", set));
  }
  for (const std::string& model : models::model_names())
    BOOST_TEST(std::any_of(schema.begin(), schema.end(), [&](const ConfigKey& k) { return k.model == model; }), model);
  for (const char* path : {"model.preset", "model.layer_norm_eps", "data.normalize",
                           "data.augment.random_shift", "data.synthetic.test_size", "optim.no_weight_decay_on",
                           "schedule.gamma", "train.precision"})
    BOOST_TEST(paths.contains(path), path);
}

BOOST_AUTO_TEST_CASE(docs_config_md_documents_every_key) {
  // docs/config.md and the README's config reference both carry the generated key tables.
  const std::string generated = config_reference_markdown();
  const std::string begin = "<!-- BEGIN CONFIG KEYS -->\n", end = "<!-- END CONFIG KEYS -->";
  for (const char* file : {"docs/config.md", "README.md"}) {
    BOOST_TEST_CONTEXT(file) {
      const std::filesystem::path docs = std::filesystem::path(TESSERA_SOURCE_DIR) / file;
      std::string text = read_text(docs);
      // TESSERA_UPDATE_DOCS=1 rewrites the generated part in place after a schema change.
      if (std::getenv("TESSERA_UPDATE_DOCS") && contains(text, begin) && contains(text, end)) {
        const std::size_t b = text.find(begin) + begin.size(), e = text.find(end);
        text = text.substr(0, b) + "\n" + generated + text.substr(e);
        std::ofstream(docs, std::ios::binary) << text;
      }
      BOOST_TEST_REQUIRE(!text.empty(), "cannot read " << docs);
      for (const ConfigKey& key : config_schema())
        BOOST_TEST(contains(text, "| `" + key.path + "` |"), file << " does not document " << key.path);
      BOOST_TEST(contains(text, begin + "\n" + generated + end),
                 file << " is out of date with the schema; regenerate its key tables with "
                         "TESSERA_UPDATE_DOCS=1 ctest -R docs_config_md");
    }
  }
  // The reference text itself is well formed: one table row per key.
  std::size_t rows = 0;
  for (std::size_t at = generated.find("\n| `"); at != std::string::npos; at = generated.find("\n| `", at + 1)) ++rows;
  BOOST_TEST(rows == config_schema().size());
}

BOOST_AUTO_TEST_SUITE_END()
