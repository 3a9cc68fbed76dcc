#include "tessera/train/weights.h"

#include <cmath>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/models/vit.h"
#include "tessera/optim/optimizer.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/trainer.h"

namespace tessera::train {
namespace {

// timm's names for one encoder block, relative to "blocks.{i}.".
const std::vector<std::string>& block_tensor_names() {
  static const std::vector<std::string> names{
      "norm1.weight",    "norm1.bias",      "attn.qkv.weight", "attn.qkv.bias",  "attn.proj.weight",
      "attn.proj.bias",  "norm2.weight",    "norm2.bias",      "mlp.fc1.weight", "mlp.fc1.bias",
      "mlp.fc2.weight",  "mlp.fc2.bias"};
  return names;
}

// A list for a message, cut after `most` items: a file of another model mismatches in every
// tensor, and the first few say enough.
std::string listed(const std::vector<std::string>& items, const char* separator, std::size_t most = 6) {
  if (items.size() <= most) return fmt::format("{}", fmt::join(items, separator));
  return fmt::format("{}{}... and {} more", fmt::join(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(most), separator),
                     separator, items.size() - most);
}

// The side of a square grid of `cells` cells, or 0 when there is none.
std::int64_t square_side(std::int64_t cells) {
  const auto side = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(std::max<std::int64_t>(cells, 0)))));
  return side > 0 && side * side == cells ? side : 0;
}

const Shape* shape_of(const io::TensorMap& w, const std::string& name) {
  const auto it = w.find(name);
  return it == w.end() ? nullptr : &it->second.shape();
}

}  // namespace

TrainConfig timm_vit_config(const io::TensorMap& weights, const ImportOptions& options) {
  std::vector<std::string> problems;
  const auto need = [&](const std::string& name, std::size_t rank) -> const Shape* {
    const Shape* s = shape_of(weights, name);
    if (!s) problems.push_back(fmt::format("{} is missing", name));
    else if (s->size() != rank) problems.push_back(fmt::format("{} is {}, not of rank {}", name, shape_str(*s), rank));
    return s && s->size() == rank ? s : nullptr;
  };
  models::ViTConfig c;
  const Shape* proj = need("patch_embed.proj.weight", 4);  // (D, C, P, P)
  const Shape* pos = need("pos_embed", 3);                 // (1, 1 + G*G, D)
  const Shape* head = need("head.weight", 2);              // (K, D)
  // timm's variants: no class token (then average pooling), and fc_norm (the final norm
  // after average pooling, in place of `norm`).
  c.class_token = weights.contains("cls_token");
  c.fc_norm = weights.contains("fc_norm.weight");
  c.pool = c.class_token && !c.fc_norm ? models::Pool::cls : models::Pool::mean;
  // Blocks 0..depth-1, contiguous; anything else under blocks. is reported below as unknown.
  std::int64_t depth = 0;
  for (const auto& [name, t] : weights)
    if (const std::optional<std::int64_t> i = models::block_index(name)) depth = std::max(depth, *i + 1);
  const Shape* fc1 = depth > 0 ? need("blocks.0.mlp.fc1.weight", 2) : nullptr;  // (M, D)
  if (depth == 0) problems.push_back("no encoder blocks (blocks.0.*)");
  if (proj && pos && head && fc1 && problems.empty()) {
    c.dim = (*proj)[0];
    c.channels = (*proj)[1];
    c.patch_size = (*proj)[2];
    c.depth = depth;
    c.mlp_dim = (*fc1)[0];
    c.num_classes = (*head)[0];
    const std::int64_t patches = (*pos)[1] - (c.class_token ? 1 : 0);
    const std::int64_t grid = square_side(patches);
    if ((*proj)[3] != c.patch_size) problems.push_back(fmt::format("patch_embed.proj.weight {} has non-square patches", shape_str(*proj)));
    if (grid == 0)
      problems.push_back(fmt::format("pos_embed {} holds {} patch positions, not a square grid{}", shape_str(*pos),
                                     patches, c.class_token ? " (plus the class token)" : ""));
    c.image_h = c.image_w = grid * c.patch_size;
    c.heads = options.heads.value_or(c.dim % 64 == 0 ? c.dim / 64 : 0);
    if (c.heads <= 0 || c.dim % c.heads != 0)
      problems.push_back(fmt::format("dim {} does not split into {} heads{}", c.dim, c.heads,
                                     options.heads ? "" : " (give the head count: --heads)"));
  }
  // Every tensor the inferred ViT has, with its shape; then what the file has besides.
  std::map<std::string, Shape> expected;
  if (problems.empty()) {
    const std::int64_t D = c.dim, M = c.mlp_dim;
    const std::string final_norm = c.fc_norm ? "fc_norm" : "norm";
    expected = {{"patch_embed.proj.weight", {D, c.channels, c.patch_size, c.patch_size}},
                {"patch_embed.proj.bias", {D}},
                {"pos_embed", {1, c.num_patches() + (c.class_token ? 1 : 0), D}},
                {final_norm + ".weight", {D}},
                {final_norm + ".bias", {D}},
                {"head.weight", {c.num_classes, D}},
                {"head.bias", {c.num_classes}}};
    if (c.class_token) expected["cls_token"] = {1, 1, D};
    const std::vector<Shape> block_shapes{{D}, {D}, {3 * D, D}, {3 * D}, {D, D}, {D}, {D}, {D}, {M, D}, {M}, {D, M}, {D}};
    for (std::int64_t i = 0; i < depth; ++i)
      for (std::size_t k = 0; k < block_tensor_names().size(); ++k)
        expected[fmt::format("blocks.{}.{}", i, block_tensor_names()[k])] = block_shapes[k];
    std::vector<std::string> unknown;
    for (const auto& [name, t] : weights) {
      const auto it = expected.find(name);
      if (it == expected.end()) unknown.push_back(name);
      else if (t.shape() != it->second)
        problems.push_back(fmt::format("{} is {}; a ViT of dim {} and MLP {} needs {}", name, shape_str(t.shape()), D, M,
                                       shape_str(it->second)));
    }
    if (!unknown.empty())
      problems.push_back(fmt::format("tensors Tessera's ViT does not have: {} (layer scale, register tokens and other "
                                     "variants are not supported)",
                                     fmt::join(unknown, ", ")));
    for (const auto& [name, shape] : expected)
      if (!weights.contains(name)) problems.push_back(fmt::format("{} is missing", name));
  }
  TESSERA_CHECK(problems.empty(), ConfigError, "import: not a timm ViT that Tessera can hold: {}",
                fmt::join(problems, "; "));
  c.validate();
  TrainConfig cfg;
  cfg.model = ModelConfig("vit");
  cfg.model.as<models::ViTConfig>() = c;
  return cfg;
}

TrainConfig import_timm_vit(const std::filesystem::path& weights, const std::filesystem::path& checkpoint,
                            const ImportOptions& options) {
  const io::SafetensorsFile file = io::load_safetensors(weights);
  TrainConfig cfg = timm_vit_config(file.tensors, options);
  cfg.train.device = Device::cpu();
  std::unique_ptr<nn::UnaryModule> model = build_model(cfg);
  nn::NamedTensors state;
  for (const auto& [name, t] : file.tensors) {
    TESSERA_CHECK(is_floating(t.dtype()), ConfigError, "import: {} holds {} values, not floating point", name, t.dtype());
    state.emplace_back(name, t.to(DType::f32));
  }
  model->load_state_dict(state);
  CheckpointInfo info;
  info.config_yaml = dump_config(cfg);
  save_checkpoint(checkpoint, *model, {}, info);
  return cfg;
}

void export_weights(const std::filesystem::path& checkpoint, const std::filesystem::path& weights, DType dtype) {
  TESSERA_CHECK(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f64, ConfigError,
                "export: weights are written as f32, bf16 or f64, not {}", dtype);
  const Checkpoint ck = load_checkpoint(checkpoint);
  io::TensorMap out;
  for (const auto& [name, t] : ck.model) out[name] = is_floating(t.dtype()) ? t.to(dtype) : t;
  io::save_safetensors(weights, out);
}

std::string init_weights_from(nn::Module& model, const TrainConfig& cfg) {
  const std::filesystem::path& path = cfg.train.init_from;
  const io::SafetensorsFile file = [&] {
    try {
      return io::load_safetensors(path);
    } catch (const IoError& e) {
      throw IoError(fmt::format("train.init_from: {}", e.what()));
    }
  }();
  io::TensorMap source;
  if (file.metadata.contains("format")) {  // a Tessera checkpoint: its model, not its optimizer state
    for (auto& [name, t] : load_checkpoint(path).model) source[name] = t;
  } else {
    source = file.tensors;
  }
  const auto excluded = [&](const std::string& name) {
    return std::any_of(cfg.train.init_exclude.begin(), cfg.train.init_exclude.end(),
                       [&](const std::string& p) { return optim::glob_match(p, name); });
  };
  std::vector<std::string> missing, mismatched, unexpected, resampled;
  std::size_t loaded = 0;
  std::set<std::string> known;
  for (const auto& [name, target] : model.state_dict()) {
    known.insert(name);
    if (excluded(name)) continue;
    const auto it = source.find(name);
    if (it == source.end()) {
      missing.push_back(name);
      continue;
    }
    Tensor from = it->second;
    if (from.shape() != target.shape() && name == "pos_embed" && cfg.model.name() == "vit" && from.dim() == 3 &&
        from.size(0) == 1 && from.size(2) == target.size(2)) {
      const auto& v = cfg.model.as<models::ViTConfig>();
      const std::int64_t prefix = v.class_token ? 1 : 0, cells = from.size(1) - prefix;
      if (const std::int64_t side = square_side(cells)) {
        const std::int64_t grid_h = v.image_h / v.patch_size, grid_w = v.image_w / v.patch_size;
        from = models::resample_position_table(from.to(DType::f64), prefix, {side, side}, {grid_h, grid_w});
        resampled.push_back(fmt::format("pos_embed {}x{} -> {}x{}", side, side, grid_h, grid_w));
      }
    }
    if (from.shape() != target.shape()) {
      mismatched.push_back(fmt::format("{} is {} in the file, {} in the model", name, shape_str(from.shape()),
                                       shape_str(target.shape())));
      continue;
    }
    TESSERA_CHECK(is_floating(from.dtype()), ConfigError, "train.init_from: {}: {} holds {} values", path.string(),
                  name, from.dtype());
    Tensor(target).copy_(from.to(target.dtype()).to(target.device()));
    ++loaded;
  }
  for (const auto& [name, t] : source)
    if (!known.contains(name) && !excluded(name)) unexpected.push_back(name);
  std::vector<std::string> problems;
  if (!mismatched.empty()) problems.push_back(fmt::format("shapes differ: {}", listed(mismatched, "; ")));
  if (!missing.empty()) problems.push_back(fmt::format("not in the file: {}", listed(missing, ", ")));
  if (!unexpected.empty()) problems.push_back(fmt::format("not in the model: {}", listed(unexpected, ", ")));
  TESSERA_CHECK(problems.empty(), ConfigError,
                "train.init_from: {}: {}; leave such parameters to their initialisation with train.init_exclude "
                "(e.g. [\"head.*\"] for another class count)",
                path.string(), fmt::join(problems, "; "));
  return fmt::format("initialised from {}: {} tensors{}{}", path.string(), loaded,
                     resampled.empty() ? "" : fmt::format(", {}", fmt::join(resampled, ", ")),
                     cfg.train.init_exclude.empty()
                         ? ""
                         : fmt::format(", excluded {}", fmt::join(cfg.train.init_exclude, ", ")));
}

}  // namespace tessera::train
