// tessera::cuda:: kernel API (ops/kernels.h) for all but the GEMM-based kernels: checks and launches.

// Argument checks, shape bookkeeping and scratch buffers around the launchers of
// ops/cuda/*.cu; semantics match the CPU kernels of ops/cpu/.

#include <algorithm>
#include <cmath>

#include "ops/cuda/runtime.h"
#include "ops/dropout_mask.h"
#include "ops/axis_view.h"
#include "tessera/ops/kernels.h"
#include "tessera/ops/ops.h"

namespace tessera::cuda {
namespace {

using launch::Elem;


const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
  }
  return "binary";
}

launch::Bin to_launch(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return launch::Bin::add;
    case BinaryOp::sub: return launch::Bin::sub;
    case BinaryOp::mul: return launch::Bin::mul;
    case BinaryOp::div: return launch::Bin::div;
  }
  return launch::Bin::add;
}

// Does `operand` broadcast to `out` (right-aligned, equal or 1)?
bool broadcasts_to(const Shape& operand, const Shape& out) {
  if (operand.size() > out.size()) return false;
  for (std::size_t i = 0; i < operand.size(); ++i) {
    const std::int64_t d = operand[operand.size() - 1 - i], o = out[out.size() - 1 - i];
    if (d != o && d != 1) return false;
  }
  return true;
}

void require_broadcast(const char* op, const Tensor& t, const char* name, const Shape& out) {
  TESSERA_CHECK(broadcasts_to(t.shape(), out), ShapeError, "{}: {} {} does not broadcast to {}", op,
                name, shape_str(t.shape()), shape_str(out));
}

int checked_axis(const char* op, int axis, const Tensor& t) {
  return normalize_axis(axis, t.dim(), op);
}

// out (A, B) = sum over R of x (A, R, B), into `out` (A*B elements).
void sum_over_middle(Elem t, DType dtype, const void* x, void* out, std::int64_t A, std::int64_t R,
                     std::int64_t B) {
  // Few outputs and long sums: split R into S chunks so that enough blocks (B == 1) or
  // threads (B > 1) run, then sum the S partials. Deterministic, unlike atomics.
  if (B == 1) {
    constexpr std::int64_t kTargetBlocks = 1024, kMinChunk = 4096;
    std::int64_t S = 1;
    if (A < kTargetBlocks && R > 2 * kMinChunk)
      S = std::min((kTargetBlocks + A - 1) / A, (R + kMinChunk - 1) / kMinChunk);
    const std::int64_t chunk = (R + S - 1) / S;
    S = (R + chunk - 1) / chunk;
    if (S == 1) return launch::sum_rows(t, x, out, A, R, R);
    Tensor partial = device_scratch(A * S, dtype);
    launch::sum_rows(t, x, partial.raw_data(), A, R, chunk);
    return launch::sum_rows(t, partial.raw_data(), out, A, S, S);
  }
  constexpr std::int64_t kTargetThreads = 1 << 16;
  std::int64_t S = 1;
  if (A * B < kTargetThreads && R > 64)
    S = std::min((R + 31) / 32, (kTargetThreads + A * B - 1) / (A * B));
  const std::int64_t chunk = (R + S - 1) / S;
  S = (R + chunk - 1) / chunk;
  if (S == 1) return launch::sum_middle(t, x, out, A, R, B, R);
  Tensor partial = device_scratch(A * S * B, dtype);
  launch::sum_middle(t, x, partial.raw_data(), A, R, B, chunk);
  launch::sum_middle(t, partial.raw_data(), out, A, S, B, S);
}

}  // namespace

// ---------------------------------------------------------------- elementwise

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const char* name = binary_name(op);
  require_float(name, a, "a");
  require_float(name, b, "b");
  require_float(name, out, "out");
  require_same_dtype(name, a, "a", b, "b");
  require_same_dtype(name, a, "a", out, "out");
  require_broadcast(name, a, "a", out.shape());
  require_broadcast(name, b, "b", out.shape());
  if (out.numel() == 0) return;
  if (a.shape() == out.shape() && b.shape() == out.shape()) {
    launch::binary(elem_of(a.dtype()), to_launch(op), a.raw_data(), b.raw_data(), out.raw_data(),
                   out.numel(), nullptr);
    return;
  }
  const auto plan = coalesced_plan<2>(
      name, out.shape(), {broadcast_strides(a.shape(), out.shape()), broadcast_strides(b.shape(), out.shape())});
  launch::binary(elem_of(a.dtype()), to_launch(op), a.raw_data(), b.raw_data(), out.raw_data(),
                 out.numel(), &plan);
}

void unary_forward(UnaryOp op, const Tensor& x, Tensor& y, double alpha, double beta) {
  require_float("unary_forward", x, "x");
  require_float("unary_forward", y, "y");
  require_same_dtype("unary_forward", x, "x", y, "y");
  require_numel("unary_forward", y, x.numel(), "y");
  if (x.numel() == 0) return;
  launch::unary_forward(elem_of(x.dtype()), op, x.raw_data(), y.raw_data(), x.numel(), alpha,
                        beta);
}

void unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx, double alpha, double beta) {
  require_float("unary_backward", x, "x");
  require_float("unary_backward", dy, "dy");
  require_float("unary_backward", dx, "dx");
  require_same_dtype("unary_backward", x, "x", dy, "dy");
  require_same_dtype("unary_backward", x, "x", dx, "dx");
  require_numel("unary_backward", dy, x.numel(), "dy");
  require_numel("unary_backward", dx, x.numel(), "dx");
  if (x.numel() == 0) return;
  launch::unary_backward(elem_of(x.dtype()), op, x.raw_data(), dy.raw_data(), dx.raw_data(),
                         x.numel(), alpha, beta);
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  require_cuda("where", cond, "cond");
  require_float("where", a, "a");
  require_float("where", b, "b");
  require_float("where", out, "out");
  require_same_dtype("where", a, "a", b, "b");
  require_same_dtype("where", a, "a", out, "out");
  require_broadcast("where", cond, "cond", out.shape());
  require_broadcast("where", a, "a", out.shape());
  require_broadcast("where", b, "b", out.shape());
  if (out.numel() == 0) return;
  const Shape& s = out.shape();
  const auto plan = coalesced_plan<3>(
      "where", s,
      {broadcast_strides(cond.shape(), s), broadcast_strides(a.shape(), s), broadcast_strides(b.shape(), s)});
  launch::where(elem_of(a.dtype()), elem_of(cond.dtype()), cond.raw_data(), a.raw_data(), b.raw_data(),
                out.raw_data(), out.numel(), plan);
}

void cast(const Tensor& x, Tensor& out) {
  require_cuda("cast", x, "x");
  require_cuda("cast", out, "out");
  require_numel("cast", out, x.numel(), "out");
  if (x.numel() == 0) return;
  if (x.dtype() == out.dtype()) return copy_on_device(out.raw_data(), x.raw_data(), x.nbytes(), "cast");
  launch::cast(elem_of(x.dtype()), elem_of(out.dtype()), x.raw_data(), out.raw_data(), x.numel());
}

void add_inplace(Tensor& dst, const Tensor& src, double alpha) {
  require_float("add_", dst, "dst");
  require_float("add_", src, "src");
  require_same_dtype("add_", dst, "dst", src, "src");
  require_numel("add_", src, dst.numel(), "src");
  if (dst.numel() == 0) return;
  launch::axpy(elem_of(dst.dtype()), dst.raw_data(), src.raw_data(), dst.numel(), alpha);
}

void scale_inplace(Tensor& dst, double factor) {
  require_float("mul_", dst, "dst");
  if (dst.numel() == 0) return;
  launch::scale(elem_of(dst.dtype()), dst.raw_data(), dst.numel(), factor);
}

// ---------------------------------------------------------------- reductions

void reduce_sum(const Tensor& x, Tensor& out) {
  require_float("sum", x, "x");
  require_float("sum", out, "out");
  require_same_dtype("sum", x, "x", out, "out");
  TESSERA_CHECK(out.dim() == x.dim(), ShapeError, "sum: out {} must keep the rank of x {}",
                shape_str(out.shape()), shape_str(x.shape()));
  for (std::int64_t i = 0; i < x.dim(); ++i)
    TESSERA_CHECK(out.shape()[i] == x.shape()[i] || out.shape()[i] == 1, ShapeError,
                  "sum: out {} is not x {} with reduced axes of size 1", shape_str(out.shape()),
                  shape_str(x.shape()));
  if (out.numel() == 0) return;
  if (x.numel() == 0) return fill_zero(out.raw_data(), out.nbytes(), "sum");

  // Groups of adjacent axes that are all kept or all reduced (size-1 axes dropped).
  struct Group { std::int64_t size; bool reduced; };
  std::vector<Group> groups;
  for (std::int64_t i = 0; i < x.dim(); ++i) {
    const std::int64_t n = x.shape()[i];
    if (n == 1) continue;
    const bool reduced = out.shape()[i] == 1;
    if (!groups.empty() && groups.back().reduced == reduced) groups.back().size *= n;
    else groups.push_back({n, reduced});
  }
  const Elem t = elem_of(x.dtype());
  // Reduce the innermost reduced group, one at a time, through temporaries.
  Tensor current = x;
  bool reduced_any = false;
  while (true) {
    auto it = std::find_if(groups.rbegin(), groups.rend(), [](const Group& g) { return g.reduced; });
    if (it == groups.rend()) break;
    reduced_any = true;
    const std::size_t gi = static_cast<std::size_t>(groups.rend() - it - 1);
    std::int64_t A = 1, B = 1;
    for (std::size_t i = 0; i < gi; ++i) A *= groups[i].size;
    for (std::size_t i = gi + 1; i < groups.size(); ++i) B *= groups[i].size;
    const std::int64_t R = groups[gi].size;
    groups.erase(groups.begin() + static_cast<std::ptrdiff_t>(gi));
    const bool last = std::none_of(groups.begin(), groups.end(), [](const Group& g) { return g.reduced; });
    Tensor next = last ? out : device_scratch(A * B, x.dtype());
    sum_over_middle(t, x.dtype(), current.raw_data(), next.raw_data(), A, R, B);
    if (last) break;
    if (gi > 0 && gi < groups.size() && !groups[gi - 1].reduced && !groups[gi].reduced) {
      groups[gi - 1].size *= groups[gi].size;
      groups.erase(groups.begin() + static_cast<std::ptrdiff_t>(gi));
    }
    current = next;
  }
  if (!reduced_any) copy_on_device(out.raw_data(), x.raw_data(), x.nbytes(), "sum");
}

void reduce_max(const Tensor& x, Tensor& out, Tensor& argmax) {
  require_float("max", x, "x");
  require_float("max", out, "out");
  require_same_dtype("max", x, "x", out, "out");
  require_cuda("max", argmax, "argmax");
  TESSERA_CHECK(argmax.dtype() == DType::i64, DTypeError, "max: argmax must be i64, got {}", argmax.dtype());
  TESSERA_CHECK(out.dim() == x.dim(), ShapeError, "max: out {} must keep the rank of x {}",
                shape_str(out.shape()), shape_str(x.shape()));
  require_numel("max", argmax, out.numel(), "argmax");
  if (out.numel() == 0) return;
  TESSERA_CHECK(x.numel() > 0, ShapeError, "max: reducing the empty tensor {}", shape_str(x.shape()));

  const std::vector<std::int64_t> xs = contiguous_strides(x.shape());
  Shape kept_shape, reduced_shape;
  std::vector<std::int64_t> kept_strides, reduced_strides;
  for (std::int64_t i = 0; i < x.dim(); ++i) {
    const std::int64_t n = x.shape()[i];
    const bool reduced = out.shape()[i] == 1 && n != 1;
    TESSERA_CHECK(reduced || out.shape()[i] == n, ShapeError,
                  "max: out {} is not x {} with reduced axes of size 1", shape_str(out.shape()),
                  shape_str(x.shape()));
    (reduced ? reduced_shape : kept_shape).push_back(n);
    (reduced ? reduced_strides : kept_strides).push_back(xs[i]);
  }
  const auto kept = coalesced_plan("max", kept_shape, kept_strides);
  const auto red = coalesced_plan("max", reduced_shape, reduced_strides);
  launch::reduce_max(elem_of(x.dtype()), x.raw_data(), out.raw_data(), argmax.data<std::int64_t>(),
                     out.numel(), kept, red, shape_numel(reduced_shape));
}

void scatter_add_flat(Tensor& dst, const Tensor& index, const Tensor& src) {
  require_float("scatter_add_flat", dst, "dst");
  require_float("scatter_add_flat", src, "src");
  require_same_dtype("scatter_add_flat", dst, "dst", src, "src");
  const Tensor idx = index_on_device("scatter_add_flat", index);
  require_numel("scatter_add_flat", idx, src.numel(), "index");
  if (src.numel() == 0) return;
  launch::scatter_add_flat(elem_of(dst.dtype()), dst.raw_data(), idx.data<std::int64_t>(), src.raw_data(),
                           src.numel());
}

// ---------------------------------------------------------------- data movement

void broadcast_copy(const Tensor& x, Tensor& out) {
  require_cuda("broadcast_copy", x, "x");
  require_cuda("broadcast_copy", out, "out");
  require_same_dtype("broadcast_copy", x, "x", out, "out");
  require_broadcast("broadcast_copy", x, "x", out.shape());
  if (out.numel() == 0) return;
  if (x.numel() == out.numel())
    return copy_on_device(out.raw_data(), x.raw_data(), out.nbytes(), "broadcast_copy");
  const auto plan = coalesced_plan("broadcast_copy", out.shape(), broadcast_strides(x.shape(), out.shape()));
  launch::strided_copy(dtype_size(x.dtype()), x.raw_data(), 0, out.raw_data(), out.numel(), plan);
}

void permute(const Tensor& x, const std::vector<std::int64_t>& order, Tensor& out) {
  require_cuda("permute", x, "x");
  require_cuda("permute", out, "out");
  require_same_dtype("permute", x, "x", out, "out");
  TESSERA_CHECK(static_cast<std::int64_t>(order.size()) == x.dim() && out.dim() == x.dim(), ShapeError,
                "permute: order of {} axes for x {} and out {}", order.size(), shape_str(x.shape()),
                shape_str(out.shape()));
  if (out.numel() == 0) return;
  const std::vector<std::int64_t> xs = contiguous_strides(x.shape());
  std::vector<std::int64_t> st(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    const int a = normalize_axis(order[i], x.dim(), "permute");
    TESSERA_CHECK(out.shape()[i] == x.shape()[a], ShapeError, "permute: out {} is not x {} permuted",
                  shape_str(out.shape()), shape_str(x.shape()));
    st[i] = xs[a];  // output axis i walks input axis order[i]
  }
  const auto plan = coalesced_plan("permute", out.shape(), st);
  launch::strided_copy(dtype_size(x.dtype()), x.raw_data(), 0, out.raw_data(), out.numel(), plan);
}

void slice_copy(const Tensor& x, int axis, std::int64_t start, std::int64_t step, Tensor& out) {
  require_cuda("slice", x, "x");
  require_cuda("slice", out, "out");
  require_same_dtype("slice", x, "x", out, "out");
  axis = checked_axis("slice", axis, x);
  if (out.numel() == 0) return;
  const AxisView v = axis_view(x.shape(), axis);
  const std::int64_t n = out.shape()[axis];
  TESSERA_CHECK(step > 0 && start >= 0 && start + step * (n - 1) < v.L &&
                    out.numel() == v.A * n * v.B, ShapeError,
                "slice: {} elements from {} in steps of {} along axis {} of x {} into out {}", n,
                start, step, axis, shape_str(x.shape()), shape_str(out.shape()));
  const auto plan = coalesced_plan("slice", {v.A, n, v.B}, {v.L * v.B, step * v.B, 1});
  launch::strided_copy(dtype_size(x.dtype()), x.raw_data(), start * v.B, out.raw_data(), out.numel(), plan);
}

void slice_assign(const Tensor& src, int axis, std::int64_t start, std::int64_t step, Tensor& out,
                  bool accumulate) {
  require_cuda("slice_assign", src, "src");
  require_cuda("slice_assign", out, "out");
  require_same_dtype("slice_assign", src, "src", out, "out");
  if (accumulate) require_float("slice_assign", out, "out");
  axis = checked_axis("slice_assign", axis, out);
  if (src.numel() == 0) return;
  const AxisView v = axis_view(out.shape(), axis);
  const std::int64_t n = src.shape()[axis];
  TESSERA_CHECK(step > 0 && start >= 0 && start + step * (n - 1) < v.L &&
                    src.numel() == v.A * n * v.B, ShapeError,
                "slice_assign: src {} into {} elements from {} in steps of {} along axis {} of out {}",
                shape_str(src.shape()), n, start, step, axis, shape_str(out.shape()));
  const auto plan = coalesced_plan("slice_assign", {v.A, n, v.B}, {v.L * v.B, step * v.B, 1});
  launch::strided_assign(elem_of(out.dtype()), src.raw_data(), out.raw_data(), start * v.B, src.numel(),
                         plan, accumulate);
}

void index_select(const Tensor& x, int axis, const Tensor& index, Tensor& out) {
  require_cuda("index_select", x, "x");
  require_cuda("index_select", out, "out");
  require_same_dtype("index_select", x, "x", out, "out");
  axis = checked_axis("index_select", axis, x);
  const Tensor idx = index_on_device("index_select", index);
  const AxisView v = axis_view(x.shape(), axis);
  require_numel("index_select", out, v.A * idx.numel() * v.B, "out");
  if (out.numel() == 0) return;
  launch::index_select(dtype_size(x.dtype()), x.raw_data(), idx.data<std::int64_t>(), out.raw_data(), v.A,
                       v.L, v.B, idx.numel());
}

void index_add(const Tensor& src, int axis, const Tensor& index, Tensor& out) {
  require_float("index_add", src, "src");
  require_float("index_add", out, "out");
  require_same_dtype("index_add", src, "src", out, "out");
  axis = checked_axis("index_add", axis, out);
  const Tensor idx = index_on_device("index_add", index);
  const AxisView v = axis_view(out.shape(), axis);
  require_numel("index_add", src, v.A * idx.numel() * v.B, "src");
  if (src.numel() == 0) return;
  launch::index_add(elem_of(out.dtype()), src.raw_data(), idx.data<std::int64_t>(), out.raw_data(), v.A,
                    v.L, v.B, idx.numel());
}

void gather(const Tensor& x, int axis, const Tensor& index, Tensor& out) {
  require_cuda("gather", x, "x");
  require_cuda("gather", out, "out");
  require_same_dtype("gather", x, "x", out, "out");
  axis = checked_axis("gather", axis, x);
  const Tensor idx = index_on_device("gather", index);
  TESSERA_CHECK(idx.dim() == x.dim() && out.shape() == idx.shape(), ShapeError,
                "gather: index {} and out {} must share a shape of x's rank (x {})",
                shape_str(idx.shape()), shape_str(out.shape()), shape_str(x.shape()));
  if (out.numel() == 0) return;
  const AxisView v = axis_view(x.shape(), axis);
  const std::int64_t n = idx.shape()[axis];
  require_numel("gather", out, v.A * n * v.B, "out");
  launch::gather(dtype_size(x.dtype()), x.raw_data(), idx.data<std::int64_t>(), out.raw_data(), v.A, v.L,
                 v.B, n);
}

void scatter_add(const Tensor& src, int axis, const Tensor& index, Tensor& out) {
  require_float("scatter_add", src, "src");
  require_float("scatter_add", out, "out");
  require_same_dtype("scatter_add", src, "src", out, "out");
  axis = checked_axis("scatter_add", axis, out);
  const Tensor idx = index_on_device("scatter_add", index);
  TESSERA_CHECK(idx.dim() == out.dim() && src.shape() == idx.shape(), ShapeError,
                "scatter_add: index {} and src {} must share a shape of out's rank (out {})",
                shape_str(idx.shape()), shape_str(src.shape()), shape_str(out.shape()));
  if (src.numel() == 0) return;
  const AxisView v = axis_view(out.shape(), axis);
  const std::int64_t n = idx.shape()[axis];
  require_numel("scatter_add", src, v.A * n * v.B, "src");
  launch::scatter_add(elem_of(out.dtype()), src.raw_data(), idx.data<std::int64_t>(), out.raw_data(), v.A,
                      v.L, v.B, n);
}

// ---------------------------------------------------------------- softmax, layer norm

void softmax_forward(const Tensor& x, int axis, bool log, Tensor& y) {
  const char* op = log ? "log_softmax" : "softmax";
  require_float(op, x, "x");
  require_float(op, y, "y");
  require_same_dtype(op, x, "x", y, "y");
  require_numel(op, y, x.numel(), "y");
  axis = checked_axis(op, axis, x);
  if (x.numel() == 0) return;
  const AxisView v = axis_view(x.shape(), axis);
  launch::softmax_forward(elem_of(x.dtype()), x.raw_data(), y.raw_data(), v.A, v.L, v.B, log);
}

void softmax_backward(const Tensor& y, const Tensor& dy, int axis, bool log, Tensor& dx) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  require_float(op, y, "y");
  require_float(op, dy, "dy");
  require_float(op, dx, "dx");
  require_same_dtype(op, y, "y", dy, "dy");
  require_same_dtype(op, y, "y", dx, "dx");
  require_numel(op, dy, y.numel(), "dy");
  require_numel(op, dx, y.numel(), "dx");
  axis = checked_axis(op, axis, y);
  if (y.numel() == 0) return;
  const AxisView v = axis_view(y.shape(), axis);
  launch::softmax_backward(elem_of(y.dtype()), y.raw_data(), dy.raw_data(), dx.raw_data(), v.A, v.L, v.B, log);
}

void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y,
                        Tensor& mean, Tensor& rstd) {
  const char* op = "layer_norm";
  require_float(op, x, "x");
  TESSERA_CHECK(x.dim() >= 1, ShapeError, "layer_norm: x must have at least one axis");
  const std::int64_t D = x.shape().back();
  const std::int64_t rows = D == 0 ? 0 : x.numel() / D;
  for (const auto& [t, name] : {std::pair{&y, "y"}, std::pair{&mean, "mean"}, std::pair{&rstd, "rstd"}}) {
    require_float(op, *t, name);
    require_same_dtype(op, x, "x", *t, name);
  }
  require_numel(op, y, x.numel(), "y");
  require_numel(op, mean, rows, "mean");
  require_numel(op, rstd, rows, "rstd");
  for (const auto& [t, name] : {std::pair{&w, "weight"}, std::pair{&b, "bias"}}) {
    if (!t->defined()) continue;
    require_float(op, *t, name);
    require_same_dtype(op, x, "x", *t, name);
    require_numel(op, *t, D, name);
  }
  if (x.numel() == 0) return;
  launch::layer_norm_forward(elem_of(x.dtype()), x.raw_data(), w.defined() ? w.raw_data() : nullptr,
                             b.defined() ? b.raw_data() : nullptr, y.raw_data(), mean.raw_data(),
                             rstd.raw_data(), rows, D, eps);
}

void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, double /*eps: rstd already holds it*/, Tensor& dx, Tensor& dw,
                         Tensor& db) {
  const char* op = "layer_norm_backward";
  require_float(op, x, "x");
  TESSERA_CHECK(x.dim() >= 1, ShapeError, "layer_norm_backward: x must have at least one axis");
  const std::int64_t D = x.shape().back();
  const std::int64_t rows = D == 0 ? 0 : x.numel() / D;
  for (const auto& [t, name] : {std::pair{&mean, "mean"}, std::pair{&rstd, "rstd"}, std::pair{&dy, "dy"}}) {
    require_float(op, *t, name);
    require_same_dtype(op, x, "x", *t, name);
  }
  require_numel(op, mean, rows, "mean");
  require_numel(op, rstd, rows, "rstd");
  require_numel(op, dy, x.numel(), "dy");
  using Named = std::pair<const Tensor*, const char*>;
  for (const auto& [t, name] : {Named{&w, "weight"}, Named{&dx, "dx"}, Named{&dw, "dw"}, Named{&db, "db"}}) {
    if (!t->defined()) continue;
    require_float(op, *t, name);
    require_same_dtype(op, x, "x", *t, name);
    require_numel(op, *t, t == &dx ? x.numel() : D, name);
  }
  const Elem t = elem_of(x.dtype());
  if (dx.defined() && x.numel() > 0)
    launch::layer_norm_backward_dx(t, x.raw_data(), w.defined() ? w.raw_data() : nullptr, mean.raw_data(),
                                   rstd.raw_data(), dy.raw_data(), dx.raw_data(), rows, D);
  if (!dw.defined() && !db.defined()) return;
  if (D == 0) return;
  if (rows == 0) {
    if (dw.defined()) fill_zero(dw.raw_data(), dw.nbytes(), op);
    if (db.defined()) fill_zero(db.raw_data(), db.nbytes(), op);
    return;
  }
  // Column sums over rows in S chunks (enough threads for narrow D), then a sum over S.
  constexpr std::int64_t kTargetThreads = 1 << 16;
  std::int64_t S = std::clamp<std::int64_t>((kTargetThreads + D - 1) / D, 1, (rows + 31) / 32);
  const std::int64_t chunk = (rows + S - 1) / S;
  S = (rows + chunk - 1) / chunk;
  if (S == 1) {
    launch::layer_norm_backward_dwdb(t, x.raw_data(), mean.raw_data(), rstd.raw_data(), dy.raw_data(),
                                     dw.defined() ? dw.raw_data() : nullptr,
                                     db.defined() ? db.raw_data() : nullptr, rows, D, chunk);
    return;
  }
  Tensor pw = dw.defined() ? device_scratch(S * D, x.dtype()) : Tensor();
  Tensor pb = db.defined() ? device_scratch(S * D, x.dtype()) : Tensor();
  launch::layer_norm_backward_dwdb(t, x.raw_data(), mean.raw_data(), rstd.raw_data(), dy.raw_data(),
                                   pw.defined() ? pw.raw_data() : nullptr,
                                   pb.defined() ? pb.raw_data() : nullptr, rows, D, chunk);
  if (dw.defined()) launch::sum_middle(t, pw.raw_data(), dw.raw_data(), 1, S, D, S);
  if (db.defined()) launch::sum_middle(t, pb.raw_data(), db.raw_data(), 1, S, D, S);
}

// ---------------------------------------------------------------- batch norm

namespace {

// x (B, C, S...) as (B, C, S); every tensor f32/f64 like x, the per-channel ones (C).
AxisView check_batch_norm(const char* op, const Tensor& x, std::initializer_list<std::pair<const Tensor*, const char*>> per_channel) {
  require_float(op, x, "x");
  TESSERA_CHECK(x.dim() >= 2, ShapeError, "{}: x {} must be (B, C, ...)", op, shape_str(x.shape()));
  const AxisView v = axis_view(x.shape(), 1);
  for (const auto& [t, name] : per_channel) {
    if (!t->defined()) continue;
    require_float(op, *t, name);
    require_same_dtype(op, x, "x", *t, name);
    require_numel(op, *t, v.L, name);
  }
  return v;
}

}  // namespace

void batch_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, bool training, double eps, Tensor& mean,
                        Tensor& var, Tensor& y) {
  const char* op = "batch_norm";
  const AxisView v = check_batch_norm(op, x, {{&w, "weight"}, {&b, "bias"}, {&mean, "mean"}, {&var, "var"}});
  TESSERA_CHECK(mean.defined() && var.defined(), Error, "batch_norm: mean and var must be defined");
  require_float(op, y, "y");
  require_same_dtype(op, x, "x", y, "y");
  require_numel(op, y, x.numel(), "y");
  if (x.numel() == 0) return;
  const Elem t = elem_of(x.dtype());
  if (training) launch::batch_norm_stats(t, x.raw_data(), mean.raw_data(), var.raw_data(), v.A, v.L, v.B);
  launch::batch_norm_apply(t, x.raw_data(), mean.raw_data(), var.raw_data(), w.defined() ? w.raw_data() : nullptr,
                           b.defined() ? b.raw_data() : nullptr, y.raw_data(), v.A, v.L, v.B, eps);
}

void batch_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& var, const Tensor& dy,
                         bool training, double eps, Tensor& dx, Tensor& dw, Tensor& db) {
  const char* op = "batch_norm_backward";
  const AxisView v =
      check_batch_norm(op, x, {{&w, "weight"}, {&mean, "mean"}, {&var, "var"}, {&dw, "dw"}, {&db, "db"}});
  TESSERA_CHECK(mean.defined() && var.defined(), Error, "batch_norm_backward: mean and var must be defined");
  for (const auto& [t, name] : {std::pair<const Tensor*, const char*>{&dy, "dy"}, {&dx, "dx"}}) {
    if (t == &dx && !dx.defined()) continue;
    require_float(op, *t, name);
    require_same_dtype(op, x, "x", *t, name);
    require_numel(op, *t, x.numel(), name);
  }
  if (x.numel() == 0) {
    if (dw.defined()) fill_zero(dw.raw_data(), dw.nbytes(), op);
    if (db.defined()) fill_zero(db.raw_data(), db.nbytes(), op);
    return;
  }
  const Elem t = elem_of(x.dtype());
  // dw is the sum of dy * xhat and db the sum of dy: the sums dx needs anyway.
  Tensor sum_dy = db.defined() ? db : device_scratch(v.L, x.dtype());
  Tensor sum_dy_xhat = dw.defined() ? dw : device_scratch(v.L, x.dtype());
  launch::batch_norm_backward_sums(t, x.raw_data(), mean.raw_data(), var.raw_data(), dy.raw_data(),
                                   sum_dy.raw_data(), sum_dy_xhat.raw_data(), v.A, v.L, v.B, eps);
  if (dx.defined())
    launch::batch_norm_backward_dx(t, x.raw_data(), mean.raw_data(), var.raw_data(),
                                   w.defined() ? w.raw_data() : nullptr, dy.raw_data(), sum_dy.raw_data(),
                                   sum_dy_xhat.raw_data(), dx.raw_data(), v.A, v.L, v.B, eps, training);
}

// ---------------------------------------------------------------- pooling

namespace {

Pool2dGeometry check_pool2d(const char* op, const Shape& x, const Shape& y, const Pool2dOptions& o) {
  TESSERA_CHECK(x.size() == 4 && y.size() == 4, ShapeError, "{}: x {} and y {} must be 4-D (B, C, H, W)", op,
                shape_str(x), shape_str(y));
  TESSERA_CHECK(o.kernel_h >= 1 && o.kernel_w >= 1 && o.stride_h >= 1 && o.stride_w >= 1 && o.pad_h >= 0 &&
                    o.pad_w >= 0 && 2 * o.pad_h <= o.kernel_h && 2 * o.pad_w <= o.kernel_w,
                ShapeError, "{}: kernel {}x{}, stride ({}, {}), padding ({}, {}): sizes >= 1, padding at most half the kernel",
                op, o.kernel_h, o.kernel_w, o.stride_h, o.stride_w, o.pad_h, o.pad_w);
  const std::int64_t hp = x[2] + 2 * o.pad_h, wp = x[3] + 2 * o.pad_w;
  TESSERA_CHECK(x[2] >= 1 && x[3] >= 1 && hp >= o.kernel_h && wp >= o.kernel_w, ShapeError,
                "{}: kernel {}x{} does not fit x {} with padding ({}, {})", op, o.kernel_h, o.kernel_w, shape_str(x),
                o.pad_h, o.pad_w);
  const Shape want{x[0], x[1], (hp - o.kernel_h) / o.stride_h + 1, (wp - o.kernel_w) / o.stride_w + 1};
  TESSERA_CHECK(y == want, ShapeError, "{}: output {} should be {} for x {}", op, shape_str(y), shape_str(want),
                shape_str(x));
  return {x[0],       x[1],       x[2],    x[3],    want[2], want[3], o.kernel_h, o.kernel_w,
          o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.count_include_pad};
}

}  // namespace

void pool2d_forward(PoolKind kind, const Tensor& x, const Pool2dOptions& opts, Tensor& y, Tensor& workspace) {
  const bool max = kind == PoolKind::max;
  const char* op = max ? "max_pool2d" : "avg_pool2d";
  require_float(op, x, "x");
  require_float(op, y, "y");
  require_same_dtype(op, x, "x", y, "y");
  const Pool2dGeometry g = check_pool2d(op, x.shape(), y.shape(), opts);
  workspace = max ? empty(y.shape(), {.dtype = DType::i64, .device = x.device()}) : Tensor();
  if (y.numel() == 0) return;
  launch::pool2d_forward(elem_of(x.dtype()), max, x.raw_data(), y.raw_data(),
                         max ? workspace.data<std::int64_t>() : nullptr, g);
}

void pool2d_backward(PoolKind kind, const Tensor& dy, const Tensor& workspace, const Pool2dOptions& opts, Tensor& dx) {
  const bool max = kind == PoolKind::max;
  const char* op = max ? "max_pool2d_backward" : "avg_pool2d_backward";
  require_float(op, dy, "dy");
  require_float(op, dx, "dx");
  require_same_dtype(op, dy, "dy", dx, "dx");
  const Pool2dGeometry g = check_pool2d(op, dx.shape(), dy.shape(), opts);
  if (max) {
    require_cuda(op, workspace, "workspace");
    TESSERA_CHECK(workspace.dtype() == DType::i64 && workspace.shape() == dy.shape(), ShapeError,
                  "{}: workspace {} {} is not the forward's argmax (i64 {})", op, shape_str(workspace.shape()),
                  workspace.dtype(), shape_str(dy.shape()));
  }
  if (dx.numel() == 0) return;
  launch::pool2d_backward(elem_of(dy.dtype()), max, dy.raw_data(), max ? workspace.data<std::int64_t>() : nullptr,
                          dx.raw_data(), g);
}

// ---------------------------------------------------------------- dropout, cross entropy

void dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t offset, Tensor& out) {
  require_float("dropout", x, "x");
  require_float("dropout", out, "out");
  require_same_dtype("dropout", x, "x", out, "out");
  require_numel("dropout", out, x.numel(), "out");
  TESSERA_CHECK(p >= 0.0 && p <= 1.0, Error, "dropout: p must be in [0, 1], got {}", p);
  if (x.numel() == 0) return;
  // p == 1 keeps nothing, so the scale is never applied.
  const double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  launch::dropout(elem_of(x.dtype()), x.raw_data(), out.raw_data(), x.numel(), seed, offset,
                  dropout_threshold(p), scale);
}

namespace {

struct CrossEntropyShape { std::int64_t N, C; };

CrossEntropyShape check_cross_entropy(const char* op, const Tensor& logits, const Tensor& target,
                                      double smoothing) {
  require_float(op, logits, "logits");
  require_cuda(op, target, "target");
  TESSERA_CHECK(logits.dim() == 2, ShapeError, "{}: logits must be (N, C), got {}", op,
                shape_str(logits.shape()));
  const std::int64_t N = logits.shape()[0], C = logits.shape()[1];
  TESSERA_CHECK(target.dim() == 1 && target.shape()[0] == N, ShapeError,
                "{}: target {} does not match logits {} (one class index per row)", op,
                shape_str(target.shape()), shape_str(logits.shape()));
  TESSERA_CHECK(smoothing >= 0.0 && smoothing <= 1.0, Error,
                "{}: label smoothing must be in [0, 1], got {}", op, smoothing);
  return {N, C};
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& target, double smoothing,
                           std::int64_t ignore_index, Tensor& loss) {
  const char* op = "cross_entropy";
  const Tensor tgt = index_on_device(op, target, "target");
  const auto [N, C] = check_cross_entropy(op, logits, tgt, smoothing);
  require_float(op, loss, "loss");
  require_same_dtype(op, logits, "logits", loss, "loss");
  require_numel(op, loss, N, "loss");
  if (N == 0) return;
  TESSERA_CHECK(C > 0, ShapeError, "cross_entropy: logits {} have no classes", shape_str(logits.shape()));
  launch::cross_entropy_forward(elem_of(logits.dtype()), logits.raw_data(), tgt.data<std::int64_t>(),
                                loss.raw_data(), N, C, smoothing, ignore_index);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& dloss,
                            double smoothing, std::int64_t ignore_index, Tensor& dlogits) {
  const char* op = "cross_entropy_backward";
  const Tensor tgt = index_on_device(op, target, "target");
  const auto [N, C] = check_cross_entropy(op, logits, tgt, smoothing);
  require_float(op, dloss, "dloss");
  require_float(op, dlogits, "dlogits");
  require_same_dtype(op, logits, "logits", dloss, "dloss");
  require_same_dtype(op, logits, "logits", dlogits, "dlogits");
  require_numel(op, dloss, N, "dloss");
  require_numel(op, dlogits, N * C, "dlogits");
  if (N == 0 || C == 0) return;
  launch::cross_entropy_backward(elem_of(logits.dtype()), logits.raw_data(), tgt.data<std::int64_t>(),
                                 dloss.raw_data(), dlogits.raw_data(), N, C, smoothing, ignore_index);
}

}  // namespace tessera::cuda
