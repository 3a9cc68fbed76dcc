// Gradient checking: compares the tape's gradients with central finite differences in f64.
// The scalar checked is sum(f(inputs) * r) for a fixed random r, so every output element
// contributes with a distinct weight.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tessera/autograd/tensor.h"

namespace tessera {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-7;  // pass if |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-5;
  std::uint64_t seed = 1234;        // for r and for choosing elements to check
  std::int64_t max_per_input = 0;   // check at most this many elements per input (0: all)
};

struct GradcheckInputReport {
  std::int64_t input = 0;             // position in the inputs vector
  std::int64_t checked = 0;           // elements compared
  std::int64_t worst_index = -1;      // flat index of the worst element
  double analytic = 0, numeric = 0;   // at the worst element
  double max_abs_error = 0;
  double max_rel_error = 0;           // |a - n| / max(|n|, atol / rtol)
  bool ok = true;
};

struct GradcheckResult {
  bool ok = true;
  std::vector<GradcheckInputReport> inputs;  // one per input that requires a gradient
  std::string message;                       // a readable summary, naming the worst elements
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs must be f64 CPU tensors; those with requires_grad set are checked. The inputs'
// gradients are reset before and after.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opts = {});

}  // namespace tessera
