// Adam and AdamW: option checks, bias corrections, and the call into the fused kernel.
#include "tessera/optim/adam.h"

#include <cmath>

#include "optim/update_kernels.h"

namespace tessera::optim {
namespace {

const AdamOptions& checked(const AdamOptions& o, const char* who) {
  TESSERA_CHECK(o.beta1 >= 0.0 && o.beta1 < 1.0, ConfigError, "{}: beta1 must be in [0, 1), got {}",
                who, o.beta1);
  TESSERA_CHECK(o.beta2 >= 0.0 && o.beta2 < 1.0, ConfigError, "{}: beta2 must be in [0, 1), got {}",
                who, o.beta2);
  TESSERA_CHECK(std::isfinite(o.eps) && o.eps >= 0.0, ConfigError,
                "{}: eps must be finite and >= 0, got {}", who, o.eps);
  return o;
}

}  // namespace

Adam::Adam(Params params, AdamOptions options) : Adam(std::move(params), options, false) {}

Adam::Adam(Params params, AdamOptions options, bool decoupled)
    : Optimizer(std::move(params), checked(options, decoupled ? "AdamW" : "Adam").lr,
                options.weight_decay, {"exp_avg", "exp_avg_sq"}),
      options_(options),
      decoupled_(decoupled) {}

void Adam::update(const GroupState& g, const std::vector<Tensor>& params,
                  const std::vector<Tensor>& grads, const std::vector<std::vector<Tensor>>& buffers,
                  std::int64_t step) {
  const double t = static_cast<double>(step);
  const AdamUpdate u{.lr = g.lr,
                     .beta1 = options_.beta1,
                     .beta2 = options_.beta2,
                     .eps = options_.eps,
                     .weight_decay = g.weight_decay,
                     .decoupled = decoupled_,
                     .bias_correction1 = 1.0 - std::pow(options_.beta1, t),
                     .bias_correction2 = 1.0 - std::pow(options_.beta2, t)};
  kernels::adam_update(params, grads, buffers[0], buffers[1], u);
}

AdamW::AdamW(Params params, AdamWOptions o)
    : Adam(std::move(params),
           AdamOptions{.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps,
                       .weight_decay = o.weight_decay},
           true) {}

}  // namespace tessera::optim
