// The dropout keep rule shared by the CPU and CUDA kernels, so both draw identical masks.

// Element i of a dropout with generator state (seed, offset) is kept iff
// to_unit(philox4x32(seed, offset + i)[0]) >= p. Everything here is constexpr and
// header-only, so device code can call it too (nvcc --expt-relaxed-constexpr).

#pragma once

#include <cstdint>

namespace tessera {

// The first output word of philox4x32(key, counter, 0) (autograd/random.cpp): the same
// ten rounds, keeping only what word 0 needs. test_cuda checks the two agree.
constexpr std::uint32_t philox_first_word(std::uint64_t key, std::uint64_t counter) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c0 = static_cast<std::uint32_t>(counter);
  std::uint32_t c1 = static_cast<std::uint32_t>(counter >> 32);
  std::uint32_t c2 = 0, c3 = 0;
  std::uint32_t k0 = static_cast<std::uint32_t>(key);
  std::uint32_t k1 = static_cast<std::uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{kMul0} * c0;
    const std::uint64_t p1 = std::uint64_t{kMul1} * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<std::uint32_t>(p1);
    c3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return c0;
}

// to_unit(bits) >= p in integers: to_unit(bits) = (bits >> 8) * 2^-24 exactly, so the rule
// is (bits >> 8) >= ceil(p * 2^24) (the product is exact too). No float rounding can then
// make the CPU and the GPU disagree. p >= 1 (or NaN) keeps nothing, p <= 0 keeps everything.
constexpr std::uint32_t dropout_threshold(double p) {
  constexpr double kScale = 16777216.0;  // 2^24
  if (!(p < 1.0)) return 1u << 24;
  if (p <= 0.0) return 0;
  const double t = p * kScale;
  auto c = static_cast<std::uint32_t>(t);  // t in (0, 2^24): truncation, then round up
  if (static_cast<double>(c) < t) ++c;
  return c;
}

// Is element `counter` (= generator offset + i) kept? `threshold` = dropout_threshold(p).
constexpr bool dropout_keep(std::uint64_t seed, std::uint64_t counter, std::uint32_t threshold) {
  return (philox_first_word(seed, counter) >> 8) >= threshold;
}

}  // namespace tessera
