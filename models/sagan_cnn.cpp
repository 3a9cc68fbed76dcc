#include "tessera/models/sagan_cnn.h"

#include <fmt/ranges.h>

#include "models/conv_stages.h"
#include "tessera/nn/init.h"

namespace tessera::models {
namespace {

void check(const SaganCnnConfig& c) {
  check_conv_stages(c.image_h, c.image_w, c.width, c.stages, std::int64_t{1} << c.stages,
                    fmt::format("model.stages {}", c.stages));
}

const SaganCnnConfig& validated(const SaganCnnConfig& c) {
  TESSERA_CHECK(c.image_h > 0 && c.image_w > 0 && c.channels > 0 && c.num_classes > 0 && c.width > 0 &&
                    c.stages > 0 && c.stages <= 6 && c.convs_per_stage > 0 && c.qk_channels >= 0 &&
                    c.dropout >= 0 && c.dropout < 1,
                ConfigError, "SaganCnn: sizes must be positive, stages at most 6 and dropout in [0, 1)");
  check(c);
  return c;
}

void reset_default(Tensor& weight, Tensor& bias, Generator& gen) {
  const std::int64_t fan_in = weight.numel() / weight.size(0);
  nn::init::default_uniform_(weight, fan_in, gen);
  if (bias.defined()) nn::init::default_uniform_(bias, fan_in, gen);
}

std::int64_t last_width(const SaganCnnConfig& c) { return c.width << (c.stages - 1); }

}  // namespace

SaganCnn::SaganCnn(const SaganCnnConfig& cfg, Generator& gen)
    : config(validated(cfg)),
      features(register_module("features", nn::Sequential())),
      attn(register_module("attn", nn::SelfAttention2d(last_width(cfg), {.qk_channels = cfg.qk_channels}))),
      drop(register_module("drop", nn::Dropout(cfg.dropout))),
      head(register_module("head", nn::Linear(last_width(cfg), cfg.num_classes))) {
  std::int64_t in = cfg.channels;
  for (std::int64_t s = 0; s < cfg.stages; ++s) {
    const std::int64_t out = cfg.width << s;
    for (std::int64_t i = 0; i < cfg.convs_per_stage; ++i) {
      features.push_back(nn::Conv2d(in, out, 3, {.padding = 1, .bias = false}));
      features.push_back(nn::BatchNorm2d(out));
      features.push_back(nn::ReLU());
      in = out;
    }
    features.push_back(nn::MaxPool2d(2));
  }
  // PyTorch's default initialisation, drawn from the model's own generator.
  apply([&gen](nn::Module& m) {
    if (auto* c = dynamic_cast<nn::Conv2d*>(&m)) reset_default(c->weight, c->bias, gen);
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) reset_default(l->weight, l->bias, gen);
  });
}

std::pair<Tensor, Tensor> SaganCnn::forward_with_attention(const Tensor& images) {
  check_images("SaganCnn", images, {config.channels, config.image_h, config.image_w, config.num_classes});
  auto [x, map] = attn.forward_with_attention(features(images));
  return {head(drop(mean(x, {2, 3}))), map};
}

Tensor SaganCnn::forward(const Tensor& images) {
  check_images("SaganCnn", images, {config.channels, config.image_h, config.image_w, config.num_classes});
  return head(drop(mean(attn(features(images)), {2, 3})));
}

ModelSpec sagan_cnn_model_spec() {
  ModelSchema<SaganCnnConfig> schema;
  schema.image_size("image_size", &SaganCnnConfig::image_h, &SaganCnnConfig::image_w,
                    "Input height and width in pixels; one int for square images.")
      .integer("channels", &SaganCnnConfig::channels, 1, 1024, "Input channels (1 for grey, 3 for RGB).")
      .integer("num_classes", &SaganCnnConfig::num_classes, 1, 1 << 20, "Number of output classes.")
      .integer("width", &SaganCnnConfig::width, 1, 1024, "Channels of the first stage; each stage doubles them.")
      .integer("stages", &SaganCnnConfig::stages, 1, 6, "Convolution stages, each ending in a 2x2 max pool.")
      .integer("convs_per_stage", &SaganCnnConfig::convs_per_stage, 1, 16,
               "3x3 convolutions (with batch norm and ReLU) in each stage.")
      .integer("qk_channels", &SaganCnnConfig::qk_channels, 0, 4096,
               "Query and key channels of the self-attention (0 = its channels / 8, as SAGAN).")
      .rate("dropout", &SaganCnnConfig::dropout, "Dropout before the linear head.");
  return model_spec<SaganCnnConfig>(
      "sagan_cnn",
      "A CNN with SAGAN's 2-D self-attention over its last feature map (gate starting at 0), then a linear head.",
      SaganCnnConfig{}, schema,
      [](const SaganCnnConfig& c) { return ModelInput{c.channels, c.image_h, c.image_w, c.num_classes}; },
      [](const SaganCnnConfig& c, Generator& init) -> std::unique_ptr<nn::UnaryModule> {
        return std::make_unique<SaganCnn>(c, init);
      },
      check);
}

}  // namespace tessera::models
