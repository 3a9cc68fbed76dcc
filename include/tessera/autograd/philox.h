// Philox4x32-10 (Salmon et al., SC'11), constexpr and header-only in C++17 so that CUDA
// device code (nvcc --expt-relaxed-constexpr) draws exactly the numbers the CPU does.
#pragma once

#include <array>
#include <cstdint>

namespace tessera {

constexpr std::array<std::uint32_t, 4> philox4x32(std::uint64_t key, std::uint64_t counter_lo,
                                                  std::uint64_t counter_hi = 0) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c0 = static_cast<std::uint32_t>(counter_lo);
  std::uint32_t c1 = static_cast<std::uint32_t>(counter_lo >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(counter_hi);
  std::uint32_t c3 = static_cast<std::uint32_t>(counter_hi >> 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(key);
  std::uint32_t k1 = static_cast<std::uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{kMul0} * c0;
    const std::uint64_t p1 = std::uint64_t{kMul1} * c2;
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {c0, c1, c2, c3};
}

// Maps 32 random bits to a float in [0, 1) using the top 24 bits (exactly representable).
constexpr double to_unit(std::uint32_t bits) { return (bits >> 8) * (1.0 / 16777216.0); }

}  // namespace tessera
