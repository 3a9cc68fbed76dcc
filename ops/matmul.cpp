// matmul and linear, with their gradients.
#include "tessera/autograd/profiler.h"
#include "tessera/ops/cpu_info.h"
#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {
namespace {
thread_local DType t_autocast = DType::f32;
}  // namespace

AutocastGuard::AutocastGuard(DType dtype) : previous_(t_autocast) {
  TESSERA_CHECK(dtype == DType::f32 || dtype == DType::bf16, DTypeError,
                "AutocastGuard: {} is not a mixed-precision type (bf16, or f32 for off)", dtype);
  if (dtype == DType::bf16) {
    const std::string why = bf16_unavailable_reason();
    TESSERA_CHECK(why.empty(), DeviceError, "AutocastGuard: {}", why);
  }
  t_autocast = dtype;
}
AutocastGuard::~AutocastGuard() { t_autocast = previous_; }
DType autocast_dtype() { return t_autocast; }

using detail::check_compatible;
using detail::check_float;

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  check_float("matmul", a, "a");
  check_float("matmul", b, "b");
  check_compatible("matmul", a, b);
  TESSERA_CHECK(a.dim() >= 2 && b.dim() >= 2, ShapeError,
                "matmul: operands need at least 2 axes, got a {} and b {}", shape_str(a.shape()),
                shape_str(b.shape()));
  const std::int64_t M = a.size(ta ? -1 : -2), Ka = a.size(ta ? -2 : -1);
  const std::int64_t Kb = b.size(tb ? -1 : -2), N = b.size(tb ? -2 : -1);
  TESSERA_CHECK(Ka == Kb, ShapeError,
                "matmul: a {}{} and b {}{} do not share an inner dimension ({} vs {})",
                shape_str(a.shape()), ta ? "^T" : "", shape_str(b.shape()), tb ? "^T" : "", Ka, Kb);
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2);
  const Shape batch_b(b.shape().begin(), b.shape().end() - 2);
  Shape shape = broadcast_shapes(batch_a, batch_b, "matmul");
  shape.push_back(M);
  shape.push_back(N);
  Tensor out = detail::empty_like_shape(shape, a);
  kernels::matmul(a, b, ta, tb, out);
  count_flops(2.0 * static_cast<double>(out.numel()) * static_cast<double>(Ka));

  if (needs_recording({&a, &b})) {
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    record("matmul", {a, b}, out,
           [ga, gb, ta, tb, av = a.detach(), bv = b.detach()](const Tensor& dc) {
             // C = op(A) op(B): dA = dC op(B)^T (transposed back when A was), same for B.
             Tensor da, db;
             if (ga) da = ta ? matmul(bv, dc, tb, true) : matmul(dc, bv, false, !tb);
             if (gb) db = tb ? matmul(dc, av, true, ta) : matmul(av, dc, !ta, false);
             if (ga) da = sum_to(da, av.shape());
             if (gb) db = sum_to(db, bv.shape());
             return std::vector<Tensor>{da, db};
           });
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_float("linear", x, "x");
  check_float("linear", w, "weight");
  check_compatible("linear", x, w);
  TESSERA_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1), ShapeError,
                "linear: x {} and weight {} do not match (weight must be (out, in) with in = x's "
                "last axis)", shape_str(x.shape()), shape_str(w.shape()));
  if (bias.defined()) {
    check_compatible("linear", x, bias);
    TESSERA_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), ShapeError,
                  "linear: bias {} does not match weight {}", shape_str(bias.shape()),
                  shape_str(w.shape()));
  }
  const std::int64_t K = w.size(1), N = w.size(0);
  const std::int64_t M = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Shape shape = x.shape();
  shape.back() = N;
  Tensor out = detail::empty_like_shape(shape, x);
  count_flops(2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K));
  const bool mixed = t_autocast == DType::bf16 && x.dtype() == DType::f32 && x.device().is_cpu() && K > 0;
  if (mixed) {
    // bf16 copies of the operands serve the forward product and both gradient products.
    const Tensor xb = cast(x.detach().reshape({M, K}), DType::bf16), wb = cast(w.detach(), DType::bf16);
    Tensor o2 = out.detach().reshape({M, N});
    kernels::linear(xb, wb, bias.defined() ? bias.detach() : Tensor(), o2);
    if (needs_recording({&x, &w, &bias})) {
      const bool gx = x.requires_grad(), gw = w.requires_grad();
      const bool gbias = bias.defined() && bias.requires_grad();
      record("linear", {x, w, bias}, out, [gx, gw, gbias, M, K, N, xb, wb, in = x.shape()](const Tensor& dout) {
        const Tensor d2 = dout.reshape({M, N});
        const Tensor db16 = cast(d2, DType::bf16);
        Tensor dx, dw, db;
        if (gx) {
          dx = empty({M, K});
          kernels::matmul(db16, wb, false, false, dx);  // (M,N)(N,K)
          count_flops(2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K));
          dx = dx.reshape(in);
        }
        if (gw) {
          dw = empty({N, K});
          kernels::matmul(db16, xb, true, false, dw);   // (N,M)(M,K)
          count_flops(2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K));
        }
        if (gbias) db = sum(d2, {0});
        return std::vector<Tensor>{dx, dw, db};
      });
    }
    return out;
  }
  {
    Tensor x2 = x.detach().reshape({M, K});
    Tensor o2 = out.detach().reshape({M, N});
    if (K == 0) o2.fill_(0.0);
    else kernels::linear(x2, w, bias, o2);
    if (K == 0 && bias.defined()) o2.add_(expand(bias.detach(), {M, N}));
  }

  if (needs_recording({&x, &w, &bias})) {
    const bool gx = x.requires_grad(), gw = w.requires_grad();
    const bool gbias = bias.defined() && bias.requires_grad();
    record("linear", {x, w, bias}, out,
           [gx, gw, gbias, M, K, N, xv = x.detach(), wv = w.detach()](const Tensor& dout) {
             const Tensor d2 = dout.reshape({M, N});
             Tensor dx, dw, db;
             if (gx) dx = matmul(d2, wv).reshape(xv.shape());               // (M,N)(N,K)
             if (gw) dw = matmul(d2, xv.reshape({M, K}), true, false);      // (N,M)(M,K)
             if (gbias) db = sum(d2, {0});
             return std::vector<Tensor>{dx, dw, db};
           });
  }
  return out;
}

}  // namespace tessera
