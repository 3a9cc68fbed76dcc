// Gradient-norm clipping.
#include "tessera/optim/clip.h"

#include <cmath>
#include <set>

#include "optim/update_kernels.h"

namespace tessera::optim {

double grad_norm(const std::vector<Tensor>& params) {
  double sum = 0.0;
  for (const Tensor& p : params) {
    TESSERA_CHECK(p.defined(), Error, "grad_norm: a parameter is undefined");
    if (const Tensor g = p.grad(); g.defined()) sum += kernels::squared_norm(g);
  }
  return std::sqrt(sum);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  TESSERA_CHECK(std::isfinite(max_norm) && max_norm > 0.0, ConfigError,
                "clip_grad_norm: max_norm must be finite and > 0, got {}", max_norm);
  const double total = grad_norm(params);
  const double factor = max_norm / (total + 1e-6);
  // !(factor >= 1) also catches NaN, which PyTorch propagates into the gradients.
  if (!(factor >= 1.0)) {
    std::set<const void*> scaled;  // a gradient shared by two params is scaled once
    for (const Tensor& p : params)
      if (Tensor g = p.grad(); g.defined() && scaled.insert(g.raw_data()).second) g.mul_(factor);
  }
  return total;
}

}  // namespace tessera::optim
