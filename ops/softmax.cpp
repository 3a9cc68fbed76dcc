// softmax and log_softmax along an axis, with their gradients.
#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {
namespace {

Tensor softmax_impl(const Tensor& x, std::int64_t axis, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  detail::check_float(name, x, "x");
  const int a = normalize_axis(axis, std::max<std::int64_t>(x.dim(), 1), name);
  if (x.dim() == 0) return log ? zeros_like(x) : ones_like(x);
  Tensor y = empty_like(x);
  kernels::softmax_forward(x, a, log, y);
  if (needs_recording({&x}))
    record(name, {x}, y, [a, log, yv = y.detach()](const Tensor& dy) {
      Tensor dx = empty_like(yv);
      kernels::softmax_backward(yv, dy, a, log, dx);
      return std::vector<Tensor>{dx};
    });
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t axis) { return softmax_impl(x, axis, false); }
Tensor log_softmax(const Tensor& x, std::int64_t axis) { return softmax_impl(x, axis, true); }

}  // namespace tessera
