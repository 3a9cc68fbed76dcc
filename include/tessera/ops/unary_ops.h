// The elementwise unary ops, one row each. From this table come the UnaryOp enum, the op
// names, the public functions of the plain ones (ops.h), the oneDNN mapping, the f64
// reference and our own CPU loops, the CUDA kernels and the tests that loop over every op:
// a new op is one row. The math is written once and compiles as C++17 under nvcc.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TESSERA_HOST_DEVICE __host__ __device__
#else
#define TESSERA_HOST_DEVICE
#endif

// X(name, api, oneDNN forward, oneDNN backward, oneDNN (alpha, beta), f(x), f'(x),
//   gradient-check inputs (low, high, a, b))
//
// In the formulas: x the input, a and b the op's two parameters, T the element type, m:: the
// math below. api: public (`Tensor name(const Tensor&)` in ops.h) or internal (reached by a
// function with parameters: gelu, scale_shift, pow, clamp). The oneDNN columns name an
// eltwise algorithm, or undef for our own loop: clip's backward passes no gradient where x
// equals a bound, which PyTorch and the derivative here count as inside. Gradient checks
// draw x in [low, high] and keep it 0.05 away from 0, a and b (the kinks of relu, abs, clamp).
#define TESSERA_UNARY_OPS(X)                                                                                 \
  X(relu, public, eltwise_relu, eltwise_relu, (0, 0),                                                        \
    (x > T(0) ? x : T(0)),                                                                                   \
    (x > T(0) ? T(1) : T(0)),                                                                                \
    (-2, 2, 0, 0))                                                                                           \
  X(abs, public, eltwise_abs, eltwise_abs, (0, 0),                                                           \
    (x < T(0) ? -x : x),                                                                                     \
    (x < T(0) ? T(-1) : x > T(0) ? T(1) : T(0)),                                                             \
    (-2, 2, 0, 0))                                                                                           \
  X(gelu_erf, internal, eltwise_gelu_erf, eltwise_gelu_erf, (0, 0),                                          \
    (T(0.5) * x * (T(1) + m::erf(x * T(m::kInvSqrt2)))),                                                     \
    (T(0.5) * (T(1) + m::erf(x * T(m::kInvSqrt2))) + x * T(m::kInvSqrt2Pi) * m::exp(T(-0.5) * x * x)),      \
    (-3, 3, 0, 0))                                                                                           \
  X(gelu_tanh, internal, eltwise_gelu_tanh, eltwise_gelu_tanh, (0, 0),                                       \
    (T(0.5) * x * (T(1) + m::tanh(m::gelu_u(x)))),                                                           \
    (T(0.5) * (T(1) + m::tanh(m::gelu_u(x))) +                                                               \
     T(0.5) * x * (T(1) - m::tanh(m::gelu_u(x)) * m::tanh(m::gelu_u(x))) * m::gelu_du(x)),                   \
    (-3, 3, 0, 0))                                                                                           \
  X(exp, public, eltwise_exp, eltwise_exp, (0, 0), (m::exp(x)), (m::exp(x)), (-2, 2, 0, 0))                  \
  X(log, public, eltwise_log, eltwise_log, (0, 0), (m::log(x)), (T(1) / x), (0.5, 2, 0, 0))                  \
  X(sqrt, public, eltwise_sqrt, eltwise_sqrt, (0, 0), (m::sqrt(x)), (T(0.5) / m::sqrt(x)), (0.5, 2, 0, 0))   \
  X(tanh, public, eltwise_tanh, eltwise_tanh, (0, 0),                                                        \
    (m::tanh(x)),                                                                                            \
    (T(1) - m::tanh(x) * m::tanh(x)),                                                                        \
    (-2, 2, 0, 0))                                                                                           \
  X(sigmoid, public, eltwise_logistic, eltwise_logistic, (0, 0),                                             \
    (m::sigmoid(x)),                                                                                         \
    (m::sigmoid(x) * (T(1) - m::sigmoid(x))),                                                                \
    (-4, 4, 0, 0))                                                                                           \
  X(linear, internal, eltwise_linear, eltwise_linear, (a, b), (a * x + b), (a), (-2, 2, 1.5, -0.25))         \
  X(pow, internal, eltwise_pow, eltwise_pow, (1, a),                                                         \
    (m::pow(x, a)),                                                                                          \
    (a * m::pow(x, a - T(1))),                                                                               \
    (0.5, 2, 2.5, 0))                                                                                        \
  X(clamp, internal, eltwise_clip_v2, undef, (a, b),                                                         \
    (x < a ? a : (x > b ? b : x)),                                                                           \
    ((x >= a && x <= b) ? T(1) : T(0)),                                                                      \
    (-2, 2, -0.5, 0.75))

namespace tessera {

enum class UnaryOp : std::uint8_t {
#define TESSERA_UNARY_ENUM(name, ...) name,
  TESSERA_UNARY_OPS(TESSERA_UNARY_ENUM)
#undef TESSERA_UNARY_ENUM
};

inline const char* unary_op_name(UnaryOp op) {
  switch (op) {
#define TESSERA_UNARY_NAME(name, ...) \
  case UnaryOp::name: return #name;
    TESSERA_UNARY_OPS(TESSERA_UNARY_NAME)
#undef TESSERA_UNARY_NAME
  }
  return "unary";
}

// The math the formulas use: the standard library on the host, CUDA's overloads on the device.
namespace m {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluCubic = 0.044715;

#if defined(__CUDA_ARCH__)
#define TESSERA_MATH_1(fn) \
  template <class T>       \
  __device__ T fn(T x) {   \
    return ::fn(x);        \
  }
#else
#define TESSERA_MATH_1(fn)         \
  template <class T>               \
  TESSERA_HOST_DEVICE T fn(T x) {  \
    return std::fn(x);             \
  }
#endif
TESSERA_MATH_1(exp)
TESSERA_MATH_1(log)
TESSERA_MATH_1(sqrt)
TESSERA_MATH_1(tanh)
TESSERA_MATH_1(erf)
#undef TESSERA_MATH_1

template <class T>
TESSERA_HOST_DEVICE T pow(T x, T y) {
#if defined(__CUDA_ARCH__)
  return ::pow(x, y);
#else
  return std::pow(x, y);
#endif
}

template <class T>
TESSERA_HOST_DEVICE T sigmoid(T x) {
  return T(1) / (T(1) + exp(-x));
}
// gelu_tanh's inner argument u(x) and its derivative.
template <class T>
TESSERA_HOST_DEVICE T gelu_u(T x) {
  return T(kSqrt2OverPi) * (x + T(kGeluCubic) * x * x * x);
}
template <class T>
TESSERA_HOST_DEVICE T gelu_du(T x) {
  return T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * x * x);
}

}  // namespace m

#define TESSERA_UNARY_STRIP(...) __VA_ARGS__

// f(x) and f'(x) of every row, for any element type.
template <class T>
TESSERA_HOST_DEVICE T unary_value(UnaryOp op, T x, T a, T b) {
  switch (op) {
#define TESSERA_UNARY_VALUE(name, api, fwd, bwd, params, value, derivative, test) \
  case UnaryOp::name: return TESSERA_UNARY_STRIP value;
    TESSERA_UNARY_OPS(TESSERA_UNARY_VALUE)
#undef TESSERA_UNARY_VALUE
  }
  return x;
}

template <class T>
TESSERA_HOST_DEVICE T unary_derivative(UnaryOp op, T x, T a, T b) {
  switch (op) {
#define TESSERA_UNARY_DERIVATIVE(name, api, fwd, bwd, params, value, derivative, test) \
  case UnaryOp::name: return TESSERA_UNARY_STRIP derivative;
    TESSERA_UNARY_OPS(TESSERA_UNARY_DERIVATIVE)
#undef TESSERA_UNARY_DERIVATIVE
  }
  return T(1);
}

}  // namespace tessera
