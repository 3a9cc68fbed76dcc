// The pooling window arithmetic shared by the f64 reference (ops/cpu/pool.cpp) and the CUDA
// kernels (ops/cuda/pool.cu): which inputs an output reads, which outputs read an input, a
// window's maximum and sum, an average's divisor. Plain constexpr C++17, so nvcc compiles it
// too (--expt-relaxed-constexpr).
#pragma once

#include <cstdint>

namespace tessera {

// x (B, C, H, W) -> y (B, C, OH, OW); kernel (KH, KW), stride (SH, SW), padding (PH, PW).
struct Pool2dGeometry {
  std::int64_t B, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW;
  bool count_include_pad;
};

// [lo, hi): a range of input or output indices along one axis (empty when lo >= hi).
struct PoolRange {
  std::int64_t lo, hi;
};

// The inputs of an axis of size n that output o reads: its window clipped to [0, n).
constexpr PoolRange pool_input_range(std::int64_t o, std::int64_t n, std::int64_t k, std::int64_t s,
                                     std::int64_t p) {
  const std::int64_t start = o * s - p;
  return {start < 0 ? 0 : start, start + k < n ? start + k : n};
}

// The outputs (of `out` along the axis) whose window contains input i: o s - p <= i < o s - p + k.
constexpr PoolRange pool_output_range(std::int64_t i, std::int64_t out, std::int64_t k, std::int64_t s,
                                      std::int64_t p) {
  const std::int64_t first = i + p - k + 1;  // o >= first / s, rounded up
  const std::int64_t lo = first <= 0 ? 0 : (first + s - 1) / s;
  const std::int64_t hi = (i + p) / s + 1;  // o <= (i + p) / s, rounded down; i + p >= 0
  return {lo, hi < out ? hi : out};
}

// The divisor of output (h, w)'s average over its clipped window. With floor output sizes
// and padding at most half the kernel, no window reaches past the padding, so counting the
// padding always gives the whole kernel (PyTorch's rule, ceil_mode=False).
constexpr std::int64_t pool_avg_divisor(const Pool2dGeometry& g, PoolRange h, PoolRange w) {
  return g.count_include_pad ? g.KH * g.KW : (h.hi - h.lo) * (w.hi - w.lo);
}

template <class T>
struct PoolMax {
  T value;
  std::int64_t index;  // h * W + w within the plane
};

// The first maximum of a non-empty window of a (H, W) plane in row-major order; a NaN wins
// (the first one), as in PyTorch.
template <class T>
constexpr PoolMax<T> pool_window_max(const T* plane, std::int64_t W, PoolRange h, PoolRange w) {
  PoolMax<T> m{plane[h.lo * W + w.lo], h.lo * W + w.lo};
  for (std::int64_t ih = h.lo; ih < h.hi; ++ih)
    for (std::int64_t iw = w.lo; iw < w.hi; ++iw) {
      const T v = plane[ih * W + iw];
      if (v > m.value || (v != v && m.value == m.value)) m = {v, ih * W + iw};
    }
  return m;
}

template <class T>
constexpr T pool_window_sum(const T* plane, std::int64_t W, PoolRange h, PoolRange w) {
  T s = T(0);
  for (std::int64_t ih = h.lo; ih < h.hi; ++ih)
    for (std::int64_t iw = w.lo; iw < w.hi; ++iw) s += plane[ih * W + iw];
  return s;
}

// d(input (ih, iw)) of a (H, W) plane: the output gradients dy (OH, OW) of every window that
// reads it, each divided by its window's divisor (avg), or only where that window's maximum
// was this input (max: argmax (OH, OW) from the forward). A gather, so parallel over inputs
// without atomics, and the same order of summation on every backend.
template <class T>
constexpr T pool_input_grad(const Pool2dGeometry& g, bool max, const T* dy, const std::int64_t* argmax,
                            std::int64_t ih, std::int64_t iw) {
  const PoolRange oh = pool_output_range(ih, g.OH, g.KH, g.SH, g.PH);
  const PoolRange ow = pool_output_range(iw, g.OW, g.KW, g.SW, g.PW);
  const std::int64_t self = ih * g.W + iw;
  T acc = T(0);
  for (std::int64_t h = oh.lo; h < oh.hi; ++h)
    for (std::int64_t w = ow.lo; w < ow.hi; ++w) {
      const std::int64_t o = h * g.OW + w;
      if (max) {
        if (argmax[o] == self) acc += dy[o];
      } else {
        const PoolRange rh = pool_input_range(h, g.H, g.KH, g.SH, g.PH);
        const PoolRange rw = pool_input_range(w, g.W, g.KW, g.SW, g.PW);
        acc += dy[o] / static_cast<T>(pool_avg_divisor(g, rh, rw));
      }
    }
  return acc;
}

}  // namespace tessera
