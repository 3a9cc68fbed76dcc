// Parameter initialisers (in place, outside autograd), named as in torch.nn.init.
#pragma once

#include "tessera/autograd/tensor.h"

namespace tessera::nn::init {

void zeros_(Tensor& t);
void ones_(Tensor& t);
void normal_(Tensor& t, double mean, double std, Generator& gen = default_generator());
void uniform_(Tensor& t, double low, double high, Generator& gen = default_generator());
// Normal(mean, std) redrawn outside [low, high]; timm calls it with absolute bounds (-2, 2).
void trunc_normal_(Tensor& t, double std, double low = -2.0, double high = 2.0,
                   Generator& gen = default_generator());
// PyTorch's default for Linear and Conv weights (kaiming_uniform_ with a = sqrt(5)):
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the same bound is its default for biases.
void default_uniform_(Tensor& t, std::int64_t fan_in, Generator& gen = default_generator());

}  // namespace tessera::nn::init
