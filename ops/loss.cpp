// dropout and cross_entropy, with their gradients.
#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  detail::check_float("dropout", x, "x");
  TESSERA_CHECK(p >= 0.0 && p < 1.0, Error, "dropout: p must be in [0, 1), got {}", p);
  if (!training || p == 0.0) return x;
  const std::uint64_t seed = gen.seed();
  const std::uint64_t offset = gen.reserve_batch(static_cast<std::uint64_t>(x.numel()), x.dim() ? x.size(0) : 1);
  Tensor y = empty_like(x);
  kernels::dropout(x, p, seed, offset, y);
  if (needs_recording({&x}))
    // The mask is regenerated from (seed, offset): nothing but two integers is saved.
    record("dropout", {x}, y, [p, seed, offset](const Tensor& dy) {
      Tensor dx = empty_like(dy);
      kernels::dropout(dy, p, seed, offset, dx);
      return std::vector<Tensor>{dx};
    });
  return y;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, CrossEntropyOptions opts) {
  detail::check_float("cross_entropy", logits, "logits");
  detail::check_index("cross_entropy", target);
  TESSERA_CHECK(logits.dim() == 2 && target.dim() == 1 && target.size(0) == logits.size(0), ShapeError,
                "cross_entropy: logits {} must be (N, C) and target {} (N)", shape_str(logits.shape()),
                shape_str(target.shape()));
  TESSERA_CHECK(logits.device() == target.device(), DeviceError,
                "cross_entropy: logits on {}, target on {}", logits.device(), target.device());
  TESSERA_CHECK(opts.label_smoothing >= 0.0 && opts.label_smoothing < 1.0, Error,
                "cross_entropy: label_smoothing must be in [0, 1), got {}", opts.label_smoothing);
  const std::int64_t N = logits.size(0), C = logits.size(1);
  TESSERA_CHECK(C > 0, ShapeError, "cross_entropy: logits {} have no classes", shape_str(logits.shape()));
  std::int64_t counted = 0;
  {
    const Tensor host = target.device().is_cpu() ? target : target.cpu();
    const auto* t = host.data<std::int64_t>();
    for (std::int64_t i = 0; i < N; ++i) {
      if (t[i] == opts.ignore_index) continue;
      TESSERA_CHECK(t[i] >= 0 && t[i] < C, ShapeError,
                    "cross_entropy: target {} at position {} is out of range [0, {})", t[i], i, C);
      ++counted;
    }
  }
  Tensor losses = detail::empty_like_shape({N}, logits);
  kernels::cross_entropy_forward(logits, target, opts.label_smoothing, opts.ignore_index, losses);
  if (needs_recording({&logits}))
    record("cross_entropy", {logits}, losses,
           [opts, target, zv = logits.detach()](const Tensor& dloss) {
             Tensor dz = empty_like(zv);
             kernels::cross_entropy_backward(zv, target, dloss, opts.label_smoothing, opts.ignore_index, dz);
             return std::vector<Tensor>{dz};
           });
  switch (opts.reduction) {
    case Reduction::none: return losses;
    case Reduction::sum: return sum(losses);
    case Reduction::mean:
      // Mean over the targets that count (all ignored: 0/0 = NaN, as PyTorch).
      return sum(losses) * (1.0 / static_cast<double>(counted));
  }
  return losses;
}

}  // namespace tessera
