// Routes each kernel to the backend of its tensors' device.
#include "tessera/ops/kernels.h"

#include "tessera/ops/ops.h"

namespace tessera {

#ifdef TESSERA_WITH_CUDA
#define TESSERA_ROUTE_KERNEL(ret, name, params, args, device)    \
  ret kernels::name params {                                      \
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
    if (!(device).is_cpu()) no_cuda_backend(#name, device);    \
    return cpu::name args;                                     \
  }
#endif
TESSERA_KERNELS(TESSERA_ROUTE_KERNEL)

bool has_fused_attention(Device device) { return device.is_cpu(); }

#define TESSERA_ROUTE_FUSED_KERNEL(ret, name, params, args, device)                                         \
  ret kernels::name params {                                                                                 \
    TESSERA_CHECK((device).is_cpu(), DeviceError, #name ": no fused kernel on {}; use the composition", device); \
    return cpu::name args;                                                                                   \
  }
TESSERA_FUSED_KERNELS(TESSERA_ROUTE_FUSED_KERNEL)


}  // namespace tessera
