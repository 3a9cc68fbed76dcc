#include "tessera/ops/cpu_info.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "tessera/autograd/error.h"

namespace tessera {
namespace {

std::string brand_string() {
  unsigned regs[12] = {};
  unsigned max_leaf = __get_cpuid_max(0x80000000u, nullptr);
  if (max_leaf < 0x80000004u) return "unknown x86-64 CPU";
  for (unsigned i = 0; i < 3; ++i)
    __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
  char text[49] = {};
  std::memcpy(text, regs, 48);
  std::string s(text);
  const auto first = s.find_first_not_of(' '), last = s.find_last_not_of(' ');
  return first == std::string::npos ? "unknown x86-64 CPU" : s.substr(first, last - first + 1);
}

// The SIMD features that decide which kernels run (with the OS's consent, which
// __builtin_cpu_supports checks through XGETBV).
std::vector<std::string> hardware_features() {
  __builtin_cpu_init();
  std::vector<std::string> f;
  auto add = [&](bool has, const char* name) {
    if (has) f.emplace_back(name);
  };
  add(__builtin_cpu_supports("sse4.2"), "sse4.2");
  add(__builtin_cpu_supports("avx"), "avx");
  add(__builtin_cpu_supports("avx2"), "avx2");
  add(__builtin_cpu_supports("fma"), "fma");
  add(__builtin_cpu_supports("avx512f"), "avx512f");
  add(__builtin_cpu_supports("avx512bw"), "avx512bw");
  add(__builtin_cpu_supports("avx512vl"), "avx512vl");
  add(__builtin_cpu_supports("avx512dq"), "avx512dq");
  add(__builtin_cpu_supports("avx512vnni"), "avx512_vnni");
  add(__builtin_cpu_supports("avx512bf16"), "avx512_bf16");
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    add(d & (1u << 22), "amx_bf16");  // CPUID.(7,0):EDX[22]
  }
  return f;
}

const char* onednn_isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::all: return "all";
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
  }
  return "unknown";
}

// oneDNN's ISA values are bit sets: a level includes every bit of the levels below it.
bool isa_includes(dnnl::cpu_isa isa, dnnl::cpu_isa level) {
  const auto i = static_cast<unsigned>(isa), l = static_cast<unsigned>(level);
  return (i & l) == l;
}

std::string isa_cap() {
  for (const char* var : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"})
    if (const char* v = std::getenv(var); v && *v) return fmt::format("{}={}", var, v);
  return "";
}

bool has(const std::vector<std::string>& features, const char* name) {
  for (const std::string& f : features)
    if (f == name) return true;
  return false;
}

// Asks oneDNN for a bf16 matmul (bf16 operands, f32 result, as mixed precision uses it).
// Returns the implementation's name, or "" when there is none under the effective ISA.
std::string bf16_matmul_implementation() {
  try {
    using md = dnnl::memory::desc;
    using dt = dnnl::memory::data_type;
    const md a({64, 64}, dt::bf16, dnnl::memory::format_tag::ab);
    const md c({64, 64}, dt::f32, dnnl::memory::format_tag::ab);
    const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, a, c), engine);
    return pd.impl_info_str();
  } catch (const dnnl::error&) {
    return "";
  }
}

CpuInfo read_cpu_info() {
  CpuInfo info;
  info.model = brand_string();
  info.features = hardware_features();
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  info.onednn_isa = onednn_isa_name(isa);
  info.isa_cap = isa_cap();
  // Our loops are built for AVX2 + FMA and AVX-512 F/BW/VL/DQ (oneDNN's avx512_core).
  if (isa_includes(isa, dnnl::cpu_isa::avx512_core))
    info.kernels = KernelIsa::avx512;
  else if (isa_includes(isa, dnnl::cpu_isa::avx2) && has(info.features, "fma"))
    info.kernels = KernelIsa::avx2;
  const std::string bf16 = bf16_matmul_implementation();
  info.bf16 = !bf16.empty();
  info.bf16_native = bf16.find("bf16") != std::string::npos || bf16.find("amx") != std::string::npos;
  return info;
}

}  // namespace

const char* kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::none: return "none";
    case KernelIsa::avx2: return "avx2";
    case KernelIsa::avx512: return "avx512";
  }
  return "none";
}

const CpuInfo& cpu_info() {
  static const CpuInfo info = read_cpu_info();
  return info;
}

std::string cpu_summary() {
  const CpuInfo& c = cpu_info();
  const std::string cap = c.isa_cap.empty() ? "" : fmt::format(" ({})", c.isa_cap);
  const char* bf16 = !c.bf16 ? "no" : c.bf16_native ? "yes" : "emulated (slower than f32)";
  return fmt::format("{}; oneDNN ISA {}{}; kernels {}; bf16 {}", c.model, c.onednn_isa, cap,
                     kernel_isa_name(c.kernels), bf16);
}

std::string bf16_unavailable_reason() {
  const CpuInfo& c = cpu_info();
  if (c.bf16) return "";
  return fmt::format(
      "bf16 mixed precision needs a CPU with AVX-512 (oneDNN ISA avx512_core or newer; AVX512-BF16 runs it "
      "natively), but oneDNN's ISA here is {}{}",
      c.onednn_isa, c.isa_cap.empty() ? "" : fmt::format(" ({})", c.isa_cap));
}

KernelIsa cpu_kernel_isa(const char* kernel) {
  static const KernelIsa isa = cpu_info().kernels;
  if (isa == KernelIsa::none) require_supported_cpu(kernel);  // throws
  return isa;
}

void require_supported_cpu(const char* who) {
  const CpuInfo& c = cpu_info();
  if (c.kernels != KernelIsa::none) return;
  const std::string prefix = who && *who ? fmt::format("{}: ", who) : "";
  if (!c.isa_cap.empty() && has(c.features, "avx2") && has(c.features, "fma"))
    throw DeviceError(fmt::format("{}Tessera's CPU kernels need AVX2 and FMA, which {} turns off (oneDNN ISA {}); "
                                  "raise it to AVX2 or unset it",
                                  prefix, c.isa_cap, c.onednn_isa));
  throw DeviceError(fmt::format("{}Tessera's CPU kernels need AVX2 and FMA, which this CPU ({}) lacks", prefix,
                                c.model));
}

}  // namespace tessera
