// A convolutional classifier with SAGAN's self-attention inside (Zhang et al., 2019): stages
// of 3x3 convolutions with batch norm and ReLU, each ending in a 2x2 max pool, a
// SelfAttention2d layer over the last feature map (its gate gamma starts at 0, so the network
// starts as a plain CNN), then global average pooling and a linear head.
#pragma once

#include <vector>

#include "tessera/models/registry.h"
#include "tessera/nn/attention.h"

namespace tessera::models {

struct SaganCnnConfig {
  std::int64_t image_h = 28, image_w = 28;
  std::int64_t channels = 1;
  std::int64_t num_classes = 10;
  std::int64_t width = 32;        // channels of the first stage; each stage doubles them
  std::int64_t stages = 2;        // each ends in a 2x2 max pool
  std::int64_t convs_per_stage = 2;
  std::int64_t qk_channels = 0;   // query/key channels of the attention; 0: C / 8
  double dropout = 0.0;           // before the head
};

class SaganCnn : public nn::UnaryModule {
 public:
  explicit SaganCnn(const SaganCnnConfig& config, Generator& gen = default_generator());
  std::string type_name() const override { return "SaganCnn"; }
  // images (B, C, H, W) -> logits (B, num_classes)
  Tensor forward(const Tensor& images) override;
  // Also the attention map of the last feature map (B, N, N), N = its H' * W' positions.
  std::pair<Tensor, Tensor> forward_with_attention(const Tensor& images);

  SaganCnnConfig config;
  nn::Sequential& features;  // per stage: (conv, bn, relu) x convs_per_stage, max pool
  nn::SelfAttention2d& attn;
  nn::Dropout& drop;
  nn::Linear& head;
};

// The registry's entry (model.name: sagan_cnn).
ModelSpec sagan_cnn_model_spec();

}  // namespace tessera::models
