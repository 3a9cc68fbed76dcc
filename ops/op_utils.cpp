#include "ops/op_utils.h"

namespace tessera::detail {

void check_float(const char* op, const Tensor& t, const char* name) {
  TESSERA_CHECK(t.defined(), Error, "{}: {} is undefined", op, name);
  TESSERA_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, DTypeError,
                "{}: {} {} has dtype {}; f32 or f64 expected", op, name, shape_str(t.shape()),
                t.dtype());
}

void check_compatible(const char* op, const Tensor& a, const Tensor& b) {
  TESSERA_CHECK(a.dtype() == b.dtype(), DTypeError, "{}: dtypes differ: {} {} and {} {}", op,
                shape_str(a.shape()), a.dtype(), shape_str(b.shape()), b.dtype());
  TESSERA_CHECK(a.device() == b.device(), DeviceError, "{}: devices differ: {} on {} and {} on {}",
                op, shape_str(a.shape()), a.device(), shape_str(b.shape()), b.device());
}

void check_index(const char* op, const Tensor& index) {
  TESSERA_CHECK(index.defined(), Error, "{}: index is undefined", op);
  TESSERA_CHECK(index.dtype() == DType::i64, DTypeError, "{}: index {} has dtype {}; i64 expected",
                op, shape_str(index.shape()), index.dtype());
}

}  // namespace tessera::detail
