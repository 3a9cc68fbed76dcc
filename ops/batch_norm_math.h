// Batch normalisation's per-element math, shared by the f64 reference (ops/cpu/batch_norm.cpp)
// and the CUDA kernels (ops/cuda/batch_norm.cu). Per channel: n values, mean, biased variance
// var, rstd = 1 / sqrt(var + eps), xhat = (x - mean) rstd. Plain constexpr C++17 (nvcc too).
#pragma once

namespace tessera {

// y = w xhat + b (w = 1, b = 0 without the affine parameters).
template <class T>
constexpr T bn_output(T x, T mean, T rstd, T w, T b) {
  return (x - mean) * rstd * w + b;
}

// dx from dy. Training, through the batch statistics: w rstd (dy - mean(dy) - xhat mean(dy xhat)),
// the means over the channel's n values. Evaluation: the statistics are constants, w rstd dy.
template <class T>
constexpr T bn_input_grad(T dy, T xhat, T w, T rstd, T mean_dy, T mean_dy_xhat, bool training) {
  return training ? w * rstd * (dy - mean_dy - xhat * mean_dy_xhat) : w * rstd * dy;
}

}  // namespace tessera
