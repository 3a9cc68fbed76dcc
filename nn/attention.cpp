#include "tessera/nn/attention.h"

#include <cmath>
#include <limits>

namespace tessera::nn {

namespace {
std::int64_t validated_heads(std::int64_t dim, std::int64_t heads) {
  TESSERA_CHECK(heads > 0 && dim > 0 && dim % heads == 0, ShapeError,
                "MultiHeadSelfAttention: dim {} is not divisible by {} heads", dim, heads);
  return heads;
}
}  // namespace

MultiHeadSelfAttention::MultiHeadSelfAttention(std::int64_t dim, std::int64_t heads_,
                                               MultiHeadSelfAttentionOptions opts)
    : heads(validated_heads(dim, heads_)),
      head_dim(heads_ > 0 ? dim / heads_ : 0),
      scale(head_dim > 0 ? 1.0 / std::sqrt(static_cast<double>(head_dim)) : 0.0),
      attn_dropout(opts.attn_dropout),
      qkv(register_module("qkv", Linear(dim, 3 * dim, {.bias = opts.qkv_bias}))),
      proj(register_module("proj", Linear(dim, dim))),
      proj_drop(register_module("proj_drop", Dropout(opts.proj_dropout))) {
  TESSERA_CHECK(attn_dropout >= 0 && attn_dropout < 1, Error,
                "MultiHeadSelfAttention: attn_dropout must be in [0, 1), got {}", attn_dropout);
}

std::pair<Tensor, Tensor> MultiHeadSelfAttention::forward_with_weights(const Tensor& x, const AttentionMask& mask) {
  Tensor weights;
  Tensor y = attend(x, mask, &weights);
  note_output(*this, y);
  return {y, weights};
}

Tensor MultiHeadSelfAttention::forward(const Tensor& x, const AttentionMask& mask) { return attend(x, mask, nullptr); }

Tensor MultiHeadSelfAttention::attend(const Tensor& x, const AttentionMask& mask, Tensor* weights) {
  TESSERA_CHECK(x.dim() == 3 && x.size(2) == heads * head_dim, ShapeError,
                "MultiHeadSelfAttention: input {} must be (B, N, {})", shape_str(x.shape()), heads * head_dim);
  const Tensor mixed = self_attention(qkv(x), heads, scale,
                                      {.dropout = attn_dropout, .training = is_training(), .weights = weights,
                                       .key_padding_mask = mask.key_padding, .causal = mask.causal});
  return proj_drop(proj(mixed));
}

namespace {
std::int64_t qk_channels_for(std::int64_t channels, const SelfAttention2dOptions& o) {
  TESSERA_CHECK(channels > 0 && o.qk_channels >= 0, ShapeError,
                "SelfAttention2d: channels must be positive (got {}), qk_channels non-negative (got {})",
                channels, o.qk_channels);
  return o.qk_channels > 0 ? o.qk_channels : std::max<std::int64_t>(1, channels / 8);
}
}  // namespace

SelfAttention2d::SelfAttention2d(std::int64_t channels, SelfAttention2dOptions opts)
    : query(register_module("query", Conv2d(channels, qk_channels_for(channels, opts), 1))),
      key(register_module("key", Conv2d(channels, qk_channels_for(channels, opts), 1))),
      value(register_module("value", Conv2d(channels, channels, 1))) {
  gamma = register_parameter("gamma", zeros({1}));
}

std::pair<Tensor, Tensor> SelfAttention2d::forward_with_attention(const Tensor& x) {
  TESSERA_CHECK(x.dim() == 4 && x.size(1) == value.weight.size(0), ShapeError,
                "SelfAttention2d: input {} must be (B, {}, H, W)", shape_str(x.shape()), value.weight.size(0));
  const std::int64_t B = x.size(0), C = x.size(1), N = x.size(2) * x.size(3);
  const Tensor q = query(x).reshape({B, -1, N});               // (B, C', N)
  const Tensor k = key(x).reshape({B, -1, N});                 // (B, C', N)
  const Tensor v = value(x).reshape({B, C, N});                // (B, C, N)
  const Tensor attn = softmax(matmul(q, k, true, false), -1);  // (B, N, N): query i over keys j
  const Tensor o = matmul(v, attn, false, true);               // (B, C, N): o_i = sum_j a_ij v_j
  Tensor y = gamma * o.reshape(x.shape()) + x;
  note_output(*this, y);
  return {y, attn};
}

Tensor SelfAttention2d::forward(const Tensor& x) { return forward_with_attention(x).first; }

WordRegionAttention::WordRegionAttention(std::int64_t word_dim, std::int64_t region_dim)
    : word_proj(register_module("word_proj", Linear(word_dim, region_dim, {.bias = false}))) {}

WordRegionAttention::Output WordRegionAttention::forward(const Tensor& regions, const Tensor& words,
                                                         const Tensor& mask) {
  const std::int64_t R = word_proj.weight.size(0), W = word_proj.weight.size(1);
  TESSERA_CHECK(regions.dim() == 3 && regions.size(1) == R && words.dim() == 3 && words.size(1) == W &&
                    words.size(0) == regions.size(0),
                ShapeError, "WordRegionAttention: regions {} must be (B, {}, N) and words {} (B, {}, T)",
                shape_str(regions.shape()), R, shape_str(words.shape()), W);
  const std::int64_t B = regions.size(0), T = words.size(2);
  const Tensor projected = word_proj(words.transpose(1, 2));        // (B, T, R)
  Tensor scores = matmul(regions, projected, true, true);          // (B, N, T)
  if (mask.defined()) {
    TESSERA_CHECK(mask.dim() == 2 && mask.size(0) == B && mask.size(1) == T, ShapeError,
                  "WordRegionAttention: mask {} must be (B, T) = ({}, {})", shape_str(mask.shape()), B, T);
    // Every sample needs a word to attend to; an all-masked row would be 0/0.
    const std::vector<double> m = mask.detach().to(DType::f64).to_vector<double>();
    for (std::int64_t b = 0; b < B; ++b) {
      bool any = false;
      for (std::int64_t t = 0; t < T; ++t) any |= m[b * T + t] == 0.0;
      TESSERA_CHECK(any, ShapeError, "WordRegionAttention: every word of sample {} is masked", b);
    }
    const Tensor minus_inf = full({}, -std::numeric_limits<double>::infinity(), {.dtype = scores.dtype(), .device = scores.device()});
    scores = where(mask.reshape({B, 1, T}), minus_inf, scores);
  }
  const Tensor attention = softmax(scores, -1);                     // (B, N, T)
  const Tensor context = matmul(projected, attention, true, true);  // (B, R, N)
  return {context, attention};
}

}  // namespace tessera::nn
