// Layer normalisation over the last axis: f32 through oneDNN, f64 reference loops.
// x (R, D) viewed as rows; mean and rstd = 1/sqrt(var + eps) per row are saved for backward.
#include <cmath>

#include "ops/cpu/dnnl_utils.h"
#include "tessera/ops/kernels.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

struct LnFwd {
  dnnl::layer_normalization_forward::primitive_desc pd;
  dnnl::layer_normalization_forward prim;
  dnnl::memory::desc data, stat, param;
};

// oneDNN path: affine (weight and bias) or neither; a lone weight or bias uses the loops.
dnnl::normalization_flags ln_flags(bool affine) {
  return affine ? dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift
                : dnnl::normalization_flags::none;
}

const LnFwd& ln_forward(std::int64_t R, std::int64_t D, double eps, bool affine) {
  PrimitiveKey key{30, R, D, affine};
  key.add(static_cast<std::int64_t>(std::bit_cast<std::uint64_t>(eps)));
  return cached_primitive<LnFwd>(key, [&] {
    return dnnl_call("layer_norm", [&] {
      auto data = plain_md({R, D}, DType::f32), stat = plain_md({R}, DType::f32);
      auto param = plain_md({D}, DType::f32);
      dnnl::layer_normalization_forward::desc d(dnnl::prop_kind::forward_training, data, stat,
                                                static_cast<float>(eps), ln_flags(affine));
      dnnl::layer_normalization_forward::primitive_desc pd(d, dnnl_engine());
      return LnFwd{pd, dnnl::layer_normalization_forward(pd), data, stat, param};
    });
  });
}

template <class T>
void ln_forward_ref(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y,
                    Tensor& mean, Tensor& rstd) {
  const std::int64_t D = x.shape().back(), R = x.numel() / std::max<std::int64_t>(D, 1);
  const T* px = static_cast<const T*>(x.raw_data());
  const T* pw = w.defined() ? static_cast<const T*>(w.raw_data()) : nullptr;
  const T* pb = b.defined() ? static_cast<const T*>(b.raw_data()) : nullptr;
  T* py = static_cast<T*>(y.raw_data());
  T* pm = static_cast<T*>(mean.raw_data());
  T* pr = static_cast<T*>(rstd.raw_data());
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (std::int64_t r = 0; r < R; ++r) {
    const T* row = px + r * D;
    T m = 0;
    for (std::int64_t i = 0; i < D; ++i) m += row[i];
    m /= static_cast<T>(D);
    T v = 0;
    for (std::int64_t i = 0; i < D; ++i) v += (row[i] - m) * (row[i] - m);
    v /= static_cast<T>(D);
    const T rs = T(1) / std::sqrt(v + static_cast<T>(eps));
    pm[r] = m;
    pr[r] = rs;
    for (std::int64_t i = 0; i < D; ++i) {
      const T xh = (row[i] - m) * rs;
      py[r * D + i] = (pw ? pw[i] : T(1)) * xh + (pb ? pb[i] : T(0));
    }
  }
}

// dxhat = dy * w;  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
template <class T>
void ln_backward_ref(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                     const Tensor& dy, Tensor& dx, Tensor& dw, Tensor& db) {
  const std::int64_t D = x.shape().back(), R = x.numel() / std::max<std::int64_t>(D, 1);
  const T* px = static_cast<const T*>(x.raw_data());
  const T* pw = w.defined() ? static_cast<const T*>(w.raw_data()) : nullptr;
  const T* pm = static_cast<const T*>(mean.raw_data());
  const T* pr = static_cast<const T*>(rstd.raw_data());
  const T* pdy = static_cast<const T*>(dy.raw_data());
  T* pdx = dx.defined() ? static_cast<T*>(dx.raw_data()) : nullptr;
  if (pdx) {
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
    for (std::int64_t r = 0; r < R; ++r) {
      T s1 = 0, s2 = 0;
      for (std::int64_t i = 0; i < D; ++i) {
        const T g = pdy[r * D + i] * (pw ? pw[i] : T(1));
        const T xh = (px[r * D + i] - pm[r]) * pr[r];
        s1 += g;
        s2 += g * xh;
      }
      s1 /= static_cast<T>(D);
      s2 /= static_cast<T>(D);
      for (std::int64_t i = 0; i < D; ++i) {
        const T g = pdy[r * D + i] * (pw ? pw[i] : T(1));
        const T xh = (px[r * D + i] - pm[r]) * pr[r];
        pdx[r * D + i] = pr[r] * (g - s1 - xh * s2);
      }
    }
  }
  if (dw.defined() || db.defined()) {
    T* pdw = dw.defined() ? static_cast<T*>(dw.raw_data()) : nullptr;
    T* pdb = db.defined() ? static_cast<T*>(db.raw_data()) : nullptr;
    for (std::int64_t i = 0; i < D; ++i) {
      if (pdw) pdw[i] = 0;
      if (pdb) pdb[i] = 0;
    }
    for (std::int64_t r = 0; r < R; ++r)
      for (std::int64_t i = 0; i < D; ++i) {
        if (pdw) pdw[i] += pdy[r * D + i] * (px[r * D + i] - pm[r]) * pr[r];
        if (pdb) pdb[i] += pdy[r * D + i];
      }
  }
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y,
                        Tensor& mean, Tensor& rstd) {
  const std::int64_t D = x.shape().back(), R = x.numel() / std::max<std::int64_t>(D, 1);
  if (x.numel() == 0) return;
  if (x.dtype() == DType::f32 && w.defined() == b.defined()) {
    const LnFwd& e = ln_forward(R, D, eps, w.defined());
    Tensor var = empty({R});  // oneDNN saves the variance; we keep rstd (the backends' contract)
    dnnl_call("layer_norm", [&] {
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(e.data, x.raw_data())},
                                                 {DNNL_ARG_DST, wrap(e.data, y.raw_data())},
                                                 {DNNL_ARG_MEAN, wrap(e.stat, mean.raw_data())},
                                                 {DNNL_ARG_VARIANCE, wrap(e.stat, var.raw_data())}};
      if (w.defined()) args.emplace(DNNL_ARG_SCALE, wrap(e.param, w.raw_data()));
      if (b.defined()) args.emplace(DNNL_ARG_SHIFT, wrap(e.param, b.raw_data()));
      execute(e.prim, args);
    });
    const float* pv = var.data<float>();
    float* pr = rstd.data<float>();
    for (std::int64_t r = 0; r < R; ++r) pr[r] = 1.0f / std::sqrt(pv[r] + static_cast<float>(eps));
    return;
  }
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    ln_forward_ref<typename decltype(tag)::type>(x, w, b, eps, y, mean, rstd);
  });
}

void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, double eps, Tensor& dx, Tensor& dw, Tensor& db) {
  const std::int64_t D = x.shape().back(), R = x.numel() / std::max<std::int64_t>(D, 1);
  if (x.numel() == 0) {
    if (dw.defined()) dw.fill_(0.0);
    if (db.defined()) db.fill_(0.0);
    return;
  }
  const bool affine = w.defined();
  // dx depends on the weight only, never on the bias: oneDNN's affine backward is right
  // whenever there is a weight, whatever the forward's bias was.
  if (x.dtype() == DType::f32 && dx.defined()) {
    const LnFwd& f = ln_forward(R, D, eps, affine);
    struct Entry { dnnl::layer_normalization_backward prim; };
    PrimitiveKey key{31, R, D, affine};
    key.add(static_cast<std::int64_t>(std::bit_cast<std::uint64_t>(eps)));
    const Entry& e = cached_primitive<Entry>(key, [&] {
      return dnnl_call("layer_norm_backward", [&] {
        dnnl::layer_normalization_backward::desc d(
            affine ? dnnl::prop_kind::backward : dnnl::prop_kind::backward_data, f.data, f.data, f.stat,
            static_cast<float>(eps), ln_flags(affine));
        return Entry{dnnl::layer_normalization_backward(
            dnnl::layer_normalization_backward::primitive_desc(d, dnnl_engine(), f.pd))};
      });
    });
    Tensor var = empty({R});
    const float* pr = rstd.data<float>();
    float* pv = var.data<float>();
    for (std::int64_t r = 0; r < R; ++r) pv[r] = 1.0f / (pr[r] * pr[r]) - static_cast<float>(eps);
    // oneDNN always writes both parameter gradients; unused ones go to scratch.
    Tensor dw_buf = affine ? (dw.defined() ? dw : empty({D})) : Tensor();
    Tensor db_buf = affine ? (db.defined() ? db : empty({D})) : Tensor();
    dnnl_call("layer_norm_backward", [&] {
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(f.data, x.raw_data())},
                                                 {DNNL_ARG_DIFF_DST, wrap(f.data, dy.raw_data())},
                                                 {DNNL_ARG_MEAN, wrap(f.stat, mean.raw_data())},
                                                 {DNNL_ARG_VARIANCE, wrap(f.stat, var.raw_data())},
                                                 {DNNL_ARG_DIFF_SRC, wrap(f.data, dx.raw_data())}};
      if (affine) {
        args.emplace(DNNL_ARG_SCALE, wrap(f.param, w.raw_data()));
        // oneDNN asks for the shift too, though dx does not depend on it: any (D) buffer.
        args.emplace(DNNL_ARG_SHIFT, wrap(f.param, w.raw_data()));
        args.emplace(DNNL_ARG_DIFF_SCALE, wrap(f.param, dw_buf.raw_data()));
        args.emplace(DNNL_ARG_DIFF_SHIFT, wrap(f.param, db_buf.raw_data()));
      }
      execute(e.prim, args);
    });
    if (!affine && db.defined()) {  // a lone bias: db = column sums of dy
      Tensor db_row = db.detach().reshape({1, D});
      reduce_sum(dy.detach().reshape({R, D}), db_row);
    }
    return;
  }
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto tag) {
    ln_backward_ref<typename decltype(tag)::type>(x, w, mean, rstd, dy, dx, dw, db);
  });
}

TESSERA_CPU_ISA_END
