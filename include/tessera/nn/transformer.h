// Transformer building blocks: the MLP, the encoder block in both norm placements, patch
// embedding and 2-D sin-cos position codes. Letters: B batch, N tokens, D width.
#pragma once

#include "tessera/nn/attention.h"

namespace tessera::nn {

struct MlpOptions {
  double dropout = 0.0;
  GeluApprox approx = GeluApprox::erf;
};

// fc1 (D -> hidden), GELU, dropout, fc2 (hidden -> out), dropout.
class Mlp : public UnaryModule {
 public:
  Mlp(std::int64_t in, std::int64_t hidden, std::int64_t out, MlpOptions opts = {});
  std::string type_name() const override { return "Mlp"; }
  Tensor forward(const Tensor& x) override;

  Linear& fc1;
  GELU& act;
  Dropout& drop1;
  Linear& fc2;
  Dropout& drop2;
};

enum class NormPlacement {
  pre,   // ViT: x + Attn(LN(x)), then x + MLP(LN(x))
  post,  // the original Transformer: LN(x + Attn(x)), then LN(x + MLP(x))
};

struct EncoderBlockOptions {
  NormPlacement norm = NormPlacement::pre;
  double dropout = 0.0;       // after the MLP's layers and the attention projection
  double attn_dropout = 0.0;  // on the attention weights
  double drop_path = 0.0;     // stochastic depth on both residual branches
  double eps = 1e-6;          // LayerNorm epsilon
  bool qkv_bias = true;
};

// x (B, N, D) -> (B, N, D).
class EncoderBlock : public UnaryModule {
 public:
  EncoderBlock(std::int64_t dim, std::int64_t heads, std::int64_t mlp_dim, EncoderBlockOptions opts = {});
  std::string type_name() const override { return "EncoderBlock"; }
  Tensor forward(const Tensor& x) override { return forward(x, {}); }
  // `attention`, when given, receives the attention weights (B, H, N, N) of this block.
  Tensor forward(const Tensor& x, const AttentionMask& mask, Tensor* attention = nullptr);

  NormPlacement placement;
  LayerNorm& norm1;
  MultiHeadSelfAttention& attn;
  DropPath& drop_path1;
  LayerNorm& norm2;
  Mlp& mlp;
  DropPath& drop_path2;
};

// Cuts (B, C, H, W) into non-overlapping P x P patches and embeds each: -> (B, N, D) with
// N = (H/P)(W/P) in row-major patch order. The parameters are a convolution's (proj.weight
// (D, C, P, P), proj.bias (D)), as in timm; the forward computes the same result as the
// strided convolution by a patch rearrangement and one matrix product.
class PatchEmbedding : public UnaryModule {
 public:
  PatchEmbedding(std::int64_t image_h, std::int64_t image_w, std::int64_t patch, std::int64_t channels,
                 std::int64_t dim);
  std::string type_name() const override { return "PatchEmbedding"; }
  Tensor forward(const Tensor& x) override;

  std::int64_t image_h, image_w, patch, channels, dim;
  std::int64_t grid_h() const { return image_h / patch; }
  std::int64_t grid_w() const { return image_w / patch; }
  std::int64_t num_patches() const { return grid_h() * grid_w(); }
  Conv2d& proj;
};

// (B, C, H, W) -> (B, (H/P)(W/P), C*P*P): each row one patch, its values in (C, P, P) order,
// so the product with a (D, C, P, P) filter bank reshaped to (D, C*P*P) is the convolution.
Tensor patchify(const Tensor& x, std::int64_t patch);

// Fixed 2-D sin-cos position codes for a grid_h x grid_w patch grid (MAE, He et al. 2022):
// (grid_h * grid_w, dim); the first half of the channels encodes the row, the second half
// the column, each as [sin(pos * w_k), cos(pos * w_k)] with w_k = 10000^(-k / (dim/4)).
// dim must be divisible by 4.
Tensor sincos_position_embedding(std::int64_t grid_h, std::int64_t grid_w, std::int64_t dim);

}  // namespace tessera::nn
