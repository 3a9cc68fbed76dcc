// Input checks and small helpers shared by the op implementations.
#pragma once

#include "tessera/autograd/tensor.h"

namespace tessera::detail {

// Throws unless t is defined and floating (f32/f64; bf16 where a kernel exists).
void check_float(const char* op, const Tensor& t, const char* name = "input");
// Throws unless a and b share dtype and device (messages name both shapes).
void check_compatible(const char* op, const Tensor& a, const Tensor& b);
void check_index(const char* op, const Tensor& index);

inline Tensor empty_like_shape(const Shape& shape, const Tensor& like) {
  return empty(shape, {.dtype = like.dtype(), .device = like.device()});
}

}  // namespace tessera::detail
