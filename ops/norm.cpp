// layer_norm over the last axis, with its gradient.
#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  detail::check_float("layer_norm", x, "x");
  TESSERA_CHECK(x.dim() >= 1, ShapeError, "layer_norm: input must have at least one axis");
  TESSERA_CHECK(eps > 0, Error, "layer_norm: eps must be positive, got {}", eps);
  const std::int64_t D = x.size(-1);
  for (const Tensor* p : {&weight, &bias}) {
    if (!p->defined()) continue;
    detail::check_compatible("layer_norm", x, *p);
    TESSERA_CHECK(p->dim() == 1 && p->size(0) == D, ShapeError,
                  "layer_norm: {} {} does not match the normalised axis of x {} (size {})",
                  p == &weight ? "weight" : "bias", shape_str(p->shape()), shape_str(x.shape()), D);
  }
  const std::int64_t R = D == 0 ? 0 : x.numel() / D;
  Tensor y = empty_like(x);
  Tensor mean = detail::empty_like_shape({R}, x), rstd = detail::empty_like_shape({R}, x);
  kernels::layer_norm_forward(x, weight, bias, eps, y, mean, rstd);
  if (needs_recording({&x, &weight, &bias})) {
    const bool gx = x.requires_grad();
    const bool gw = weight.defined() && weight.requires_grad();
    const bool gb = bias.defined() && bias.requires_grad();
    record("layer_norm", {x, weight, bias}, y,
           [gx, gw, gb, eps, mean, rstd, xv = x.detach(), wv = weight.defined() ? weight.detach() : Tensor(),
            D](const Tensor& dy) {
             Tensor dx = gx ? empty_like(xv) : Tensor();
             Tensor dw = gw ? detail::empty_like_shape({D}, xv) : Tensor();
             Tensor db = gb ? detail::empty_like_shape({D}, xv) : Tensor();
             kernels::layer_norm_backward(xv, wv, mean, rstd, dy, eps, dx, dw, db);
             return std::vector<Tensor>{dx, dw, db};
           });
  }
  return y;
}

}  // namespace tessera
