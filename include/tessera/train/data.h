// The data side of a training run, from a config: the datasets of each split (checked
// against the model's input), the normalisation statistics, and the loaders.
#pragma once

#include <filesystem>
#include <span>

#include "tessera/datasets/datasets.h"
#include "tessera/train/config.h"

namespace tessera::train {

// The dataset of one split as the config describes it (limits applied before anything is
// decoded), checked to produce the model's input shape. ConfigError naming the keys when
// they disagree. `classes`: the class list labels must follow, so that a label means the
// same class in every split: the training split's class_names() when opening the test
// split, or the class names a checkpoint stores; empty: the dataset's own. DataError when
// the split's classes cannot follow it (see datasets::DatasetOptions::classes).
datasets::DatasetPtr open_dataset(const TrainConfig& cfg, datasets::Split split,
                                  const std::vector<std::string>& classes = {});

// The normalisation the config asks for: the dataset's standard statistics (MNIST,
// Fashion-MNIST, CIFAR-10; others computed from `train`), the given ones, or none
// (empty vectors).
datasets::ChannelStats normalization(const TrainConfig& cfg, const datasets::Dataset& train);

// An image file (PNG, JPEG, BMP, PGM/PPM) as a model's input: decoded to `shape` into
// `pixels` (C, H, W bytes) and scaled to [0, 1], then normalised with `stats` (a run's, from its
// checkpoint; none when empty) into `out`. For predict and attention.
void read_model_input(const std::filesystem::path& file, const datasets::ImageShape& shape,
                      const datasets::ChannelStats& stats, std::span<std::uint8_t> pixels, std::span<float> out);

// The training loader (shuffled, augmented) or the evaluation loader (in order); in
// data-parallel training, rank `rank` of `ranks` takes its shard of every batch.
datasets::DataLoader make_loader(const TrainConfig& cfg, datasets::DatasetPtr dataset,
                                 const datasets::ChannelStats& stats, bool training, int rank = 0, int ranks = 1);

}  // namespace tessera::train
