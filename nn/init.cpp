#include "tessera/nn/init.h"

#include "tessera/ops/ops.h"

#include <cmath>

namespace tessera::nn::init {

void zeros_(Tensor& t) { t.fill_(0.0); }
void ones_(Tensor& t) { t.fill_(1.0); }

void normal_(Tensor& t, double mean, double std, Generator& gen) {
  t.copy_(randn(t.shape(), {.dtype = t.dtype(), .device = t.device()}, gen) * std + mean);
}

void uniform_(Tensor& t, double low, double high, Generator& gen) {
  t.copy_(uniform(t.shape(), low, high, {.dtype = t.dtype(), .device = t.device()}, gen));
}

void trunc_normal_(Tensor& t, double std, double low, double high, Generator& gen) {
  t.copy_(trunc_normal(t.shape(), std, low, high, 0.0, {.dtype = t.dtype(), .device = t.device()}, gen));
}

void default_uniform_(Tensor& t, std::int64_t fan_in, Generator& gen) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  uniform_(t, -bound, bound, gen);
}

}  // namespace tessera::nn::init
