// The optimizer's own backend interface: fused updates over a whole parameter group and the
// squared norm gradient clipping needs, one function per kernel routed by device to
// optim::cpu:: (optim/cpu/, built per ISA level) or optim::cuda:: (optim/cuda/).
#pragma once

#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera::optim {

// One optimizer update, applied in place to every tensor of a parameter group.
struct AdamUpdate {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;           // AdamW: p -= lr * wd * p; Adam: g += wd * p
  double bias_correction1;  // 1 - beta1^t
  double bias_correction2;  // 1 - beta2^t
};
struct SgdUpdate {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  bool first_step;  // the momentum buffer starts as the gradient
};

// X(return type, name, (parameters), (arguments), the device that routes it), as ops/kernels.h.
#define TESSERA_OPTIM_KERNELS(X)                                                                        \
  /* one pass over every tensor of the group */                                                         \
  X(void, adam_update,                                                                                  \
    (const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& m, \
     const std::vector<Tensor>& v, const AdamUpdate& u),                                                \
    (params, grads, m, v, u), device_of(params))                                                        \
  X(void, sgd_update,                                                                                   \
    (const std::vector<Tensor>& params, const std::vector<Tensor>& grads,                               \
     const std::vector<Tensor>& momentum, const SgdUpdate& u),                                          \
    (params, grads, momentum, u), device_of(params))                                                    \
  /* sum of x^2 in double (gradient-norm clipping) */                                                   \
  X(double, squared_norm, (const Tensor& x), (x), x.device())

// The device of a group of tensors (the CPU for an empty group).
inline Device device_of(const std::vector<Tensor>& tensors) {
  return tensors.empty() ? Device::cpu() : tensors.front().device();
}

#define TESSERA_DECLARE_OPTIM_KERNEL(ret, name, params, args, device) ret name params;
namespace kernels { TESSERA_OPTIM_KERNELS(TESSERA_DECLARE_OPTIM_KERNEL) }  // routes by device
namespace cpu { TESSERA_OPTIM_KERNELS(TESSERA_DECLARE_OPTIM_KERNEL) }      // routes by ISA
namespace cuda { TESSERA_OPTIM_KERNELS(TESSERA_DECLARE_OPTIM_KERNEL) }     // built with CUDA

}  // namespace tessera::optim
