// Pictures of where a ViT attends (`tessera attention`): the attention rollout of each image
// (models::attention_rollout) laid over it as a heat map, and optionally the last block's
// class-token attention, head by head.
#pragma once

#include <filesystem>
#include <vector>

#include "tessera/train/checkpoint.h"

namespace tessera::train {

struct AttentionViewOptions {
  bool per_head = false;  // also the last block's class-token row, one picture per head
};

// For each image (PNG, JPEG, BMP, PGM/PPM; decoded to the model's size and normalised as the
// checkpoint's run did), writes DIR/<stem>_rollout.png and with per_head
// DIR/<stem>_head<k>.png: the image in grey or colour, scaled up to at least 224 pixels, half
// and half with the map, bilinearly resized from the patch grid, its largest value brightest.
// ConfigError for a checkpoint that holds no ViT. Returns the files written.
std::vector<std::filesystem::path> write_attention_views(const Checkpoint& checkpoint,
                                                         const std::vector<std::filesystem::path>& images,
                                                         const std::filesystem::path& dir,
                                                         const AttentionViewOptions& options = {});

}  // namespace tessera::train
