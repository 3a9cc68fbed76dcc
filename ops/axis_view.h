// Axis-based kernels see a tensor as (A, L, B): the product of the axes before `axis`, the
// axis itself, and the product of the axes after it.
#pragma once

#include "tessera/autograd/tensor.h"

namespace tessera {

struct AxisView {
  std::int64_t A, L, B;
};

inline AxisView axis_view(const Shape& s, int axis) {
  AxisView v{1, s[axis], 1};
  for (int i = 0; i < axis; ++i) v.A *= s[i];
  for (std::size_t i = static_cast<std::size_t>(axis) + 1; i < s.size(); ++i) v.B *= s[i];
  return v;
}

}  // namespace tessera
