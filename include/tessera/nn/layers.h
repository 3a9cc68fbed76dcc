// The basic layers: Linear, Embedding, LayerNorm, RMSNorm, BatchNorm2d, Conv2d, pooling,
// activations, Dropout, DropPath, Identity, Flatten, Sequential. Letters: B batch, N tokens,
// D width, C channels, H/W height/width.
#pragma once

#include <memory>

#include "tessera/nn/module.h"
#include "tessera/ops/ops.h"

namespace tessera::nn {

struct LinearOptions {
  bool bias = true;
};

// y = x W^T + b. x (..., in) -> (..., out). weight (out, in), bias (out).
// Initialised as PyTorch: U(-1/sqrt(in), 1/sqrt(in)) for both.
class Linear : public UnaryModule {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, LinearOptions opts = {});
  std::string type_name() const override { return "Linear"; }
  Tensor forward(const Tensor& x) override;

  Tensor weight, bias;  // bias is undefined without one
};

struct LayerNormOptions {
  double eps = 1e-5;
  bool affine = true;  // learn weight (ones) and bias (zeros)
};

// Normalises the last axis: x (..., D) -> (..., D).
class LayerNorm : public UnaryModule {
 public:
  explicit LayerNorm(std::int64_t dim, LayerNormOptions opts = {});
  std::string type_name() const override { return "LayerNorm"; }
  Tensor forward(const Tensor& x) override;

  Tensor weight, bias;
  double eps;
};

// Root-mean-square normalisation of the last axis (Zhang & Sennrich, 2019): x (..., D) ->
// x / sqrt(mean(x^2) + eps) * weight. Composed of primitive ops: its gradient is theirs.
class RMSNorm : public UnaryModule {
 public:
  explicit RMSNorm(std::int64_t dim, double eps = 1e-6);
  std::string type_name() const override { return "RMSNorm"; }
  Tensor forward(const Tensor& x) override;

  Tensor weight;  // (D), ones
  double eps;
};

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;  // running = (1 - momentum) running + momentum * batch statistic
  bool affine = true;     // learn weight (ones) and bias (zeros)
};

// Batch normalisation over (B, H, W) per channel: x (B, C, H, W) -> (B, C, H, W). Training
// normalises with the batch's statistics and updates the running ones (buffers running_mean,
// running_var and num_batches_tracked, saved with the model as in PyTorch); eval uses the
// running ones. Under data-parallel training each process keeps its own statistics.
class BatchNorm2d : public UnaryModule {
 public:
  explicit BatchNorm2d(std::int64_t channels, BatchNormOptions opts = {});
  std::string type_name() const override { return "BatchNorm2d"; }
  Tensor forward(const Tensor& x) override;

  Tensor weight, bias;  // undefined without affine
  Tensor running_mean, running_var, num_batches_tracked;
  BatchNormOptions opts;
};

struct Conv2dLayerOptions {
  std::int64_t stride = 1;
  std::int64_t padding = 0;
  bool bias = true;
};

// x (B, C, H, W) -> (B, O, H', W'). weight (O, C, K, K). Initialised as PyTorch.
class Conv2d : public UnaryModule {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
         Conv2dLayerOptions opts = {});
  std::string type_name() const override { return "Conv2d"; }
  Tensor forward(const Tensor& x) override;

  Tensor weight, bias;
  Conv2dOptions conv;
};

struct PoolOptions {
  std::int64_t stride = 0;  // 0: the kernel size, as PyTorch
  std::int64_t padding = 0;
  bool count_include_pad = true;  // AvgPool2d: padded zeros count in the average
};

// Max over kernel x kernel windows: x (B, C, H, W) -> (B, C, H', W').
class MaxPool2d : public UnaryModule {
 public:
  explicit MaxPool2d(std::int64_t kernel, PoolOptions opts = {});
  std::string type_name() const override { return "MaxPool2d"; }
  Tensor forward(const Tensor& x) override { return max_pool2d(x, pool); }
  Pool2dOptions pool;
};

// Mean over kernel x kernel windows: x (B, C, H, W) -> (B, C, H', W').
class AvgPool2d : public UnaryModule {
 public:
  explicit AvgPool2d(std::int64_t kernel, PoolOptions opts = {});
  std::string type_name() const override { return "AvgPool2d"; }
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, pool); }
  Pool2dOptions pool;
};

// Mean over all positions: x (B, C, H, W) -> (B, C).
class GlobalAvgPool2d : public UnaryModule {
 public:
  std::string type_name() const override { return "GlobalAvgPool2d"; }
  Tensor forward(const Tensor& x) override;
};

// x (B, d1, d2, ...) -> (B, d1 * d2 * ...).
class Flatten : public UnaryModule {
 public:
  std::string type_name() const override { return "Flatten"; }
  Tensor forward(const Tensor& x) override { return x.flatten(1); }
};

// A lookup table: indices i64 (any shape) -> (..., D) rows of weight (num, D), N(0, 1) at start.
class Embedding : public UnaryModule {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t dim, Generator& gen = default_generator());
  std::string type_name() const override { return "Embedding"; }
  Tensor forward(const Tensor& indices) override;

  Tensor weight;
};

class ReLU : public UnaryModule {
 public:
  std::string type_name() const override { return "ReLU"; }
  Tensor forward(const Tensor& x) override { return relu(x); }
};

class GELU : public UnaryModule {
 public:
  explicit GELU(GeluApprox approx = GeluApprox::erf) : approx_(approx) {}
  std::string type_name() const override { return "GELU"; }
  Tensor forward(const Tensor& x) override { return gelu(x, approx_); }

 private:
  GeluApprox approx_;
};

// x * sigmoid(x), also called swish.
class SiLU : public UnaryModule {
 public:
  std::string type_name() const override { return "SiLU"; }
  Tensor forward(const Tensor& x) override { return silu(x); }
};

class Identity : public UnaryModule {
 public:
  std::string type_name() const override { return "Identity"; }
  Tensor forward(const Tensor& x) override { return x; }
};

// Zeroes elements with probability p in training mode (inverted scaling); identity in eval.
class Dropout : public UnaryModule {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  std::string type_name() const override { return "Dropout"; }
  Tensor forward(const Tensor& x) override;
  double p;

 private:
  Generator* gen_;  // the default generator when null
};

// Stochastic depth: drops the whole residual branch of a sample with probability p
// (scaling survivors by 1/(1-p)). x (B, ...) -> (B, ...).
class DropPath : public UnaryModule {
 public:
  explicit DropPath(double p = 0.0, Generator* gen = nullptr);
  std::string type_name() const override { return "DropPath"; }
  Tensor forward(const Tensor& x) override;
  double p;

 private:
  Generator* gen_;
};

// Runs its children in order; they are named "0", "1", ...
class Sequential : public UnaryModule {
 public:
  Sequential() = default;
  std::string type_name() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;

  template <class M>
  M& push_back(M module) {
    M& ref = register_module(std::to_string(layers_.size()), std::move(module));
    layers_.push_back(&ref);
    return ref;
  }
  std::size_t size() const { return layers_.size(); }
  UnaryModule& operator[](std::size_t i) { return *layers_.at(i); }

 private:
  std::vector<UnaryModule*> layers_;
};

}  // namespace tessera::nn
