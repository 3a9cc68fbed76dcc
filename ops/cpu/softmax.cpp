// Softmax and log-softmax along an axis: f32 through oneDNN softmax_v2, f64 reference loops
// over the (A, L, B) view (A outer axes, L the softmax axis, B inner axes).
#include <algorithm>
#include <cmath>

#include "ops/cpu/dnnl_utils.h"
#include "ops/axis_view.h"
#include "tessera/ops/kernels.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

struct SoftmaxEntry {
  dnnl::softmax_v2_forward::primitive_desc fwd_pd;
  dnnl::softmax_v2_forward fwd;
  dnnl::memory::desc md;
  bool fast;  // false: oneDNN offers only its reference code (inner axes); use our loops
};

const SoftmaxEntry& softmax_primitive(const Shape& shape, int axis, bool log) {
  PrimitiveKey key{20, axis, log};
  key.add(shape);
  return cached_primitive<SoftmaxEntry>(key, [&] {
    return dnnl_call("softmax", [&] {
      auto md = plain_md(shape, DType::f32);
      dnnl::softmax_v2_forward::desc d(dnnl::prop_kind::forward_training,
                                       log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate,
                                       md, md, axis);
      dnnl::softmax_v2_forward::primitive_desc pd(d, dnnl_engine());
      return SoftmaxEntry{pd, dnnl::softmax_v2_forward(pd), md, is_optimized(pd)};
    });
  });
}


template <class T>
void softmax_ref(const Tensor& x, int axis, bool log, Tensor& y) {
  const AxisView v = axis_view(x.shape(), axis);
  const T* px = static_cast<const T*>(x.raw_data());
  T* py = static_cast<T*>(y.raw_data());
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (std::int64_t ab = 0; ab < v.A * v.B; ++ab) {
    const std::int64_t a = ab / v.B, b = ab % v.B;
    const T* xs = px + a * v.L * v.B + b;
    T* ys = py + a * v.L * v.B + b;
    T m = xs[0];
    for (std::int64_t l = 1; l < v.L; ++l) m = std::max(m, xs[l * v.B]);
    T s = 0;
    for (std::int64_t l = 0; l < v.L; ++l) s += std::exp(xs[l * v.B] - m);
    // (x - m) first: x - (m + log s) would lose x - m's digits to a large m.
    const T log_s = std::log(s), inv_s = T(1) / s;
    for (std::int64_t l = 0; l < v.L; ++l) {
      const T shifted = xs[l * v.B] - m;
      ys[l * v.B] = log ? shifted - log_s : std::exp(shifted) * inv_s;
    }
  }
}

// softmax: dx = y * (dy - sum(dy * y));  log_softmax: dx = dy - exp(y) * sum(dy).
template <class T>
void softmax_backward_ref(const Tensor& y, const Tensor& dy, int axis, bool log, Tensor& dx) {
  const AxisView v = axis_view(y.shape(), axis);
  const T* py = static_cast<const T*>(y.raw_data());
  const T* pdy = static_cast<const T*>(dy.raw_data());
  T* pdx = static_cast<T*>(dx.raw_data());
#pragma omp parallel for schedule(static) if (y.numel() > 32768)
  for (std::int64_t ab = 0; ab < v.A * v.B; ++ab) {
    const std::int64_t base = (ab / v.B) * v.L * v.B + ab % v.B;
    T s = 0;
    for (std::int64_t l = 0; l < v.L; ++l) {
      const std::int64_t i = base + l * v.B;
      s += log ? pdy[i] : pdy[i] * py[i];
    }
    for (std::int64_t l = 0; l < v.L; ++l) {
      const std::int64_t i = base + l * v.B;
      pdx[i] = log ? pdy[i] - std::exp(py[i]) * s : py[i] * (pdy[i] - s);
    }
  }
}

}  // namespace

void softmax_forward(const Tensor& x, int axis, bool log, Tensor& y) {
  if (x.numel() == 0) return;
  if (x.dtype() == DType::f32 && softmax_primitive(x.shape(), axis, log).fast) {
    const SoftmaxEntry& e = softmax_primitive(x.shape(), axis, log);
    dnnl_call("softmax", [&] {
      execute(e.fwd, {{DNNL_ARG_SRC, wrap(e.md, x.raw_data())}, {DNNL_ARG_DST, wrap(e.md, y.raw_data())}});
    });
    return;
  }
  dispatch_float(x.dtype(), "softmax", [&](auto tag) {
    softmax_ref<typename decltype(tag)::type>(x, axis, log, y);
  });
}

void softmax_backward(const Tensor& y, const Tensor& dy, int axis, bool log, Tensor& dx) {
  if (y.numel() == 0) return;
  if (y.dtype() == DType::f32 && softmax_primitive(y.shape(), axis, log).fast) {
    const SoftmaxEntry& f = softmax_primitive(y.shape(), axis, log);
    struct Entry { dnnl::softmax_v2_backward prim; };
    PrimitiveKey key{21, axis, log};
    key.add(y.shape());
    const Entry& e = cached_primitive<Entry>(key, [&] {
      return dnnl_call("softmax_backward", [&] {
        dnnl::softmax_v2_backward::desc d(log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate,
                                          f.md, f.md, f.md, axis);
        return Entry{dnnl::softmax_v2_backward(dnnl::softmax_v2_backward::primitive_desc(d, dnnl_engine(), f.fwd_pd))};
      });
    });
    dnnl_call("softmax_backward", [&] {
      execute(e.prim, {{DNNL_ARG_DST, wrap(f.md, y.raw_data())},
                       {DNNL_ARG_DIFF_DST, wrap(f.md, dy.raw_data())},
                       {DNNL_ARG_DIFF_SRC, wrap(f.md, dx.raw_data())}});
    });
    return;
  }
  dispatch_float(y.dtype(), "softmax_backward", [&](auto tag) {
    softmax_backward_ref<typename decltype(tag)::type>(y, dy, axis, log, dx);
  });
}

TESSERA_CPU_ISA_END
