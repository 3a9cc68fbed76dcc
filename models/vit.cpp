#include "tessera/models/vit.h"

#include <algorithm>
#include <cmath>

#include "tessera/nn/init.h"
#include "tessera/models/registry.h"

namespace tessera::models {

std::string to_string(Pool p) { return p == Pool::cls ? "cls" : "mean"; }
std::string to_string(PosEmbed p) { return p == PosEmbed::learned ? "learned" : "sincos"; }
std::string to_string(nn::NormPlacement n) { return n == nn::NormPlacement::pre ? "pre" : "post"; }

void ViTConfig::validate() const {
  std::vector<std::string> bad;
  auto positive = [&](const char* name, std::int64_t v) {
    if (v <= 0) bad.push_back(fmt::format("{} must be positive (got {})", name, v));
  };
  positive("image_size", std::min(image_h, image_w));
  positive("patch_size", patch_size);
  positive("channels", channels);
  positive("num_classes", num_classes);
  positive("dim", dim);
  positive("depth", depth);
  positive("heads", heads);
  positive("mlp_dim", mlp_dim);
  if (patch_size > 0 && (image_h % patch_size != 0 || image_w % patch_size != 0))
    bad.push_back(fmt::format("image {}x{} is not divisible into {}x{} patches", image_h, image_w, patch_size, patch_size));
  if (heads > 0 && dim % heads != 0)
    bad.push_back(fmt::format("dim {} is not divisible by heads {}", dim, heads));
  if (pos_embed == PosEmbed::sincos && dim % 4 != 0)
    bad.push_back(fmt::format("sincos position embedding needs dim divisible by 4 (got {})", dim));
  for (auto [name, p] : {std::pair{"dropout", dropout}, {"emb_dropout", emb_dropout},
                         {"attn_dropout", attn_dropout}, {"drop_path", drop_path}})
    if (!(p >= 0.0 && p < 1.0)) bad.push_back(fmt::format("{} must be in [0, 1) (got {})", name, p));
  if (pool == Pool::cls && !class_token) bad.push_back("pool cls needs the class token (class_token: true)");
  if (!(layer_norm_eps > 0.0)) bad.push_back(fmt::format("layer_norm_eps must be positive (got {})", layer_norm_eps));
  TESSERA_CHECK(bad.empty(), ConfigError, "ViT: {}", fmt::join(bad, "; "));
}

ViTConfig ViTConfig::preset(const std::string& name) {
  ViTConfig c;  // 224x224, patch 16, 3 channels, 1000 classes
  if (name == "vit-tiny/16") {
    c.dim = 192, c.depth = 12, c.heads = 3, c.mlp_dim = 768;
  } else if (name == "vit-small/16") {
    c.dim = 384, c.depth = 12, c.heads = 6, c.mlp_dim = 1536;
  } else if (name == "vit-base/16") {
    c.dim = 768, c.depth = 12, c.heads = 12, c.mlp_dim = 3072;
  } else if (name == "seed-mnist") {  // the classic tutorial's MNIST model
    c.image_h = c.image_w = 28, c.patch_size = 7, c.channels = 1, c.num_classes = 10;
    c.dim = 512, c.depth = 1, c.heads = 2, c.mlp_dim = 1024;
  } else {
    throw ConfigError(fmt::format("ViT: unknown preset '{}' (known: {})", name, fmt::join(preset_names(), ", ")));
  }
  return c;
}

std::vector<std::string> ViTConfig::preset_names() {
  return {"vit-tiny/16", "vit-small/16", "vit-base/16", "seed-mnist"};
}

namespace {

const ViTConfig& validated(const ViTConfig& c) {
  c.validate();
  return c;
}

}  // namespace

ViT::ViT(const ViTConfig& cfg, Generator& gen)
    : config(validated(cfg)),
      patch_embed(register_module("patch_embed", nn::PatchEmbedding(cfg.image_h, cfg.image_w, cfg.patch_size,
                                                                    cfg.channels, cfg.dim))),
      pos_drop(register_module("pos_drop", nn::Dropout(cfg.emb_dropout))),
      blocks(register_module("blocks", nn::Sequential())),
      norm(make_norm(cfg)),
      head(register_module("head", nn::Linear(cfg.dim, cfg.num_classes))) {
  const std::int64_t prefix = cfg.class_token ? 1 : 0, tokens = cfg.num_patches() + prefix;
  if (cfg.class_token) {
    cls_token = register_parameter("cls_token", zeros({1, 1, cfg.dim}));
    nn::init::normal_(cls_token, 0.0, 1e-6, gen);
  }
  if (cfg.pos_embed == PosEmbed::learned) {
    pos_embed = register_parameter("pos_embed", zeros({1, tokens, cfg.dim}));
    nn::init::trunc_normal_(pos_embed, 0.02, -2.0, 2.0, gen);
  } else {
    // The class token's position code is zero; patches get their (row, column) code.
    const Tensor grid = nn::sincos_position_embedding(patch_embed.grid_h(), patch_embed.grid_w(), cfg.dim);
    const Tensor table = cfg.class_token ? concat({zeros({1, cfg.dim}), grid}, 0) : grid;
    pos_embed = register_buffer("pos_embed", table.reshape({1, tokens, cfg.dim}));
  }
  if (cfg.fc_norm) fc_norm = &register_module("fc_norm", nn::LayerNorm(cfg.dim, {.eps = cfg.layer_norm_eps}));
  for (std::int64_t i = 0; i < cfg.depth; ++i) {
    const double dp = cfg.depth > 1 ? cfg.drop_path * static_cast<double>(i) / static_cast<double>(cfg.depth - 1) : 0.0;
    blocks.push_back(nn::EncoderBlock(cfg.dim, cfg.heads, cfg.mlp_dim,
                                      {.norm = cfg.norm, .dropout = cfg.dropout, .attn_dropout = cfg.attn_dropout,
                                       .drop_path = dp, .eps = cfg.layer_norm_eps}));
  }
  // timm's init_weights_vit_timm: every Linear (not the patch convolution) gets
  // trunc_normal(0.02) and a zero bias; LayerNorms start at (1, 0) already.
  apply([&gen](nn::Module& m) {
    if (auto* lin = dynamic_cast<nn::Linear*>(&m)) {
      nn::init::trunc_normal_(lin->weight, 0.02, -2.0, 2.0, gen);
      if (lin->bias.defined()) nn::init::zeros_(lin->bias);
    }
  });
}

nn::UnaryModule& ViT::make_norm(const ViTConfig& c) {
  if (c.norm == nn::NormPlacement::pre && !c.fc_norm)
    return register_module("norm", nn::LayerNorm(c.dim, {.eps = c.layer_norm_eps}));
  return register_module("norm", nn::Identity());
}

Tensor ViT::features(const Tensor& images) {
  const std::int64_t B = images.size(0);
  const Tensor x = norm(blocks(tokens(images)));  // (B, N + 1, D), or (B, N, D) without the class token
  const Tensor pooled = config.pool == Pool::cls ? slice(x, 1, 0, 1).reshape({B, config.dim})
                                                 : mean(slice(x, 1, config.class_token ? 1 : 0, x.size(1)), {1});
  return fc_norm ? (*fc_norm)(pooled) : pooled;
}

Tensor ViT::forward(const Tensor& images) { return head(features(images)); }

Tensor ViT::tokens(const Tensor& images) {
  check_images("ViT", images, {config.channels, config.image_h, config.image_w, config.num_classes});
  const std::int64_t B = images.size(0);
  const Tensor patches = patch_embed(images);  // (B, N, D)
  const Tensor x = config.class_token ? concat({expand(cls_token, {B, 1, config.dim}), patches}, 1) : patches;
  return pos_drop(x + pos_embed);
}

std::vector<Tensor> ViT::attention_maps(const Tensor& images) {
  Tensor x = tokens(images);
  std::vector<Tensor> maps(static_cast<std::size_t>(config.depth));
  for (std::int64_t i = 0; i < config.depth; ++i)
    x = static_cast<nn::EncoderBlock&>(blocks[static_cast<std::size_t>(i)]).forward(x, {}, &maps[static_cast<std::size_t>(i)]);
  return maps;
}

std::optional<std::int64_t> block_index(std::string_view name) {
  constexpr std::string_view kPrefix = "blocks.";
  if (!name.starts_with(kPrefix)) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  const std::size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot > 6) return std::nullopt;
  std::int64_t i = 0;
  for (const char c : name.substr(0, dot)) {
    if (c < '0' || c > '9') return std::nullopt;
    i = 10 * i + (c - '0');
  }
  return i;
}

Tensor attention_rollout(const std::vector<Tensor>& maps, std::int64_t prefix) {
  TESSERA_CHECK(!maps.empty() && prefix >= 0, Error, "attention_rollout: no attention maps");
  const Shape& s = maps.front().shape();
  TESSERA_CHECK(s.size() == 4 && s[2] == s[3] && s[2] > prefix, ShapeError,
                "attention_rollout: maps must be (B, H, T, T) with T > {}, got {}", prefix, shape_str(s));
  const std::int64_t B = s[0], H = s[1], T = s[2], N = T - prefix;
  std::vector<double> rollout;  // (B, T, T), from the input tokens to the last block's
  for (const Tensor& map : maps) {
    TESSERA_CHECK(map.shape() == s, ShapeError, "attention_rollout: maps of {} and {}", shape_str(s),
                  shape_str(map.shape()));
    const std::vector<double> a = map.to_vector<double>();
    std::vector<double> mixed(static_cast<std::size_t>(B * T * T));
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = 0; i < T; ++i)
        for (std::int64_t j = 0; j < T; ++j) {
          double mean = 0;
          for (std::int64_t h = 0; h < H; ++h) mean += a[static_cast<std::size_t>(((b * H + h) * T + i) * T + j)];
          mixed[static_cast<std::size_t>((b * T + i) * T + j)] = 0.5 * mean / static_cast<double>(H) + (i == j ? 0.5 : 0.0);
        }
    if (rollout.empty()) {
      rollout = std::move(mixed);
      continue;
    }
    std::vector<double> next(mixed.size(), 0.0);  // mixed @ rollout, per image
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = 0; i < T; ++i)
        for (std::int64_t k = 0; k < T; ++k) {
          const double m = mixed[static_cast<std::size_t>((b * T + i) * T + k)];
          for (std::int64_t j = 0; j < T; ++j)
            next[static_cast<std::size_t>((b * T + i) * T + j)] += m * rollout[static_cast<std::size_t>((b * T + k) * T + j)];
        }
    rollout = std::move(next);
  }
  std::vector<double> out(static_cast<std::size_t>(B * N), 0.0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t j = 0; j < N; ++j) {
      double v = 0;
      if (prefix > 0) {
        v = rollout[static_cast<std::size_t>((b * T) * T + prefix + j)];  // the class token's row
      } else {
        for (std::int64_t i = 0; i < T; ++i) v += rollout[static_cast<std::size_t>((b * T + i) * T + j)];
        v /= static_cast<double>(T);
      }
      out[static_cast<std::size_t>(b * N + j)] = v;
    }
  return from_vector(out, {B, N}, {.dtype = DType::f64});
}

// ---------------------------------------------------------------- position tables

namespace {

// One output sample of a 1-D resize: the input indices it reads and their weights.
using Taps = std::vector<std::pair<std::int64_t, double>>;

// PyTorch's bicubic resize weights along one axis (align_corners=False; aten's UpSample).
std::vector<Taps> bicubic_taps(std::int64_t in, std::int64_t out, bool antialias) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  std::vector<Taps> taps(static_cast<std::size_t>(out));
  for (std::int64_t i = 0; i < out; ++i) {
    Taps& t = taps[static_cast<std::size_t>(i)];
    if (!antialias) {
      constexpr double A = -0.75;
      const auto near = [](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };  // |x| <= 1
      const auto far = [](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
      const double src = scale * (static_cast<double>(i) + 0.5) - 0.5;
      const auto base = static_cast<std::int64_t>(std::floor(src));
      const double f = src - static_cast<double>(base);
      const double w[4] = {far(f + 1), near(f), near(1 - f), far(2 - f)};
      for (int k = 0; k < 4; ++k) t.emplace_back(std::clamp<std::int64_t>(base - 1 + k, 0, in - 1), w[k]);
      continue;
    }
    constexpr double a = -0.5;
    const auto filter = [](double x) {
      x = std::abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0.0;
    };
    const double support = scale >= 1 ? 2 * scale : 2.0, inv = scale >= 1 ? 1 / scale : 1.0;
    const double center = scale * (static_cast<double>(i) + 0.5);
    const std::int64_t lo = std::max<std::int64_t>(static_cast<std::int64_t>(center - support + 0.5), 0);
    const std::int64_t hi = std::min<std::int64_t>(static_cast<std::int64_t>(center + support + 0.5), in);
    double total = 0;
    for (std::int64_t j = lo; j < hi; ++j) {
      t.emplace_back(j, filter((static_cast<double>(j) - center + 0.5) * inv));
      total += t.back().second;
    }
    if (total != 0)
      for (auto& [j, w] : t) w /= total;
  }
  return taps;
}

}  // namespace

Tensor resample_position_table(const Tensor& table, std::int64_t prefix, std::array<std::int64_t, 2> from,
                               std::array<std::int64_t, 2> to, bool antialias) {
  TESSERA_CHECK(table.dim() == 3 && table.size(0) == 1 && prefix >= 0 && from[0] > 0 && from[1] > 0 &&
                    table.size(1) == prefix + from[0] * from[1] && to[0] > 0 && to[1] > 0,
                ShapeError, "resample_position_table: table {} is not (1, {} + {}x{}, D)", shape_str(table.shape()),
                prefix, from[0], from[1]);
  const std::int64_t D = table.size(2), H = from[0], W = from[1], H2 = to[0], W2 = to[1];
  const std::vector<double> in = table.to_vector<double>();  // (1, prefix + H W, D)
  const std::vector<Taps> rows = bicubic_taps(H, H2, antialias), cols = bicubic_taps(W, W2, antialias);
  std::vector<double> out(static_cast<std::size_t>((prefix + H2 * W2) * D));
  std::copy_n(in.begin(), prefix * D, out.begin());
  const auto at = [&](std::int64_t y, std::int64_t x) { return static_cast<std::size_t>((prefix + y * W + x) * D); };
  std::vector<double> across(static_cast<std::size_t>(H * W2 * D));  // (H, W2, D): the columns resized first
  for (std::int64_t y = 0; y < H; ++y)
    for (std::int64_t x = 0; x < W2; ++x)
      for (const auto& [j, w] : cols[static_cast<std::size_t>(x)])
        for (std::int64_t d = 0; d < D; ++d)
          across[static_cast<std::size_t>((y * W2 + x) * D + d)] += w * in[at(y, j) + static_cast<std::size_t>(d)];
  for (std::int64_t y = 0; y < H2; ++y)
    for (std::int64_t x = 0; x < W2; ++x)
      for (const auto& [i, w] : rows[static_cast<std::size_t>(y)])
        for (std::int64_t d = 0; d < D; ++d)
          out[static_cast<std::size_t>((prefix + y * W2 + x) * D + d)] +=
              w * across[static_cast<std::size_t>((i * W2 + x) * D + d)];
  return from_vector(out, {1, prefix + H2 * W2, D}, {.dtype = table.dtype()});
}

// ---------------------------------------------------------------- registration

ModelSpec vit_model_spec() {
  // The defaults of the config reference: a small ViT for 28x28 grey images (MNIST).
  ViTConfig defaults;
  defaults.image_h = defaults.image_w = 28;
  defaults.patch_size = 4;
  defaults.channels = 1;
  defaults.num_classes = 10;
  defaults.dim = 64;
  defaults.depth = 6;
  defaults.heads = 4;
  defaults.mlp_dim = 128;

  ModelSchema<ViTConfig> schema;
  schema.image_size("image_size", &ViTConfig::image_h, &ViTConfig::image_w,
                    "Input height and width in pixels; one int for square images.")
      .integer("patch_size", &ViTConfig::patch_size, 1, 8192, "Side of the square patches the image is cut into.")
      .integer("channels", &ViTConfig::channels, 1, 1024, "Input channels (1 for grey, 3 for RGB).")
      .integer("num_classes", &ViTConfig::num_classes, 1, 1 << 20, "Number of output classes.")
      .integer("dim", &ViTConfig::dim, 1, 1 << 16, "Token width (embedding dimension).")
      .integer("depth", &ViTConfig::depth, 1, 1024, "Number of transformer blocks.")
      .integer("heads", &ViTConfig::heads, 1, 1024, "Attention heads per block.")
      .integer("mlp_dim", &ViTConfig::mlp_dim, 1, 1 << 18, "Hidden width of each block's MLP.")
      .choice("pool", &ViTConfig::pool, {{"cls", Pool::cls}, {"mean", Pool::mean}},
              "Classify from the cls token, or from the mean of the patch tokens.")
      .boolean("class_token", &ViTConfig::class_token,
               "A learned class token before the patch tokens (false needs pool: mean).")
      .boolean("fc_norm", &ViTConfig::fc_norm,
               "The final LayerNorm after pooling instead of before it (timm's fc_norm).")
      .rate("dropout", &ViTConfig::dropout, "Dropout on the attention output projection and inside the MLP.")
      .rate("emb_dropout", &ViTConfig::emb_dropout, "Dropout on the token embeddings (after adding positions).")
      .rate("attn_dropout", &ViTConfig::attn_dropout, "Dropout on the attention weights.")
      .rate("drop_path", &ViTConfig::drop_path,
            "Stochastic depth: drop rate of the residual branches, rising linearly to this value at the last block.")
      .choice("norm", &ViTConfig::norm, {{"pre", nn::NormPlacement::pre}, {"post", nn::NormPlacement::post}},
              "LayerNorm placement: before (pre) or after (post) each residual branch.")
      .choice("pos_embed", &ViTConfig::pos_embed,
              {{"learned", PosEmbed::learned}, {"sincos", PosEmbed::sincos}},
              "Position embedding: a learned table, or fixed 2-d sin-cos.")
      .number("layer_norm_eps", &ViTConfig::layer_norm_eps, 0.0, true, 1.0, false, "Epsilon of every LayerNorm.");

  std::vector<std::pair<std::string, ViTConfig>> presets;
  for (const std::string& name : ViTConfig::preset_names()) presets.emplace_back(name, ViTConfig::preset(name));
  return model_spec<ViTConfig>(
      "vit", "The Vision Transformer (patches, class token, pre- or post-norm encoder blocks, MLP head).", defaults,
      schema,
      [](const ViTConfig& c) {
        return ModelInput{c.channels, c.image_h, c.image_w, c.num_classes};
      },
      [](const ViTConfig& c, Generator& init) -> std::unique_ptr<nn::UnaryModule> {
        return std::make_unique<models::ViT>(c, init);
      },
      [](const ViTConfig& c) {
        // The rules that involve two keys, in the config's terms; each key's own range is its codec's.
        std::vector<std::string> bad;
        if (c.image_h % c.patch_size != 0 || c.image_w % c.patch_size != 0)
          bad.push_back(fmt::format("model.image_size {}x{} is not divisible into model.patch_size {} patches",
                                    c.image_h, c.image_w, c.patch_size));
        if (c.dim % c.heads != 0)
          bad.push_back(fmt::format("model.dim {} is not divisible by model.heads {}", c.dim, c.heads));
        if (c.pos_embed == PosEmbed::sincos && c.dim % 4 != 0)
          bad.push_back(fmt::format("model.pos_embed sincos needs model.dim divisible by 4, got {}", c.dim));
        if (c.pool == Pool::cls && !c.class_token)
          bad.push_back("model.pool cls needs the class token (model.class_token: true, or model.pool: mean)");
        TESSERA_CHECK(bad.empty(), ConfigError, "{}", fmt::join(bad, "; "));
        c.validate();
      },
      std::move(presets));
}

}  // namespace tessera::models
