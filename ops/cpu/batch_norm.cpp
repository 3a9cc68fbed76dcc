// Batch normalisation per channel, f32 and f64 in the same loops (built per ISA level, the
// inner runs vectorised), over the math of ops/batch_norm_math.h. x (B, C, S...) is viewed
// as (B, C, S), S the product of the axes after C; mean and var (C) are the biased batch
// statistics (training) or the running ones. Sums run in double for f32 too: f32 sums lose
// the mean's digits far from zero. (oneDNN 2.6 runs its reference kernel on plain NCHW
// batch norm; these loops are several times faster, and exact to f32 rounding.)
#include <cmath>

#include "ops/axis_view.h"
#include "ops/batch_norm_math.h"
#include "ops/cpu/dnnl_utils.h"
#include "tessera/ops/kernels.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

// Work enough to share among threads.
bool parallel(const AxisView& v) { return v.A * v.L * v.B > 32768; }

template <class T>
void bn_batch_stats(const AxisView& v, const T* x, T* mean, T* var) {
  const std::int64_t N = v.A * v.B;
#pragma omp parallel for schedule(static) if (parallel(v))
  for (std::int64_t c = 0; c < v.L; ++c) {
    double s = 0;
    for (std::int64_t a = 0; a < v.A; ++a) {
      const T* run = x + (a * v.L + c) * v.B;
#pragma omp simd reduction(+ : s)
      for (std::int64_t i = 0; i < v.B; ++i) s += static_cast<double>(run[i]);
    }
    const double m = N > 0 ? s / static_cast<double>(N) : 0.0;
    double q = 0;
    for (std::int64_t a = 0; a < v.A; ++a) {
      const T* run = x + (a * v.L + c) * v.B;
#pragma omp simd reduction(+ : q)
      for (std::int64_t i = 0; i < v.B; ++i) {
        const double d = static_cast<double>(run[i]) - m;
        q += d * d;
      }
    }
    mean[c] = static_cast<T>(m);
    var[c] = static_cast<T>(N > 0 ? q / static_cast<double>(N) : 0.0);
  }
}

template <class T>
void bn_forward_loops(const AxisView& v, const T* x, const T* w, const T* b, bool training, double eps, T* mean,
                      T* var, T* y) {
  if (training) bn_batch_stats(v, x, mean, var);
#pragma omp parallel for collapse(2) schedule(static) if (parallel(v))
  for (std::int64_t a = 0; a < v.A; ++a)
    for (std::int64_t c = 0; c < v.L; ++c) {
      const T rstd = T(1) / std::sqrt(var[c] + static_cast<T>(eps));
      const T m = mean[c], wc = w ? w[c] : T(1), bc = b ? b[c] : T(0);
      const T* in = x + (a * v.L + c) * v.B;
      T* out = y + (a * v.L + c) * v.B;
#pragma omp simd
      for (std::int64_t i = 0; i < v.B; ++i) out[i] = bn_output(in[i], m, rstd, wc, bc);
    }
}

template <class T>
void bn_backward_loops(const AxisView& v, const T* x, const T* w, const T* mean, const T* var, const T* dy,
                       bool training, double eps, T* dx, T* dw, T* db) {
  const std::int64_t N = v.A * v.B;
#pragma omp parallel for schedule(static) if (parallel(v))
  for (std::int64_t c = 0; c < v.L; ++c) {
    const T m = mean[c];
    const T rstd = T(1) / std::sqrt(var[c] + static_cast<T>(eps));
    double sum_dy = 0, sum_dy_xmu = 0;
    for (std::int64_t a = 0; a < v.A; ++a) {
      const T* xr = x + (a * v.L + c) * v.B;
      const T* dr = dy + (a * v.L + c) * v.B;
#pragma omp simd reduction(+ : sum_dy, sum_dy_xmu)
      for (std::int64_t i = 0; i < v.B; ++i) {
        sum_dy += static_cast<double>(dr[i]);
        sum_dy_xmu += static_cast<double>(dr[i]) * static_cast<double>(xr[i] - m);
      }
    }
    const double sum_dy_xhat = sum_dy_xmu * static_cast<double>(rstd);
    if (dw) dw[c] = static_cast<T>(sum_dy_xhat);
    if (db) db[c] = static_cast<T>(sum_dy);
    if (!dx) continue;
    const T wc = w ? w[c] : T(1);
    const T mean_dy = N > 0 ? static_cast<T>(sum_dy / static_cast<double>(N)) : T(0);
    const T mean_dy_xhat = N > 0 ? static_cast<T>(sum_dy_xhat / static_cast<double>(N)) : T(0);
    for (std::int64_t a = 0; a < v.A; ++a) {
      const T* xr = x + (a * v.L + c) * v.B;
      const T* dr = dy + (a * v.L + c) * v.B;
      T* out = dx + (a * v.L + c) * v.B;
#pragma omp simd
      for (std::int64_t i = 0; i < v.B; ++i)
        out[i] = bn_input_grad(dr[i], (xr[i] - m) * rstd, wc, rstd, mean_dy, mean_dy_xhat, training);
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
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    bn_forward_loops<T>(v, ptr<T>(x), ptr<T>(w), ptr<T>(b), training, eps, mut_ptr<T>(mean), mut_ptr<T>(var),
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
  dispatch_float(x.dtype(), "batch_norm_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    bn_backward_loops<T>(v, ptr<T>(x), ptr<T>(w), ptr<T>(mean), ptr<T>(var), ptr<T>(dy), training, eps,
                         mut_ptr<T>(dx), mut_ptr<T>(dw), mut_ptr<T>(db));
  });
}

TESSERA_CPU_ISA_END
