// The differentiable op API. Each op checks its inputs (shape, dtype, device) and throws
// a tessera::Error naming itself and the shapes; computes its result with a kernel (f32:
// oneDNN or tuned loops; f64: plain reference loops; CUDA when built); and records its
// backward on the tape when an input requires a gradient.
//
// Broadcasting follows NumPy: shapes are aligned on the right, and each axis must be equal
// or 1 in one of the operands.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "tessera/autograd/tape.h"
#include "tessera/autograd/tensor.h"
#include "tessera/ops/unary_ops.h"

namespace tessera {

// ---------------------------------------------------------------- elementwise (binary)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// alpha * x + beta, fused (oneDNN eltwise_linear).
Tensor scale_shift(const Tensor& x, double alpha, double beta = 0.0);
Tensor neg(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor clamp(const Tensor& x, double low, double high);
// Elementwise select: cond != 0 ? a : b, with cond, a, b broadcast together.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// The shape that a and b broadcast to; throws ShapeError naming `op`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);

// ---------------------------------------------------------------- activations and math
enum class GeluApprox { erf, tanh };

// The plain unary ops of ops/unary_ops.h: relu, abs, exp, log, sqrt, tanh, sigmoid, ...
#define TESSERA_UNARY_API_public(name) Tensor name(const Tensor& x);
#define TESSERA_UNARY_API_internal(name)
#define TESSERA_DECLARE_UNARY(name, api, ...) TESSERA_UNARY_API_##api(name)
TESSERA_UNARY_OPS(TESSERA_DECLARE_UNARY)
#undef TESSERA_DECLARE_UNARY
// Any row of the table, parameters included (x, alpha, beta): what the tests loop over.
Tensor unary(UnaryOp op, const Tensor& x, double alpha = 0.0, double beta = 0.0);
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::erf);
// x * sigmoid(x): a composition, so its gradient comes from its parts.
Tensor silu(const Tensor& x);

// ---------------------------------------------------------------- matmul
// a (..., M, K) @ b (..., K, N) -> (..., M, N); batch axes broadcast. transpose_a/b use
// the last two axes of the stored operand transposed, without a copy.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);
// x (..., K) @ w (N, K)^T + bias (N) -> (..., N); bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = {});

// Mixed precision: while an AutocastGuard(DType::bf16) is alive on this thread, linear
// layers on f32 CPU tensors multiply in bf16 with f32 accumulation, bias and results; their
// gradients are f32, and weights stay f32 (the master copy). Needs a CPU on which oneDNN
// multiplies in bf16 (AVX-512; natively with AVX512-BF16): elsewhere the guard throws
// DeviceError saying why (see cpu_info.h).
class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype);  // bf16, or f32 to turn autocast off
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DType previous_;
};
DType autocast_dtype();  // f32 when off

// ---------------------------------------------------------------- reductions
// Over the given axes (all when empty); keepdim leaves size-1 axes in place.
Tensor sum(const Tensor& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
// Ties: backward routes the whole gradient to the first maximal element of each reduced
// group (as torch.max(x, dim) does; torch.amax splits it evenly among the tied ones).
Tensor max(const Tensor& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
// Sums a broadcast result back to `shape` (the backward of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);
// Index of the maximum along an axis (i64, not differentiable).
Tensor argmax(const Tensor& x, std::int64_t axis);

// ---------------------------------------------------------------- shape
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const std::vector<std::int64_t>& order);
Tensor transpose(const Tensor& x, std::int64_t a, std::int64_t b);
// Repeats size-1 axes (and new leading axes) to `shape`; backward sums them.
Tensor expand(const Tensor& x, const Shape& shape);
Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis);
// Elements start, start+step, ... below end along `axis` (negative start/end count from the end).
Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t end,
             std::int64_t step = 1);
// Picks whole slices along `axis` by an i64 index vector (repeats allowed).
Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& index);
// out[..., i, ...] = x[..., index[..., i, ...], ...] along `axis` (torch.gather).
Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& index);

// ---------------------------------------------------------------- softmax and normalisation
Tensor softmax(const Tensor& x, std::int64_t axis = -1);
Tensor log_softmax(const Tensor& x, std::int64_t axis = -1);
// Normalises over the last axis; weight and bias (both of that axis' size) are optional.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

// ---------------------------------------------------------------- convolution
struct Conv2dOptions {
  std::int64_t stride_h = 1;
  std::int64_t stride_w = 1;
  std::int64_t pad_h = 0;
  std::int64_t pad_w = 0;
};
// x (B, C, H, W), w (O, C, KH, KW), bias (O) or undefined -> (B, O, H', W').
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias = {}, Conv2dOptions opts = {});

// ---------------------------------------------------------------- pooling
struct Pool2dOptions {
  std::int64_t kernel_h = 2, kernel_w = 2;
  std::int64_t stride_h = 2, stride_w = 2;   // PyTorch's default stride is the kernel size; callers set it
  std::int64_t pad_h = 0, pad_w = 0;         // max: padding never wins; avg: see count_include_pad
  bool count_include_pad = true;             // avg only, as PyTorch's default
};
// x (B, C, H, W) -> (B, C, H', W'), H' = (H + 2 pad_h - kernel_h) / stride_h + 1 (floor, as PyTorch ceil_mode=False).
// Padding is at most half the kernel (PyTorch's rule), so every window holds an input
// element, and an average that counts the padding divides by kernel_h * kernel_w.
// max_pool2d's gradient goes to each window's first maximum (row-major within the window).
Tensor max_pool2d(const Tensor& x, Pool2dOptions opts);
Tensor avg_pool2d(const Tensor& x, Pool2dOptions opts);

// ---------------------------------------------------------------- batch normalization
// x (B, C, ...) normalised per channel C (axis 1) over every other axis. In training: batch
// statistics, and running_mean / running_var (C) updated in place, when defined, as PyTorch does
// (running = (1 - momentum) running + momentum * stat, the variance unbiased: n/(n-1)); not recorded
// on the tape. Not training: running_mean / running_var are used (must be defined).
// weight, bias (C) optional (affine). Gradients flow to x, weight and bias (training and eval).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// ---------------------------------------------------------------- regularisation and loss
// Zeroes each element with probability p and scales the rest by 1/(1-p). Identity when
// !training or p == 0. The mask comes from (generator seed, offset): backward regenerates it.
Tensor dropout(const Tensor& x, double p, bool training = true, Generator& gen = default_generator());

enum class Reduction { mean, sum, none };
struct CrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  double label_smoothing = 0.0;
  std::int64_t ignore_index = -100;  // targets equal to it contribute nothing
};
// logits (N, C), target i64 (N) of class indices -> scalar (mean/sum) or (N) (none).
// mean divides by the number of targets not ignored.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, CrossEntropyOptions opts = {});

// ---------------------------------------------------------------- attention
struct AttentionOptions {
  double dropout = 0.0;   // on the attention weights, in training only
  bool training = false;
  Generator* generator = nullptr;  // the default generator when null
  Tensor* weights = nullptr;       // when set, receives the attention weights (B, H, N, N)
  // Masks (either makes the op run its composition): keys whose key_padding_mask (B, N) entry
  // is non-zero are ignored, and with `causal` query i sees keys j <= i only. A query whose
  // keys are all masked attends to nothing: its output is zero (PyTorch would give NaN).
  Tensor key_padding_mask{};
  bool causal = false;
};
// Multi-head self-attention on a fused projection: qkv (B, N, 3D) holding q, k, v for
// `heads` heads of size D / heads each -> (B, N, D) = softmax(q k^T * scale) v, heads
// concatenated.
// One fused kernel where the backend has it (has_fused_attention: the CPU) and no mask is
// given; otherwise the composition below, on that backend's matmul, softmax and dropout kernels.
Tensor self_attention(const Tensor& qkv, std::int64_t heads, double scale, AttentionOptions opts = {});
// The same built from the primitive ops (reshape, permute, matmul, softmax, dropout): the
// fused kernel's test oracle.
Tensor self_attention_composed(const Tensor& qkv, std::int64_t heads, double scale, AttentionOptions opts = {});

// ---------------------------------------------------------------- casts and copies
Tensor cast(const Tensor& x, DType dtype);

}  // namespace tessera
