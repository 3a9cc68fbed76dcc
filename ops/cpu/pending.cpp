// Temporary: kernels being written on main. Replaced by their real files.
#include "ops/kernels.h"

namespace tessera::cpu {
#define TESSERA_PENDING(name) throw Error(name ": not implemented yet")
void softmax_forward(const Tensor&, int, bool, Tensor&) { TESSERA_PENDING("softmax"); }
void softmax_backward(const Tensor&, const Tensor&, int, bool, Tensor&) { TESSERA_PENDING("softmax"); }
void layer_norm_forward(const Tensor&, const Tensor&, const Tensor&, double, Tensor&, Tensor&, Tensor&) { TESSERA_PENDING("layer_norm"); }
void layer_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, double, Tensor&, Tensor&, Tensor&) { TESSERA_PENDING("layer_norm"); }
void conv2d_forward(const Tensor&, const Tensor&, const Tensor&, const Conv2dOptions&, Tensor&) { TESSERA_PENDING("conv2d"); }
void conv2d_backward_data(const Tensor&, const Tensor&, const Conv2dOptions&, Tensor&) { TESSERA_PENDING("conv2d"); }
void conv2d_backward_weights(const Tensor&, const Tensor&, const Conv2dOptions&, Tensor&, Tensor&) { TESSERA_PENDING("conv2d"); }
void dropout(const Tensor&, double, std::uint64_t, std::uint64_t, Tensor&) { TESSERA_PENDING("dropout"); }
void cross_entropy_forward(const Tensor&, const Tensor&, double, std::int64_t, Tensor&) { TESSERA_PENDING("cross_entropy"); }
void cross_entropy_backward(const Tensor&, const Tensor&, const Tensor&, double, std::int64_t, Tensor&) { TESSERA_PENDING("cross_entropy"); }
}  // namespace tessera::cpu
