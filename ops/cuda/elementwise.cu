// CUDA elementwise kernels: binary, unary (+ derivatives), where, cast, axpy, strided copies, dropout.
#include "ops/cuda/device_utils.cuh"
#include "ops/dropout_mask.h"

namespace tessera::cuda::launch {
namespace {

using dev::grid_for;
using dev::kThreads;

// ---- binary

template <class T>
__device__ __forceinline__ T apply_binary(Bin op, T x, T y) {
  switch (op) {
    case Bin::add: return x + y;
    case Bin::sub: return x - y;
    case Bin::mul: return x * y;
    case Bin::div: return x / y;
  }
  return x;
}

// sa, sb in {0, 1}: a scalar operand is read at index 0 for every element.
template <class T>
__global__ void __launch_bounds__(dev::kThreads)
binary_flat_kernel(Bin op, const T* a, const T* b, T* o, i64 n, i64 sa, i64 sb) {
  TESSERA_GRID_LOOP(i, n) o[i] = apply_binary(op, a[i * sa], b[i * sb]);
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
binary_plan_kernel(Bin op, const T* a, const T* b, T* o, i64 n, Plan<2> plan) {
  TESSERA_GRID_LOOP(i, n) {
    i64 off[2];
    dev::plan_offsets<2>(plan, i, off);
    o[i] = apply_binary(op, a[off[0]], b[off[1]]);
  }
}

template <class T>
void binary_t(Bin op, const void* a, const void* b, void* out, i64 n, const Plan<2>* plan) {
  const T* pa = static_cast<const T*>(a);
  const T* pb = static_cast<const T*>(b);
  T* po = static_cast<T*>(out);
  if (plan == nullptr) {
    binary_flat_kernel<T><<<grid_for(n), kThreads>>>(op, pa, pb, po, n, 1, 1);
  } else if (plan->rank == 1 && plan->strides[0][0] <= 1 && plan->strides[1][0] <= 1) {
    binary_flat_kernel<T><<<grid_for(n), kThreads>>>(op, pa, pb, po, n, plan->strides[0][0],
                                                     plan->strides[1][0]);
  } else {
    binary_plan_kernel<T><<<grid_for(n), kThreads>>>(op, pa, pb, po, n, *plan);
  }
}

// ---- unary: the table's formulas (ops/unary_ops.h), as on the CPU

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
unary_forward_kernel(UnaryOp op, const T* x, T* y, i64 n, T alpha, T beta) {
  TESSERA_GRID_LOOP(i, n) y[i] = unary_value(op, x[i], alpha, beta);
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
unary_backward_kernel(UnaryOp op, const T* x, const T* dy, T* dx, i64 n, T alpha, T beta) {
  TESSERA_GRID_LOOP(i, n) dx[i] = dy[i] * unary_derivative(op, x[i], alpha, beta);
}

// ---- where and cast

__device__ __forceinline__ bool nonzero(Elem t, const void* p, i64 i) {
  switch (t) {
    case Elem::f32: return static_cast<const float*>(p)[i] != 0.0f;  // NaN counts as true
    case Elem::f64: return static_cast<const double*>(p)[i] != 0.0;
    case Elem::bf16: return (static_cast<const unsigned short*>(p)[i] & 0x7fffu) != 0;
    case Elem::i64: return static_cast<const long long*>(p)[i] != 0;
  }
  return false;
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
where_kernel(Elem cond_t, const void* cond, const T* a, const T* b, T* o, i64 n,
                             Plan<3> plan) {
  TESSERA_GRID_LOOP(i, n) {
    i64 off[3];
    dev::plan_offsets<3>(plan, i, off);
    o[i] = nonzero(cond_t, cond, off[0]) ? a[off[1]] : b[off[2]];
  }
}

__device__ __forceinline__ double load_as_double(Elem t, const void* p, i64 i) {
  switch (t) {
    case Elem::f32: return static_cast<const float*>(p)[i];
    case Elem::f64: return static_cast<const double*>(p)[i];
    case Elem::bf16: {
      const unsigned int bits = static_cast<unsigned int>(static_cast<const unsigned short*>(p)[i]) << 16;
      return __uint_as_float(bits);
    }
    case Elem::i64: return static_cast<double>(static_cast<const long long*>(p)[i]);
  }
  return 0.0;
}

// Round to nearest even; NaN stays a (quiet) NaN: the same bit recipe as autograd/bf16.h.
__device__ __forceinline__ unsigned short float_to_bf16(float f) {
  unsigned int bits = __float_as_uint(f);
  if (f != f) return static_cast<unsigned short>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<unsigned short>(bits >> 16);
}

__device__ __forceinline__ void store_from_double(Elem t, void* p, i64 i, double v) {
  switch (t) {
    case Elem::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case Elem::f64: static_cast<double*>(p)[i] = v; break;
    case Elem::bf16: static_cast<unsigned short*>(p)[i] = float_to_bf16(static_cast<float>(v)); break;
    case Elem::i64: static_cast<long long*>(p)[i] = static_cast<long long>(v); break;
  }
}

__global__ void __launch_bounds__(dev::kThreads)
cast_kernel(Elem from, Elem to, const void* x, void* out, i64 n) {
  TESSERA_GRID_LOOP(i, n) store_from_double(to, out, i, load_as_double(from, x, i));
}

// ---- in-place updates

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
axpy_kernel(T* d, const T* s, i64 n, T alpha, bool unit) {
  if (unit) {
    TESSERA_GRID_LOOP(i, n) d[i] += s[i];
  } else {
    TESSERA_GRID_LOOP(i, n) d[i] += alpha * s[i];
  }
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
scale_kernel(T* d, i64 n, T factor) {
  TESSERA_GRID_LOOP(i, n) d[i] *= factor;
}

// ---- strided copies

template <class U>
__global__ void __launch_bounds__(dev::kThreads)
strided_copy_kernel(const U* x, i64 base, U* out, i64 n, Plan<1> plan) {
  TESSERA_GRID_LOOP(i, n) out[i] = x[base + dev::plan_offset(plan, i)];
}

template <class U, bool kAccumulate>
__global__ void __launch_bounds__(dev::kThreads)
strided_assign_kernel(const U* src, U* out, i64 base, i64 n, Plan<1> plan) {
  TESSERA_GRID_LOOP(i, n) {
    U* d = out + base + dev::plan_offset(plan, i);
    if constexpr (kAccumulate) *d += src[i];
    else *d = src[i];
  }
}

// ---- dropout

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
dropout_kernel(const T* x, T* out, i64 n, std::uint64_t seed, std::uint64_t offset,
                               std::uint32_t threshold, T scale) {
  TESSERA_GRID_LOOP(i, n) {
    const bool keep = dropout_keep(seed, offset + static_cast<std::uint64_t>(i), threshold);
    out[i] = keep ? x[i] * scale : T(0);
  }
}

}  // namespace

void binary(Elem t, Bin op, const void* a, const void* b, void* out, i64 n, const Plan<2>* plan) {
  if (t == Elem::f32) binary_t<float>(op, a, b, out, n, plan);
  else binary_t<double>(op, a, b, out, n, plan);
  check_launch("binary");
}

void unary_forward(Elem t, UnaryOp op, const void* x, void* y, i64 n, double alpha, double beta) {
  if (t == Elem::f32)
    unary_forward_kernel<float><<<grid_for(n), kThreads>>>(
        op, static_cast<const float*>(x), static_cast<float*>(y), n, static_cast<float>(alpha),
        static_cast<float>(beta));
  else
    unary_forward_kernel<double><<<grid_for(n), kThreads>>>(
        op, static_cast<const double*>(x), static_cast<double*>(y), n, alpha, beta);
  check_launch("unary_forward");
}

void unary_backward(Elem t, UnaryOp op, const void* x, const void* dy, void* dx, i64 n, double alpha,
                    double beta) {
  if (t == Elem::f32)
    unary_backward_kernel<float><<<grid_for(n), kThreads>>>(
        op, static_cast<const float*>(x), static_cast<const float*>(dy), static_cast<float*>(dx), n,
        static_cast<float>(alpha), static_cast<float>(beta));
  else
    unary_backward_kernel<double><<<grid_for(n), kThreads>>>(
        op, static_cast<const double*>(x), static_cast<const double*>(dy), static_cast<double*>(dx),
        n, alpha, beta);
  check_launch("unary_backward");
}

void where(Elem t, Elem cond_t, const void* cond, const void* a, const void* b, void* out, i64 n,
           const Plan<3>& plan) {
  if (t == Elem::f32)
    where_kernel<float><<<grid_for(n), kThreads>>>(cond_t, cond, static_cast<const float*>(a),
                                                   static_cast<const float*>(b),
                                                   static_cast<float*>(out), n, plan);
  else
    where_kernel<double><<<grid_for(n), kThreads>>>(cond_t, cond, static_cast<const double*>(a),
                                                    static_cast<const double*>(b),
                                                    static_cast<double*>(out), n, plan);
  check_launch("where");
}

void cast(Elem from, Elem to, const void* x, void* out, i64 n) {
  cast_kernel<<<grid_for(n), kThreads>>>(from, to, x, out, n);
  check_launch("cast");
}

void axpy(Elem t, void* dst, const void* src, i64 n, double alpha) {
  if (t == Elem::f32)
    axpy_kernel<float><<<grid_for(n), kThreads>>>(static_cast<float*>(dst), static_cast<const float*>(src),
                                                  n, static_cast<float>(alpha), alpha == 1.0);
  else
    axpy_kernel<double><<<grid_for(n), kThreads>>>(static_cast<double*>(dst),
                                                   static_cast<const double*>(src), n, alpha, alpha == 1.0);
  check_launch("add_");
}

void scale(Elem t, void* dst, i64 n, double factor) {
  if (t == Elem::f32)
    scale_kernel<float><<<grid_for(n), kThreads>>>(static_cast<float*>(dst), n, static_cast<float>(factor));
  else
    scale_kernel<double><<<grid_for(n), kThreads>>>(static_cast<double*>(dst), n, factor);
  check_launch("mul_");
}

void strided_copy(std::size_t elem_size, const void* x, i64 base, void* out, i64 n, const Plan<1>& plan) {
  auto run = [&](auto tag) {
    using U = typename decltype(tag)::type;
    strided_copy_kernel<U><<<grid_for(n), kThreads>>>(static_cast<const U*>(x), base, static_cast<U*>(out), n,
                                                      plan);
  };
  if (elem_size == 2) run(dev::Bits<2>{});
  else if (elem_size == 4) run(dev::Bits<4>{});
  else run(dev::Bits<8>{});
  check_launch("strided_copy");
}

void strided_assign(Elem t, const void* src, void* out, i64 base, i64 n, const Plan<1>& plan,
                    bool accumulate) {
  if (accumulate) {
    if (t == Elem::f32)
      strided_assign_kernel<float, true><<<grid_for(n), kThreads>>>(
          static_cast<const float*>(src), static_cast<float*>(out), base, n, plan);
    else
      strided_assign_kernel<double, true><<<grid_for(n), kThreads>>>(
          static_cast<const double*>(src), static_cast<double*>(out), base, n, plan);
  } else {
    switch (t) {
      case Elem::bf16: {
        using U = dev::Bits<2>::type;
        strided_assign_kernel<U, false><<<grid_for(n), kThreads>>>(static_cast<const U*>(src),
                                                                  static_cast<U*>(out), base, n, plan);
        break;
      }
      case Elem::f32: {
        using U = dev::Bits<4>::type;
        strided_assign_kernel<U, false><<<grid_for(n), kThreads>>>(static_cast<const U*>(src),
                                                                  static_cast<U*>(out), base, n, plan);
        break;
      }
      default: {
        using U = dev::Bits<8>::type;
        strided_assign_kernel<U, false><<<grid_for(n), kThreads>>>(static_cast<const U*>(src),
                                                                  static_cast<U*>(out), base, n, plan);
        break;
      }
    }
  }
  check_launch("strided_assign");
}

void dropout(Elem t, const void* x, void* out, i64 n, std::uint64_t seed, std::uint64_t offset,
             std::uint32_t threshold, double scale) {
  if (t == Elem::f32)
    dropout_kernel<float><<<grid_for(n), kThreads>>>(static_cast<const float*>(x), static_cast<float*>(out),
                                                     n, seed, offset, threshold, static_cast<float>(scale));
  else
    dropout_kernel<double><<<grid_for(n), kThreads>>>(static_cast<const double*>(x),
                                                      static_cast<double*>(out), n, seed, offset,
                                                      threshold, scale);
  check_launch("dropout");
}

}  // namespace tessera::cuda::launch
