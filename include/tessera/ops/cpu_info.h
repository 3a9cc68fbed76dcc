// What this CPU can do and what Tessera's CPU kernels use of it, read at run time: shown by
// `tessera --version`, a training run's header and config, and `tessera bench`.
//
// oneDNN picks its kernels by its *effective* ISA: the CPU's, lowered by ONEDNN_MAX_CPU_ISA
// (or DNNL_MAX_CPU_ISA) when set. Tessera's own loops follow the same level, so one variable
// caps both, and a run capped to AVX2 on an AVX-512 machine executes what an AVX2 machine would.
#pragma once

#include <string>
#include <vector>

namespace tessera {

// The instruction-set level of Tessera's own vectorised loops.
enum class KernelIsa {
  none,    // below AVX2 + FMA: Tessera refuses to run its kernels
  avx2,    // AVX2 + FMA
  avx512,  // AVX-512 F, BW, VL, DQ (Skylake-SP, Zen 4 and newer)
};
const char* kernel_isa_name(KernelIsa isa);  // "none", "avx2", "avx512"

struct CpuInfo {
  std::string model;                  // the brand string, e.g. "AMD EPYC 9B14 96-Core Processor"
  std::vector<std::string> features;  // of the hardware: avx2 fma avx512f ... avx512_bf16 amx_bf16
  std::string onednn_isa;             // oneDNN's effective ISA: "avx2", "avx512_core_bf16", ...
  std::string isa_cap;                // "ONEDNN_MAX_CPU_ISA=AVX2" when a cap is set, else ""
  KernelIsa kernels = KernelIsa::none;
  bool bf16 = false;         // oneDNN can multiply in bf16 under the effective ISA
  bool bf16_native = false;  // ... with AVX512-BF16 or AMX instructions, not emulated in f32
};

// Read once, on first use (oneDNN's ISA cannot change after its first kernel).
const CpuInfo& cpu_info();

// One line: "AMD EPYC 9B14 96-Core Processor; oneDNN ISA avx2 (ONEDNN_MAX_CPU_ISA=AVX2);
// kernels avx2; bf16 no".
std::string cpu_summary();

// Why bf16 mixed precision cannot run here, or "" when it can: names the effective ISA, the
// cap, and what bf16 needs.
std::string bf16_unavailable_reason();

// Throws DeviceError("<who>: ... need AVX2 and FMA ...") when the kernels cannot run here;
// no prefix when `who` is empty.
void require_supported_cpu(const char* who);

// The ISA level a CPU kernel runs at here (the dispatch of every layer's per-ISA kernels);
// DeviceError naming `kernel` below AVX2.
KernelIsa cpu_kernel_isa(const char* kernel);

}  // namespace tessera
