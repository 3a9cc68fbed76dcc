// tessera::optim::cuda:: optimizer kernels (optim/update_kernels.h): checks, batching of many
// tensors per launch, and the squared norm through the backend's reductions.
#include <cmath>

#include "ops/cuda/runtime.h"
#include "optim/cuda/launch.h"
#include "optim/update_kernels.h"

namespace tessera::optim::cuda {

using tessera::cuda::check_cuda;
using tessera::cuda::device_scratch;
using tessera::cuda::elem_of;
using tessera::cuda::require_float;
using tessera::cuda::launch::Elem;

double squared_norm(const Tensor& x) {
  require_float("squared_norm", x, "x");
  if (x.numel() == 0) return 0.0;
  constexpr int kMaxPartials = 1024;
  Tensor partial = device_scratch(kMaxPartials + 1, DType::f64);
  double* p = partial.data<double>();
  const int blocks = tessera::cuda::launch::sum_squares_partial(elem_of(x.dtype()), x.raw_data(), x.numel(), p, kMaxPartials);
  tessera::cuda::launch::sum_doubles(p, blocks, p + kMaxPartials);
  double result = 0.0;
  check_cuda(cudaMemcpy(&result, p + kMaxPartials, sizeof(double), cudaMemcpyDeviceToHost),
             "squared_norm", "cudaMemcpy");
  return result;
}

namespace {

void check_group(const char* op, const std::vector<Tensor>& params, const std::vector<Tensor>& other,
                 const char* name, std::size_t i, bool required) {
  if (i >= other.size() || !other[i].defined()) {
    TESSERA_CHECK(!required, Error, "{}: parameter {} has no {}", op, i, name);
    return;
  }
  const Tensor& p = params[i];
  const Tensor& t = other[i];
  require_float(op, t, name);
  TESSERA_CHECK(t.dtype() == p.dtype() && t.shape() == p.shape(), ShapeError,
                "{}: {} {} {} of parameter {} does not match the parameter {} {}", op, name,
                shape_str(t.shape()), t.dtype(), i, shape_str(p.shape()), p.dtype());
}

// Feeds the tensors to `launch_batch` in batches of at most kMaxOptimTensors of one dtype.
template <class Batch, class Fill, class Launch>
void for_each_batch(const std::vector<Tensor>& params, Fill&& fill, Launch&& launch_batch) {
  for (DType dtype : {DType::f32, DType::f64}) {
    Batch batch;
    std::int64_t total = 0;
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (params[i].dtype() != dtype || !fill(batch, batch.count, i)) continue;
      total += params[i].numel();
      batch.end[batch.count++] = total;
      if (batch.count == launch::kMaxOptimTensors) {
        launch_batch(elem_of(dtype), batch);
        batch = Batch();
        total = 0;
      }
    }
    if (batch.count > 0) launch_batch(elem_of(dtype), batch);
  }
}

}  // namespace

void adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 const std::vector<Tensor>& m, const std::vector<Tensor>& v, const AdamUpdate& u) {
  const char* op = "adam_update";
  TESSERA_CHECK(grads.size() == params.size() && m.size() == params.size() && v.size() == params.size(),
                Error, "adam_update: {} parameters, {} gradients, {} first and {} second moments",
                params.size(), grads.size(), m.size(), v.size());
  TESSERA_CHECK(u.bias_correction1 > 0 && u.bias_correction2 > 0, Error,
                "adam_update: bias corrections must be positive (got {} and {}; step count 0?)",
                u.bias_correction1, u.bias_correction2);
  for (std::size_t i = 0; i < params.size(); ++i) {
    require_float(op, params[i], "parameter");
    check_group(op, params, grads, "gradient", i, false);
    check_group(op, params, m, "first moment", i, true);
    check_group(op, params, v, "second moment", i, true);
  }
  const launch::AdamScalars s{u.lr, u.beta1, u.beta2, u.eps, u.weight_decay,
                              u.lr / u.bias_correction1, std::sqrt(u.bias_correction2), u.decoupled};
  for_each_batch<launch::AdamTensors>(
      params,
      [&](launch::AdamTensors& b, int k, std::size_t i) {
        if (!grads[i].defined() || params[i].numel() == 0) return false;  // nothing to update
        b.p[k] = params[i].raw_data();
        b.g[k] = grads[i].raw_data();
        b.m[k] = m[i].raw_data();
        b.v[k] = v[i].raw_data();
        return true;
      },
      [&](Elem t, const launch::AdamTensors& b) { launch::adam(t, b, s); });
}

void sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& momentum, const SgdUpdate& u) {
  const char* op = "sgd_update";
  const bool use_momentum = u.momentum != 0.0;
  TESSERA_CHECK(grads.size() == params.size() && (!use_momentum || momentum.size() == params.size()),
                Error, "sgd_update: {} parameters, {} gradients, {} momentum buffers", params.size(),
                grads.size(), momentum.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    require_float(op, params[i], "parameter");
    check_group(op, params, grads, "gradient", i, false);
    if (use_momentum) check_group(op, params, momentum, "momentum buffer", i, true);
  }
  const launch::SgdScalars s{u.lr, u.momentum, u.dampening, u.weight_decay, u.nesterov, u.first_step};
  for_each_batch<launch::SgdTensors>(
      params,
      [&](launch::SgdTensors& b, int k, std::size_t i) {
        if (!grads[i].defined() || params[i].numel() == 0) return false;
        b.p[k] = params[i].raw_data();
        b.g[k] = grads[i].raw_data();
        b.buf[k] = use_momentum ? momentum[i].raw_data() : nullptr;
        return true;
      },
      [&](Elem t, const launch::SgdTensors& b) { launch::sgd(t, b, s); });
}

}  // namespace tessera::optim::cuda
