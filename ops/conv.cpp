// conv2d with its gradients.
#include "tessera/autograd/profiler.h"
#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Conv2dOptions o) {
  detail::check_float("conv2d", x, "x");
  detail::check_float("conv2d", w, "weight");
  detail::check_compatible("conv2d", x, w);
  TESSERA_CHECK(x.dim() == 4, ShapeError, "conv2d: expected a 4-D input (B, C, H, W), got x {} ({}-D)",
                shape_str(x.shape()), x.dim());
  TESSERA_CHECK(w.dim() == 4, ShapeError, "conv2d: expected a 4-D weight (O, C, KH, KW), got {} ({}-D)",
                shape_str(w.shape()), w.dim());
  TESSERA_CHECK(x.size(1) == w.size(1), ShapeError,
                "conv2d: x {} has {} channels but weight {} expects {}", shape_str(x.shape()), x.size(1),
                shape_str(w.shape()), w.size(1));
  TESSERA_CHECK(o.stride_h > 0 && o.stride_w > 0 && o.pad_h >= 0 && o.pad_w >= 0, ShapeError,
                "conv2d: stride ({}, {}) must be positive and padding ({}, {}) non-negative",
                o.stride_h, o.stride_w, o.pad_h, o.pad_w);
  if (bias.defined()) {
    detail::check_compatible("conv2d", x, bias);
    TESSERA_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), ShapeError,
                  "conv2d: bias {} does not match weight {}", shape_str(bias.shape()), shape_str(w.shape()));
  }
  const std::int64_t H = x.size(2) + 2 * o.pad_h, W = x.size(3) + 2 * o.pad_w;
  TESSERA_CHECK(w.size(2) <= H && w.size(3) <= W && w.size(2) > 0 && w.size(3) > 0, ShapeError,
                "conv2d: kernel {}x{} does not fit the padded input {}x{} (x {})", w.size(2), w.size(3),
                H, W, shape_str(x.shape()));
  const Shape shape{x.size(0), w.size(0), (H - w.size(2)) / o.stride_h + 1, (W - w.size(3)) / o.stride_w + 1};
  Tensor y = detail::empty_like_shape(shape, x);
  kernels::conv2d_forward(x, w, bias, o, y);
  const double flops = 2.0 * static_cast<double>(y.numel()) * static_cast<double>(w.size(1) * w.size(2) * w.size(3));
  count_flops(flops);
  if (needs_recording({&x, &w, &bias})) {
    const bool gx = x.requires_grad(), gw = w.requires_grad();
    const bool gb = bias.defined() && bias.requires_grad();
    record("conv2d", {x, w, bias}, y, [gx, gw, gb, o, flops, xv = x.detach(), wv = w.detach()](const Tensor& dy) {
      Tensor dx, dw, db;
      if (gx) {
        dx = empty_like(xv);
        kernels::conv2d_backward_data(wv, dy, o, dx);
        count_flops(flops);
      }
      if (gw || gb) {
        Tensor dw_buf = empty_like(wv);
        db = gb ? detail::empty_like_shape({wv.size(0)}, wv) : Tensor();
        kernels::conv2d_backward_weights(xv, dy, o, dw_buf, db);
        count_flops(flops);
        if (gw) dw = dw_buf;
      }
      return std::vector<Tensor>{dx, dw, db};
    });
  }
  return y;
}

}  // namespace tessera
