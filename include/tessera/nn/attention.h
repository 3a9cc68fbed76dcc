// Attention layers: the Transformer's multi-head self-attention, and the two attention
// layers that preceded ViT in vision: SAGAN's 2-D self-attention and AttnGAN's word-region
// attention. Letters: B batch, N tokens/regions, T words, D width, H heads, C channels.
#pragma once

#include "tessera/nn/layers.h"

namespace tessera::nn {

struct MultiHeadSelfAttentionOptions {
  bool qkv_bias = true;
  double attn_dropout = 0.0;  // on the attention weights
  double proj_dropout = 0.0;  // on the output projection
};

// Which keys each query may attend to. key_padding (B, N): non-zero marks a padding token
// that no query attends to; causal: query i attends to keys j <= i only. A query left with
// no key attends to nothing (its output is zero).
struct AttentionMask {
  Tensor key_padding;
  bool causal = false;
  bool empty() const { return !key_padding.defined() && !causal; }
};

// x (B, N, D) -> (B, N, D). One fused projection to q, k, v (qkv: D -> 3D), scores scaled by
// 1/sqrt(head_dim), softmax over keys, then the output projection (proj: D -> D).
class MultiHeadSelfAttention : public UnaryModule {
 public:
  MultiHeadSelfAttention(std::int64_t dim, std::int64_t heads, MultiHeadSelfAttentionOptions opts = {});
  std::string type_name() const override { return "MultiHeadSelfAttention"; }
  Tensor forward(const Tensor& x) override { return forward(x, {}); }
  Tensor forward(const Tensor& x, const AttentionMask& mask);
  // Also returns the attention weights (B, H, N, N), before attention dropout.
  std::pair<Tensor, Tensor> forward_with_weights(const Tensor& x, const AttentionMask& mask = {});

  std::int64_t heads, head_dim;
  double scale;
  double attn_dropout;
  Linear& qkv;
  Linear& proj;
  Dropout& proj_drop;

 private:
  Tensor attend(const Tensor& x, const AttentionMask& mask, Tensor* weights);
};

struct SelfAttention2dOptions {
  std::int64_t qk_channels = 0;  // channels of query and key; 0: max(1, C / 8) as in SAGAN
};

// SAGAN (Zhang et al., 2019): x (B, C, H, W) -> gamma * o + x, where o mixes the values of
// all N = H * W positions, weighted by softmax over keys of query . key. query and key are
// 1x1 convolutions to qk_channels, value a 1x1 convolution to C; gamma starts at 0, so the
// layer starts as the identity.
class SelfAttention2d : public UnaryModule {
 public:
  explicit SelfAttention2d(std::int64_t channels, SelfAttention2dOptions opts = {});
  std::string type_name() const override { return "SelfAttention2d"; }
  Tensor forward(const Tensor& x) override;
  // Also returns the attention map (B, N, N): row i holds query position i's weights.
  std::pair<Tensor, Tensor> forward_with_attention(const Tensor& x);

  Conv2d& query;
  Conv2d& key;
  Conv2d& value;
  Tensor gamma;  // (1)
};

// AttnGAN (Xu et al., 2018): for each image region, a context vector from the words.
// regions (B, R, N) (R = region width, N regions), words (B, W, T) (W = word width) and an
// optional mask (B, T) whose non-zero entries mark padding words. Words are projected to R
// by a bias-free linear map; each region attends over the unmasked words.
class WordRegionAttention : public Module {
 public:
  WordRegionAttention(std::int64_t word_dim, std::int64_t region_dim);
  std::string type_name() const override { return "WordRegionAttention"; }
  struct Output {
    Tensor context;    // (B, R, N): per region, the attention-weighted projected words
    Tensor attention;  // (B, N, T): per region, softmax over the words
  };
  Output forward(const Tensor& regions, const Tensor& words, const Tensor& mask = {});

  Linear& word_proj;  // weight (R, W)
};

}  // namespace tessera::nn
