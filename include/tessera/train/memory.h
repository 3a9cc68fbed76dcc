// The memory a run needs, measured rather than guessed: one training step and one
// evaluation forward of the real model at batch sizes 2 and 4, run dry (allocating as a
// real step does, computing nothing: ops/kernels.h), extrapolated linearly to the
// configured batches. It holds for any model the trainer runs, and is checked before
// anything is written.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/nn/module.h"

namespace tessera::train {

// Bytes as the CPU allocator counts them (size classes included).
struct MemoryProbe {
  double weights = 0;           // held before the probe: parameters and buffers
  double train_fixed = 0;       // a training step above the weights: gradients and the like
  double train_per_sample = 0;  // ... and per sample: the activations backward keeps
  double eval_fixed = 0;        // an evaluation forward above the weights
  double eval_per_sample = 0;

  double training_step(std::int64_t batch) const { return train_fixed + train_per_sample * static_cast<double>(batch); }
  double evaluation(std::int64_t batch) const { return eval_fixed + eval_per_sample * static_cast<double>(batch); }
};

// One part of a run's memory, for the message that refuses it.
struct MemoryPart {
  std::string what;  // "a training step at batch 128"
  double bytes = 0;
  std::string key;   // the config key that lowers it ("train.batch_size"), or ""
};

struct ProbeOptions {
  bool with_training = true;  // false: the evaluation only (inference)
  // Allocate without computing (DryRunGuard): instant however large the configuration, but
  // blind to what kernels allocate inside (layout copies), so it answers "certainly too
  // big" quickly and the real probe follows.
  bool dry = false;
};

// Runs the probe on zero images of shape `sample` (C, H, W), labelled class 0, with
// cross-entropy, on the CPU. Leaves the gradients cleared, the buffers (running statistics)
// and the default generator's state as it found them.
MemoryProbe probe_memory(nn::UnaryModule& model, const Shape& sample, ProbeOptions opts = {});

// Refuses (ConfigError naming the key to lower) what `parts(probe)` says will not fit: first
// from a dry probe, at once, then from a real one.
void check_probed_memory(nn::UnaryModule& model, const Shape& sample, bool with_training, std::string_view who,
                         const std::function<std::vector<MemoryPart>(const MemoryProbe&)>& parts);


// The memory this process may use: the CPU allocator's limit (what the system had available
// when the allocator started), or what is available now when no limit is set.
double memory_budget();

// ConfigError (exit 2) when the parts add up to more than memory_budget(): "<key of the
// largest part>: <who> needs about <total> (<each part>), but <budget> is available; lower
// <key>".
void check_memory(std::string_view who, const std::vector<MemoryPart>& parts);

}  // namespace tessera::train
