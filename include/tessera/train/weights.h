// Pretrained weights in and out: a timm Vision Transformer's state dict (safetensors with
// timm's names, such as blocks.0.attn.qkv.weight, and no Tessera metadata) becomes a Tessera
// checkpoint, and a checkpoint's weights become such a state dict again.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

#include "tessera/autograd/safetensors.h"
#include "tessera/train/config.h"

namespace tessera::train {

struct ImportOptions {
  // Attention heads: the shapes do not tell. Default: dim / 64, as every timm ViT from
  // ViT-Ti (192 = 3 x 64) to ViT-H has.
  std::optional<std::int64_t> heads;
};

// The config of the ViT whose state dict this is, inferred from the tensors' shapes: patch
// size, channels, width, depth, MLP width, image size (from the position table) and classes.
// ConfigError listing every tensor it does not know (layer scale ls1.gamma, reg_token, ...),
// every one missing, and shapes that contradict one another.
TrainConfig timm_vit_config(const io::TensorMap& weights, const ImportOptions& options = {});

// Reads a timm ViT state dict (F32, BF16 or F64 tensors) and writes a checkpoint holding its
// weights in f32 and the inferred config, with no optimizer state: `tessera eval`, `predict`
// and fine-tuning start from it.
TrainConfig import_timm_vit(const std::filesystem::path& weights, const std::filesystem::path& checkpoint,
                            const ImportOptions& options = {});

// Writes a checkpoint's model weights as a plain state dict: timm's names, no metadata, every
// floating-point tensor in `dtype` (f32, bf16 or f64).
void export_weights(const std::filesystem::path& checkpoint, const std::filesystem::path& weights,
                    DType dtype = DType::f32);

// Fine-tuning's start (train.init_from, train.init_exclude): copies into `model` every
// parameter and buffer of the file (a checkpoint's model, or a plain state dict) that
// init_exclude does not name; a ViT position table of another patch grid is resampled
// (resample_position_table, antialiased as timm). ConfigError listing what is missing from
// the file, what the model lacks and what differs in shape, with the way out (init_exclude).
// Returns a line saying what was loaded, for the run's log.
std::string init_weights_from(nn::Module& model, const TrainConfig& cfg);

}  // namespace tessera::train
