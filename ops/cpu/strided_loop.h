// Broadcast iteration for our own elementwise loops: operands are described by strides over
// the output shape (0 on broadcast axes), adjacent axes are merged where every operand
// allows it, and the innermost axis is handed to a tight (vectorisable) inner loop.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera::cpu {

template <std::size_t N>
struct StridedLoop {
  std::vector<std::int64_t> shape;                     // coalesced output shape, rank >= 1
  std::array<std::vector<std::int64_t>, N> strides;   // per operand, in elements

  // operand_shapes[k] must broadcast to `out` (right-aligned, equal or 1).
  StridedLoop(const Shape& out, const std::array<const Shape*, N>& operand_shapes) {
    const std::size_t rank = out.size();
    std::array<std::vector<std::int64_t>, N> full;
    for (std::size_t k = 0; k < N; ++k) {
      const Shape& s = *operand_shapes[k];
      full[k].assign(rank, 0);
      std::int64_t stride = 1;
      for (std::size_t i = s.size(); i-- > 0;) {
        const std::size_t oi = rank - (s.size() - i);
        full[k][oi] = s[i] == 1 ? 0 : stride;
        stride *= s[i];
      }
    }
    // Drop size-1 axes, then merge axis i into i+1 when contiguous for every operand.
    for (std::size_t i = 0; i < rank; ++i) {
      if (out[i] == 1) continue;
      if (!shape.empty()) {
        bool mergeable = true;
        for (std::size_t k = 0; k < N; ++k)
          if (strides[k].back() != full[k][i] * out[i]) mergeable = false;
        if (mergeable) {
          shape.back() *= out[i];
          for (std::size_t k = 0; k < N; ++k) strides[k].back() = full[k][i];
          continue;
        }
      }
      shape.push_back(out[i]);
      for (std::size_t k = 0; k < N; ++k) strides[k].push_back(full[k][i]);
    }
    if (shape.empty()) {
      shape.push_back(1);
      for (std::size_t k = 0; k < N; ++k) strides[k].push_back(0);
    }
  }

  std::int64_t inner() const { return shape.back(); }
  std::int64_t rows() const {
    std::int64_t r = 1;
    for (std::size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
    return r;
  }

  // Element offsets of operand k at the start of outer row `row`.
  std::array<std::int64_t, N> row_offsets(std::int64_t row) const {
    std::array<std::int64_t, N> off{};
    for (std::size_t i = shape.size() - 1; i-- > 0;) {
      const std::int64_t idx = row % shape[i];
      row /= shape[i];
      for (std::size_t k = 0; k < N; ++k) off[k] += idx * strides[k][i];
    }
    return off;
  }
};

}  // namespace tessera::cpu
