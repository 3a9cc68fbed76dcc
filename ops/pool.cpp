// max_pool2d and avg_pool2d with their gradients.
#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {
namespace {

// Checks x and the options as PyTorch does (ceil_mode=False) and returns y's shape.
Shape pool2d_shape(const char* op, const Tensor& x, const Pool2dOptions& o) {
  detail::check_float(op, x, "x");
  TESSERA_CHECK(x.dim() == 4, ShapeError, "{}: x {} must be 4-D (B, C, H, W)", op, shape_str(x.shape()));
  TESSERA_CHECK(o.kernel_h >= 1 && o.kernel_w >= 1, ShapeError, "{}: kernel {}x{} must be at least 1x1", op,
                o.kernel_h, o.kernel_w);
  TESSERA_CHECK(o.stride_h >= 1 && o.stride_w >= 1, ShapeError, "{}: stride ({}, {}) must be at least 1", op,
                o.stride_h, o.stride_w);
  TESSERA_CHECK(o.pad_h >= 0 && o.pad_w >= 0 && 2 * o.pad_h <= o.kernel_h && 2 * o.pad_w <= o.kernel_w,
                ShapeError, "{}: padding ({}, {}) must be non-negative and at most half the kernel {}x{}", op,
                o.pad_h, o.pad_w, o.kernel_h, o.kernel_w);
  TESSERA_CHECK(x.size(2) >= 1 && x.size(3) >= 1, ShapeError, "{}: x {} has an empty spatial axis", op,
                shape_str(x.shape()));
  const std::int64_t H = x.size(2) + 2 * o.pad_h, W = x.size(3) + 2 * o.pad_w;
  TESSERA_CHECK(o.kernel_h <= H && o.kernel_w <= W, ShapeError,
                "{}: kernel {}x{} is larger than the padded input {}x{} (x {})", op, o.kernel_h, o.kernel_w, H,
                W, shape_str(x.shape()));
  return {x.size(0), x.size(1), (H - o.kernel_h) / o.stride_h + 1, (W - o.kernel_w) / o.stride_w + 1};
}

Tensor pool2d(PoolKind kind, const Tensor& x, const Pool2dOptions& o) {
  const char* op = kind == PoolKind::max ? "max_pool2d" : "avg_pool2d";
  Tensor y = detail::empty_like_shape(pool2d_shape(op, x, o), x);
  Tensor workspace;  // max: where each window's maximum was, in the backend's own form
  kernels::pool2d_forward(kind, x, o, y, workspace);
  if (needs_recording({&x})) {
    record(op, {x}, y, [kind, o, workspace, shape = x.shape()](const Tensor& dy) {
      Tensor dx = detail::empty_like_shape(shape, dy);
      kernels::pool2d_backward(kind, dy, workspace, o, dx);
      return std::vector<Tensor>{dx};
    });
  }
  return y;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, Pool2dOptions opts) { return pool2d(PoolKind::max, x, opts); }
Tensor avg_pool2d(const Tensor& x, Pool2dOptions opts) { return pool2d(PoolKind::avg, x, opts); }

}  // namespace tessera
