#include "tessera/train/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <fstream>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "tessera/autograd/error.h"
#include "tessera/datasets/factory.h"
#include "train/config_yaml.h"
#include "autograd/input_file.h"

namespace tessera::train {
namespace {

using namespace yaml_codec;

// ---------------------------------------------------------------- names of enum values

constexpr std::pair<std::string_view, OptimizerName> kOptimizerNames[] = {
    {"sgd", OptimizerName::sgd}, {"adam", OptimizerName::adam}, {"adamw", OptimizerName::adamw}};
constexpr std::pair<std::string_view, Fit> kFitNames[] = {
    {"none", Fit::none}, {"center", Fit::center}, {"resize", Fit::resize}};
constexpr std::pair<std::string_view, ScheduleName> kScheduleNames[] = {
    {"constant", ScheduleName::constant},
    {"step", ScheduleName::step},
    {"cosine", ScheduleName::cosine}};
constexpr std::pair<std::string_view, DType> kPrecisionNames[] = {{"f32", DType::f32},
                                                                  {"bf16", DType::bf16}};

// Integer bounds shared by several keys.
constexpr std::int64_t kMaxSamples = std::int64_t{1} << 31;
constexpr std::int64_t kMaxBatch = std::int64_t{1} << 20;
constexpr int kMaxEpochs = 1000000;

constexpr Number kProbability{0, true, 1.0, false};  // [0, 1): rates that must leave something
constexpr Number kFactor{0, false, 1.0, true};       // (0, 1]
constexpr Number kLearningRate{0, false, 10.0, true};
constexpr Number kDecay{0, true, 10.0, true};
constexpr Number kEpsilon{0, false, 1.0, true};
constexpr Number kGradNorm{0, true, 1e6, true};
constexpr Number kEpochs{0, true, 1e6, true};
constexpr Number kPixelMean{-1e6, true, 1e6, true};
constexpr Number kPixelStd{0, false, 1e6, true};
constexpr Number kTimeout{0, false, 7 * 86400, true};  // seconds, (0, a week]

struct Betas {
  std::string type() const { return "[float, float]"; }
  std::string range() const { return "each in [0, 1)"; }
  void parse(const Ctx& c, std::array<double, 2>& out) const {
    if (!c.node.IsDefined() || !c.node.IsSequence() || c.node.size() != 2)
      c.expected("[beta1, beta2], each in [0, 1)");
    std::array<double, 2> b{};
    for (std::size_t i = 0; i < 2; ++i) b[i] = kProbability.read(c.item(i, c.node[i]));
    out = b;
  }
  std::string dump(const std::array<double, 2>& b) const {
    return fmt::format("[{}, {}]", format_double(b[0]), format_double(b[1]));
  }
};

struct NormalizeCodec {
  std::string type() const { return "auto, none or {mean: [float], std: [float]}"; }
  std::string range() const { return "std > 0; mean and std of one length"; }

  static std::vector<double> floats(const Ctx& c, const Number& rule) {
    if (!c.node.IsDefined() || !c.node.IsSequence() || c.node.size() == 0)
      c.expected("a non-empty list of numbers, one per channel");
    std::vector<double> out;
    for (std::size_t i = 0; i < c.node.size(); ++i) out.push_back(rule.read(c.item(i, c.node[i])));
    return out;
  }

  void parse(const Ctx& c, Normalize& out) const {
    constexpr std::string_view kWhat = "auto, none or a map {mean: [...], std: [...]}";
    if (const std::string* s = c.scalar()) {
      if (*s == "auto") out = Normalize{};
      else if (*s == "none") out = Normalize{Normalize::Mode::none, {}, {}};
      else c.expected(kWhat);
      return;
    }
    if (!c.node.IsDefined() || !c.node.IsMap()) c.expected(kWhat);
    // YAML::Node assignment writes through to the document, so slots are constructed once.
    std::optional<YAML::Node> mean, stddev;
    for (const auto& kv : c.node) {
      const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : flow_text(kv.first);
      if (name != "mean" && name != "std")
        fail_at(c.src, kv.first.Mark(), c.key + "." + name,
                fmt::format("unknown key; expected mean and std{}", did_you_mean(name, {"mean", "std"})));
      std::optional<YAML::Node>& slot = name == "mean" ? mean : stddev;
      if (slot) fail_at(c.src, kv.first.Mark(), c.key + "." + name, "duplicate key");
      slot.emplace(kv.second);
    }
    if (!mean || !stddev)
      c.fail(fmt::format("a custom normalization needs both mean and std, got {}", describe(c.node)));
    Normalize n{Normalize::Mode::custom, {}, {}};
    n.mean = floats(c.sub("mean", *mean, c.mark), kPixelMean);
    const Ctx std_ctx = c.sub("std", *stddev, c.mark);
    n.stddev = floats(std_ctx, kPixelStd);
    if (n.mean.size() != n.stddev.size())
      std_ctx.fail(fmt::format("has {} values but mean has {}; give one per channel",
                               n.stddev.size(), n.mean.size()));
    out = std::move(n);
  }
  std::string dump(const Normalize& n) const {
    switch (n.mode) {
      case Normalize::Mode::dataset: return "auto";
      case Normalize::Mode::none: return "none";
      case Normalize::Mode::custom: break;
    }
    std::vector<std::string> m, s;
    for (double v : n.mean) m.push_back(format_double(v));
    for (double v : n.stddev) s.push_back(format_double(v));
    return fmt::format("{{mean: [{}], std: [{}]}}", fmt::join(m, ", "), fmt::join(s, ", "));
  }
};

// Glob patterns over parameter names; YAML `false` is none, and `true` the key's default
// where it has one (`on_true`).
struct Patterns {
  std::optional<std::vector<std::string>> on_true;
  std::string type() const { return on_true ? "bool or list of strings" : "list of strings"; }
  std::string range() const { return "glob patterns"; }
  void parse(const Ctx& c, std::vector<std::string>& out) const {
    const char* expected = on_true ? "true, false or a list of parameter-name patterns"
                                   : "a list of parameter-name patterns (or false: none)";
    if (const std::string* s = c.scalar()) {
      const std::optional<bool> b = parse_bool(*s);
      if (!b || (*b && !on_true)) c.expected(expected);
      out = *b ? *on_true : std::vector<std::string>{};
      return;
    }
    if (!c.node.IsDefined() || !c.node.IsSequence()) c.expected(expected);
    std::vector<std::string> patterns;
    for (std::size_t i = 0; i < c.node.size(); ++i) {
      const Ctx item = c.item(i, c.node[i]);
      if (!item.scalar() || item.scalar()->empty()) item.expected("a non-empty pattern");
      patterns.push_back(*item.scalar());
    }
    out = std::move(patterns);
  }
  std::string dump(const std::vector<std::string>& patterns) const {
    std::vector<std::string> q;
    for (const std::string& p : patterns) q.push_back(yaml_quoted(p));
    return fmt::format("[{}]", fmt::join(q, ", "));
  }
};

struct DeviceCodec {
  std::string type() const { return "string"; }
  std::string range() const { return "cpu | cuda | cuda:N"; }
  void parse(const Ctx& c, Device& out) const {
    if (const std::string* s = c.scalar()) {
      if (*s == "cpu") return void(out = Device::cpu());
      if (*s == "cuda") return void(out = Device::cuda(0));
      if (s->starts_with("cuda:"))
        if (const auto i = parse_integer<int>(std::string_view(*s).substr(5)); i && *i >= 0)
          return void(out = Device::cuda(*i));
    }
    // No spelling suggestion: "gpu" is one letter from "cpu" but means cuda.
    const bool gpu = c.scalar() && c.scalar()->starts_with("gpu");
    c.fail(fmt::format("expected cpu, cuda or cuda:N, got {}{}", describe(c.node),
                       gpu ? " (did you mean cuda?)" : ""));
  }
  std::string dump(Device d) const {
    return d.is_cpu() ? "cpu" : d.index == 0 ? "cuda" : fmt::format("cuda:{}", d.index);
  }
};

// ---------------------------------------------------------------- the schema table

struct Field {
  std::string path;
  std::string type;
  std::string range;
  std::optional<double> low, high;  // numeric keys' bounds
  std::string description;
  std::function<void(TrainConfig&, const Ctx&)> parse;
  std::function<std::string(const TrainConfig&)> dump;
  std::function<bool(const TrainConfig&, const TrainConfig&)> equal;
};

template <class Access, class Codec>
Field make_field(std::string path, Access access, Codec codec, std::string description) {
  Field f{std::move(path), codec.type(), codec.range(), std::nullopt, std::nullopt, std::move(description), {}, {}, {}};
  if constexpr (requires { codec.min; }) f.low = static_cast<double>(codec.min), f.high = static_cast<double>(codec.max);
  if constexpr (requires { codec.low; }) f.low = codec.low, f.high = codec.high;
  f.parse = [=](TrainConfig& cfg, const Ctx& c) { codec.parse(c, access(cfg)); };
  f.dump = [=](const TrainConfig& cfg) { return codec.dump(access(cfg)); };
  f.equal = [=](const TrainConfig& a, const TrainConfig& b) { return access(a) == access(b); };
  return f;
}

// The member path is the key path: KEY(optim.lr, ...) is YAML `optim: {lr: ...}`.
#define TESSERA_CONFIG_KEY(member, ...) /* codec, description */ \
  make_field(#member, [](auto& cfg) -> auto& { return cfg.member; }, __VA_ARGS__)

// The keys of every section but the model's, which depend on the model (fields() below).
const std::vector<Field>& base_fields() {
  using I64 = Integer<std::int64_t>;
  using Int = Integer<int>;
  static const std::vector<Field> table = [] {
    std::vector<Field> t;
    const auto add = [&](Field f) { t.push_back(std::move(f)); };
    // data
    add(TESSERA_CONFIG_KEY(data.dataset, RegisteredName{datasets::dataset_names},
        "The dataset; synthetic is generated in memory and needs no files (see data.synthetic)."));
    add(TESSERA_CONFIG_KEY(data.root, Path{}, "Dataset directory; empty means data/ and the dataset name (data/mnist, data/cifar10, ...)."));
    add(TESSERA_CONFIG_KEY(data.fit, Choice<Fit>{kFitNames},
        "Images of another height or width than the model's: none (refused), center (the middle cut out, or zero-padded around: torchvision's CenterCrop) or resize (bilinear)."));
    add(TESSERA_CONFIG_KEY(data.normalize, NormalizeCodec{},
        "Per-channel normalization: auto (the dataset's standard mean and std), none, or explicit values."));
    add(TESSERA_CONFIG_KEY(data.augment.random_crop_padding, I64{0, models::kMaxImageSide},
        "Pad training images by this many pixels and crop back at a random offset (0 = off)."));
    add(TESSERA_CONFIG_KEY(data.augment.horizontal_flip, Boolean{},
        "Flip training images left-right with probability 0.5."));
    add(TESSERA_CONFIG_KEY(data.augment.random_shift, I64{0, models::kMaxImageSide},
        "Translate training images by up to this many pixels, filling with zeros (0 = off)."));
    add(TESSERA_CONFIG_KEY(data.train_limit, I64{0, kMaxSamples}, "Train on the first N training samples only (0 = all)."));
    add(TESSERA_CONFIG_KEY(data.test_limit, I64{0, kMaxSamples}, "Evaluate on the first N test samples only (0 = all)."));
    add(TESSERA_CONFIG_KEY(data.synthetic.train_size, I64{1, 1 << 24}, "Samples in the synthetic training set."));
    add(TESSERA_CONFIG_KEY(data.synthetic.test_size, I64{1, 1 << 24}, "Samples in the synthetic test set."));
    add(TESSERA_CONFIG_KEY(data.workers, Int{0, 256}, "Loader threads preparing batches (0 = on the training thread)."));
    add(TESSERA_CONFIG_KEY(data.prefetch, Int{0, 1024}, "Batches prepared ahead of the training step."));
    // optim
    add(TESSERA_CONFIG_KEY(optim.name, Choice<OptimizerName>{kOptimizerNames}, "The optimizer."));
    add(TESSERA_CONFIG_KEY(optim.lr, kLearningRate, "Peak learning rate (reached after warm-up)."));
    add(TESSERA_CONFIG_KEY(optim.weight_decay, kDecay,
        "Weight decay: decoupled for adamw, added to the gradient (L2) for sgd and adam."));
    add(TESSERA_CONFIG_KEY(optim.momentum, kProbability, "SGD momentum."));
    add(TESSERA_CONFIG_KEY(optim.nesterov, Boolean{}, "Use Nesterov momentum (sgd)."));
    add(TESSERA_CONFIG_KEY(optim.betas, Betas{}, "Adam and AdamW decay rates of the moment estimates."));
    add(TESSERA_CONFIG_KEY(optim.eps, kEpsilon, "Adam and AdamW denominator epsilon."));
    add(TESSERA_CONFIG_KEY(optim.layer_decay, kFactor,
        "Layer-wise learning-rate decay (ViT): blocks.i learns at lr x decay^(depth - i), the embeddings at lr x decay^(depth + 1), the final norm and head at lr; 1 = off."));
    add(TESSERA_CONFIG_KEY(optim.clip_grad_norm, kGradNorm,
        "Clip the global L2 norm of all gradients to this value (0 = off)."));
    add(TESSERA_CONFIG_KEY(optim.no_weight_decay_on, Patterns{OptimConfig{}.no_weight_decay_on},
        "Parameters exempt from weight decay, as glob patterns over parameter names ('*' any run, '?' one character); true = this default, false = none."));
    // schedule
    add(TESSERA_CONFIG_KEY(schedule.name, Choice<ScheduleName>{kScheduleNames},
        "Learning-rate schedule after warm-up."));
    add(TESSERA_CONFIG_KEY(schedule.warmup_epochs, kEpochs,
        "Linear warm-up from 0 to optim.lr over this many epochs (fractions allowed)."));
    add(TESSERA_CONFIG_KEY(schedule.min_lr, kDecay, "cosine: the final learning rate."));
    add(TESSERA_CONFIG_KEY(schedule.step_size, Int{1, kMaxEpochs}, "step: epochs between decays."));
    add(TESSERA_CONFIG_KEY(schedule.gamma, kFactor, "step: the factor applied at each decay."));
    // train
    add(TESSERA_CONFIG_KEY(train.epochs, Int{1, kMaxEpochs}, "Passes over the training set."));
    add(TESSERA_CONFIG_KEY(train.batch_size, I64{1, kMaxBatch}, "Training batch size."));
    add(TESSERA_CONFIG_KEY(train.eval_batch_size, I64{1, kMaxBatch}, "Evaluation batch size."));
    add(TESSERA_CONFIG_KEY(train.seed, Integer<std::uint64_t>{0, std::numeric_limits<std::uint64_t>::max()},
        "Seed of every random stream: initialisation, shuffling, augmentation, dropout."));
    add(TESSERA_CONFIG_KEY(train.threads, Int{0, 256}, "CPU threads for the kernels (0 = all cores)."));
    add(TESSERA_CONFIG_KEY(train.device, DeviceCodec{}, "Where to train: cpu, cuda (the first GPU) or cuda:N."));
    add(TESSERA_CONFIG_KEY(train.output_dir, Path{},
        "Directory for checkpoints, logs and the resolved config."));
    add(TESSERA_CONFIG_KEY(train.eval_interval, Int{1, kMaxEpochs}, "Evaluate every N epochs, and after the last."));
    add(TESSERA_CONFIG_KEY(train.checkpoint_interval, Int{0, kMaxEpochs},
        "Save a checkpoint every N epochs (0 = only after the last)."));
    add(TESSERA_CONFIG_KEY(train.log_interval, Int{1, 1 << 30}, "Log the training loss every N steps."));
    add(TESSERA_CONFIG_KEY(train.label_smoothing, kProbability, "Label smoothing of the cross-entropy loss."));
    add(TESSERA_CONFIG_KEY(train.precision, Choice<DType>{kPrecisionNames},
        "Compute precision: f32, or bf16 mixed precision with f32 master weights."));
    add(TESSERA_CONFIG_KEY(train.init_from, Path{},
        "Start from these weights (fine-tuning): a checkpoint or a timm state dict (safetensors); a position table of another grid is resampled. A resumed run takes its checkpoint instead."));
    add(TESSERA_CONFIG_KEY(train.init_exclude, Patterns{},
        "Parameters train.init_from leaves at their initialisation, as glob patterns, e.g. [\"head.*\"] for another class count."));
    add(TESSERA_CONFIG_KEY(train.collective_timeout, kTimeout,
        "Data-parallel runs: seconds a rank waits for the others in a collective before it names the ranks that do not answer and stops the run."));
    return t;
  }();
  return table;
}

#undef TESSERA_CONFIG_KEY

// model.name resets the section to that model's defaults, so it is applied before the other
// keys of the section (see apply_map), as the preset is.
Field model_name_field() {
  const RegisteredName codec{models::model_names};
  Field f{"model.name", codec.type(), codec.range(), std::nullopt, std::nullopt,
          "The model: a registered name (the built-in ones below, or one a program registers).", {}, {}, {}};
  f.parse = [codec](TrainConfig& cfg, const Ctx& c) {
    std::string name;
    codec.parse(c, name);
    cfg.model = ModelConfig(name);
  };
  f.dump = [](const TrainConfig& cfg) { return cfg.model.name(); };
  f.equal = [](const TrainConfig& a, const TrainConfig& b) { return a.model.name() == b.model.name(); };
  return f;
}

Field model_preset_field(const models::ModelSpec& spec) {
  std::vector<std::string> names;
  for (const auto& [n, v] : spec.presets) names.push_back(n);
  Field f{"model.preset", "string or null", names.empty() ? "" : fmt::format("{}", fmt::join(names, " | ")),
          std::nullopt, std::nullopt,
          "Start from a named architecture; keys given beside it override its values.", {}, {}, {}};
  f.parse = [names](TrainConfig& cfg, const Ctx& c) {
    if (c.is_null()) return cfg.model.preset.reset();
    if (const std::string* s = c.scalar(); s && std::find(names.begin(), names.end(), *s) != names.end())
      return cfg.model.apply_preset(*s);
    c.fail(fmt::format("expected a preset of {} ({}) or null, got {}{}", cfg.model.name(),
                       names.empty() ? std::string("it has none") : fmt::format("{}", fmt::join(names, ", ")),
                       describe(c.node), c.scalar() ? did_you_mean(*c.scalar(), names) : ""));
  };
  f.dump = [](const TrainConfig& cfg) { return cfg.model.preset ? yaml_quoted(*cfg.model.preset) : "null"; };
  f.equal = [](const TrainConfig& a, const TrainConfig& b) { return a.model.preset == b.model.preset; };
  return f;
}

// A model key read and written through the codec of its kind; the value travels as the
// registry's KeyValue holding a T.
template <class T, class Codec>
Field model_field(const models::ModelKey& k, Codec codec) {
  Field f{"model." + k.key, codec.type(), codec.range(), std::nullopt, std::nullopt, k.description, {}, {}, {}};
  if constexpr (requires { codec.min; }) f.low = static_cast<double>(codec.min), f.high = static_cast<double>(codec.max);
  if constexpr (requires { codec.low; }) f.low = codec.low, f.high = codec.high;
  f.parse = [k, codec](TrainConfig& cfg, const Ctx& c) {
    T value = std::get<T>(k.get(cfg.model.values()));
    codec.parse(c, value);
    k.set(cfg.model.values(), models::KeyValue(value));
  };
  f.dump = [k, codec](const TrainConfig& cfg) { return codec.dump(std::get<T>(k.get(cfg.model.values()))); };
  f.equal = [k](const TrainConfig& a, const TrainConfig& b) {
    return k.get(a.model.values()) == k.get(b.model.values());
  };
  return f;
}

Field model_key_field(const models::ModelKey& k) {
  using Kind = models::ModelKey::Kind;
  switch (k.kind) {
    case Kind::integer: return model_field<std::int64_t>(k, Integer<std::int64_t>{k.int_min, k.int_max});
    case Kind::number: return model_field<double>(k, Number{k.low, !k.low_open, k.high, !k.high_open});
    case Kind::boolean: return model_field<bool>(k, Boolean{});
    case Kind::choice: return model_field<std::string>(k, OneOf{k.choices});
    case Kind::image_size: return model_field<models::ImageSide>(k, ImageSize{k.int_min, k.int_max});
  }
  throw ConfigError(fmt::format("model.{}: a key of unknown kind", k.key));
}

// Every key of a config whose model is `model`, in the order of the docs and of dumps.
const std::vector<Field>& fields(std::string_view model) {
  static std::mutex mutex;
  static std::map<std::string, std::vector<Field>, std::less<>> tables;
  std::lock_guard lock(mutex);
  if (const auto it = tables.find(model); it != tables.end()) return it->second;
  const models::ModelSpec& spec = models::model_spec(model);
  std::vector<Field> t{model_name_field(), model_preset_field(spec)};
  for (const models::ModelKey& k : spec.keys) t.push_back(model_key_field(k));
  t.insert(t.end(), base_fields().begin(), base_fields().end());
  return tables.emplace(std::string(model), std::move(t)).first->second;
}

constexpr std::string_view kSections[] = {"model", "data", "optim", "schedule", "train"};

const std::map<std::string, std::string>& section_summaries() {
  static const std::map<std::string, std::string> s{
      {"model", "The network: model.name picks a registered model; the other keys are that model's."},
      {"data", "The dataset, its preprocessing and the loader."},
      {"optim", "The optimizer."},
      {"schedule", "The learning-rate schedule (per step, in epochs of progress)."},
      {"train", "The run: length, batches, seed, device, outputs."}};
  return s;
}

const Field* find_field(std::string_view path, std::string_view model) {
  for (const Field& f : fields(model))
    if (f.path == path) return &f;
  return nullptr;
}

// A map in the schema: a proper prefix of some key path ("data", "data.augment").
bool is_map(std::string_view path, std::string_view model) {
  if (path.empty()) return true;
  const std::vector<Field>& all = fields(model);
  return std::any_of(all.begin(), all.end(), [&](const Field& f) {
    return f.path.size() > path.size() && f.path.starts_with(path) && f.path[path.size()] == '.';
  });
}

// Direct children (keys and maps) of a map, in schema order.
std::vector<std::string> children_of(std::string_view prefix, std::string_view model) {
  std::vector<std::string> kids;
  for (const Field& f : fields(model)) {
    if (!prefix.empty() && !(f.path.starts_with(prefix) && f.path.size() > prefix.size() &&
                             f.path[prefix.size()] == '.'))
      continue;
    const std::string_view rest = std::string_view(f.path).substr(prefix.empty() ? 0 : prefix.size() + 1);
    std::string child(rest.substr(0, rest.find('.')));
    if (std::find(kids.begin(), kids.end(), child) == kids.end()) kids.push_back(std::move(child));
  }
  return kids;
}

// Every key and map path, for suggestions.
std::vector<std::string> all_paths(std::string_view model) {
  std::vector<std::string> paths;
  for (const Field& f : fields(model)) {
    const auto parts = split_path(f.path);
    std::string p;
    for (const std::string& part : parts) {
      p = join_path(p, part);
      if (std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
    }
  }
  return paths;
}

std::string unknown_key_message(std::string_view prefix, std::string_view key, std::string_view model) {
  const std::string what = prefix.empty() ? "section" : "key";
  const std::vector<std::string> kids = children_of(prefix, model);
  if (const auto c = closest(key, kids))
    return fmt::format("unknown {}; did you mean {}?", what, join_path(prefix, *c));
  // The right key in the wrong place, e.g. `lr` under `train`.
  for (const std::string& p : all_paths(model))
    if (last_segment(p) == key) return fmt::format("unknown {}; did you mean {}?", what, p);
  return fmt::format("unknown {}; {} {}", what,
                     prefix.empty()       ? "the sections are"
                     : prefix == "model" ? fmt::format("the keys of {} are", model)
                                         : fmt::format("the keys of {} are", prefix),
                     fmt::join(kids, ", "));
}

// ---------------------------------------------------------------- applying YAML to a config

// The keys applied before the others of their section: they reset the model's keys.
int apply_order(std::string_view path) { return path == "model.name" ? 0 : path == "model.preset" ? 1 : 2; }

void apply_map(TrainConfig& cfg, const YAML::Node& node, const std::string& prefix,
               const Source& src, const YAML::Mark& mark) {
  if (!node.IsDefined() || node.IsNull()) return;  // an empty section keeps the defaults
  if (!node.IsMap()) {
    const Ctx c{src, prefix, node, mark};
    c.expected(prefix.empty() ? fmt::format("a map of sections ({})", fmt::join(kSections, ", "))
                              : fmt::format("a map of settings ({})",
                                            fmt::join(children_of(prefix, cfg.model.name()), ", ")));
  }
  struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
  };
  std::vector<Entry> entries;
  std::map<std::string, YAML::Mark> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar())
      fail_at(src, kv.first.Mark(), prefix,
              fmt::format("keys must be plain names, got {}", describe(kv.first)));
    const std::string key = kv.first.Scalar();
    const auto [it, fresh] = seen.emplace(key, kv.first.Mark());
    if (!fresh)
      fail_at(src, kv.first.Mark(), join_path(prefix, key),
              fmt::format("duplicate key (first given at {}:{})", it->second.line + 1,
                          it->second.column + 1));
    entries.push_back({key, kv.first, kv.second});
  }
  // model.name, then model.preset, then the rest, so that the keys beside them override the
  // values they set wherever they stand. (Passes rather than a reorder: assigning a
  // YAML::Node writes through to the document.)
  for (const int pass : {0, 1, 2})
    for (const Entry& e : entries) {
      const std::string path = join_path(prefix, e.key);
      if (apply_order(path) != pass) continue;
      const Ctx ctx{src, path, e.value, e.value.IsNull() ? e.key_node.Mark() : e.value.Mark()};
      if (const Field* f = find_field(path, cfg.model.name())) f->parse(cfg, ctx);
      else if (is_map(path, cfg.model.name())) apply_map(cfg, e.value, path, src, ctx.mark);
      else fail_at(src, e.key_node.Mark(), path, unknown_key_message(prefix, e.key, cfg.model.name()));
    }
}

void apply_override(TrainConfig& cfg, const ConfigOverride& ov) {
  const Source src{"--set", ov.path};
  const YAML::Mark nowhere = YAML::Mark::null_mark();
  const YAML::Node value = [&] {
    try {
      return YAML::Load(ov.value);
    } catch (const YAML::Exception& e) {
      fail_at(src, nowhere, ov.path, fmt::format("invalid YAML value {}: {}", echoed(ov.value), e.msg));
    }
  }();
  const Ctx ctx{src, ov.path, value, nowhere};
  const std::string& model = cfg.model.name();
  if (const Field* f = find_field(ov.path, model)) {
    f->parse(cfg, ctx);
  } else if (!ov.path.empty() && is_map(ov.path, model)) {
    apply_map(cfg, value, ov.path, src, nowhere);
  } else {
    const auto parts = split_path(ov.path);
    const std::string parent = ov.path.rfind('.') == std::string::npos
                                   ? std::string()
                                   : ov.path.substr(0, ov.path.rfind('.'));
    const auto c = closest(ov.path, all_paths(model));
    if (c) fail_at(src, nowhere, ov.path, fmt::format("unknown key; did you mean {}?", *c));
    if (is_map(parent, model)) fail_at(src, nowhere, ov.path, unknown_key_message(parent, parts.back(), model));
    fail_at(src, nowhere, ov.path, "unknown key");
  }
}

}  // namespace

// ---------------------------------------------------------------- public API

ModelConfig::ModelConfig() : ModelConfig("vit") {}

ModelConfig::ModelConfig(std::string_view model) : name_(model), values_(models::model_spec(model).defaults) {}

void ModelConfig::apply_preset(std::string_view preset_name) {
  const models::ModelSpec& s = spec();
  for (const auto& [n, values] : s.presets)
    if (n == preset_name) {
      values_ = values;
      preset = n;
      return;
    }
  std::vector<std::string> names;
  for (const auto& [n, v] : s.presets) names.push_back(n);
  throw ConfigError(fmt::format("model.preset: {} has no preset {}; its presets are {}{}", name_, echoed(preset_name),
                                names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", ")),
                                did_you_mean(preset_name, names)));
}

bool operator==(const ModelConfig& a, const ModelConfig& b) {
  if (a.name_ != b.name_ || a.preset != b.preset) return false;
  for (const models::ModelKey& k : a.spec().keys)
    if (k.get(a.values_) != k.get(b.values_)) return false;
  return true;
}

ConfigOverride parse_override(std::string_view assignment) {
  const std::size_t eq = assignment.find('=');
  const auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
  };
  const std::string path = eq == std::string_view::npos ? "" : trim(assignment.substr(0, eq));
  TESSERA_CHECK(!path.empty(), ConfigError, "--set {}: expected key.path=value, e.g. optim.lr=3e-4",
                echoed(assignment));
  return {path, std::string(assignment.substr(eq + 1))};
}

void apply_overrides(TrainConfig& cfg, std::span<const ConfigOverride> overrides) {
  TrainConfig out = cfg;
  for (const int pass : {0, 1, 2})
    for (const ConfigOverride& ov : overrides)
      if (apply_order(ov.path) == pass) apply_override(out, ov);
  cfg = std::move(out);
}

namespace {

// Rules that involve two keys; each key is checked on its own while parsing.
void check_key_combinations(const TrainConfig& cfg, const Source& src) {
  const YAML::Mark nowhere = YAML::Mark::null_mark();
  const ScheduleConfig& s = cfg.schedule;
  if (s.name == ScheduleName::cosine && s.warmup_epochs >= static_cast<double>(cfg.train.epochs))
    fail_at(src, nowhere, "schedule.warmup_epochs",
            fmt::format("{} warm-up epochs leave none for the cosine decay; train.epochs is {}",
                        s.warmup_epochs, cfg.train.epochs));
  if (s.name == ScheduleName::cosine && s.min_lr > cfg.optim.lr)
    fail_at(src, nowhere, "schedule.min_lr",
            fmt::format("{} exceeds the peak learning rate optim.lr = {}", s.min_lr, cfg.optim.lr));
  if (const auto& validate = cfg.model.spec().validate) {
    try {
      validate(cfg.model.values());
    } catch (const ConfigError& e) {
      fail_at(src, nowhere, "", e.what());
    }
  }
}

}  // namespace

TrainConfig load_config_string(std::string_view yaml, std::string_view source,
                               std::span<const ConfigOverride> overrides) {
  const Source src{std::string(source), ""};
  const YAML::Node doc = load_single_document(std::string(yaml), src);
  TrainConfig cfg;
  if (!doc.IsNull()) apply_map(cfg, doc, "", src, doc.Mark());
  apply_overrides(cfg, overrides);
  check_key_combinations(cfg, src);
  return cfg;
}

TrainConfig load_config(const std::filesystem::path& file, std::span<const ConfigOverride> overrides) {
  constexpr std::int64_t kMaxConfigBytes = 1 << 20;  // a config is a page of YAML, not a dataset
  std::string text;
  try {
    text = io::read_regular_file(file, kMaxConfigBytes, "load_config");
  } catch (const IoError& e) {
    throw ConfigError(e.what());  // a config that cannot be read is a usage error (exit 2)
  }
  return load_config_string(text, file.string(), overrides);
}

std::string dump_config(const TrainConfig& cfg) {
  std::string out = "# Tessera training config, fully resolved (keys: docs/config.md)\n";
  std::vector<std::string> open;  // the maps the previous key sat in
  for (const Field& f : fields(cfg.model.name())) {
    const std::vector<std::string> parts = split_path(f.path);
    std::size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) ++common;
    open.resize(common);
    for (std::size_t i = common; i + 1 < parts.size(); ++i) {
      out += fmt::format("{:{}}{}:\n", "", 2 * i, parts[i]);
      open.push_back(parts[i]);
    }
    out += fmt::format("{:{}}{}: {}\n", "", 2 * (parts.size() - 1), parts.back(), f.dump(cfg));
  }
  return out;
}

std::vector<ConfigDifference> diff_configs(const TrainConfig& left, const TrainConfig& right,
                                           std::string_view under) {
  const std::string& model = left.model.name();
  TESSERA_CHECK(under.empty() || find_field(under, model) || is_map(under, model), ConfigError,
                "diff_configs: '{}' is not a config key or section{}", under, did_you_mean(under, all_paths(model)));
  // Two models have different keys: the name is their one difference there.
  const bool same_model = model == right.model.name();
  std::vector<ConfigDifference> diffs;
  for (const Field& f : fields(model)) {
    const bool inside = under.empty() || f.path == under ||
                        (f.path.starts_with(under) && f.path[under.size()] == '.');
    if (!same_model && f.path.starts_with("model.") && f.path != "model.name") continue;
    if (inside && !f.equal(left, right)) diffs.push_back({f.path, f.dump(left), f.dump(right)});
  }
  return diffs;
}

std::vector<ConfigDifference> model_differences(const TrainConfig& saved, const TrainConfig& current) {
  std::vector<ConfigDifference> diffs = diff_configs(saved, current, "model");
  std::erase_if(diffs, [](const ConfigDifference& d) { return d.path == "model.preset"; });
  return diffs;
}

std::vector<ConfigDifference> resume_differences(const TrainConfig& saved, const TrainConfig& current) {
  // Keys that change neither the samples seen, their order, the random draws nor the
  // training arithmetic: where and how fast the run goes, and how it is evaluated and logged.
  // train.epochs may grow (the trainer refuses fewer than are done).
  static const std::set<std::string_view> free_keys{
      "model.preset",        "data.root",          "data.workers",          "data.prefetch",
      "data.test_limit",     "train.epochs",       "train.eval_batch_size", "train.threads",
      "train.device",        "train.output_dir",   "train.eval_interval",   "train.checkpoint_interval",
      "train.log_interval",  "train.collective_timeout", "train.init_from", "train.init_exclude"};
  std::vector<ConfigDifference> diffs = diff_configs(saved, current);
  std::erase_if(diffs, [](const ConfigDifference& d) { return free_keys.contains(d.path); });
  return diffs;
}

std::string format_differences(const std::vector<ConfigDifference>& diffs) {
  std::string out;
  for (const ConfigDifference& d : diffs)
    out += fmt::format("{}{}: {} -> {}", out.empty() ? "" : "; ", d.path, d.left, d.right);
  return out;
}

std::filesystem::path dataset_root(const DataConfig& data) {
  return data.root.empty() ? std::filesystem::path("data") / data.dataset : data.root;
}

std::string_view to_string(OptimizerName v) { return name_of<OptimizerName>(kOptimizerNames, v); }
std::string_view to_string(ScheduleName v) { return name_of<ScheduleName>(kScheduleNames, v); }

std::vector<ConfigKey> config_schema() {
  // Every registered model's keys: model.name and the sections of the default model first.
  std::vector<ConfigKey> keys;
  std::set<std::string> seen;
  for (const std::string& model : models::model_names()) {
    TrainConfig defaults;
    defaults.model = ModelConfig(model);
    for (const Field& f : fields(model)) {
      const bool of_model = f.path.starts_with("model.") && f.path != "model.name";
      if (!of_model && !seen.insert(f.path).second) continue;  // the other sections, once
      keys.push_back({f.path, f.type, f.range, f.dump(defaults), f.description, f.low, f.high,
                      of_model ? model : std::string()});
    }
  }
  return keys;
}

std::string config_reference_markdown() {
  // GitHub tables need '|' escaped even inside code spans.
  const auto cell = [](std::string_view s) {
    std::string out;
    for (const char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
    return out;
  };
  const auto table = [&](const std::vector<ConfigKey>& rows) {
    std::string out = "| Key | Type | Default | Allowed | Meaning |\n|---|---|---|---|---|\n";
    for (const ConfigKey& k : rows)
      out += fmt::format("| `{}` | {} | `{}` | {} | {} |\n", k.path, cell(k.type), cell(k.default_value),
                         k.range.empty() ? "" : cell(k.range), cell(k.description));
    return out + "\n";
  };
  const std::vector<ConfigKey> schema = config_schema();
  std::string out;
  for (const std::string_view section : kSections) {
    out += fmt::format("### `{}`\n\n{}\n\n", section, section_summaries().at(std::string(section)));
    std::vector<ConfigKey> rows;
    for (const ConfigKey& k : schema)
      if (k.path.starts_with(section) && k.path[section.size()] == '.' && k.model.empty()) rows.push_back(k);
    out += table(rows);
    if (section != "model") continue;
    for (const std::string& model : models::model_names()) {
      rows.clear();
      for (const ConfigKey& k : schema)
        if (k.model == model) rows.push_back(k);
      out += fmt::format("#### `model.name: {}`\n\n{}\n\n", model, models::model_spec(model).summary) + table(rows);
    }
  }
  return out;
}

}  // namespace tessera::train
