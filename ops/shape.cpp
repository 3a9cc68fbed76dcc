// Shape ops: reshape (a view), permute, expand, concat, slice, index_select, gather.
#include <algorithm>
#include <numeric>

#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {
namespace {

Shape resolve_shape(const Shape& want, std::int64_t numel, const Shape& from) {
  Shape s = want;
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      TESSERA_CHECK(infer < 0, ShapeError, "reshape: more than one -1 in {}", shape_str(want));
      infer = static_cast<int>(i);
    } else {
      TESSERA_CHECK(s[i] >= 0, ShapeError, "reshape: negative size in {}", shape_str(want));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    TESSERA_CHECK(known > 0 && numel % known == 0, ShapeError,
                  "reshape: cannot reshape {} ({} elements) to {}", shape_str(from), numel,
                  shape_str(want));
    s[infer] = numel / known;
  }
  TESSERA_CHECK(shape_numel(s) == numel, ShapeError,
                "reshape: cannot reshape {} ({} elements) to {}", shape_str(from), numel, shape_str(want));
  return s;
}

Tensor zeros_as(const Shape& shape, const Tensor& like) {
  return zeros(shape, {.dtype = like.dtype(), .device = like.device()});
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  const Shape s = resolve_shape(shape, x.numel(), x.shape());
  Tensor view = x.detach();
  view.impl()->shape = s;
  if (needs_recording({&x})) {
    record("reshape", {x}, view, [in = x.shape()](const Tensor& dout) {
      return std::vector<Tensor>{dout.reshape(in)};
    });
  }
  return view;
}


Tensor permute(const Tensor& x, const std::vector<std::int64_t>& order) {
  TESSERA_CHECK(x.defined(), Error, "permute: input is undefined");
  const std::int64_t rank = x.dim();
  TESSERA_CHECK(static_cast<std::int64_t>(order.size()) == rank, ShapeError,
                "permute: order [{}] has {} axes, tensor {} has {}", fmt::join(order, ","),
                order.size(), shape_str(x.shape()), rank);
  std::vector<std::int64_t> norm(order.size()), inverse(order.size());
  std::vector<bool> seen(order.size(), false);
  for (std::size_t i = 0; i < order.size(); ++i) {
    norm[i] = normalize_axis(order[i], rank, "permute");
    TESSERA_CHECK(!seen[norm[i]], ShapeError, "permute: [{}] is not a permutation", fmt::join(order, ","));
    seen[norm[i]] = true;
    inverse[norm[i]] = static_cast<std::int64_t>(i);
  }
  if (std::is_sorted(norm.begin(), norm.end())) return x;
  Shape s(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) s[i] = x.shape()[norm[i]];
  Tensor out = detail::empty_like_shape(s, x);
  kernels::permute(x, norm, out);
  if (needs_recording({&x}))
    record("permute", {x}, out, [inverse](const Tensor& dout) {
      return std::vector<Tensor>{permute(dout, inverse)};
    });
  return out;
}

Tensor transpose(const Tensor& x, std::int64_t a, std::int64_t b) { return x.transpose(a, b); }

Tensor expand(const Tensor& x, const Shape& shape) {
  TESSERA_CHECK(x.defined(), Error, "expand: input is undefined");
  TESSERA_CHECK(shape.size() >= x.shape().size(), ShapeError, "expand: cannot expand {} to {}",
                shape_str(x.shape()), shape_str(shape));
  const std::size_t lead = shape.size() - x.shape().size();
  for (std::size_t i = 0; i < x.shape().size(); ++i)
    TESSERA_CHECK(x.shape()[i] == shape[lead + i] || x.shape()[i] == 1, ShapeError,
                  "expand: cannot expand {} to {}", shape_str(x.shape()), shape_str(shape));
  if (x.shape() == shape) return x;
  Tensor out = detail::empty_like_shape(shape, x);
  kernels::broadcast_copy(x, out);
  if (needs_recording({&x}))
    record("expand", {x}, out, [in = x.shape()](const Tensor& dout) {
      return std::vector<Tensor>{sum_to(dout, in)};
    });
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis) {
  TESSERA_CHECK(!xs.empty(), ShapeError, "concat: no tensors given");
  const Tensor& first = xs.front();
  TESSERA_CHECK(first.defined(), Error, "concat: tensor 0 is undefined");
  const int a = normalize_axis(axis, first.dim(), "concat");
  Shape s = first.shape();
  s[a] = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const Tensor& t = xs[k];
    TESSERA_CHECK(t.defined(), Error, "concat: tensor {} is undefined", k);
    detail::check_compatible("concat", first, t);
    bool match = t.dim() == first.dim();
    for (int i = 0; match && i < t.dim(); ++i) match = i == a || t.shape()[i] == first.shape()[i];
    TESSERA_CHECK(match, ShapeError, "concat: tensor {} {} does not match tensor 0 {} outside axis {}",
                  k, shape_str(t.shape()), shape_str(first.shape()), a);
    s[a] += t.shape()[a];
  }
  Tensor out = detail::empty_like_shape(s, first);
  std::vector<std::int64_t> offsets;
  std::int64_t off = 0;
  for (const Tensor& t : xs) {
    offsets.push_back(off);
    kernels::slice_assign(t, a, off, 1, out, false);
    off += t.shape()[a];
  }
  if (needs_recording(xs)) {
    std::vector<bool> need;
    std::vector<Shape> shapes;
    for (const Tensor& t : xs) {
      need.push_back(t.requires_grad());
      shapes.push_back(t.shape());
    }
    record("concat", xs, out, [a, offsets, need, shapes](const Tensor& dout) {
      std::vector<Tensor> d(shapes.size());
      for (std::size_t k = 0; k < shapes.size(); ++k) {
        if (!need[k]) continue;
        d[k] = detail::empty_like_shape(shapes[k], dout);
        kernels::slice_copy(dout, a, offsets[k], 1, d[k]);
      }
      return d;
    });
  }
  return out;
}

Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step) {
  TESSERA_CHECK(x.defined(), Error, "slice: input is undefined");
  const int a = normalize_axis(axis, x.dim(), "slice");
  TESSERA_CHECK(step > 0, ShapeError, "slice: step must be positive, got {}", step);
  const std::int64_t len = x.shape()[a];
  // Python semantics: negative bounds count from the end; out-of-range bounds are clipped.
  auto clip = [len](std::int64_t v) { return std::clamp<std::int64_t>(v < 0 ? v + len : v, 0, len); };
  const std::int64_t s0 = clip(start), s1 = clip(end);
  const std::int64_t n = s1 > s0 ? (s1 - s0 + step - 1) / step : 0;
  Shape s = x.shape();
  s[a] = n;
  Tensor out = detail::empty_like_shape(s, x);
  kernels::slice_copy(x, a, s0, step, out);
  if (needs_recording({&x}))
    record("slice", {x}, out, [a, s0, step, in = x.shape()](const Tensor& dout) {
      Tensor dx = zeros_as(in, dout);
      kernels::slice_assign(dout, a, s0, step, dx, false);
      return std::vector<Tensor>{dx};
    });
  return out;
}

namespace {

void check_index_range(const char* op, const Tensor& index, std::int64_t limit, const Tensor& x, int axis) {
  const Tensor host = index.device().is_cpu() ? index : index.cpu();
  const auto* p = host.data<std::int64_t>();
  for (std::int64_t i = 0; i < host.numel(); ++i)
    TESSERA_CHECK(p[i] >= 0 && p[i] < limit, ShapeError,
                  "{}: index {} at position {} is out of range for axis {} of size {} (input {})", op,
                  p[i], i, axis, limit, shape_str(x.shape()));
}

}  // namespace

Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& index) {
  TESSERA_CHECK(x.defined(), Error, "index_select: input is undefined");
  detail::check_index("index_select", index);
  const int a = normalize_axis(axis, x.dim(), "index_select");
  TESSERA_CHECK(index.dim() == 1, ShapeError, "index_select: index must be 1-D, got {}",
                shape_str(index.shape()));
  check_index_range("index_select", index, x.shape()[a], x, a);
  Shape s = x.shape();
  s[a] = index.numel();
  Tensor out = detail::empty_like_shape(s, x);
  kernels::index_select(x, a, index, out);
  if (needs_recording({&x}))
    record("index_select", {x}, out, [a, index, in = x.shape()](const Tensor& dout) {
      Tensor dx = zeros_as(in, dout);
      kernels::index_add(dout, a, index, dx);
      return std::vector<Tensor>{dx};
    });
  return out;
}

Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& index) {
  TESSERA_CHECK(x.defined(), Error, "gather: input is undefined");
  detail::check_index("gather", index);
  const int a = normalize_axis(axis, x.dim(), "gather");
  bool match = index.dim() == x.dim();
  for (int i = 0; match && i < x.dim(); ++i) match = i == a || index.shape()[i] == x.shape()[i];
  TESSERA_CHECK(match, ShapeError,
                "gather: index {} must match input {} on every axis but {}", shape_str(index.shape()),
                shape_str(x.shape()), a);
  check_index_range("gather", index, x.shape()[a], x, a);
  Tensor out = detail::empty_like_shape(index.shape(), x);
  kernels::gather(x, a, index, out);
  if (needs_recording({&x}))
    record("gather", {x}, out, [a, index, in = x.shape()](const Tensor& dout) {
      Tensor dx = zeros_as(in, dout);
      kernels::scatter_add(dout, a, index, dx);
      return std::vector<Tensor>{dx};
    });
  return out;
}

}  // namespace tessera
