// Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, with
// the semantics of torch.optim.SGD.
#pragma once

#include "tessera/optim/optimizer.h"

namespace tessera::optim {

struct SgdOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2: added to the gradient as weight_decay * p
  bool nesterov = false;      // needs momentum > 0 and dampening 0
};

// Per param, with g = grad + weight_decay * p:
//   momentum 0:  p -= lr * g
//   otherwise:   b = g on the first step, else momentum * b + (1 - dampening) * g;
//                p -= lr * (nesterov ? g + momentum * b : b)
class SGD : public Optimizer {
 public:
  SGD(Params params, SgdOptions options = {});
  const SgdOptions& options() const { return options_; }
  const char* name() const override { return "SGD"; }

 protected:
  void update(const GroupState& g, const std::vector<Tensor>& params,
              const std::vector<Tensor>& grads, const std::vector<std::vector<Tensor>>& buffers,
              std::int64_t step) override;

 private:
  SgdOptions options_;
};

}  // namespace tessera::optim
