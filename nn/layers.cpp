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

RMSNorm::RMSNorm(std::int64_t dim, double eps_) : eps(eps_) {
  TESSERA_CHECK(dim > 0, ShapeError, "RMSNorm: dim must be positive, got {}", dim);
  TESSERA_CHECK(eps > 0, Error, "RMSNorm: eps must be positive, got {}", eps);
  weight = register_parameter("weight", ones({dim}));
}

Tensor RMSNorm::forward(const Tensor& x) {
  TESSERA_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(0), ShapeError,
                "RMSNorm: input {} must end in the normalised size {}", shape_str(x.shape()), weight.size(0));
  return x / sqrt(mean(x * x, {-1}, true) + eps) * weight;
}

BatchNorm2d::BatchNorm2d(std::int64_t channels, BatchNormOptions o) : opts(o) {
  TESSERA_CHECK(channels > 0, ShapeError, "BatchNorm2d: channels must be positive, got {}", channels);
  TESSERA_CHECK(o.eps > 0 && o.momentum >= 0 && o.momentum <= 1, Error,
                "BatchNorm2d: eps must be positive and momentum in [0, 1], got eps {} and momentum {}", o.eps,
                o.momentum);
  if (o.affine) {
    weight = register_parameter("weight", ones({channels}));
    bias = register_parameter("bias", zeros({channels}));
  }
  running_mean = register_buffer("running_mean", zeros({channels}));
  running_var = register_buffer("running_var", ones({channels}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, {.dtype = DType::i64}));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  TESSERA_CHECK(x.dim() == 4, ShapeError, "BatchNorm2d: expected a 4-D input (B, C, H, W), got {} ({}-D)",
                shape_str(x.shape()), x.dim());
  const Tensor y = batch_norm(x, weight, bias, running_mean, running_var, is_training(), opts.momentum, opts.eps);
  if (is_training()) {
    Tensor n = num_batches_tracked;
    n.fill_(n.cpu().item() + 1);
  }
  return y;
}

namespace {
Pool2dOptions pool_options(const char* layer, std::int64_t kernel, const PoolOptions& o) {
  TESSERA_CHECK(kernel > 0 && o.stride >= 0 && o.padding >= 0, ShapeError,
                "{}: kernel must be positive, stride and padding non-negative; got kernel {}, stride {}, padding {}",
                layer, kernel, o.stride, o.padding);
  const std::int64_t stride = o.stride > 0 ? o.stride : kernel;
  return {kernel, kernel, stride, stride, o.padding, o.padding, o.count_include_pad};
}
}  // namespace

MaxPool2d::MaxPool2d(std::int64_t kernel, PoolOptions opts) : pool(pool_options("MaxPool2d", kernel, opts)) {}

AvgPool2d::AvgPool2d(std::int64_t kernel, PoolOptions opts) : pool(pool_options("AvgPool2d", kernel, opts)) {}

Tensor GlobalAvgPool2d::forward(const Tensor& x) {
  TESSERA_CHECK(x.dim() == 4, ShapeError, "GlobalAvgPool2d: expected a 4-D input (B, C, H, W), got {} ({}-D)",
                shape_str(x.shape()), x.dim());
  return mean(x, {2, 3});
}

Embedding::Embedding(std::int64_t num, std::int64_t dim, Generator& gen) {
  TESSERA_CHECK(num > 0 && dim > 0, ShapeError, "Embedding: sizes must be positive, got {} x {}", num, dim);
  weight = register_parameter("weight", randn({num, dim}, {}, gen));
}

Tensor Embedding::forward(const Tensor& indices) {
  TESSERA_CHECK(indices.dtype() == DType::i64, DTypeError, "Embedding: indices must be i64, got {}",
                dtype_name(indices.dtype()));
  Shape out = indices.shape();
  out.push_back(weight.size(1));
  return index_select(weight, 0, indices.reshape({-1})).reshape(out);
}

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
  // Keyed by the global sample index in data-parallel training (Generator::reserve_batch).
  Generator rows(g.seed());
  rows.set_state({g.seed(), g.reserve_batch(static_cast<std::uint64_t>(x.size(0)), x.size(0))});
  const Tensor u = uniform(mask_shape, 0.0, 1.0, {.dtype = x.dtype()}, rows);
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
