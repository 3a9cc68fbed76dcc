// Temporary: fused optimizer kernels, being written on the optim branch.
#include "ops/kernels.h"

namespace tessera::cpu {
void adam_update(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>&,
                 const std::vector<Tensor>&, const AdamUpdate&) { throw Error("adam_update: not implemented yet"); }
void sgd_update(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>&,
                const SgdUpdate&) { throw Error("sgd_update: not implemented yet"); }
double squared_norm(const Tensor&) { throw Error("squared_norm: not implemented yet"); }
}  // namespace tessera::cpu
