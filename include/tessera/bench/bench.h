// The benchmark harness behind `tessera bench`: ViT training and inference throughput on
// the PyTorch peer's presets (../shared/peer/torch_vit_peer.py), matmul GFLOP/s, and a
// per-op time profile.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::bench {

struct BenchOptions {
  std::vector<std::string> presets{"seed", "mnist", "tiny"};
  int steps = 10;
  int threads = 0;         // 0: all cores
  bool bf16 = false;       // mixed precision (f32 master weights)
  bool profile = false;    // print a per-op breakdown of one training step
  bool matmul = false;     // report matmul GFLOP/s instead
};

// Prints one line per preset in the peer's format; returns the process exit status.
int run(const BenchOptions& opts);

}  // namespace tessera::bench
