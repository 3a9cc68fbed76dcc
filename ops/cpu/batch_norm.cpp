// Batch normalisation per channel: f32 through oneDNN (batch_normalization forward on given
// statistics, backward) with the batch statistics our own, f64 reference loops over the math
// of ops/batch_norm_math.h. x (B, C, S...) is viewed as (B, C, S), S the product of the axes
// after C; mean and var (C) are the biased batch statistics (training) or the running ones.
#include <bit>
#include <cmath>

#include "ops/axis_view.h"
#include "ops/batch_norm_math.h"
#include "ops/cpu/dnnl_utils.h"
#include "tessera/ops/kernels.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

// oneDNN sees exactly the parameters that exist (use_scale, use_shift separately) and the
// statistics as inputs (use_global_stats) wherever we computed them.
dnnl::normalization_flags bn_flags(bool scale, bool shift, bool global_stats) {
  auto f = dnnl::normalization_flags::none;
  if (scale) f = f | dnnl::normalization_flags::use_scale;
  if (shift) f = f | dnnl::normalization_flags::use_shift;
  if (global_stats) f = f | dnnl::normalization_flags::use_global_stats;
  return f;
}

struct BnFwd {
  dnnl::batch_normalization_forward::primitive_desc pd;
  dnnl::batch_normalization_forward prim;
  dnnl::memory::desc data, stat;
};

// The forward always normalises with given statistics (forward_inference); a forward_training
// one (batch statistics) serves only as the backward's hint.
const BnFwd& bn_forward_primitive(const AxisView& v, double eps, bool scale, bool shift, bool global_stats,
                                  dnnl::prop_kind prop) {
  PrimitiveKey key{50, v.A, v.L, v.B, scale, shift, global_stats, static_cast<std::int64_t>(prop)};
  key.add(static_cast<std::int64_t>(std::bit_cast<std::uint64_t>(eps)));
  return cached_primitive<BnFwd>(key, [&] {
    return dnnl_call("batch_norm", [&] {
      auto data = plain_md({v.A, v.L, v.B}, DType::f32), stat = plain_md({v.L}, DType::f32);
      dnnl::batch_normalization_forward::desc d(prop, data, static_cast<float>(eps),
                                                bn_flags(scale, shift, global_stats));
      dnnl::batch_normalization_forward::primitive_desc pd(d, dnnl_engine());
      return BnFwd{pd, dnnl::batch_normalization_forward(pd), data, stat};
    });
  });
}

// Batch mean and biased variance per channel, accumulated in double in two passes, for f32
// too: oneDNN's own statistics (f32 sums) lose the mean's digits far from zero (1e-2 off at
// x = 1e4 + N(0, 1), ten times f32's rounding of the mean itself).
template <class T>
void bn_batch_stats(const AxisView& v, const T* x, T* mean, T* var) {
  const std::int64_t N = v.A * v.B;
#pragma omp parallel for schedule(static) if (v.A * v.L * v.B > 32768)
  for (std::int64_t c = 0; c < v.L; ++c) {
    double s = 0;
    for (std::int64_t a = 0; a < v.A; ++a)
      for (std::int64_t i = 0; i < v.B; ++i) s += x[(a * v.L + c) * v.B + i];
    const double m = s / static_cast<double>(N);
    double q = 0;
    for (std::int64_t a = 0; a < v.A; ++a)
      for (std::int64_t i = 0; i < v.B; ++i) {
        const double d = x[(a * v.L + c) * v.B + i] - m;
        q += d * d;
      }
    mean[c] = static_cast<T>(m);
    var[c] = static_cast<T>(q / static_cast<double>(N));
  }
}

template <class T>
void bn_forward_ref(const AxisView& v, const T* x, const T* w, const T* b, bool training, double eps, T* mean,
                    T* var, T* y) {
  if (training) bn_batch_stats(v, x, mean, var);
#pragma omp parallel for schedule(static) if (v.A * v.L * v.B > 32768)
  for (std::int64_t c = 0; c < v.L; ++c) {
    const T rstd = T(1) / std::sqrt(var[c] + static_cast<T>(eps));
    const T wc = w ? w[c] : T(1), bc = b ? b[c] : T(0);
    for (std::int64_t a = 0; a < v.A; ++a)
      for (std::int64_t i = 0; i < v.B; ++i) {
        const std::int64_t k = (a * v.L + c) * v.B + i;
        y[k] = bn_output(x[k], mean[c], rstd, wc, bc);
      }
  }
}

template <class T>
void bn_backward_ref(const AxisView& v, const T* x, const T* w, const T* mean, const T* var, const T* dy,
                     bool training, double eps, T* dx, T* dw, T* db) {
  const std::int64_t N = v.A * v.B;
#pragma omp parallel for schedule(static) if (v.A * v.L * v.B > 32768)
  for (std::int64_t c = 0; c < v.L; ++c) {
    const T rstd = T(1) / std::sqrt(var[c] + static_cast<T>(eps));
    T sum_dy = 0, sum_dy_xhat = 0;
    for (std::int64_t a = 0; a < v.A; ++a)
      for (std::int64_t i = 0; i < v.B; ++i) {
        const std::int64_t k = (a * v.L + c) * v.B + i;
        sum_dy += dy[k];
        sum_dy_xhat += dy[k] * (x[k] - mean[c]) * rstd;
      }
    if (dw) dw[c] = sum_dy_xhat;
    if (db) db[c] = sum_dy;
    if (!dx) continue;
    const T wc = w ? w[c] : T(1);
    const T mean_dy = N > 0 ? sum_dy / static_cast<T>(N) : T(0);
    const T mean_dy_xhat = N > 0 ? sum_dy_xhat / static_cast<T>(N) : T(0);
    for (std::int64_t a = 0; a < v.A; ++a)
      for (std::int64_t i = 0; i < v.B; ++i) {
        const std::int64_t k = (a * v.L + c) * v.B + i;
        dx[k] = bn_input_grad(dy[k], (x[k] - mean[c]) * rstd, wc, rstd, mean_dy, mean_dy_xhat, training);
      }
  }
}

template <class T>
const T* ptr(const Tensor& t) { return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr; }
template <class T>
T* mut_ptr(const Tensor& t) { return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr; }

}  // namespace

void batch_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, bool training, double eps, Tensor& mean,
                        Tensor& var, Tensor& y) {
  const AxisView v = axis_view(x.shape(), 1);
  if (x.numel() == 0) return;
  if (x.dtype() == DType::f32) {
    if (training) bn_batch_stats(v, x.data<float>(), mean.data<float>(), var.data<float>());
    const BnFwd& e =
        bn_forward_primitive(v, eps, w.defined(), b.defined(), true, dnnl::prop_kind::forward_inference);
    dnnl_call("batch_norm", {&x}, [&] {
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(e.data, x.raw_data())},
                                                 {DNNL_ARG_DST, wrap(e.data, y.raw_data())},
                                                 {DNNL_ARG_MEAN, wrap(e.stat, mean.raw_data())},
                                                 {DNNL_ARG_VARIANCE, wrap(e.stat, var.raw_data())}};
      if (w.defined()) args.emplace(DNNL_ARG_SCALE, wrap(e.stat, w.raw_data()));
      if (b.defined()) args.emplace(DNNL_ARG_SHIFT, wrap(e.stat, b.raw_data()));
      execute(e.prim, args);
    });
    return;
  }
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    bn_forward_ref<T>(v, ptr<T>(x), ptr<T>(w), ptr<T>(b), training, eps, mut_ptr<T>(mean), mut_ptr<T>(var),
                      mut_ptr<T>(y));
  });
}

void batch_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& var, const Tensor& dy,
                         bool training, double eps, Tensor& dx, Tensor& dw, Tensor& db) {
  const AxisView v = axis_view(x.shape(), 1);
  if (x.numel() == 0) {
    if (dw.defined()) dw.fill_(0.0);
    if (db.defined()) db.fill_(0.0);
    return;
  }
  if (x.dtype() == DType::f32) {
    // dx never depends on the bias: oneDNN's shift is in play only when db is wanted.
    const bool scale = w.defined(), shift = db.defined();
    const BnFwd& f = bn_forward_primitive(v, eps, scale, shift, !training, dnnl::prop_kind::forward_training);
    struct Entry { dnnl::batch_normalization_backward prim; };
    PrimitiveKey key{51, v.A, v.L, v.B, scale, shift, training};
    key.add(static_cast<std::int64_t>(std::bit_cast<std::uint64_t>(eps)));
    const Entry& e = cached_primitive<Entry>(key, [&] {
      return dnnl_call("batch_norm_backward", [&] {
        dnnl::batch_normalization_backward::desc d(
            scale || shift ? dnnl::prop_kind::backward : dnnl::prop_kind::backward_data, f.data, f.data,
            static_cast<float>(eps), bn_flags(scale, shift, !training));
        return Entry{dnnl::batch_normalization_backward(
            dnnl::batch_normalization_backward::primitive_desc(d, dnnl_engine(), f.pd))};
      });
    });
    // oneDNN always writes diff_src and both parameter gradients it has flags for; unused
    // ones go to scratch.
    Tensor dx_buf = dx.defined() ? dx : empty(x.shape());
    Tensor dw_buf = scale ? (dw.defined() ? dw : empty({v.L})) : Tensor();
    Tensor db_buf = shift ? db : Tensor();
    dnnl_call("batch_norm_backward", {&x, &dy}, [&] {
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(f.data, x.raw_data())},
                                                 {DNNL_ARG_DIFF_DST, wrap(f.data, dy.raw_data())},
                                                 {DNNL_ARG_MEAN, wrap(f.stat, mean.raw_data())},
                                                 {DNNL_ARG_VARIANCE, wrap(f.stat, var.raw_data())},
                                                 {DNNL_ARG_DIFF_SRC, wrap(f.data, dx_buf.raw_data())}};
      if (scale) {
        args.emplace(DNNL_ARG_SCALE, wrap(f.stat, w.raw_data()));
        args.emplace(DNNL_ARG_DIFF_SCALE, wrap(f.stat, dw_buf.raw_data()));
      }
      if (shift) {
        // oneDNN asks for the shift too, though dx does not depend on it: any (C) buffer.
        args.emplace(DNNL_ARG_SHIFT, wrap(f.stat, mean.raw_data()));
        args.emplace(DNNL_ARG_DIFF_SHIFT, wrap(f.stat, db_buf.raw_data()));
      }
      execute(e.prim, args);
    });
    return;
  }
  dispatch_float(x.dtype(), "batch_norm_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    bn_backward_ref<T>(v, ptr<T>(x), ptr<T>(w), ptr<T>(mean), ptr<T>(var), ptr<T>(dy), training, eps, mut_ptr<T>(dx),
                       mut_ptr<T>(dw), mut_ptr<T>(db));
  });
}

TESSERA_CPU_ISA_END
