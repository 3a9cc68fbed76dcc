// CUDA batch normalisation per channel: x (B, C, S), statistics and parameters (C).

// Per-channel sums: one block per channel (grid-stride over channels), block reductions, two
// passes for the variance. Elementwise parts: one thread per element, with the math of
// ops/batch_norm_math.h (the f64 reference's too).

#include "ops/batch_norm_math.h"
#include "ops/cuda/device_utils.cuh"

namespace tessera::cuda::launch {
namespace {

using dev::grid_for;
using dev::kThreads;
using dev::SumOp;

inline unsigned channel_blocks(i64 C) { return static_cast<unsigned>(C < dev::kMaxBlocks ? C : dev::kMaxBlocks); }

template <class T>
__device__ __forceinline__ T rstd_of(T var, T eps) {
  return T(1) / dev::d_sqrt(var + eps);
}

// Accumulates in double for f32 too, as the CPU does: f32 partial sums far from zero lose
// the digits of the mean that x - mean keeps.
template <class T>
__global__ void __launch_bounds__(dev::kMaxRowThreads)
batch_norm_stats_kernel(const T* x, T* mean, T* var, i64 B, i64 C, i64 S) {
  const i64 n = B * S;
  for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
    double s = 0.0;
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) s += x[((i / S) * C + c) * S + i % S];
    const double mu = dev::block_reduce(s, SumOp{}, 0.0) / static_cast<double>(n);
    double q = 0.0;  // two passes: no E[x^2] - E[x]^2 cancellation far from zero
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) {
      const double d = x[((i / S) * C + c) * S + i % S] - mu;
      q += d * d;
    }
    const double v = dev::block_reduce(q, SumOp{}, 0.0) / static_cast<double>(n);
    if (threadIdx.x == 0) {
      mean[c] = static_cast<T>(mu);
      var[c] = static_cast<T>(v);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
batch_norm_apply_kernel(const T* x, const T* mean, const T* var, const T* w, const T* b, T* y, i64 B, i64 C,
                        i64 S, T eps) {
  TESSERA_GRID_LOOP(t, B * C * S) {
    const i64 c = (t / S) % C;
    y[t] = bn_output(x[t], mean[c], rstd_of(var[c], eps), w != nullptr ? w[c] : T(1), b != nullptr ? b[c] : T(0));
  }
}

template <class T>
__global__ void __launch_bounds__(dev::kMaxRowThreads)
batch_norm_backward_sums_kernel(const T* x, const T* mean, const T* var, const T* dy, T* sum_dy, T* sum_dy_xhat,
                                i64 B, i64 C, i64 S, T eps) {
  const i64 n = B * S;
  for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
    const T mu = mean[c], rs = rstd_of(var[c], eps);
    T s1 = T(0), s2 = T(0);
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) {
      const i64 k = ((i / S) * C + c) * S + i % S;
      s1 += dy[k];
      s2 += dy[k] * (x[k] - mu) * rs;
    }
    s1 = dev::block_reduce(s1, SumOp{}, T(0));
    s2 = dev::block_reduce(s2, SumOp{}, T(0));
    if (threadIdx.x == 0) {
      sum_dy[c] = s1;
      sum_dy_xhat[c] = s2;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
batch_norm_backward_dx_kernel(const T* x, const T* mean, const T* var, const T* w, const T* dy, const T* sum_dy,
                              const T* sum_dy_xhat, T* dx, i64 B, i64 C, i64 S, T eps, bool training) {
  const T n = T(B * S);
  TESSERA_GRID_LOOP(t, B * C * S) {
    const i64 c = (t / S) % C;
    const T rs = rstd_of(var[c], eps);
    dx[t] = bn_input_grad(dy[t], (x[t] - mean[c]) * rs, w != nullptr ? w[c] : T(1), rs, sum_dy[c] / n,
                          sum_dy_xhat[c] / n, training);
  }
}

template <class T> const T* cp(const void* p) { return static_cast<const T*>(p); }
template <class T> T* mp(void* p) { return static_cast<T*>(p); }

}  // namespace

void batch_norm_stats(Elem t, const void* x, void* mean, void* var, i64 B, i64 C, i64 S) {
  const int threads = dev::row_threads(B * S);
  if (t == Elem::f32)
    batch_norm_stats_kernel<float><<<channel_blocks(C), threads>>>(cp<float>(x), mp<float>(mean), mp<float>(var),
                                                                   B, C, S);
  else
    batch_norm_stats_kernel<double><<<channel_blocks(C), threads>>>(cp<double>(x), mp<double>(mean),
                                                                    mp<double>(var), B, C, S);
  check_launch("batch_norm");
}

void batch_norm_apply(Elem t, const void* x, const void* mean, const void* var, const void* w, const void* b,
                      void* y, i64 B, i64 C, i64 S, double eps) {
  const i64 n = B * C * S;
  if (t == Elem::f32)
    batch_norm_apply_kernel<float><<<grid_for(n), kThreads>>>(cp<float>(x), cp<float>(mean), cp<float>(var),
                                                              cp<float>(w), cp<float>(b), mp<float>(y), B, C, S,
                                                              static_cast<float>(eps));
  else
    batch_norm_apply_kernel<double><<<grid_for(n), kThreads>>>(cp<double>(x), cp<double>(mean), cp<double>(var),
                                                               cp<double>(w), cp<double>(b), mp<double>(y), B, C,
                                                               S, eps);
  check_launch("batch_norm");
}

void batch_norm_backward_sums(Elem t, const void* x, const void* mean, const void* var, const void* dy,
                              void* sum_dy, void* sum_dy_xhat, i64 B, i64 C, i64 S, double eps) {
  const int threads = dev::row_threads(B * S);
  if (t == Elem::f32)
    batch_norm_backward_sums_kernel<float><<<channel_blocks(C), threads>>>(
        cp<float>(x), cp<float>(mean), cp<float>(var), cp<float>(dy), mp<float>(sum_dy), mp<float>(sum_dy_xhat), B,
        C, S, static_cast<float>(eps));
  else
    batch_norm_backward_sums_kernel<double><<<channel_blocks(C), threads>>>(
        cp<double>(x), cp<double>(mean), cp<double>(var), cp<double>(dy), mp<double>(sum_dy),
        mp<double>(sum_dy_xhat), B, C, S, eps);
  check_launch("batch_norm_backward");
}

void batch_norm_backward_dx(Elem t, const void* x, const void* mean, const void* var, const void* w,
                            const void* dy, const void* sum_dy, const void* sum_dy_xhat, void* dx, i64 B, i64 C,
                            i64 S, double eps, bool training) {
  const i64 n = B * C * S;
  if (t == Elem::f32)
    batch_norm_backward_dx_kernel<float><<<grid_for(n), kThreads>>>(
        cp<float>(x), cp<float>(mean), cp<float>(var), cp<float>(w), cp<float>(dy), cp<float>(sum_dy),
        cp<float>(sum_dy_xhat), mp<float>(dx), B, C, S, static_cast<float>(eps), training);
  else
    batch_norm_backward_dx_kernel<double><<<grid_for(n), kThreads>>>(
        cp<double>(x), cp<double>(mean), cp<double>(var), cp<double>(w), cp<double>(dy), cp<double>(sum_dy),
        cp<double>(sum_dy_xhat), mp<double>(dx), B, C, S, eps, training);
  check_launch("batch_norm_backward");
}

}  // namespace tessera::cuda::launch
