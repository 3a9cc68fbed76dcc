// batch_norm per channel (axis 1), with its gradient and the running statistics' update.
#include <cmath>

#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  detail::check_float("batch_norm", x, "x");
  TESSERA_CHECK(x.dim() >= 2, ShapeError, "batch_norm: x {} must be (B, C, ...) with at least 2 axes",
                shape_str(x.shape()));
  TESSERA_CHECK(eps > 0, Error, "batch_norm: eps must be positive, got {}", eps);
  const std::int64_t C = x.size(1);
  using Named = std::pair<const Tensor*, const char*>;
  for (const auto& [p, name] : {Named{&weight, "weight"}, Named{&bias, "bias"},
                                Named{&running_mean, "running_mean"}, Named{&running_var, "running_var"}}) {
    if (!p->defined()) continue;
    detail::check_compatible("batch_norm", x, *p);
    TESSERA_CHECK(p->dim() == 1 && p->size(0) == C, ShapeError,
                  "batch_norm: {} {} does not match the C = {} channels of x {}", name, shape_str(p->shape()), C,
                  shape_str(x.shape()));
  }
  std::int64_t n = 1;  // values per channel
  for (std::int64_t i = 0; i < x.dim(); ++i)
    if (i != 1) n *= x.size(i);
  if (training) {
    // One value has no variance, and its unbiased estimate n/(n-1) none at all.
    TESSERA_CHECK(n > 1, ShapeError,
                  "batch_norm: expected more than 1 value per channel when training, got x {} ({} per channel)",
                  shape_str(x.shape()), n);
    TESSERA_CHECK(running_mean.defined() == running_var.defined(), Error,
                  "batch_norm: running_mean and running_var must both be defined or both undefined");
    TESSERA_CHECK(momentum >= 0 && momentum <= 1, Error, "batch_norm: momentum must be in [0, 1], got {}",
                  momentum);
  } else {
    TESSERA_CHECK(running_mean.defined() && running_var.defined(), Error,
                  "batch_norm: evaluation (training = false) uses running_mean and running_var, but {} undefined",
                  !running_mean.defined() && !running_var.defined() ? "both are"
                  : running_mean.defined()                          ? "running_var is"
                                                                    : "running_mean is");
  }

  const bool record_it = needs_recording({&x, &weight, &bias});
  Tensor y = empty_like(x), mean, var;
  if (training) {
    mean = detail::empty_like_shape({C}, x);
    var = detail::empty_like_shape({C}, x);
  } else {
    // Backward must see the statistics the forward used, even if a later training step
    // updates the running ones in place first.
    mean = record_it ? running_mean.contiguous_copy() : running_mean.detach();
    var = record_it ? running_var.contiguous_copy() : running_var.detach();
  }
  kernels::batch_norm_forward(x, weight, bias, training, eps, mean, var, y);

  if (training && running_mean.defined()) {  // in place, outside the tape
    NoGradGuard no_grad;
    Tensor rm = running_mean.detach(), rv = running_var.detach();
    rm.mul_(1.0 - momentum).add_(mean, momentum);
    rv.mul_(1.0 - momentum).add_(var, momentum * static_cast<double>(n) / static_cast<double>(n - 1));
  }

  if (record_it) {
    const bool gx = x.requires_grad();
    const bool gw = weight.defined() && weight.requires_grad();
    const bool gb = bias.defined() && bias.requires_grad();
    record("batch_norm", {x, weight, bias}, y,
           [gx, gw, gb, training, eps, mean, var, xv = x.detach(),
            wv = weight.defined() ? weight.detach() : Tensor(), C](const Tensor& dy) {
             Tensor dx = gx ? empty_like(xv) : Tensor();
             Tensor dw = gw ? detail::empty_like_shape({C}, xv) : Tensor();
             Tensor db = gb ? detail::empty_like_shape({C}, xv) : Tensor();
             kernels::batch_norm_backward(xv, wv, mean, var, dy, training, eps, dx, dw, db);
             return std::vector<Tensor>{dx, dw, db};
           });
  }
  return y;
}

}  // namespace tessera
