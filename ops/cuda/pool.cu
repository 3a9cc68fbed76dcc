// CUDA 2-D max and average pooling, forward and backward, over the window math of
// ops/pool_window.h (the f64 reference's too).

// Forward: one thread per output. Backward: one thread per input, gathering from the windows
// that read it, so it is deterministic without atomics.

#include "ops/cuda/device_utils.cuh"

namespace tessera::cuda::launch {
namespace {

using dev::grid_for;
using dev::kThreads;

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
pool2d_forward_kernel(const T* x, T* y, i64* argmax, bool max, Pool2dGeometry g) {
  TESSERA_GRID_LOOP(t, g.B * g.C * g.OH * g.OW) {
    const i64 ow = t % g.OW, oh = (t / g.OW) % g.OH, p = t / (g.OW * g.OH);
    const T* plane = x + p * g.H * g.W;
    const PoolRange rh = pool_input_range(oh, g.H, g.KH, g.SH, g.PH);
    const PoolRange rw = pool_input_range(ow, g.W, g.KW, g.SW, g.PW);
    if (max) {
      const PoolMax<T> m = pool_window_max(plane, g.W, rh, rw);
      y[t] = m.value;
      argmax[t] = m.index;
    } else {
      y[t] = pool_window_sum(plane, g.W, rh, rw) / static_cast<T>(pool_avg_divisor(g, rh, rw));
    }
  }
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
pool2d_backward_kernel(const T* dy, const i64* argmax, T* dx, bool max, Pool2dGeometry g) {
  TESSERA_GRID_LOOP(t, g.B * g.C * g.H * g.W) {
    const i64 iw = t % g.W, ih = (t / g.W) % g.H, p = t / (g.W * g.H);
    const i64 plane = p * g.OH * g.OW;
    dx[t] = pool_input_grad(g, max, dy + plane, max ? argmax + plane : nullptr, ih, iw);
  }
}

}  // namespace

void pool2d_forward(Elem t, bool max, const void* x, void* y, std::int64_t* argmax, const Pool2dGeometry& g) {
  const i64 n = g.B * g.C * g.OH * g.OW;
  if (t == Elem::f32)
    pool2d_forward_kernel<float><<<grid_for(n), kThreads>>>(static_cast<const float*>(x), static_cast<float*>(y),
                                                            argmax, max, g);
  else
    pool2d_forward_kernel<double><<<grid_for(n), kThreads>>>(static_cast<const double*>(x),
                                                             static_cast<double*>(y), argmax, max, g);
  check_launch(max ? "max_pool2d" : "avg_pool2d");
}

void pool2d_backward(Elem t, bool max, const void* dy, const std::int64_t* argmax, void* dx,
                     const Pool2dGeometry& g) {
  const i64 n = g.B * g.C * g.H * g.W;
  if (t == Elem::f32)
    pool2d_backward_kernel<float><<<grid_for(n), kThreads>>>(static_cast<const float*>(dy), argmax,
                                                             static_cast<float*>(dx), max, g);
  else
    pool2d_backward_kernel<double><<<grid_for(n), kThreads>>>(static_cast<const double*>(dy), argmax,
                                                              static_cast<double*>(dx), max, g);
  check_launch(max ? "max_pool2d_backward" : "avg_pool2d_backward");
}

}  // namespace tessera::cuda::launch
