#include "tessera/models/resnet.h"

#include <cmath>

#include <fmt/ranges.h>

#include "models/conv_stages.h"
#include "tessera/nn/init.h"

namespace tessera::models {
namespace {

nn::Conv2dLayerOptions conv3x3(std::int64_t stride) { return {.stride = stride, .padding = 1, .bias = false}; }

// torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
void kaiming_fan_out_(nn::Conv2d& conv, Generator& gen) {
  const Shape& w = conv.weight.shape();  // (O, C, K, K)
  nn::init::normal_(conv.weight, 0.0, std::sqrt(2.0 / static_cast<double>(w[0] * w[2] * w[3])), gen);
}

void check(const ResNetConfig& c) {
  check_conv_stages(c.image_h, c.image_w, c.width, c.stages, (std::int64_t{1} << (c.stages - 1)) * (c.stem_pool ? 2 : 1),
                    fmt::format("model.stages {}{}", c.stages, c.stem_pool ? " and model.stem_pool" : ""));
}

const ResNetConfig& validated(const ResNetConfig& c) {
  TESSERA_CHECK(c.image_h > 0 && c.image_w > 0 && c.channels > 0 && c.num_classes > 0 && c.width > 0 &&
                    c.stages > 0 && c.stages <= 6 && c.blocks_per_stage > 0 && c.dropout >= 0 && c.dropout < 1,
                ConfigError, "ResNet: sizes must be positive, stages at most 6 and dropout in [0, 1)");
  check(c);
  return c;
}

}  // namespace

BasicBlock::BasicBlock(std::int64_t in, std::int64_t out, std::int64_t stride)
    : conv1(register_module("conv1", nn::Conv2d(in, out, 3, conv3x3(stride)))),
      bn1(register_module("bn1", nn::BatchNorm2d(out))),
      conv2(register_module("conv2", nn::Conv2d(out, out, 3, conv3x3(1)))),
      bn2(register_module("bn2", nn::BatchNorm2d(out))) {
  if (stride != 1 || in != out) {
    downsample = &register_module("downsample", nn::Sequential());
    downsample->push_back(nn::Conv2d(in, out, 1, {.stride = stride, .bias = false}));
    downsample->push_back(nn::BatchNorm2d(out));
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  const Tensor h = bn2(conv2(relu(bn1(conv1(x)))));
  return relu(h + (downsample ? (*downsample)(x) : x));
}

ResNet::ResNet(const ResNetConfig& cfg, Generator& gen)
    : config(validated(cfg)),
      conv1(register_module("conv1", nn::Conv2d(cfg.channels, cfg.width, 3, conv3x3(1)))),
      bn1(register_module("bn1", nn::BatchNorm2d(cfg.width))),
      drop(register_module("drop", nn::Dropout(cfg.dropout))),
      fc(register_module("fc", nn::Linear(cfg.width << (cfg.stages - 1), cfg.num_classes))) {
  std::int64_t in = cfg.width;
  for (std::int64_t s = 0; s < cfg.stages; ++s) {
    nn::Sequential& stage = register_module(fmt::format("layer{}", s + 1), nn::Sequential());
    const std::int64_t out = cfg.width << s;
    for (std::int64_t b = 0; b < cfg.blocks_per_stage; ++b) {
      stage.push_back(BasicBlock(in, out, s > 0 && b == 0 ? 2 : 1));
      in = out;
    }
    stages.push_back(&stage);
  }
  apply([&gen](nn::Module& m) {
    if (auto* conv = dynamic_cast<nn::Conv2d*>(&m)) kaiming_fan_out_(*conv, gen);
  });
}

Tensor ResNet::forward(const Tensor& images) {
  check_images("ResNet", images, {config.channels, config.image_h, config.image_w, config.num_classes});
  Tensor x = relu(bn1(conv1(images)));
  if (config.stem_pool) x = max_pool2d(x, {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2,
                                          .pad_h = 1, .pad_w = 1});
  for (nn::Sequential* stage : stages) x = (*stage)(x);
  return fc(drop(mean(x, {2, 3})));
}

ModelSpec resnet_model_spec() {
  ModelSchema<ResNetConfig> schema;
  schema.image_size("image_size", &ResNetConfig::image_h, &ResNetConfig::image_w,
                    "Input height and width in pixels; one int for square images.")
      .integer("channels", &ResNetConfig::channels, 1, 1024, "Input channels (1 for grey, 3 for RGB).")
      .integer("num_classes", &ResNetConfig::num_classes, 1, 1 << 20, "Number of output classes.")
      .integer("width", &ResNetConfig::width, 1, 1024, "Channels of the stem and the first stage; each stage doubles them.")
      .integer("stages", &ResNetConfig::stages, 1, 6, "Stages of residual blocks; each after the first halves the resolution.")
      .integer("blocks_per_stage", &ResNetConfig::blocks_per_stage, 1, 64, "Basic residual blocks per stage.")
      .boolean("stem_pool", &ResNetConfig::stem_pool, "A 3x3 stride-2 max pool after the stem (for large images).")
      .rate("dropout", &ResNetConfig::dropout, "Dropout before the linear head.");
  ResNetConfig cifar;
  cifar.image_h = cifar.image_w = 32, cifar.channels = 3;
  ResNetConfig resnet18;  // torchvision's layout on 224x224 images, with a 3x3 stem
  resnet18.image_h = resnet18.image_w = 224, resnet18.channels = 3, resnet18.num_classes = 1000;
  resnet18.width = 64, resnet18.stages = 4, resnet18.blocks_per_stage = 2, resnet18.stem_pool = true;
  return model_spec<ResNetConfig>(
      "resnet", "A small ResNet: a 3x3 stem, stages of basic residual blocks with batch norm, global average pooling.",
      ResNetConfig{}, schema,
      [](const ResNetConfig& c) { return ModelInput{c.channels, c.image_h, c.image_w, c.num_classes}; },
      [](const ResNetConfig& c, Generator& init) -> std::unique_ptr<nn::UnaryModule> {
        return std::make_unique<ResNet>(c, init);
      },
      check, {{"resnet-cifar", cifar}, {"resnet18-like", resnet18}});
}

}  // namespace tessera::models
