#include "tessera/autograd/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tessera/autograd/tape.h"

namespace tessera {
namespace {

double weighted_sum(const Tensor& y, const Tensor& r) {
  const double* py = y.data<double>();
  const double* pr = r.data<double>();
  double s = 0.0;
  for (std::int64_t i = 0; i < y.numel(); ++i) s += py[i] * pr[i];
  return s;
}

// Elements to check: all, or a seeded sample of max_per_input of them.
std::vector<std::int64_t> pick_elements(std::int64_t n, std::int64_t max_count, Generator& gen) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  if (max_count <= 0 || max_count >= n) return idx;
  for (std::int64_t i = 0; i < max_count; ++i)  // partial Fisher-Yates
    std::swap(idx[i], idx[i + gen.next_below(static_cast<std::uint64_t>(n - i))]);
  idx.resize(static_cast<std::size_t>(max_count));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opts) {
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined()) continue;
    TESSERA_CHECK(t.device().is_cpu() && (t.dtype() == DType::f64 || !t.requires_grad()), DTypeError,
                  "gradcheck: input {} is {} on {}; checked inputs must be f64 on the CPU", i,
                  t.dtype(), t.device());
    if (t.requires_grad()) inputs[i].zero_grad();
  }

  // Analytic gradients: backward with output gradient r is the gradient of sum(y * r).
  Tensor y = f(inputs);
  TESSERA_CHECK(y.dtype() == DType::f64, DTypeError, "gradcheck: f returned {}, expected f64",
                y.dtype());
  Generator gen(opts.seed);
  const Tensor r = randn(y.shape(), {.dtype = DType::f64}, gen);
  if (y.requires_grad()) backward(y, r);
  y = Tensor();

  GradcheckResult result;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || !x.requires_grad()) continue;
    GradcheckInputReport rep;
    rep.input = static_cast<std::int64_t>(i);
    const Tensor g = x.grad();
    double* px = x.data<double>();
    for (std::int64_t k : pick_elements(x.numel(), opts.max_per_input, gen)) {
      const double saved = px[k];
      double fp, fm;
      {
        NoGradGuard no_grad;
        px[k] = saved + opts.eps;
        fp = weighted_sum(f(inputs), r);
        px[k] = saved - opts.eps;
        fm = weighted_sum(f(inputs), r);
        px[k] = saved;
      }
      const double numeric = (fp - fm) / (2 * opts.eps);
      const double analytic = g.defined() ? g.data<double>()[k] : 0.0;
      const double err = std::abs(analytic - numeric);
      const double rel = err / std::max(std::abs(numeric), opts.atol / opts.rtol);
      ++rep.checked;
      if (err > opts.atol + opts.rtol * std::abs(numeric)) rep.ok = false;
      if (rep.worst_index < 0 || rel > rep.max_rel_error) {
        rep.worst_index = k;
        rep.analytic = analytic;
        rep.numeric = numeric;
        rep.max_rel_error = rel;
      }
      rep.max_abs_error = std::max(rep.max_abs_error, err);
    }
    if (!rep.ok) {
      result.ok = false;
      result.message += fmt::format(
          "input {} {}: worst element {} analytic {:.10g} numeric {:.10g} (abs err {:.3g}, rel {:.3g})\n",
          i, shape_str(x.shape()), rep.worst_index, rep.analytic, rep.numeric, rep.max_abs_error,
          rep.max_rel_error);
    }
    result.inputs.push_back(rep);
    x.zero_grad();
  }
  if (result.ok) result.message = "all gradients match";
  return result;
}

}  // namespace tessera
