#include "tessera/nn/layers.h"

#include "tessera/nn/init.h"

namespace tessera::nn {

Linear::Linear(std::int64_t in, std::int64_t out, LinearOptions opts) {
  TESSERA_CHECK(in > 0 && out > 0, ShapeError, "Linear: sizes must be positive, got in {} out {}", in, out);
  weight = register_parameter("weight", empty({out, in}));
  init::default_uniform_(weight, in);
  if (opts.bias) {
    bias = register_parameter("bias", empty({out}));
    init::default_uniform_(bias, in);
  }
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

LayerNorm::LayerNorm(std::int64_t dim, LayerNormOptions opts) : eps(opts.eps) {
  TESSERA_CHECK(dim > 0, ShapeError, "LayerNorm: dim must be positive, got {}", dim);
  TESSERA_CHECK(opts.eps > 0, Error, "LayerNorm: eps must be positive, got {}", opts.eps);
  if (opts.affine) {
    weight = register_parameter("weight", ones({dim}));
    bias = register_parameter("bias", zeros({dim}));
  }
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, weight, bias, eps); }

Conv2d::Conv2d(std::int64_t in, std::int64_t out, std::int64_t k, Conv2dLayerOptions opts)
    : conv{opts.stride, opts.stride, opts.padding, opts.padding} {
  TESSERA_CHECK(in > 0 && out > 0 && k > 0, ShapeError,
                "Conv2d: channels and kernel size must be positive, got {} -> {}, kernel {}", in, out, k);
  weight = register_parameter("weight", empty({out, in, k, k}));
  init::default_uniform_(weight, in * k * k);
  if (opts.bias) {
    bias = register_parameter("bias", empty({out}));
    init::default_uniform_(bias, in * k * k);
  }
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, conv); }

Dropout::Dropout(double p_, Generator* gen) : p(p_), gen_(gen) {
  TESSERA_CHECK(p >= 0 && p < 1, Error, "Dropout: p must be in [0, 1), got {}", p);
}

Tensor Dropout::forward(const Tensor& x) {
  return dropout(x, p, is_training(), gen_ ? *gen_ : default_generator());
}

DropPath::DropPath(double p_, Generator* gen) : p(p_), gen_(gen) {
  TESSERA_CHECK(p >= 0 && p < 1, Error, "DropPath: p must be in [0, 1), got {}", p);
}

Tensor DropPath::forward(const Tensor& x) {
  if (!is_training() || p == 0.0) return x;
  // One keep/drop draw per sample, broadcast over the sample's other axes.
  Shape mask_shape(x.dim(), 1);
  mask_shape[0] = x.size(0);
  Generator& g = gen_ ? *gen_ : default_generator();
  const Tensor u = uniform(mask_shape, 0.0, 1.0, {.dtype = x.dtype()}, g);
  std::vector<double> keep = u.to_vector<double>();
  for (double& k : keep) k = k >= p ? 1.0 / (1.0 - p) : 0.0;
  const Tensor mask = from_vector(keep, mask_shape, {.dtype = x.dtype()}).to(x.device());
  return x * mask;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (UnaryModule* m : layers_) h = (*m)(h);
  return h;
}

}  // namespace tessera::nn
