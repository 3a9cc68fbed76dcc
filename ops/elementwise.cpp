// Elementwise ops: broadcasting arithmetic, unary math and activations, where, casts.
#include <cmath>

#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {

using detail::check_compatible;
using detail::check_float;
using detail::empty_like_shape;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    TESSERA_CHECK(da == db || da == 1 || db == 1, ShapeError,
                  "{}: shapes {} and {} do not broadcast (axis {}: {} vs {})", op, shape_str(a),
                  shape_str(b), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

Tensor binary_op(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  check_float(name, a, "a");
  check_float(name, b, "b");
  check_compatible(name, a, b);
  Tensor out = empty_like_shape(broadcast_shapes(a.shape(), b.shape(), name), a);
  kernels::binary(op, a, b, out);
  if (needs_recording({&a, &b})) {
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    const Shape sa = a.shape(), sb = b.shape();
    // Save only what this op's gradient reads.
    const Tensor sa_val = (op == BinaryOp::mul && gb) || op == BinaryOp::div ? a.detach() : Tensor();
    const Tensor sb_val = op == BinaryOp::mul || op == BinaryOp::div ? b.detach() : Tensor();
    record(name, {a, b}, out, [op, ga, gb, sa, sb, av = sa_val, bv = sb_val](const Tensor& dout) {
      Tensor da, db;
      switch (op) {
        case BinaryOp::add:
          if (ga) da = sum_to(dout, sa);
          if (gb) db = sum_to(dout, sb);
          break;
        case BinaryOp::sub:
          if (ga) da = sum_to(dout, sa);
          if (gb) db = sum_to(neg(dout), sb);
          break;
        case BinaryOp::mul:
          if (ga) da = sum_to(dout * bv, sa);
          if (gb) db = sum_to(dout * av, sb);
          break;
        case BinaryOp::div:
          if (ga) da = sum_to(dout / bv, sa);
          if (gb) db = sum_to(neg(dout * av / (bv * bv)), sb);
          break;
      }
      return std::vector<Tensor>{da, db};
    });
  }
  return out;
}

Tensor unary_op(UnaryOp op, const char* name, const Tensor& x, double alpha = 0, double beta = 0) {
  check_float(name, x, "x");
  Tensor y = empty_like(x);
  kernels::unary_forward(op, x, y, alpha, beta);
  if (needs_recording({&x})) {
    record(name, {x}, y, [op, alpha, beta, xv = x.detach()](const Tensor& dout) {
      Tensor dx = empty_like(xv);
      kernels::unary_backward(op, xv, dout, dx, alpha, beta);
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::add, "add", a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::sub, "sub", a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::mul, "mul", a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::div, "div", a, b); }

Tensor scale_shift(const Tensor& x, double alpha, double beta) {
  return unary_op(UnaryOp::linear, "scale_shift", x, alpha, beta);
}
Tensor neg(const Tensor& x) { return scale_shift(x, -1.0, 0.0); }
Tensor pow(const Tensor& x, double exponent) { return unary_op(UnaryOp::pow, "pow", x, exponent); }
Tensor clamp(const Tensor& x, double low, double high) {
  TESSERA_CHECK(low <= high, Error, "clamp: low {} is above high {}", low, high);
  return unary_op(UnaryOp::clamp, "clamp", x, low, high);
}

Tensor unary(UnaryOp op, const Tensor& x, double alpha, double beta) {
  return unary_op(op, unary_op_name(op), x, alpha, beta);
}

#define TESSERA_UNARY_DEFINE_public(name) \
  Tensor name(const Tensor& x) { return unary_op(UnaryOp::name, #name, x); }
#define TESSERA_UNARY_DEFINE_internal(name)
#define TESSERA_DEFINE_UNARY(name, api, ...) TESSERA_UNARY_DEFINE_##api(name)
TESSERA_UNARY_OPS(TESSERA_DEFINE_UNARY)
#undef TESSERA_DEFINE_UNARY

Tensor gelu(const Tensor& x, GeluApprox approx) {
  return approx == GeluApprox::erf ? unary_op(UnaryOp::gelu_erf, "gelu", x)
                                   : unary_op(UnaryOp::gelu_tanh, "gelu_tanh", x);
}
Tensor silu(const Tensor& x) { return x * sigmoid(x); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  TESSERA_CHECK(cond.defined(), Error, "where: cond is undefined");
  check_float("where", a, "a");
  check_float("where", b, "b");
  check_compatible("where", a, b);
  TESSERA_CHECK(cond.device() == a.device(), DeviceError, "where: cond on {}, values on {}",
                cond.device(), a.device());
  const Shape shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor out = empty_like_shape(shape, a);
  kernels::where(cond, a, b, out);
  if (needs_recording({&a, &b})) {
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    record("where", {a, b}, out,
           [ga, gb, c = cond.detach(), sa = a.shape(), sb = b.shape()](const Tensor& dout) {
             const Tensor zero = zeros({}, {.dtype = dout.dtype(), .device = dout.device()});
             Tensor da, db;
             if (ga) da = sum_to(where(c, dout, zero), sa);
             if (gb) db = sum_to(where(c, zero, dout), sb);
             return std::vector<Tensor>{da, db};
           });
  }
  return out;
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return scale_shift(a, 1.0, b); }
Tensor operator-(const Tensor& a, double b) { return scale_shift(a, 1.0, -b); }
Tensor operator*(const Tensor& a, double b) { return scale_shift(a, b, 0.0); }
Tensor operator/(const Tensor& a, double b) { return scale_shift(a, 1.0 / b, 0.0); }
Tensor operator*(double a, const Tensor& b) { return scale_shift(b, a, 0.0); }

Tensor cast(const Tensor& x, DType dtype) {
  TESSERA_CHECK(x.defined(), Error, "cast: input is undefined");
  if (x.dtype() == dtype) return x;
  Tensor out = empty(x.shape(), {.dtype = dtype, .device = x.device()});
  kernels::cast(x, out);
  if (needs_recording({&x}) && is_floating(dtype)) {
    const DType from = x.dtype();
    record("cast", {x}, out, [from](const Tensor& dout) { return std::vector<Tensor>{cast(dout, from)}; });
  }
  return out;
}

namespace {

// The Tensor methods and the tape's gradient accumulation, which autograd reaches through
// this registration (autograd/tensor.h: TensorOps) rather than by calling up a layer.
const bool kTensorOpsRegistered = [] {
  register_tensor_ops({
      .cast = cast,
      .reshape = [](const Tensor& x, const Shape& s) { return reshape(x, s); },
      .permute = [](const Tensor& x, const std::vector<std::int64_t>& o) { return permute(x, o); },
      .add_inplace = kernels::add_inplace,
      .scale_inplace = kernels::scale_inplace,
      .add_unrecorded =
          [](const Tensor& a, const Tensor& b) {
            Tensor out = empty_like(a);
            kernels::binary(BinaryOp::add, a, b, out);
            return out;
          },
  });
  return true;
}();

}  // namespace

}  // namespace tessera
