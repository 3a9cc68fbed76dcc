// Plain-typed launchers of the CUDA kernels, shared by the .cu files and the host wrappers.

// Raw device pointers, sizes and enums only, so nvcc never sees the host headers (the unary
// op table is shared: its math is the kernels'). Every
// launcher runs on the default stream and checks the launch, throwing DeviceError naming
// `op`. Axis-based kernels view a tensor as (A, L, B): the axes before the axis, the axis,
// and the axes after it. Letters as in ops/kernels.h.

#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/pool_window.h"         // plain C++17: nvcc compiles it too
#include "tessera/ops/unary_ops.h"  // plain C++17: nvcc compiles it too

namespace tessera::cuda::launch {

using i64 = std::int64_t;

// Element storage types (mirrors tessera::DType without pulling host headers into nvcc).
enum class Elem : std::uint8_t { f32, f64, bf16, i64 };
enum class Bin : std::uint8_t { add, sub, mul, div };

// Broadcast/stride plans: a coalesced output shape and, per operand, the element stride
// of each output axis (0 on broadcast axes). Passed to kernels by value.
constexpr int kMaxDims = 12;
template <int N>
struct Plan {
  int rank = 0;
  i64 shape[kMaxDims] = {};
  i64 strides[N][kMaxDims] = {};
};

// Throws DeviceError("<op>: kernel launch failed: ...") if the last launch failed.
void check_launch(const char* op);

// ---- elementwise (T: f32 or f64 unless noted; n = output elements)
// plan == nullptr: a, b and out all have n contiguous elements.
void binary(Elem t, Bin op, const void* a, const void* b, void* out, i64 n, const Plan<2>* plan);
void unary_forward(Elem t, UnaryOp op, const void* x, void* y, i64 n, double alpha, double beta);
void unary_backward(Elem t, UnaryOp op, const void* x, const void* dy, void* dx, i64 n, double alpha,
                    double beta);
// cond of any element type; operands broadcast by plan (cond, a, b).
void where(Elem t, Elem cond_t, const void* cond, const void* a, const void* b, void* out, i64 n,
           const Plan<3>& plan);
// Any element type to any: through double, like the CPU kernel (bf16 rounds to nearest even).
void cast(Elem from, Elem to, const void* x, void* out, i64 n);
void axpy(Elem t, void* dst, const void* src, i64 n, double alpha);  // dst += alpha * src
void scale(Elem t, void* dst, i64 n, double factor);
// out[i] = x[base + offset(i)] for any element size (2, 4 or 8 bytes): broadcast, permute,
// slice copies.
void strided_copy(std::size_t elem_size, const void* x, i64 base, void* out, i64 n, const Plan<1>& plan);
// out[base + offset(i)] (+)= src[i]; accumulate needs f32/f64 in `t`, else any element size.
void strided_assign(Elem t, const void* src, void* out, i64 base, i64 n, const Plan<1>& plan,
                    bool accumulate);
// Keeps element i iff dropout_keep(seed, offset + i, threshold): out = x * scale, else 0.
void dropout(Elem t, const void* x, void* out, i64 n, std::uint64_t seed, std::uint64_t offset,
             std::uint32_t threshold, double scale);

// ---- reductions
// out (A, S) = sums of x (A, R) over S consecutive chunks of `chunk` elements of each row.
void sum_rows(Elem t, const void* x, void* out, i64 A, i64 R, i64 chunk);
// out (A, S, B) = sums of x (A, R, B) over S consecutive chunks of `chunk` rows of R.
void sum_middle(Elem t, const void* x, void* out, i64 A, i64 R, i64 B, i64 chunk);
// Max over reduced axes: kept dims (shape, x strides) enumerate outputs in order; reduced
// dims enumerate each group in row-major order. argmax: flat x offset of the first maximum
// (the first NaN if any).
void reduce_max(Elem t, const void* x, void* out, std::int64_t* argmax, i64 n_out,
                const Plan<1>& kept, const Plan<1>& reduced, i64 group_size);
// dst[index[i]] += src[i] (atomic).
void scatter_add_flat(Elem t, void* dst, const std::int64_t* index, const void* src, i64 n);
// partial (blocks) in double = per-block sums of x^2; returns the number of blocks used.
int sum_squares_partial(Elem t, const void* x, i64 n, double* partial, int max_blocks);
// out[0] = sum of x (n doubles), one block.
void sum_doubles(const double* x, i64 n, double* out);

// ---- indexing along an axis (A, L, B); out (A, n, B)
// out[a, i, b] = x[a, index[i], b]
void index_select(std::size_t elem_size, const void* x, const std::int64_t* index, void* out,
                  i64 A, i64 L, i64 B, i64 n);
// out[a, index[i], b] += src[a, i, b] (atomic)
void index_add(Elem t, const void* src, const std::int64_t* index, void* out, i64 A, i64 L, i64 B, i64 n);
// out[a, i, b] = x[a, index[a, i, b], b]
void gather(std::size_t elem_size, const void* x, const std::int64_t* index, void* out, i64 A, i64 L,
            i64 B, i64 n);
// out[a, index[a, i, b], b] += src[a, i, b] (atomic)
void scatter_add(Elem t, const void* src, const std::int64_t* index, void* out, i64 A, i64 L, i64 B, i64 n);

// ---- softmax, layer norm, cross entropy
void softmax_forward(Elem t, const void* x, void* y, i64 A, i64 L, i64 B, bool log);
void softmax_backward(Elem t, const void* y, const void* dy, void* dx, i64 A, i64 L, i64 B, bool log);
// x (rows, D); w, b (D) or null; mean, rstd (rows)
void layer_norm_forward(Elem t, const void* x, const void* w, const void* b, void* y, void* mean,
                        void* rstd, i64 rows, i64 D, double eps);
void layer_norm_backward_dx(Elem t, const void* x, const void* w, const void* mean, const void* rstd,
                            const void* dy, void* dx, i64 rows, i64 D);
// dw_partial, db_partial (S, D) (either may be null): sums over chunks of `chunk` rows.
void layer_norm_backward_dwdb(Elem t, const void* x, const void* mean, const void* rstd,
                              const void* dy, void* dw_partial, void* db_partial, i64 rows, i64 D,
                              i64 chunk);
// logits (N, C), target (N) -> loss (N)
void cross_entropy_forward(Elem t, const void* logits, const std::int64_t* target, void* loss, i64 N,
                           i64 C, double smoothing, std::int64_t ignore_index);
void cross_entropy_backward(Elem t, const void* logits, const std::int64_t* target, const void* dloss,
                            void* dlogits, i64 N, i64 C, double smoothing, std::int64_t ignore_index);

// ---- batch norm: x, y, dy, dx (B, C, S) per channel C; mean, var (C) biased statistics
// mean, var = the batch statistics of x (two passes, one block per channel).
void batch_norm_stats(Elem t, const void* x, void* mean, void* var, i64 B, i64 C, i64 S);
// y = w (x - mean) rstd + b, rstd = 1 / sqrt(var + eps); w, b may be null.
void batch_norm_apply(Elem t, const void* x, const void* mean, const void* var, const void* w, const void* b,
                      void* y, i64 B, i64 C, i64 S, double eps);
// sum_dy, sum_dy_xhat (C): per channel sums of dy and dy * xhat.
void batch_norm_backward_sums(Elem t, const void* x, const void* mean, const void* var, const void* dy,
                              void* sum_dy, void* sum_dy_xhat, i64 B, i64 C, i64 S, double eps);
// dx from dy and the sums (bn_input_grad of ops/batch_norm_math.h); w may be null.
void batch_norm_backward_dx(Elem t, const void* x, const void* mean, const void* var, const void* w,
                            const void* dy, const void* sum_dy, const void* sum_dy_xhat, void* dx, i64 B, i64 C,
                            i64 S, double eps, bool training);

// ---- pooling (the window arithmetic of ops/pool_window.h)
// x (B, C, H, W) -> y (B, C, OH, OW); max: argmax (B, C, OH, OW) receives the offset h * W + w
// of each window's first maximum.
void pool2d_forward(Elem t, bool max, const void* x, void* y, std::int64_t* argmax, const Pool2dGeometry& g);
// dy (B, C, OH, OW) -> dx (B, C, H, W), overwritten; one thread per input, no atomics.
void pool2d_backward(Elem t, bool max, const void* dy, const std::int64_t* argmax, void* dx,
                     const Pool2dGeometry& g);

// ---- convolution helpers
struct ConvGeometry {
  i64 C, H, W, KH, KW, OH, OW, stride_h, stride_w, pad_h, pad_w;
};
// x (nb, C, H, W) -> col (nb, C*KH*KW, OH*OW), or with rows_layout col (nb, OH*OW, C*KH*KW).
void im2col(Elem t, const void* x, void* col, i64 nb, const ConvGeometry& g, bool rows_layout);
// col (nb, C*KH*KW, OH*OW) -> dx (nb, C, H, W), summing overlapping taps (overwrites dx).
void col2im(Elem t, const void* col, void* dx, i64 nb, const ConvGeometry& g);

}  // namespace tessera::cuda::launch
