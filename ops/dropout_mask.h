// The dropout keep rule shared by the CPU and CUDA kernels, so both draw identical masks.

// Element i of a dropout with generator state (seed, offset) is kept iff
// to_unit(philox4x32(seed, offset + i)[0]) >= p. Everything here is constexpr and
// header-only, so device code can call it too (nvcc --expt-relaxed-constexpr).

#pragma once

#include <cstdint>

#include "tessera/autograd/philox.h"

namespace tessera {

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
  return (philox4x32(seed, counter)[0] >> 8) >= threshold;
}

}  // namespace tessera
