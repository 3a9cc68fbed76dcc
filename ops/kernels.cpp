// Routes each kernel to the backend of its tensors' device.
#include "tessera/ops/kernels.h"

#include "tessera/ops/ops.h"

namespace tessera {
namespace {
thread_local bool t_dry_run = false;
}  // namespace

DryRunGuard::DryRunGuard() : previous_(t_dry_run) { t_dry_run = true; }
DryRunGuard::~DryRunGuard() { t_dry_run = previous_; }
bool dry_run() { return t_dry_run; }

// Every kernel returns void: under a DryRunGuard it returns at once.
#ifdef TESSERA_WITH_CUDA
#define TESSERA_ROUTE_KERNEL(ret, name, params, args, device)    \
  ret kernels::name params {                                      \
    if (t_dry_run) return;                                        \
    return (device).is_cuda() ? cuda::name args : cpu::name args; \
  }
#else
namespace {
[[noreturn]] void no_cuda_backend(const char* kernel, Device device) {
  throw DeviceError(fmt::format("{}: tensors on {}, but this build has no CUDA backend", kernel, device));
}
}  // namespace

#define TESSERA_ROUTE_KERNEL(ret, name, params, args, device) \
  ret kernels::name params {                                   \
    if (t_dry_run) return;                                     \
    if (!(device).is_cpu()) no_cuda_backend(#name, device);    \
    return cpu::name args;                                     \
  }
#endif
TESSERA_KERNELS(TESSERA_ROUTE_KERNEL)

bool has_fused_attention(Device device) { return device.is_cpu(); }

#define TESSERA_ROUTE_FUSED_KERNEL(ret, name, params, args, device)                                         \
  ret kernels::name params {                                                                                 \
    if (t_dry_run) return;                                                                                   \
    TESSERA_CHECK((device).is_cpu(), DeviceError, #name ": no fused kernel on {}; use the composition", device); \
    return cpu::name args;                                                                                   \
  }
TESSERA_FUSED_KERNELS(TESSERA_ROUTE_FUSED_KERNEL)


}  // namespace tessera
