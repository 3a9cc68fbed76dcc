// The basic layers: Linear, LayerNorm, Conv2d, activations, Dropout, DropPath, Identity,
// Sequential. Letters: B batch, N tokens, D width, C channels, H/W height/width.
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
