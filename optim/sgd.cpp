// SGD: option checks and the call into the fused kernel.
#include "tessera/optim/sgd.h"

#include <cmath>

#include "optim/update_kernels.h"

namespace tessera::optim {
namespace {

// The buffer list: only kept with momentum (as in PyTorch's momentum_buffer).
std::vector<std::string> sgd_buffers(const SgdOptions& o) {
  TESSERA_CHECK(std::isfinite(o.momentum) && o.momentum >= 0.0, ConfigError,
                "SGD: momentum must be finite and >= 0, got {}", o.momentum);
  TESSERA_CHECK(std::isfinite(o.dampening), ConfigError, "SGD: dampening must be finite, got {}",
                o.dampening);
  TESSERA_CHECK(!o.nesterov || (o.momentum > 0.0 && o.dampening == 0.0), ConfigError,
                "SGD: nesterov needs momentum > 0 and dampening 0 (momentum {}, dampening {})",
                o.momentum, o.dampening);
  if (o.momentum == 0.0) return {};
  return {"momentum_buffer"};
}

}  // namespace

SGD::SGD(Params params, SgdOptions options)
    : Optimizer(std::move(params), options.lr, options.weight_decay, sgd_buffers(options)),
      options_(options) {}

void SGD::update(const GroupState& g, const std::vector<Tensor>& params,
                 const std::vector<Tensor>& grads, const std::vector<std::vector<Tensor>>& buffers,
                 std::int64_t step) {
  const SgdUpdate u{.lr = g.lr,
                    .momentum = options_.momentum,
                    .dampening = options_.dampening,
                    .weight_decay = g.weight_decay,
                    .nesterov = options_.nesterov,
                    .first_step = step == 1};
  static const std::vector<Tensor> kNone;
  kernels::sgd_update(params, grads, buffers.empty() ? kNone : buffers[0], u);
}

}  // namespace tessera::optim
