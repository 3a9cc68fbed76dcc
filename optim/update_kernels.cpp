// Routes each optimizer kernel to its device's backend, and the CPU's to its ISA level.
#include "optim/update_kernels.h"

#include "tessera/ops/cpu_info.h"

namespace tessera::optim {

namespace cpu {
namespace avx2 { TESSERA_OPTIM_KERNELS(TESSERA_DECLARE_OPTIM_KERNEL) }
namespace avx512 { TESSERA_OPTIM_KERNELS(TESSERA_DECLARE_OPTIM_KERNEL) }

#define TESSERA_DISPATCH_OPTIM_ISA(ret, name, params, args, device) \
  ret name params { return cpu_kernel_isa(#name) == KernelIsa::avx512 ? avx512::name args : avx2::name args; }
TESSERA_OPTIM_KERNELS(TESSERA_DISPATCH_OPTIM_ISA)
}  // namespace cpu

#ifdef TESSERA_WITH_CUDA
#define TESSERA_ROUTE_OPTIM_KERNEL(ret, name, params, args, device) \
  ret kernels::name params { return (device).is_cuda() ? cuda::name args : cpu::name args; }
#else
#define TESSERA_ROUTE_OPTIM_KERNEL(ret, name, params, args, device)                                              \
  ret kernels::name params {                                                                                      \
    TESSERA_CHECK((device).is_cpu(), DeviceError, #name ": tensors on {}, but this build has no CUDA backend", \
                  device);                                                                                        \
    return cpu::name args;                                                                                        \
  }
#endif
TESSERA_OPTIM_KERNELS(TESSERA_ROUTE_OPTIM_KERNEL)

}  // namespace tessera::optim
