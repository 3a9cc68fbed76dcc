// A small ResNet for small images (He et al., 2016): a 3x3 stem, stages of basic residual
// blocks (two 3x3 convolutions with batch norm; a 1x1 projection where the shape changes),
// each stage after the first halving the resolution and doubling the width, then global
// average pooling and a linear head. Parameter names and initialisation follow torchvision's
// ResNet (conv1, bn1, layer1.0.conv1, ..., fc; Kaiming-normal convolutions).
#pragma once

#include <vector>

#include "tessera/models/registry.h"
#include "tessera/nn/layers.h"

namespace tessera::models {

struct ResNetConfig {
  std::int64_t image_h = 28, image_w = 28;
  std::int64_t channels = 1;
  std::int64_t num_classes = 10;
  std::int64_t width = 16;            // channels of the stem and the first stage
  std::int64_t stages = 3;            // stage s has width * 2^s channels
  std::int64_t blocks_per_stage = 1;  // basic blocks per stage
  bool stem_pool = false;             // a 3x3 stride-2 max pool after the stem (large images)
  double dropout = 0.0;               // before the head
};

// Two 3x3 convolutions with batch norm and a residual connection: x (B, C, H, W) ->
// (B, O, H/stride, W/stride); the shortcut is a 1x1 convolution with batch norm when the
// shape changes (torchvision's "downsample.0/1").
class BasicBlock : public nn::UnaryModule {
 public:
  BasicBlock(std::int64_t in, std::int64_t out, std::int64_t stride);
  std::string type_name() const override { return "BasicBlock"; }
  Tensor forward(const Tensor& x) override;

  nn::Conv2d& conv1;
  nn::BatchNorm2d& bn1;
  nn::Conv2d& conv2;
  nn::BatchNorm2d& bn2;
  nn::Sequential* downsample = nullptr;  // none when the shape is kept
};

class ResNet : public nn::UnaryModule {
 public:
  explicit ResNet(const ResNetConfig& config, Generator& gen = default_generator());
  std::string type_name() const override { return "ResNet"; }
  // images (B, C, H, W) -> logits (B, num_classes)
  Tensor forward(const Tensor& images) override;

  ResNetConfig config;
  nn::Conv2d& conv1;
  nn::BatchNorm2d& bn1;
  std::vector<nn::Sequential*> stages;  // layer1, layer2, ...: their blocks
  nn::Dropout& drop;
  nn::Linear& fc;
};

// The registry's entry (model.name: resnet).
ModelSpec resnet_model_spec();

}  // namespace tessera::models
