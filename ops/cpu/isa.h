// The CPU kernels are built once per instruction-set level, so one portable binary runs
// AVX2 code on an AVX2 CPU and AVX-512 code on an AVX-512 one. CMake compiles every kernel
// file of a layer's cpu/ directory twice (tessera_isa_objects), with TESSERA_CPU_ISA set to
// avx2 or avx512; the file wraps its code in TESSERA_CPU_ISA_BEGIN(ns) / _END, which put it
// in namespace ns::<isa> (tessera::cpu::avx2::, tessera::optim::cpu::avx512::) under that
// level's target. Headers are included before BEGIN and stay at the baseline, so no inline
// function or template they define is ever emitted with wider instructions (the linker
// would keep one copy for both levels). Each layer's dispatch picks the level at run time
// (cpu_kernel_isa in tessera/ops/cpu_info.h).
//
// GCC applies the target to every function in the region, lambdas and OpenMP bodies
// included. Clang (the fuzz builds) does not propagate it to those, so under clang both
// namespaces hold baseline code: correct, only slower. A native build (TESSERA_NATIVE)
// compiles everything for this machine already, and both namespaces keep its flags.
#pragma once

#ifndef TESSERA_CPU_ISA
#error "ops/cpu/isa.h: compile this file through CMake's per-ISA kernel libraries (TESSERA_CPU_ISA unset)"
#endif

#define TESSERA_CPU_ISA_avx2 1
#define TESSERA_CPU_ISA_avx512 2
#define TESSERA_CPU_ISA_LEVEL_(isa) TESSERA_CPU_ISA_##isa
#define TESSERA_CPU_ISA_LEVEL(isa) TESSERA_CPU_ISA_LEVEL_(isa)

#if defined(__clang__) || !defined(__x86_64__) || TESSERA_NATIVE_BUILD
#define TESSERA_CPU_ISA_TARGET_PUSH
#define TESSERA_CPU_ISA_TARGET_POP
#elif TESSERA_CPU_ISA_LEVEL(TESSERA_CPU_ISA) == TESSERA_CPU_ISA_avx2
// x86-64-v3: AVX2, FMA, F16C, BMI1/2 (Haswell, Zen 1 and newer).
#define TESSERA_CPU_ISA_TARGET_PUSH _Pragma("GCC push_options") _Pragma("GCC target(\"arch=x86-64-v3\")")
#define TESSERA_CPU_ISA_TARGET_POP _Pragma("GCC pop_options")
#elif TESSERA_CPU_ISA_LEVEL(TESSERA_CPU_ISA) == TESSERA_CPU_ISA_avx512
// x86-64-v4: v3 plus AVX-512 F, BW, CD, DQ, VL (Skylake-SP, Zen 4 and newer), 512-bit vectors.
#define TESSERA_CPU_ISA_TARGET_PUSH \
  _Pragma("GCC push_options") _Pragma("GCC target(\"arch=x86-64-v4,prefer-vector-width=512\")")
#define TESSERA_CPU_ISA_TARGET_POP _Pragma("GCC pop_options")
#else
#error "ops/cpu/isa.h: TESSERA_CPU_ISA must be avx2 or avx512"
#endif

#define TESSERA_CPU_ISA_BEGIN(ns) TESSERA_CPU_ISA_TARGET_PUSH namespace ns::TESSERA_CPU_ISA {
#define TESSERA_CPU_ISA_END } TESSERA_CPU_ISA_TARGET_POP
