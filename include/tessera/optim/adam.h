// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), with the
// semantics of torch.optim.Adam and torch.optim.AdamW (amsgrad not supported).
#pragma once

#include "tessera/optim/optimizer.h"

namespace tessera::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2: added to the gradient as weight_decay * p
};

// Same fields; only the default weight decay differs (PyTorch's AdamW default).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: p -= lr * weight_decay * p before the step
};

// Per param at its step t (1, 2, ...), with g the gradient (Adam: g += weight_decay * p;
// AdamW: p *= 1 - lr * weight_decay first):
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
class Adam : public Optimizer {
 public:
  Adam(Params params, AdamOptions options = {});
  const AdamOptions& options() const { return options_; }
  const char* name() const override { return decoupled_ ? "AdamW" : "Adam"; }

 protected:
  Adam(Params params, AdamOptions options, bool decoupled);
  void update(const GroupState& g, const std::vector<Tensor>& params,
              const std::vector<Tensor>& grads, const std::vector<std::vector<Tensor>>& buffers,
              std::int64_t step) override;

 private:
  AdamOptions options_;
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  AdamW(Params params, AdamWOptions options = {});
};

}  // namespace tessera::optim
