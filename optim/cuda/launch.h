// Plain-typed launchers of the CUDA optimizer kernels (optim/cuda/updates.cu), in the style of
// ops/cuda/launch.h: raw device pointers and sizes only, so nvcc never sees the host headers.
#pragma once

#include "ops/cuda/launch.h"

namespace tessera::optim::cuda::launch {

using tessera::cuda::launch::Elem;
using tessera::cuda::launch::i64;

// Fused updates over many tensors per launch.
constexpr int kMaxOptimTensors = 32;  // per launch (kernel parameter space)
struct AdamTensors {
  int count = 0;
  void* p[kMaxOptimTensors];
  const void* g[kMaxOptimTensors];
  void* m[kMaxOptimTensors];
  void* v[kMaxOptimTensors];
  i64 end[kMaxOptimTensors];  // exclusive prefix sums of the sizes
};
struct AdamScalars {
  double lr, beta1, beta2, eps, weight_decay, step_size, bias_correction2_sqrt;
  bool decoupled;
};
void adam(Elem t, const AdamTensors& tensors, const AdamScalars& s);
struct SgdTensors {
  int count = 0;
  void* p[kMaxOptimTensors];
  const void* g[kMaxOptimTensors];
  void* buf[kMaxOptimTensors];  // null when momentum == 0
  i64 end[kMaxOptimTensors];
};
struct SgdScalars {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};
void sgd(Elem t, const SgdTensors& tensors, const SgdScalars& s);

}  // namespace tessera::optim::cuda::launch
