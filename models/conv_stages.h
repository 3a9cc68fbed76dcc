// What the convolutional models (resnet, sagan_cnn) check of their stages: each halves the
// resolution and doubles the width. Private to models/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/autograd/error.h"

namespace tessera::models {

// The widest stage: 4096 channels (16 M weights per 3x3 convolution).
inline constexpr std::int64_t kMaxStageChannels = 4096;

// ConfigError in the config's terms when `stages` stages starting at `width` channels exceed
// kMaxStageChannels, or the images are smaller than the `reduction` the network applies
// (`what_reduces`: "model.stages 3", ...).
inline void check_conv_stages(std::int64_t image_h, std::int64_t image_w, std::int64_t width, std::int64_t stages,
                              std::int64_t reduction, const std::string& what_reduces) {
  std::vector<std::string> bad;
  if (image_h < reduction || image_w < reduction)
    bad.push_back(fmt::format("model.image_size {}x{} is smaller than the {}x reduction of {}", image_h, image_w,
                              reduction, what_reduces));
  if (width * (std::int64_t{1} << (stages - 1)) > kMaxStageChannels)
    bad.push_back(fmt::format("model.width {} doubled over model.stages {} exceeds {} channels", width, stages,
                              kMaxStageChannels));
  TESSERA_CHECK(bad.empty(), ConfigError, "{}", fmt::join(bad, "; "));
}

}  // namespace tessera::models
