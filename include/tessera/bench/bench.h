// The benchmark harness behind `tessera bench`: training and inference throughput of the
// PyTorch peer's ViT presets (../shared/peer/torch_vit_peer.py) or of any config's model,
// matmul GFLOP/s, and a per-op time profile.
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
  bool latency = false;    // also batch-1 inference latency, p50 and p99 of 200 calls
  bool roofline = true;    // measure the f32 matmul peak and report each run's share of it
  double dropout = 0.0;    // presets: dropout, attention dropout and drop path (as the peer's)
  std::string config;      // time this config's model, batch and training settings instead
  std::vector<std::string> sets;  // --set overrides of that config
};

// Prints one line per preset in the peer's format; returns the process exit status.
int run(const BenchOptions& opts);

}  // namespace tessera::bench
