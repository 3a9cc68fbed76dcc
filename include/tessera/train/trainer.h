// The training loop behind `tessera train`: builds the model, data and optimizer from a
// config, trains with progress and periodic evaluation, writes metrics.jsonl and best/last
// checkpoints, resumes exactly, stops cleanly on a signal and refuses to go on after a
// non-finite loss.
#pragma once

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>

#include "tessera/datasets/loader.h"
#include "tessera/optim/optimizer.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/config.h"
#include "tessera/train/distributed.h"

namespace tessera::train {

// One optimizer step as every rank saw it: the global batch's mean loss.
struct StepReport {
  std::int64_t epoch = 0;        // 0-based
  std::int64_t batch = 0;        // 1-based count of the epoch's batches done
  std::int64_t global_step = 0;  // optimizer steps done in total
  double loss = 0;
  double lr = 0;
};

struct TrainOptions {
  // A run directory (its last.safetensors) or a checkpoint file to continue from.
  std::optional<std::filesystem::path> resume;
  std::FILE* out = stdout;
  std::optional<bool> live_progress;  // default: when `out` is a terminal
  // Set to a signal's number (e.g. by a SIGINT handler) to stop after the current step with a
  // checkpoint; the messages name the signal. Any non-zero value stops.
  const std::atomic<int>* stop = nullptr;
  // Stop the same way once this many optimizer steps are done in total (time-boxed runs).
  std::optional<std::int64_t> stop_at_step;
  // The ranks of a data-parallel run (train/distributed.h); null: this process alone. Rank 0
  // alone locks the output directory and writes progress, metrics and checkpoints.
  Communicator* comm = nullptr;
  // Called after every optimizer step, on every rank.
  std::function<void(const StepReport&)> on_step;
};

struct TrainResult {
  enum class Status { finished, interrupted, diverged };
  Status status = Status::finished;
  std::int64_t epochs_done = 0;
  double best_accuracy = -1;
  double last_accuracy = -1;
  std::filesystem::path last_checkpoint;  // empty when none was written
  std::string message;                    // for interrupted and diverged runs
};

// Output files, relative to train.output_dir.
inline constexpr const char* kLastCheckpoint = "last.safetensors";
inline constexpr const char* kBestCheckpoint = "best.safetensors";
inline constexpr const char* kMetricsFile = "metrics.jsonl";
inline constexpr const char* kConfigFile = "config.yaml";
inline constexpr const char* kLogFile = "train.log";  // the progress lines and how the run ended

TrainResult train(const TrainConfig& cfg, const TrainOptions& opts = {});

struct EvalResult {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // top-1, in [0, 1]
  std::int64_t samples = 0;
  // classes x classes counts, row = the true class, column = the predicted one.
  std::int64_t classes = 0;
  std::vector<std::int64_t> confusion;
};

// Evaluates in eval mode without recording: mean loss and top-1 accuracy over the loader.
EvalResult evaluate(nn::UnaryModule& model, datasets::DataLoader& loader, Device device);

// The model a config describes, on its device, seeded by train.seed.
std::unique_ptr<nn::UnaryModule> build_model(const TrainConfig& cfg);

// The config's optimizer over the model's parameters, with its weight-decay groups.
std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& cfg, const nn::Module& model);

// ConfigError for what this machine cannot run (a missing GPU, bf16 without CPU support,
// key combinations the model refuses), before anything is opened or written.
void check_runnable(const TrainConfig& cfg);

// Applies train.threads to OpenMP and oneDNN; 0: the cores this process may use, shared
// among the `ranks_here` ranks of a data-parallel run on this machine.
void set_threads(int threads, int ranks_here = 1);

}  // namespace tessera::train
