// Reductions (sum, mean, max, argmax) and sum_to, the backward of broadcasting.
#include <algorithm>

#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {
namespace {

// Sorted, unique, non-negative axes; all axes when `axes` is empty.
std::vector<int> resolve_axes(const std::vector<std::int64_t>& axes, std::int64_t rank, const char* op) {
  std::vector<int> r;
  if (axes.empty()) {
    for (int i = 0; i < rank; ++i) r.push_back(i);
    return r;
  }
  for (std::int64_t a : axes) r.push_back(normalize_axis(a, rank, op));
  std::sort(r.begin(), r.end());
  TESSERA_CHECK(std::adjacent_find(r.begin(), r.end()) == r.end(), ShapeError,
                "{}: axis repeated in [{}]", op, fmt::join(axes, ","));
  return r;
}

struct ReducedShapes { Shape keep, out; };

ReducedShapes reduced_shapes(const Shape& in, const std::vector<int>& axes, bool keepdim) {
  ReducedShapes s{in, {}};
  for (int a : axes) s.keep[a] = 1;
  for (std::size_t i = 0; i < in.size(); ++i)
    if (keepdim || !std::binary_search(axes.begin(), axes.end(), static_cast<int>(i)))
      s.out.push_back(s.keep[i]);
  return s;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<std::int64_t>& axes, bool keepdim) {
  detail::check_float("sum", x, "x");
  const std::vector<int> ax = resolve_axes(axes, x.dim(), "sum");
  const ReducedShapes s = reduced_shapes(x.shape(), ax, keepdim);
  Tensor kept = detail::empty_like_shape(s.keep, x);
  kernels::reduce_sum(x, kept);
  Tensor out = kept.reshape(s.out);
  if (needs_recording({&x})) {
    record("sum", {x}, out, [keep = s.keep, in = x.shape()](const Tensor& dout) {
      return std::vector<Tensor>{expand(dout.reshape(keep), in)};
    });
  }
  return out;
}

Tensor mean(const Tensor& x, const std::vector<std::int64_t>& axes, bool keepdim) {
  detail::check_float("mean", x, "x");
  const std::vector<int> ax = resolve_axes(axes, x.dim(), "mean");
  std::int64_t count = 1;
  for (int a : ax) count *= x.shape()[a];
  TESSERA_CHECK(count > 0, ShapeError, "mean: reducing {} over empty axes", shape_str(x.shape()));
  return sum(x, axes, keepdim) * (1.0 / static_cast<double>(count));
}

Tensor max(const Tensor& x, const std::vector<std::int64_t>& axes, bool keepdim) {
  detail::check_float("max", x, "x");
  const std::vector<int> ax = resolve_axes(axes, x.dim(), "max");
  for (int a : ax)
    TESSERA_CHECK(x.shape()[a] > 0, ShapeError, "max: axis {} of {} is empty", a, shape_str(x.shape()));
  const ReducedShapes s = reduced_shapes(x.shape(), ax, keepdim);
  Tensor kept = detail::empty_like_shape(s.keep, x);
  Tensor where_max = empty(s.keep, {.dtype = DType::i64, .device = x.device()});
  kernels::reduce_max(x, kept, where_max);
  Tensor out = kept.reshape(s.out);
  if (needs_recording({&x})) {
    record("max", {x}, out, [where_max, in = x.shape()](const Tensor& dout) {
      Tensor dx = zeros(in, {.dtype = dout.dtype(), .device = dout.device()});
      kernels::scatter_add_flat(dx, where_max, dout);
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

Tensor argmax(const Tensor& x, std::int64_t axis) {
  detail::check_float("argmax", x, "x");
  const int a = normalize_axis(axis, x.dim(), "argmax");
  TESSERA_CHECK(x.shape()[a] > 0, ShapeError, "argmax: axis {} of {} is empty", a, shape_str(x.shape()));
  const ReducedShapes s = reduced_shapes(x.shape(), {a}, false);
  Tensor kept = detail::empty_like_shape(s.keep, x);
  Tensor flat = empty(s.keep, {.dtype = DType::i64, .device = x.device()});
  {
    NoGradGuard no_grad;
    kernels::reduce_max(x.detach(), kept, flat);
  }
  // Flat offsets into x -> positions along the axis.
  std::int64_t inner = 1;
  for (std::size_t i = a + 1; i < x.shape().size(); ++i) inner *= x.shape()[i];
  Tensor host = flat.cpu();
  auto* p = host.data<std::int64_t>();
  for (std::int64_t i = 0; i < host.numel(); ++i) p[i] = (p[i] / inner) % x.shape()[a];
  return host.reshape(s.out).to(x.device());
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  TESSERA_CHECK(shape.size() <= x.shape().size(), ShapeError, "sum_to: cannot reduce {} to {}",
                shape_str(x.shape()), shape_str(shape));
  const std::size_t lead = x.shape().size() - shape.size();
  std::vector<std::int64_t> axes;
  for (std::size_t i = 0; i < x.shape().size(); ++i) {
    if (i < lead) {
      axes.push_back(static_cast<std::int64_t>(i));
      continue;
    }
    const std::int64_t want = shape[i - lead];
    TESSERA_CHECK(want == x.shape()[i] || want == 1, ShapeError, "sum_to: cannot reduce {} to {}",
                  shape_str(x.shape()), shape_str(shape));
    if (want == 1 && x.shape()[i] != 1) axes.push_back(static_cast<std::int64_t>(i));
  }
  if (axes.empty()) return x.reshape(shape);
  return sum(x, axes, true).reshape(shape);
}

}  // namespace tessera
