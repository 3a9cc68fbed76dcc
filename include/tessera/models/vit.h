// The Vision Transformer (Dosovitskiy et al., 2021): patches -> linear embedding -> class
// token + position embedding -> N encoder blocks -> head on the class token (or the mean of
// the patch tokens). Parameter names follow timm's VisionTransformer.
#pragma once

#include <array>
#include <optional>
#include <string_view>

#include <string>
#include <vector>

#include "tessera/models/registry.h"
#include "tessera/nn/transformer.h"

namespace tessera::models {

enum class Pool { cls, mean };
enum class PosEmbed { learned, sincos };

struct ViTConfig {
  std::int64_t image_h = 224, image_w = 224;
  std::int64_t patch_size = 16;
  std::int64_t channels = 3;
  std::int64_t num_classes = 1000;
  std::int64_t dim = 768;
  std::int64_t depth = 12;
  std::int64_t heads = 12;
  std::int64_t mlp_dim = 3072;
  Pool pool = Pool::cls;
  bool class_token = true;  // a learned class token before the patch tokens (timm's class_token)
  bool fc_norm = false;     // the final LayerNorm after pooling instead of before (timm's fc_norm)
  double dropout = 0.0;       // in the MLPs and after attention projections
  double emb_dropout = 0.0;   // after adding the position embedding
  double attn_dropout = 0.0;  // on attention weights
  double drop_path = 0.0;     // stochastic depth, rising linearly to this over the blocks
  nn::NormPlacement norm = nn::NormPlacement::pre;
  PosEmbed pos_embed = PosEmbed::learned;
  double layer_norm_eps = 1e-6;

  std::int64_t num_patches() const { return (image_h / patch_size) * (image_w / patch_size); }
  // Throws ConfigError naming every bad combination.
  void validate() const;

  // vit-tiny/16, vit-small/16, vit-base/16 (224x224, 1000 classes, as timm) and seed-mnist.
  static ViTConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();
};

std::string to_string(Pool p);
std::string to_string(PosEmbed p);
std::string to_string(nn::NormPlacement n);

class ViT : public nn::UnaryModule {
 public:
  // Initialised as timm: truncated normal (std 0.02) for linear weights and the learned
  // position embedding, zeros for biases, ones for LayerNorm weights, normal (std 1e-6)
  // for the class token; the patch projection keeps PyTorch's default.
  explicit ViT(const ViTConfig& config, Generator& gen = default_generator());
  std::string type_name() const override { return "ViT"; }

  // images (B, C, H, W) -> logits (B, num_classes)
  Tensor forward(const Tensor& images) override;
  // images -> pooled features (B, D), before the head
  Tensor features(const Tensor& images);
  // images -> the tokens the blocks take: (class token and) patches plus positions, (B, T, D)
  Tensor tokens(const Tensor& images);
  // The attention weights of every block, first to last: (B, H, T, T) each, T the tokens
  // (the class token first, when there is one). Call in eval mode, without recording.
  std::vector<Tensor> attention_maps(const Tensor& images);

  ViTConfig config;
  nn::PatchEmbedding& patch_embed;
  Tensor cls_token;  // (1, 1, D); undefined without a class token
  Tensor pos_embed;  // (1, N + 1, D), (1, N, D) without a class token: a parameter (learned) or a buffer (sincos)
  nn::Dropout& pos_drop;
  nn::Sequential& blocks;
  nn::UnaryModule& norm;  // LayerNorm (pre-norm) or Identity (post-norm: blocks end normalised; fc_norm)
  nn::LayerNorm* fc_norm = nullptr;  // after pooling, with config.fc_norm
  nn::Linear& head;

 private:
  nn::UnaryModule& make_norm(const ViTConfig& c);
};

// A position table (1, prefix + from_h * from_w, D) for another patch grid (fine-tuning at
// another image size): the prefix rows (the class token's) kept, the grid resized as a
// (D, H, W) image, bicubic with align_corners=False as PyTorch's F.interpolate. With
// antialias (timm's default), PyTorch's antialiased kernel: Keys' a = -0.5, widened by the
// scale when shrinking; without, the plain a = -0.75 kernel.
Tensor resample_position_table(const Tensor& table, std::int64_t prefix, std::array<std::int64_t, 2> from,
                               std::array<std::int64_t, 2> to, bool antialias = true);

// The block a parameter belongs to by its timm name: "blocks.3.attn.qkv.weight" -> 3; none
// for the embeddings, the final norm and the head.
std::optional<std::int64_t> block_index(std::string_view name);

// Attention rollout (Abnar & Zuidema, 2020): how much each patch flows into the prediction.
// Each block's weights, averaged over heads, mixed half and half with the identity (the
// residual path), multiplied from the first block to the last; then the class token's row
// over the patches (prefix 1), or without a class token the mean of the patch rows.
// maps: (B, H, prefix + N, prefix + N) per block -> (B, N), each row summing to at most 1.
Tensor attention_rollout(const std::vector<Tensor>& maps, std::int64_t prefix);

// The ViT's entry in the model registry (model.name: vit): its config section, presets and builder.
ModelSpec vit_model_spec();

}  // namespace tessera::models
