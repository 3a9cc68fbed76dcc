// The backend interface: every kernel the ops need, as one function per (family, op), with
// outputs preallocated by the caller. kernels:: routes by device to cpu:: (ops/cpu/) or
// cuda:: (ops/cuda/), which implement the same signatures. Kernels never touch the tape.
//
// Letters in shape comments: B batch, N rows/tokens, C channels/classes, D width, M/K/N
// matmul sizes, H/W image height/width, O output channels.
#pragma once

#include <cstdint>
#include <vector>

#include "tessera/autograd/tensor.h"
#include "tessera/ops/unary_ops.h"

namespace tessera {

struct Conv2dOptions;
struct Pool2dOptions;

enum class BinaryOp { add, sub, mul, div };
enum class PoolKind { max, avg };  // avg: Pool2dOptions::count_include_pad says which divisor


// Every kernel once: X(return type, name, (parameters), (arguments), the device that routes
// it). From this list come the declarations of each backend (cpu::, cuda::, and cpu::avx2::,
// cpu::avx512:: behind cpu::), the router kernels:: and the CPU's ISA dispatch.
#define TESSERA_KERNELS(X)                                                                                  \
  /* out = a (op) b, NumPy broadcasting; out has the broadcast shape */                                    \
  X(void, binary, (BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out), (op, a, b, out), out.device()) \
  X(void, unary_forward, (UnaryOp op, const Tensor& x, Tensor& y, double alpha, double beta),                \
    (op, x, y, alpha, beta), x.device())                                                                    \
  /* dx = dy * f'(x) */                                                                                     \
  X(void, unary_backward, (UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx, double alpha, double beta), \
    (op, x, dy, dx, alpha, beta), x.device())                                                               \
  /* out = cond != 0 ? a : b, broadcast */                                                                  \
  X(void, where, (const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out), (cond, a, b, out),     \
    out.device())                                                                                           \
  X(void, cast, (const Tensor& x, Tensor& out), (x, out), x.device())                                       \
  X(void, add_inplace, (Tensor& dst, const Tensor& src, double alpha), (dst, src, alpha), dst.device())     \
  X(void, scale_inplace, (Tensor& dst, double factor), (dst, factor), dst.device())                         \
  /* out (broadcast batch, M, N) = op(a) op(b) */                                                           \
  X(void, matmul, (const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b, Tensor& out),       \
    (a, b, transpose_a, transpose_b, out), out.device())                                                    \
  /* x (M, K), w (N, K), bias (N) or undefined -> out (M, N) */                                            \
  X(void, linear, (const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out), (x, w, bias, out),    \
    out.device())                                                                                           \
  /* out has x's rank with reduced axes of size 1 */                                                        \
  X(void, reduce_sum, (const Tensor& x, Tensor& out), (x, out), x.device())                                 \
  /* argmax: i64, flat offset into x of each group's first maximum */                                       \
  X(void, reduce_max, (const Tensor& x, Tensor& out, Tensor& argmax), (x, out, argmax), x.device())         \
  /* dst.flat[index[i]] += src.flat[i] */                                                                   \
  X(void, scatter_add_flat, (Tensor& dst, const Tensor& index, const Tensor& src), (dst, index, src),       \
    dst.device())                                                                                           \
  /* out = x broadcast to out's shape */                                                                    \
  X(void, broadcast_copy, (const Tensor& x, Tensor& out), (x, out), x.device())                             \
  X(void, permute, (const Tensor& x, const std::vector<std::int64_t>& order, Tensor& out), (x, order, out),  \
    x.device())                                                                                             \
  /* out = x[start : start + step * out.size(axis) : step] along axis */                                   \
  X(void, slice_copy, (const Tensor& x, int axis, std::int64_t start, std::int64_t step, Tensor& out),      \
    (x, axis, start, step, out), x.device())                                                                \
  /* out[start :: step][: src.size(axis)] (+)= src along axis */                                           \
  X(void, slice_assign,                                                                                     \
    (const Tensor& src, int axis, std::int64_t start, std::int64_t step, Tensor& out, bool accumulate),     \
    (src, axis, start, step, out, accumulate), out.device())                                                \
  X(void, index_select, (const Tensor& x, int axis, const Tensor& index, Tensor& out), (x, axis, index, out), \
    x.device())                                                                                             \
  /* out.select(axis, index[i]) += src.select(axis, i) */                                                   \
  X(void, index_add, (const Tensor& src, int axis, const Tensor& index, Tensor& out), (src, axis, index, out), \
    out.device())                                                                                           \
  X(void, gather, (const Tensor& x, int axis, const Tensor& index, Tensor& out), (x, axis, index, out),     \
    x.device())                                                                                             \
  /* out[.., index[i], ..] += src[.., i, ..] along axis */                                                  \
  X(void, scatter_add, (const Tensor& src, int axis, const Tensor& index, Tensor& out), (src, axis, index, out), \
    out.device())                                                                                           \
  X(void, softmax_forward, (const Tensor& x, int axis, bool log, Tensor& y), (x, axis, log, y), x.device()) \
  X(void, softmax_backward, (const Tensor& y, const Tensor& dy, int axis, bool log, Tensor& dx),            \
    (y, dy, axis, log, dx), y.device())                                                                     \
  /* over the last axis; mean and rstd: (rows) in f32/f64 like x */                                        \
  X(void, layer_norm_forward,                                                                               \
    (const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean, Tensor& rstd), \
    (x, w, b, eps, y, mean, rstd), x.device())                                                              \
  /* dw, db may be undefined (no affine or not needed) */                                                   \
  X(void, layer_norm_backward,                                                                              \
    (const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& dy, double eps, \
     Tensor& dx, Tensor& dw, Tensor& db),                                                                   \
    (x, w, mean, rstd, dy, eps, dx, dw, db), x.device())                                                    \
  X(void, conv2d_forward,                                                                                   \
    (const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opts, Tensor& y),          \
    (x, w, bias, opts, y), x.device())                                                                      \
  X(void, conv2d_backward_data, (const Tensor& w, const Tensor& dy, const Conv2dOptions& opts, Tensor& dx), \
    (w, dy, opts, dx), w.device())                                                                          \
  /* db may be undefined */                                                                                 \
  X(void, conv2d_backward_weights,                                                                          \
    (const Tensor& x, const Tensor& dy, const Conv2dOptions& opts, Tensor& dw, Tensor& db),                \
    (x, dy, opts, dw, db), x.device())                                                                      \
  /* x (B, C, H, W) -> y (B, C, OH, OW). max: the kernel sets `workspace` to what its backward reads   */ \
  /* (CPU f32: oneDNN's workspace, as i64 words; elsewhere i64 (B, C, OH, OW), the offset h * W + w    */ \
  /* of each window's first maximum); avg leaves it undefined                                          */ \
  X(void, pool2d_forward,                                                                                   \
    (PoolKind kind, const Tensor& x, const Pool2dOptions& opts, Tensor& y, Tensor& workspace),              \
    (kind, x, opts, y, workspace), x.device())                                                              \
  /* dy (B, C, OH, OW) -> dx (B, C, H, W), overwritten; workspace: the forward's (max only) */             \
  X(void, pool2d_backward,                                                                                  \
    (PoolKind kind, const Tensor& dy, const Tensor& workspace, const Pool2dOptions& opts, Tensor& dx),      \
    (kind, dy, workspace, opts, dx), dy.device())                                                           \
  /* x (B, C, ...) per channel C over the other axes; w, b (C) or undefined -> y like x. training: mean */ \
  /* and var (C) receive the batch mean and biased variance; else they hold the statistics to use      */ \
  X(void, batch_norm_forward,                                                                               \
    (const Tensor& x, const Tensor& w, const Tensor& b, bool training, double eps, Tensor& mean,           \
     Tensor& var, Tensor& y),                                                                               \
    (x, w, b, training, eps, mean, var, y), x.device())                                                     \
  /* mean, var (C) as the forward used them; training: dx also flows through the batch statistics;      */ \
  /* dx, dw, db may be undefined (not needed)                                                           */ \
  X(void, batch_norm_backward,                                                                              \
    (const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& var, const Tensor& dy,             \
     bool training, double eps, Tensor& dx, Tensor& dw, Tensor& db),                                        \
    (x, w, mean, var, dy, training, eps, dx, dw, db), x.device())                                           \
  /* out = x * keep / (1 - p), keep drawn from Philox(seed, offset + i) */                                 \
  X(void, dropout, (const Tensor& x, double p, std::uint64_t seed, std::uint64_t offset, Tensor& out),      \
    (x, p, seed, offset, out), x.device())                                                                  \
  /* logits (N, C), target i64 (N) -> loss (N); ignored rows get 0 */                                      \
  X(void, cross_entropy_forward,                                                                            \
    (const Tensor& logits, const Tensor& target, double smoothing, std::int64_t ignore_index, Tensor& loss), \
    (logits, target, smoothing, ignore_index, loss), logits.device())                                       \
  /* dloss (N) -> dlogits (N, C) */                                                                         \
  X(void, cross_entropy_backward,                                                                           \
    (const Tensor& logits, const Tensor& target, const Tensor& dloss, double smoothing,                     \
     std::int64_t ignore_index, Tensor& dlogits),                                                           \
    (logits, target, dloss, smoothing, ignore_index, dlogits), logits.device())


// Fused kernels, which a backend may lack: ops ask has_fused_attention() and otherwise use
// their composition of the kernels above (documented in ops.h). The CPU has them; CUDA
// runs the composition (cuBLAS matmuls and its softmax kernel) until it has its own.
struct AttentionDropout {
  double p = 0.0;                      // 0: no dropout on the weights
  std::uint64_t seed = 0, offset = 0;  // Philox stream of the mask (element (b,h,i,j))
};
#define TESSERA_FUSED_KERNELS(X)                                                                           \
  /* qkv (B, N, 3D) -> out (B, N, D); probs (B, H, N, N) receives softmax(q k^T * scale) (before dropout) */ \
  X(void, attention_forward,                                                                               \
    (const Tensor& qkv, std::int64_t heads, double scale, const AttentionDropout& drop, Tensor& out,       \
     Tensor& probs),                                                                                       \
    (qkv, heads, scale, drop, out, probs), qkv.device())                                                   \
  /* dout (B, N, D) -> dqkv (B, N, 3D) */                                                                  \
  X(void, attention_backward,                                                                              \
    (const Tensor& qkv, const Tensor& probs, const Tensor& dout, std::int64_t heads, double scale,         \
     const AttentionDropout& drop, Tensor& dqkv),                                                          \
    (qkv, probs, dout, heads, scale, drop, dqkv), qkv.device())

bool has_fused_attention(Device device);

// While alive on this thread, every kernel returns without computing: ops still check their
// inputs, allocate their outputs and record their backward, so a forward and backward pass
// costs its allocations only and its outputs hold garbage. The memory probe (train/memory.h)
// measures a step of a huge configuration this way before refusing it.
class DryRunGuard {
 public:
  DryRunGuard();
  ~DryRunGuard();
  DryRunGuard(const DryRunGuard&) = delete;
  DryRunGuard& operator=(const DryRunGuard&) = delete;

 private:
  bool previous_;
};
bool dry_run();

#define TESSERA_DECLARE_KERNEL(ret, name, params, args, device) ret name params;

namespace kernels {  // routes by device
TESSERA_KERNELS(TESSERA_DECLARE_KERNEL)
TESSERA_FUSED_KERNELS(TESSERA_DECLARE_KERNEL)
}  // namespace kernels
namespace cpu {  // routes by ISA (ops/cpu/dispatch.cpp)
TESSERA_KERNELS(TESSERA_DECLARE_KERNEL)
TESSERA_FUSED_KERNELS(TESSERA_DECLARE_KERNEL)
}  // namespace cpu
namespace cuda { TESSERA_KERNELS(TESSERA_DECLARE_KERNEL) }     // defined in ops/cuda/ when built with CUDA


}  // namespace tessera
