// The Vision Transformer's registration: its config section (model.*), presets and builder.
// The only file of train/ that knows the ViT.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/models/vit.h"
#include "tessera/train/model_registry.h"

namespace tessera::train {

ModelSpec vit_model_spec() {
  using models::ViTConfig;
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
      .choice("pool", &ViTConfig::pool, {{"cls", models::Pool::cls}, {"mean", models::Pool::mean}},
              "Classify from the cls token, or from the mean of the patch tokens.")
      .rate("dropout", &ViTConfig::dropout, "Dropout on the attention output projection and inside the MLP.")
      .rate("emb_dropout", &ViTConfig::emb_dropout, "Dropout on the token embeddings (after adding positions).")
      .rate("attn_dropout", &ViTConfig::attn_dropout, "Dropout on the attention weights.")
      .rate("drop_path", &ViTConfig::drop_path,
            "Stochastic depth: drop rate of the residual branches, rising linearly to this value at the last block.")
      .choice("norm", &ViTConfig::norm, {{"pre", nn::NormPlacement::pre}, {"post", nn::NormPlacement::post}},
              "LayerNorm placement: before (pre) or after (post) each residual branch.")
      .choice("pos_embed", &ViTConfig::pos_embed,
              {{"learned", models::PosEmbed::learned}, {"sincos", models::PosEmbed::sincos}},
              "Position embedding: a learned table, or fixed 2-d sin-cos.")
      .number_in("layer_norm_eps", &ViTConfig::layer_norm_eps, 0.0, true, 1.0, false, "Epsilon of every LayerNorm.");

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
        if (c.pos_embed == models::PosEmbed::sincos && c.dim % 4 != 0)
          bad.push_back(fmt::format("model.pos_embed sincos needs model.dim divisible by 4, got {}", c.dim));
        TESSERA_CHECK(bad.empty(), ConfigError, "{}", fmt::join(bad, "; "));
        c.validate();
      },
      std::move(presets));
}

}  // namespace tessera::train
