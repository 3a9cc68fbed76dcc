#include "tessera/ops/kernels.h"

#include <bit>
#include <cmath>

#include "tessera/autograd/bf16.h"
#include "ops/cpu/dnnl_utils.h"
#include "ops/cpu/strided_loop.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

constexpr std::int64_t kParallelMin = 32768;

// ---- binary

dnnl::algorithm dnnl_binary_alg(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return dnnl::algorithm::binary_add;
    case BinaryOp::sub: return dnnl::algorithm::binary_sub;
    case BinaryOp::mul: return dnnl::algorithm::binary_mul;
    case BinaryOp::div: return dnnl::algorithm::binary_div;
  }
  return dnnl::algorithm::binary_add;
}

Shape left_pad(const Shape& s, std::size_t rank) {
  Shape r(rank - s.size(), 1);
  r.insert(r.end(), s.begin(), s.end());
  return r;
}

// oneDNN binary needs src0 to have the output's shape; src1 may broadcast. Returns false,
// doing nothing, when oneDNN would only offer its slow reference code for the broadcast.
bool binary_dnnl(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const std::size_t rank = std::max<std::size_t>(out.shape().size(), 1);
  const Shape sa = left_pad(a.shape(), rank), sb = left_pad(b.shape(), rank);
  const Shape so = left_pad(out.shape(), rank);
  struct Entry { dnnl::binary prim; dnnl::memory::desc a, b, o; bool fast; };
  PrimitiveKey key{1, static_cast<std::int64_t>(op)};
  key.add(sa).add(sb);
  const Entry& e = cached_primitive<Entry>(key, [&] {
    return dnnl_call("binary", [&] {
      auto ma = plain_md(sa, DType::f32), mb = plain_md(sb, DType::f32), mo = plain_md(so, DType::f32);
      dnnl::binary::desc d(dnnl_binary_alg(op), ma, mb, mo);
      dnnl::binary::primitive_desc pd(d, dnnl_engine());
      return Entry{dnnl::binary(pd), ma, mb, mo, is_optimized(pd)};
    });
  });
  if (!e.fast) return false;
  dnnl_call("binary", [&] {
    execute(e.prim, {{DNNL_ARG_SRC_0, wrap(e.a, a.raw_data())},
                     {DNNL_ARG_SRC_1, wrap(e.b, b.raw_data())},
                     {DNNL_ARG_DST, wrap(e.o, out.raw_data())}});
  });
  return true;
}

template <class T, class F>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const T* pa = static_cast<const T*>(a.raw_data());
  const T* pb = static_cast<const T*>(b.raw_data());
  T* po = static_cast<T*>(out.raw_data());
  StridedLoop<2> loop(out.shape(), {&a.shape(), &b.shape()});
  const std::int64_t n_inner = loop.inner();
  const std::int64_t rows = loop.rows();
#pragma omp parallel for schedule(static) if (rows > 1 && out.numel() > kParallelMin)
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto off = loop.row_offsets(r);
    const T* x = pa + off[0];
    const T* y = pb + off[1];
    T* o = po + r * n_inner;
    const std::int64_t sx = loop.strides[0].back(), sy = loop.strides[1].back();
    if (sx == 1 && sy == 1) {
      for (std::int64_t i = 0; i < n_inner; ++i) o[i] = f(x[i], y[i]);
    } else if (sx == 1 && sy == 0) {
      const T yv = y[0];
      for (std::int64_t i = 0; i < n_inner; ++i) o[i] = f(x[i], yv);
    } else if (sx == 0 && sy == 1) {
      const T xv = x[0];
      for (std::int64_t i = 0; i < n_inner; ++i) o[i] = f(xv, y[i]);
    } else {
      for (std::int64_t i = 0; i < n_inner; ++i) o[i] = f(x[i * sx], y[i * sy]);
    }
  }
}

template <class T>
void binary_ref(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case BinaryOp::add: return binary_loop<T>(a, b, out, [](T x, T y) { return x + y; });
    case BinaryOp::sub: return binary_loop<T>(a, b, out, [](T x, T y) { return x - y; });
    case BinaryOp::mul: return binary_loop<T>(a, b, out, [](T x, T y) { return x * y; });
    case BinaryOp::div: return binary_loop<T>(a, b, out, [](T x, T y) { return x / y; });
  }
}

// ---- unary

// The table's oneDNN columns (undef: our own loop) and the (alpha, beta) oneDNN takes.
dnnl::algorithm dnnl_forward_alg(UnaryOp op) {
  switch (op) {
#define TESSERA_DNNL_FORWARD(name, api, fwd, ...) \
  case UnaryOp::name: return dnnl::algorithm::fwd;
    TESSERA_UNARY_OPS(TESSERA_DNNL_FORWARD)
#undef TESSERA_DNNL_FORWARD
  }
  return dnnl::algorithm::undef;
}

dnnl::algorithm dnnl_backward_alg(UnaryOp op) {
  switch (op) {
#define TESSERA_DNNL_BACKWARD(name, api, fwd, bwd, ...) \
  case UnaryOp::name: return dnnl::algorithm::bwd;
    TESSERA_UNARY_OPS(TESSERA_DNNL_BACKWARD)
#undef TESSERA_DNNL_BACKWARD
  }
  return dnnl::algorithm::undef;
}

std::pair<float, float> dnnl_unary_params(UnaryOp op, double alpha, double beta) {
  [[maybe_unused]] const float a = static_cast<float>(alpha), b = static_cast<float>(beta);
  switch (op) {
#define TESSERA_DNNL_PARAMS(name, api, fwd, bwd, params, ...) \
  case UnaryOp::name: return {TESSERA_UNARY_STRIP params};
    TESSERA_UNARY_OPS(TESSERA_DNNL_PARAMS)
#undef TESSERA_DNNL_PARAMS
  }
  return {0.0f, 0.0f};
}

struct EltwiseFwd { dnnl::eltwise_forward::primitive_desc pd; dnnl::eltwise_forward prim; dnnl::memory::desc md; };

const EltwiseFwd& eltwise_fwd(UnaryOp op, std::int64_t n, double alpha, double beta) {
  const auto params = dnnl_unary_params(op, alpha, beta);
  const float a = params.first, b = params.second;  // named, not bound: lambdas capture them
  PrimitiveKey key{2, static_cast<std::int64_t>(op), n};
  key.add(static_cast<std::int64_t>(std::bit_cast<std::uint32_t>(a)))
      .add(static_cast<std::int64_t>(std::bit_cast<std::uint32_t>(b)));
  return cached_primitive<EltwiseFwd>(key, [&] {
    return dnnl_call("eltwise", [&] {
      auto md = plain_md({n}, DType::f32);
      dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_training, dnnl_forward_alg(op), md, a, b);
      dnnl::eltwise_forward::primitive_desc pd(d, dnnl_engine());
      return EltwiseFwd{pd, dnnl::eltwise_forward(pd), md};
    });
  });
}

template <class T>
void unary_ref(UnaryOp op, const Tensor& x, Tensor& y, double alpha, double beta) {
  const T* px = static_cast<const T*>(x.raw_data());
  T* py = static_cast<T*>(y.raw_data());
  const std::int64_t n = x.numel();
  const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) py[i] = unary_value(op, px[i], a, b);
}

template <class T>
void unary_backward_ref(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx, double alpha,
                        double beta) {
  const T* px = static_cast<const T*>(x.raw_data());
  const T* pdy = static_cast<const T*>(dy.raw_data());
  T* pdx = static_cast<T*>(dx.raw_data());
  const std::int64_t n = x.numel();
  const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) pdx[i] = pdy[i] * unary_derivative(op, px[i], a, b);
}

}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  if (out.numel() == 0) return;
  if (a.dtype() == DType::f32) {
    if (a.shape() == out.shape() && a.numel() > 1 && binary_dnnl(op, a, b, out)) return;
    binary_ref<float>(op, a, b, out);
    return;
  }
  dispatch_float(a.dtype(), "binary", [&](auto tag) {
    binary_ref<typename decltype(tag)::type>(op, a, b, out);
  });
}

void unary_forward(UnaryOp op, const Tensor& x, Tensor& y, double alpha, double beta) {
  if (x.numel() == 0) return;
  if (x.dtype() == DType::f32 && dnnl_forward_alg(op) != dnnl::algorithm::undef) {
    const EltwiseFwd& e = eltwise_fwd(op, x.numel(), alpha, beta);
    dnnl_call("eltwise", [&] {
      execute(e.prim, {{DNNL_ARG_SRC, wrap(e.md, x.raw_data())}, {DNNL_ARG_DST, wrap(e.md, y.raw_data())}});
    });
    return;
  }
  dispatch_float(x.dtype(), "eltwise", [&](auto tag) {
    unary_ref<typename decltype(tag)::type>(op, x, y, alpha, beta);
  });
}

void unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx, double alpha,
                    double beta) {
  if (x.numel() == 0) return;
  if (x.dtype() == DType::f32 && dnnl_backward_alg(op) != dnnl::algorithm::undef) {
    const EltwiseFwd& fwd = eltwise_fwd(op, x.numel(), alpha, beta);
    const auto params = dnnl_unary_params(op, alpha, beta);
    const float a = params.first, b = params.second;  // named, not bound: lambdas capture them
    struct Entry { dnnl::eltwise_backward prim; };
    PrimitiveKey key{3, static_cast<std::int64_t>(op), x.numel()};
    key.add(static_cast<std::int64_t>(std::bit_cast<std::uint32_t>(a)))
        .add(static_cast<std::int64_t>(std::bit_cast<std::uint32_t>(b)));
    const Entry& e = cached_primitive<Entry>(key, [&] {
      return dnnl_call("eltwise_backward", [&] {
        dnnl::eltwise_backward::desc d(dnnl_backward_alg(op), fwd.md, fwd.md, a, b);
        return Entry{dnnl::eltwise_backward(dnnl::eltwise_backward::primitive_desc(d, dnnl_engine(), fwd.pd))};
      });
    });
    dnnl_call("eltwise_backward", [&] {
      execute(e.prim, {{DNNL_ARG_SRC, wrap(fwd.md, x.raw_data())},
                       {DNNL_ARG_DIFF_DST, wrap(fwd.md, dy.raw_data())},
                       {DNNL_ARG_DIFF_SRC, wrap(fwd.md, dx.raw_data())}});
    });
    return;
  }
  dispatch_float(x.dtype(), "eltwise_backward", [&](auto tag) {
    unary_backward_ref<typename decltype(tag)::type>(op, x, dy, dx, alpha, beta);
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  const Tensor c = cond.dtype() == DType::f64 ? cond : cond.detach().to(DType::f64);
  const double* pc = c.data<double>();
  dispatch_float(a.dtype(), "where", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    StridedLoop<3> loop(out.shape(), {&c.shape(), &a.shape(), &b.shape()});
    const std::int64_t n = loop.inner();
    const std::int64_t rows = loop.rows();
#pragma omp parallel for schedule(static) if (out.numel() > kParallelMin)
    for (std::int64_t r = 0; r < rows; ++r) {
      const auto off = loop.row_offsets(r);
      const auto& st = loop.strides;
      for (std::int64_t i = 0; i < n; ++i)
        po[r * n + i] = pc[off[0] + i * st[0].back()] != 0.0 ? pa[off[1] + i * st[1].back()]
                                                             : pb[off[2] + i * st[2].back()];
    }
  });
}

namespace {

template <class From>
double load_as_double(const From* p, std::int64_t i) {
  if constexpr (std::is_same_v<From, std::uint16_t>) return bf16_to_float(p[i]);
  else return static_cast<double>(p[i]);
}

template <class To>
void store_from_double(To* p, std::int64_t i, double v) {
  if constexpr (std::is_same_v<To, std::uint16_t>) p[i] = float_to_bf16(static_cast<float>(v));
  else p[i] = static_cast<To>(v);
}

template <class F>
void visit_storage_type(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(TypeTag<float>{});
    case DType::f64: return f(TypeTag<double>{});
    case DType::bf16: return f(TypeTag<std::uint16_t>{});
    case DType::i64: return f(TypeTag<std::int64_t>{});
  }
}

}  // namespace

void cast(const Tensor& x, Tensor& out) {
  const std::int64_t n = x.numel();
  visit_storage_type(x.dtype(), [&](auto from_tag) {
    using From = typename decltype(from_tag)::type;
    visit_storage_type(out.dtype(), [&](auto to_tag) {
      using To = typename decltype(to_tag)::type;
      const From* src = static_cast<const From*>(x.raw_data());
      To* dst = static_cast<To*>(out.raw_data());
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (std::int64_t i = 0; i < n; ++i) store_from_double(dst, i, load_as_double(src, i));
    });
  });
}

void add_inplace(Tensor& dst, const Tensor& src, double alpha) {
  const std::int64_t n = dst.numel();
  dispatch_float(dst.dtype(), "add_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = static_cast<T*>(dst.raw_data());
    const T* s = static_cast<const T*>(src.raw_data());
    const T a = static_cast<T>(alpha);
    if (alpha == 1.0) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (std::int64_t i = 0; i < n; ++i) d[i] += s[i];
    } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (std::int64_t i = 0; i < n; ++i) d[i] += a * s[i];
    }
  });
}

void scale_inplace(Tensor& dst, double factor) {
  const std::int64_t n = dst.numel();
  dispatch_float(dst.dtype(), "mul_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = static_cast<T*>(dst.raw_data());
    const T f = static_cast<T>(factor);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (std::int64_t i = 0; i < n; ++i) d[i] *= f;
  });
}

TESSERA_CPU_ISA_END
