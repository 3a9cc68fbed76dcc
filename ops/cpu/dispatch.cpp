// The CPU backend's entry points: each cpu:: kernel runs the build of its ISA level that this
// CPU supports under oneDNN's effective ISA (cpu_info().kernels), so ONEDNN_MAX_CPU_ISA caps
// our loops as it caps oneDNN. Below AVX2 every kernel refuses with a DeviceError.
#include "tessera/ops/cpu_info.h"
#include "tessera/ops/kernels.h"

namespace tessera::cpu {

namespace avx2 {
TESSERA_KERNELS(TESSERA_DECLARE_KERNEL)
TESSERA_FUSED_KERNELS(TESSERA_DECLARE_KERNEL)
}  // namespace avx2
namespace avx512 {
TESSERA_KERNELS(TESSERA_DECLARE_KERNEL)
TESSERA_FUSED_KERNELS(TESSERA_DECLARE_KERNEL)
}  // namespace avx512

#define TESSERA_DISPATCH_ISA(ret, name, params, args, device) \
  ret name params { return cpu_kernel_isa(#name) == KernelIsa::avx512 ? avx512::name args : avx2::name args; }
TESSERA_KERNELS(TESSERA_DISPATCH_ISA)
TESSERA_FUSED_KERNELS(TESSERA_DISPATCH_ISA)

}  // namespace tessera::cpu
