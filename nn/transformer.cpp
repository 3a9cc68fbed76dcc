#include "tessera/nn/transformer.h"

#include <cmath>

namespace tessera::nn {

Mlp::Mlp(std::int64_t in, std::int64_t hidden, std::int64_t out, MlpOptions opts)
    : fc1(register_module("fc1", Linear(in, hidden))),
      act(register_module("act", GELU(opts.approx))),
      drop1(register_module("drop1", Dropout(opts.dropout))),
      fc2(register_module("fc2", Linear(hidden, out))),
      drop2(register_module("drop2", Dropout(opts.dropout))) {}

Tensor Mlp::forward(const Tensor& x) { return drop2(fc2(drop1(act(fc1(x))))); }

EncoderBlock::EncoderBlock(std::int64_t dim, std::int64_t heads, std::int64_t mlp_dim, EncoderBlockOptions o)
    : placement(o.norm),
      norm1(register_module("norm1", LayerNorm(dim, {.eps = o.eps}))),
      attn(register_module("attn", MultiHeadSelfAttention(dim, heads, {.qkv_bias = o.qkv_bias,
                                                                       .attn_dropout = o.attn_dropout,
                                                                       .proj_dropout = o.dropout}))),
      drop_path1(register_module("drop_path1", DropPath(o.drop_path))),
      norm2(register_module("norm2", LayerNorm(dim, {.eps = o.eps}))),
      mlp(register_module("mlp", Mlp(dim, mlp_dim, dim, {.dropout = o.dropout}))),
      drop_path2(register_module("drop_path2", DropPath(o.drop_path))) {}

Tensor EncoderBlock::forward(const Tensor& x, const AttentionMask& mask, Tensor* attention) {
  const auto attend = [&](const Tensor& in) {
    if (!attention) return attn.forward(in, mask);
    auto [out, weights] = attn.forward_with_weights(in, mask);
    *attention = weights;
    return out;
  };
  if (placement == NormPlacement::pre) {
    const Tensor h = x + drop_path1(attend(norm1(x)));
    return h + drop_path2(mlp(norm2(h)));
  }
  const Tensor h = norm1(x + drop_path1(attend(x)));
  return norm2(h + drop_path2(mlp(h)));
}

PatchEmbedding::PatchEmbedding(std::int64_t h, std::int64_t w, std::int64_t p, std::int64_t c, std::int64_t d)
    : image_h(h), image_w(w), patch(p), channels(c), dim(d),
      proj(register_module("proj", Conv2d(c, d, p, {.stride = p}))) {
  TESSERA_CHECK(p > 0 && h > 0 && w > 0 && h % p == 0 && w % p == 0, ShapeError,
                "PatchEmbedding: image {}x{} is not divisible into {}x{} patches", h, w, p, p);
}

Tensor patchify(const Tensor& x, std::int64_t p) {
  TESSERA_CHECK(x.dim() == 4 && p > 0 && x.size(2) % p == 0 && x.size(3) % p == 0, ShapeError,
                "patchify: input {} is not (B, C, H, W) with H and W divisible by {}", shape_str(x.shape()), p);
  const std::int64_t B = x.size(0), C = x.size(1), gh = x.size(2) / p, gw = x.size(3) / p;
  // (B, C, gh, P, gw, P) -> (B, gh, gw, C, P, P)
  return permute(x.reshape({B, C, gh, p, gw, p}), {0, 2, 4, 1, 3, 5}).reshape({B, gh * gw, C * p * p});
}

Tensor PatchEmbedding::forward(const Tensor& x) {
  TESSERA_CHECK(x.dim() == 4 && x.size(1) == channels && x.size(2) == image_h && x.size(3) == image_w, ShapeError,
                "PatchEmbedding: input {} must be (B, {}, {}, {})", shape_str(x.shape()), channels, image_h, image_w);
  return linear(patchify(x, patch), proj.weight.reshape({dim, channels * patch * patch}), proj.bias);
}

Tensor sincos_position_embedding(std::int64_t grid_h, std::int64_t grid_w, std::int64_t dim) {
  TESSERA_CHECK(dim > 0 && dim % 4 == 0, ShapeError,
                "sincos_position_embedding: dim {} must be a positive multiple of 4", dim);
  const std::int64_t quarter = dim / 4;
  std::vector<double> codes(static_cast<std::size_t>(grid_h * grid_w * dim));
  for (std::int64_t r = 0; r < grid_h; ++r)
    for (std::int64_t c = 0; c < grid_w; ++c) {
      double* row = codes.data() + (r * grid_w + c) * dim;
      for (std::int64_t k = 0; k < quarter; ++k) {
        const double w = std::pow(10000.0, -static_cast<double>(k) / static_cast<double>(quarter));
        row[k] = std::sin(r * w);
        row[quarter + k] = std::cos(r * w);
        row[2 * quarter + k] = std::sin(c * w);
        row[3 * quarter + k] = std::cos(c * w);
      }
    }
  return from_vector(codes, {grid_h * grid_w, dim}).to(DType::f32);
}

}  // namespace tessera::nn
