// Vectorisable elementwise math for our own CPU loops. glibc's expf is a scalar call that
// stops GCC from vectorising a loop (its SIMD variants need -ffast-math); softmax-heavy
// kernels spend most of their time there. These inline versions vectorise.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace tessera::cpu {

// e^x for float, relative error below 2e-7 over the range where the result is a normal
// float; inputs below -87.3 give 0's neighbourhood (about 1e-38), above 88.7 give +inf.
inline float exp_vec(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;      // ln 2 split so n * kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723212e-6f;
  if (x > 88.72f) return INFINITY;
  x = x < -87.33f ? -87.33f : x;
  const float n = std::floor(x * kLog2e + 0.5f);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;  // |r| <= ln2 / 2
  // Taylor polynomial of e^r to degree 7 (remainder < 1e-8 on |r| <= 0.347).
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t e = (static_cast<std::int32_t>(n) + 127) << 23;  // 2^n, n in [-126, 128)
  return p * std::bit_cast<float>(e);
}

// The f64 reference keeps the library exp.
inline double exp_vec(double x) { return std::exp(x); }

}  // namespace tessera::cpu
