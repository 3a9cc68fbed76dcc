// Gradient-norm clipping with the semantics of torch.nn.utils.clip_grad_norm_ (2-norm,
// error_if_nonfinite=false).
#pragma once

#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera::optim {

// The 2-norm over every defined .grad() of `params` together (accumulated in double);
// params without a gradient count as zero.
double grad_norm(const std::vector<Tensor>& params);

// Scales all gradients in place by max_norm / (total + 1e-6) when that factor is below 1,
// and returns the total norm before clipping. A non-finite total is returned as is and
// (as in PyTorch) the gradients are scaled by the resulting NaN or 0 factor: callers that
// want to skip such steps test std::isfinite on the result.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace tessera::optim
