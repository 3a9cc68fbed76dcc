// The backend interface: every kernel the ops need, as one function per (family, op), with
// outputs preallocated by the caller. kernels:: routes by device to cpu:: (ops/cpu/) or
// cuda:: (ops/cuda/), which implement the same signatures. Kernels never touch the tape.
//
// Letters in shape comments: B batch, N rows/tokens, C channels/classes, D width, M/K/N
// matmul sizes, H/W image height/width, O output channels.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace tessera {

struct Conv2dOptions;

// One optimizer update, applied in place to every tensor of a parameter group.
struct AdamUpdate {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;           // AdamW: p -= lr * wd * p; Adam: g += wd * p
  double bias_correction1;  // 1 - beta1^t
  double bias_correction2;  // 1 - beta2^t
};
struct SgdUpdate {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  bool first_step;  // the momentum buffer starts as the gradient
};

enum class BinaryOp { add, sub, mul, div };

enum class UnaryOp {
  relu, gelu_erf, gelu_tanh, exp, log, sqrt, tanh, sigmoid,
  linear,  // alpha * x + beta
  pow,     // x ^ alpha
  clamp,   // min(max(x, alpha), beta)
};

#define TESSERA_KERNEL_API                                                                     \
  /* out = a (op) b, NumPy broadcasting; out has the broadcast shape */                       \
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);                    \
  void unary_forward(UnaryOp op, const Tensor& x, Tensor& y, double alpha, double beta);      \
  /* dx = dy * f'(x) */                                                                       \
  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx, double alpha, \
                      double beta);                                                           \
  /* out = cond != 0 ? a : b, broadcast */                                                    \
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);              \
  void cast(const Tensor& x, Tensor& out);                                                    \
  void add_inplace(Tensor& dst, const Tensor& src, double alpha);                             \
  void scale_inplace(Tensor& dst, double factor);                                             \
  /* out (broadcast batch, M, N) = op(a) op(b) */                                             \
  void matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b, Tensor& out); \
  /* x (M, K), w (N, K), bias (N) or undefined -> out (M, N) */                              \
  void linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out);             \
  /* out has x's rank with reduced axes of size 1 */                                          \
  void reduce_sum(const Tensor& x, Tensor& out);                                              \
  /* argmax: i64, flat offset into x of each group's first maximum */                         \
  void reduce_max(const Tensor& x, Tensor& out, Tensor& argmax);                              \
  /* dst.flat[index[i]] += src.flat[i] */                                                     \
  void scatter_add_flat(Tensor& dst, const Tensor& index, const Tensor& src);                 \
  /* out = x broadcast to out's shape */                                                      \
  void broadcast_copy(const Tensor& x, Tensor& out);                                          \
  void permute(const Tensor& x, const std::vector<std::int64_t>& order, Tensor& out);         \
  /* out = x[start : start + step * out.size(axis) : step] along axis */                      \
  void slice_copy(const Tensor& x, int axis, std::int64_t start, std::int64_t step, Tensor& out); \
  /* out[start :: step][: src.size(axis)] (+)= src along axis */                              \
  void slice_assign(const Tensor& src, int axis, std::int64_t start, std::int64_t step, Tensor& out, \
                    bool accumulate);                                                         \
  void index_select(const Tensor& x, int axis, const Tensor& index, Tensor& out);             \
  /* out.select(axis, index[i]) += src.select(axis, i) */                                     \
  void index_add(const Tensor& src, int axis, const Tensor& index, Tensor& out);              \
  void gather(const Tensor& x, int axis, const Tensor& index, Tensor& out);                   \
  /* out[.., index[i], ..] += src[.., i, ..] along axis */                                    \
  void scatter_add(const Tensor& src, int axis, const Tensor& index, Tensor& out);            \
  void softmax_forward(const Tensor& x, int axis, bool log, Tensor& y);                       \
  void softmax_backward(const Tensor& y, const Tensor& dy, int axis, bool log, Tensor& dx);    \
  /* over the last axis; mean and rstd: (rows) in f32/f64 like x */                          \
  void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps,       \
                          Tensor& y, Tensor& mean, Tensor& rstd);                             \
  /* dw, db may be undefined (no affine or not needed) */                                     \
  void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean,              \
                           const Tensor& rstd, const Tensor& dy, double eps, Tensor& dx,      \
                           Tensor& dw, Tensor& db);                                           \
  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias,                   \
                      const Conv2dOptions& opts, Tensor& y);                                  \
  void conv2d_backward_data(const Tensor& w, const Tensor& dy, const Conv2dOptions& opts,     \
                            Tensor& dx);                                                      \
  /* db may be undefined */                                                                   \
  void conv2d_backward_weights(const Tensor& x, const Tensor& dy, const Conv2dOptions& opts,  \
                               Tensor& dw, Tensor& db);                                       \
  /* out = x * keep / (1 - p), keep drawn from Philox(seed, offset + i) */                   \
  void dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t offset, Tensor& out); \
  /* logits (N, C), target i64 (N) -> loss (N); ignored rows get 0 */                        \
  void cross_entropy_forward(const Tensor& logits, const Tensor& target, double smoothing,     \
                             std::int64_t ignore_index, Tensor& loss);                        \
  /* dloss (N) -> dlogits (N, C) */                                                           \
  void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& dloss, \
                              double smoothing, std::int64_t ignore_index, Tensor& dlogits); \
  /* fused optimizer steps over a whole parameter group (one pass, all tensors) */            \
  void adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,       \
                   const std::vector<Tensor>& m, const std::vector<Tensor>& v,               \
                   const AdamUpdate& u);                                                     \
  void sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,        \
                  const std::vector<Tensor>& momentum, const SgdUpdate& u);                  \
  /* sum of x^2 in double (gradient-norm clipping) */                                         \
  double squared_norm(const Tensor& x);

namespace kernels { TESSERA_KERNEL_API }  // routes by device
namespace cpu { TESSERA_KERNEL_API }
namespace cuda { TESSERA_KERNEL_API }     // defined in ops/cuda/ when built with CUDA

// Was the library built with the CUDA backend, and is a GPU usable now?
bool cuda_built();
bool cuda_available();

}  // namespace tessera
