// Training checkpoints in the safetensors format: the model's weights under timm's names,
// the optimizer state under "optim.*", and in the metadata everything else a run needs to
// continue exactly: position (epoch, batch, step), RNG state, running epoch sums, the
// resolved config, the dataset fingerprints and the preprocessing a prediction needs.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tessera/autograd/random.h"
#include "tessera/nn/module.h"
#include "tessera/autograd/safetensors.h"

namespace tessera::train {

inline constexpr const char* kCheckpointFormat = "tessera-checkpoint/1";

struct TrainState {
  std::int64_t epoch = 0;        // the epoch in progress (or the next one when batch == 0)
  std::int64_t batch = 0;        // batches of `epoch` already done
  std::int64_t global_step = 0;  // optimizer steps so far
  double best_accuracy = -1.0;   // best test accuracy so far (-1: none yet)
  GeneratorState generator;      // the default generator (dropout, drop path)
  double epoch_loss_sum = 0.0;   // running sums of the epoch in progress
  std::int64_t epoch_correct = 0;
  std::int64_t epoch_samples = 0;
};

struct CheckpointInfo {
  TrainState state;
  std::string config_yaml;                   // the resolved config of the run
  std::string train_fingerprint, test_fingerprint;
  std::vector<std::string> class_names;
  std::vector<double> normalize_mean, normalize_std;  // what the images were normalised with
};

struct Checkpoint {
  CheckpointInfo info;
  nn::NamedTensors model;      // timm names
  nn::NamedTensors optimizer;  // "optim.*"
};

// Writes atomically (temporary file + rename): a crash never damages an existing file.
void save_checkpoint(const std::filesystem::path& path, const nn::Module& model,
                     const nn::NamedTensors& optimizer_state, const CheckpointInfo& info);

// Reads and validates a checkpoint (format, metadata); IoError naming the file otherwise.
Checkpoint load_checkpoint(const std::filesystem::path& path);

}  // namespace tessera::train
