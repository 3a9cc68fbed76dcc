// CUDA fused Adam/AdamW and SGD updates over many tensors per launch (PyTorch's update rules).
#include "ops/cuda/device_utils.cuh"
#include "optim/cuda/launch.h"

namespace tessera::optim::cuda::launch {
namespace {

namespace dev = tessera::cuda::dev;
using tessera::cuda::launch::check_launch;

using dev::grid_for;
using dev::kThreads;

// Flat index i over the concatenated tensors -> (tensor k, element j). A thread's indices
// only grow, so the tensor cursor only moves forward.
__device__ __forceinline__ void locate(const i64* end, int count, i64 i, int& k, i64& j) {
  while (k + 1 < count && i >= end[k]) ++k;
  j = i - (k > 0 ? end[k - 1] : 0);
}

template <class T>
struct AdamParams {
  T beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, decay_factor, step_size,
      bias_correction2_sqrt;
  bool decoupled;
};

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
adam_kernel(AdamTensors ts, AdamParams<T> s) {
  const i64 total = ts.end[ts.count - 1];
  int k = 0;
  TESSERA_GRID_LOOP(i, total) {
    i64 j;
    locate(ts.end, ts.count, i, k, j);
    T* p = static_cast<T*>(ts.p[k]) + j;
    T* m = static_cast<T*>(ts.m[k]) + j;
    T* v = static_cast<T*>(ts.v[k]) + j;
    T g = static_cast<const T*>(ts.g[k])[j];
    T pv = *p;
    if (s.decoupled) pv *= s.decay_factor;                         // AdamW: p *= 1 - lr * wd
    else if (s.weight_decay != T(0)) g += s.weight_decay * pv;     // Adam: L2 through the gradient
    const T mv = s.beta1 * *m + s.one_minus_beta1 * g;
    const T vv = s.beta2 * *v + s.one_minus_beta2 * g * g;
    const T denom = dev::d_sqrt(vv) / s.bias_correction2_sqrt + s.eps;
    *m = mv;
    *v = vv;
    *p = pv - s.step_size * mv / denom;
  }
}

template <class T>
struct SgdParams {
  T lr, momentum, one_minus_dampening, weight_decay;
  bool nesterov, first_step;
};

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
sgd_kernel(SgdTensors ts, SgdParams<T> s) {
  const i64 total = ts.end[ts.count - 1];
  int k = 0;
  TESSERA_GRID_LOOP(i, total) {
    i64 j;
    locate(ts.end, ts.count, i, k, j);
    T* p = static_cast<T*>(ts.p[k]) + j;
    T g = static_cast<const T*>(ts.g[k])[j];
    const T pv = *p;
    if (s.weight_decay != T(0)) g += s.weight_decay * pv;
    if (ts.buf[k] != nullptr) {
      T* b = static_cast<T*>(ts.buf[k]) + j;
      const T bv = s.first_step ? g : s.momentum * *b + s.one_minus_dampening * g;
      *b = bv;
      g = s.nesterov ? g + s.momentum * bv : bv;
    }
    *p = pv - s.lr * g;
  }
}

template <class T>
void adam_t(const AdamTensors& ts, const AdamScalars& s) {
  AdamParams<T> p;
  p.beta1 = static_cast<T>(s.beta1);
  p.one_minus_beta1 = static_cast<T>(1.0 - s.beta1);
  p.beta2 = static_cast<T>(s.beta2);
  p.one_minus_beta2 = static_cast<T>(1.0 - s.beta2);
  p.eps = static_cast<T>(s.eps);
  p.weight_decay = static_cast<T>(s.weight_decay);
  p.decay_factor = static_cast<T>(1.0 - s.lr * s.weight_decay);
  p.step_size = static_cast<T>(s.step_size);
  p.bias_correction2_sqrt = static_cast<T>(s.bias_correction2_sqrt);
  p.decoupled = s.decoupled;
  adam_kernel<T><<<grid_for(ts.end[ts.count - 1]), kThreads>>>(ts, p);
}

template <class T>
void sgd_t(const SgdTensors& ts, const SgdScalars& s) {
  SgdParams<T> p;
  p.lr = static_cast<T>(s.lr);
  p.momentum = static_cast<T>(s.momentum);
  p.one_minus_dampening = static_cast<T>(1.0 - s.dampening);
  p.weight_decay = static_cast<T>(s.weight_decay);
  p.nesterov = s.nesterov;
  p.first_step = s.first_step;
  sgd_kernel<T><<<grid_for(ts.end[ts.count - 1]), kThreads>>>(ts, p);
}

}  // namespace

void adam(Elem t, const AdamTensors& tensors, const AdamScalars& s) {
  if (tensors.count == 0 || tensors.end[tensors.count - 1] == 0) return;
  if (t == Elem::f32) adam_t<float>(tensors, s);
  else adam_t<double>(tensors, s);
  check_launch("adam_update");
}

void sgd(Elem t, const SgdTensors& tensors, const SgdScalars& s) {
  if (tensors.count == 0 || tensors.end[tensors.count - 1] == 0) return;
  if (t == Elem::f32) sgd_t<float>(tensors, s);
  else sgd_t<double>(tensors, s);
  check_launch("sgd_update");
}

}  // namespace tessera::optim::cuda::launch
