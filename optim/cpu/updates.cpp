// CPU optimizer kernels: fused Adam/AdamW and SGD updates over a whole parameter group in one
// OpenMP pass, and the double-accumulated squared norm used by gradient clipping.
//
// A group mixes a few huge tensors (qkv, mlp weights) with many tiny ones (biases, norm
// weights). Parallelising per tensor would leave threads idle on the tiny ones, so every
// tensor is cut into fixed-size chunks and the flat list of (tensor, chunk) items is shared
// among the threads. Updates are elementwise, so the split never changes a result.
#include "optim/update_kernels.h"

#include <cmath>
#include <initializer_list>
#include <utility>

#include "tessera/autograd/bf16.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::optim::cpu)
namespace {

constexpr std::int64_t kChunk = 8192;          // elements per work item
constexpr std::int64_t kParallelMin = 32768;   // below this many elements, stay serial

struct WorkItem {
  std::size_t tensor;
  std::int64_t begin, end;
};

struct NamedList {
  const char* name;
  const std::vector<Tensor>* tensors;
};

// Every list must pair each param with a defined CPU tensor of its shape and dtype.
void check_group(const char* op, const std::vector<Tensor>& params,
                 std::initializer_list<NamedList> lists) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    TESSERA_CHECK(p.defined(), Error, "{}: params[{}] is undefined", op, i);
    TESSERA_CHECK(p.device().is_cpu(), DeviceError, "{}: params[{}] is on {}, expected cpu", op, i,
                  p.device());
    TESSERA_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64, DTypeError,
                  "{}: params[{}] {} is {} (f32 or f64 expected)", op, i, shape_str(p.shape()),
                  p.dtype());
  }
  for (const NamedList& list : lists) {
    TESSERA_CHECK(list.tensors->size() == params.size(), Error,
                  "{}: {} params but {} {} tensors", op, params.size(), list.tensors->size(),
                  list.name);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Tensor& p = params[i];
      const Tensor& t = (*list.tensors)[i];
      TESSERA_CHECK(t.defined(), Error, "{}: {}[{}] is undefined (param {} {})", op, list.name, i,
                    shape_str(p.shape()), p.dtype());
      TESSERA_CHECK(t.shape() == p.shape() && t.dtype() == p.dtype(), ShapeError,
                    "{}: {}[{}] is {} {} but its param is {} {}", op, list.name, i,
                    shape_str(t.shape()), t.dtype(), shape_str(p.shape()), p.dtype());
      TESSERA_CHECK(t.device().is_cpu(), DeviceError, "{}: {}[{}] is on {}, expected cpu", op,
                    list.name, i, t.device());
    }
  }
}

std::vector<WorkItem> make_items(const std::vector<Tensor>& params, std::int64_t& total) {
  std::vector<WorkItem> items;
  total = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::int64_t n = params[i].numel();
    total += n;
    for (std::int64_t b = 0; b < n; b += kChunk) items.push_back({i, b, std::min(n, b + kChunk)});
  }
  return items;
}

// Runs body(item) for every item, in parallel when the group is large enough.
template <class Body>
void for_each_item(const std::vector<WorkItem>& items, std::int64_t total, Body&& body) {
  const auto count = static_cast<std::int64_t>(items.size());
#pragma omp parallel for schedule(dynamic, 1) if (total > kParallelMin && count > 1)
  for (std::int64_t k = 0; k < count; ++k) body(items[static_cast<std::size_t>(k)]);
}

template <class T> T* ptr(const Tensor& t) { return static_cast<T*>(t.raw_data()); }

// ---- Adam / AdamW

enum class Decay { none, l2, decoupled };

template <class T, Decay kDecay>
void adam_range(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                std::int64_t begin, std::int64_t end, const AdamUpdate& u) {
  const T beta1 = static_cast<T>(u.beta1), one_minus_beta1 = static_cast<T>(1.0 - u.beta1);
  const T beta2 = static_cast<T>(u.beta2), one_minus_beta2 = static_cast<T>(1.0 - u.beta2);
  const T wd = static_cast<T>(u.weight_decay);
  const T shrink = static_cast<T>(1.0 - u.lr * u.weight_decay);
  const T step_size = static_cast<T>(u.lr / u.bias_correction1);
  const T bc2_sqrt = static_cast<T>(std::sqrt(u.bias_correction2));
  const T eps = static_cast<T>(u.eps);
#pragma omp simd
  for (std::int64_t i = begin; i < end; ++i) {
    T x = p[i], gi = g[i];
    if constexpr (kDecay == Decay::decoupled) x *= shrink;
    if constexpr (kDecay == Decay::l2) gi += wd * x;
    const T mi = beta1 * m[i] + one_minus_beta1 * gi;
    const T vi = beta2 * v[i] + one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = x - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
  }
}

template <class T, Decay kDecay>
void adam_item(const WorkItem& w, const std::vector<Tensor>& params,
               const std::vector<Tensor>& grads, const std::vector<Tensor>& m,
               const std::vector<Tensor>& v, const AdamUpdate& u) {
  const std::size_t i = w.tensor;
  adam_range<T, kDecay>(ptr<T>(params[i]), ptr<const T>(grads[i]), ptr<T>(m[i]), ptr<T>(v[i]),
                        w.begin, w.end, u);
}

template <Decay kDecay>
void adam_dispatch(const WorkItem& w, const std::vector<Tensor>& params,
                   const std::vector<Tensor>& grads, const std::vector<Tensor>& m,
                   const std::vector<Tensor>& v, const AdamUpdate& u) {
  if (params[w.tensor].dtype() == DType::f32) adam_item<float, kDecay>(w, params, grads, m, v, u);
  else adam_item<double, kDecay>(w, params, grads, m, v, u);
}

// ---- SGD

template <class T, bool kMomentum, bool kNesterov, bool kFirst>
void sgd_range(T* __restrict p, const T* __restrict g, T* __restrict buf, std::int64_t begin,
               std::int64_t end, const SgdUpdate& u) {
  const T lr = static_cast<T>(u.lr), wd = static_cast<T>(u.weight_decay);
  const T mu = static_cast<T>(u.momentum), keep = static_cast<T>(1.0 - u.dampening);
  const bool has_wd = u.weight_decay != 0.0;
#pragma omp simd
  for (std::int64_t i = begin; i < end; ++i) {
    const T x = p[i];
    T d = g[i];
    if (has_wd) d += wd * x;
    if constexpr (kMomentum) {
      const T b = kFirst ? d : mu * buf[i] + keep * d;
      buf[i] = b;
      d = kNesterov ? d + mu * b : b;
    }
    p[i] = x - lr * d;
  }
}

template <class T, bool kMomentum, bool kNesterov, bool kFirst>
void sgd_item(const WorkItem& w, const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum, const SgdUpdate& u) {
  const std::size_t i = w.tensor;
  T* buf = kMomentum ? ptr<T>(momentum[i]) : nullptr;
  sgd_range<T, kMomentum, kNesterov, kFirst>(ptr<T>(params[i]), ptr<const T>(grads[i]), buf,
                                             w.begin, w.end, u);
}

template <bool kMomentum, bool kNesterov, bool kFirst>
void sgd_dispatch(const WorkItem& w, const std::vector<Tensor>& params,
                  const std::vector<Tensor>& grads, const std::vector<Tensor>& momentum,
                  const SgdUpdate& u) {
  if (params[w.tensor].dtype() == DType::f32)
    sgd_item<float, kMomentum, kNesterov, kFirst>(w, params, grads, momentum, u);
  else
    sgd_item<double, kMomentum, kNesterov, kFirst>(w, params, grads, momentum, u);
}

// ---- squared norm

template <class T>
double squared_sum(const T* x, std::int64_t begin, std::int64_t end) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::int64_t i = begin; i < end; ++i) {
    const double d = static_cast<double>(x[i]);
    s += d * d;
  }
  return s;
}

double squared_sum_bf16(const std::uint16_t* x, std::int64_t begin, std::int64_t end) {
  double s = 0.0;
  for (std::int64_t i = begin; i < end; ++i) {
    const double d = static_cast<double>(bf16_to_float(x[i]));
    s += d * d;
  }
  return s;
}

}  // namespace

void adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 const std::vector<Tensor>& m, const std::vector<Tensor>& v, const AdamUpdate& u) {
  check_group("adam_update", params, {{"grads", &grads}, {"exp_avg", &m}, {"exp_avg_sq", &v}});
  TESSERA_CHECK(u.bias_correction1 > 0.0 && u.bias_correction2 > 0.0, Error,
                "adam_update: bias corrections must be positive (got {} and {}); is the step "
                "count at least 1?", u.bias_correction1, u.bias_correction2);
  std::int64_t total = 0;
  const std::vector<WorkItem> items = make_items(params, total);
  const Decay decay = u.weight_decay == 0.0 ? Decay::none
                      : u.decoupled         ? Decay::decoupled
                                            : Decay::l2;
  for_each_item(items, total, [&](const WorkItem& w) {
    switch (decay) {
      case Decay::none: adam_dispatch<Decay::none>(w, params, grads, m, v, u); break;
      case Decay::l2: adam_dispatch<Decay::l2>(w, params, grads, m, v, u); break;
      case Decay::decoupled: adam_dispatch<Decay::decoupled>(w, params, grads, m, v, u); break;
    }
  });
}

void sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& momentum, const SgdUpdate& u) {
  const bool has_momentum = u.momentum != 0.0;
  if (has_momentum)
    check_group("sgd_update", params, {{"grads", &grads}, {"momentum_buffer", &momentum}});
  else
    check_group("sgd_update", params, {{"grads", &grads}});
  TESSERA_CHECK(!u.nesterov || (has_momentum && u.dampening == 0.0), Error,
                "sgd_update: nesterov needs momentum > 0 and dampening 0 (momentum {}, "
                "dampening {})", u.momentum, u.dampening);
  std::int64_t total = 0;
  const std::vector<WorkItem> items = make_items(params, total);
  for_each_item(items, total, [&](const WorkItem& w) {
    if (!has_momentum) sgd_dispatch<false, false, false>(w, params, grads, momentum, u);
    else if (u.first_step && u.nesterov) sgd_dispatch<true, true, true>(w, params, grads, momentum, u);
    else if (u.first_step) sgd_dispatch<true, false, true>(w, params, grads, momentum, u);
    else if (u.nesterov) sgd_dispatch<true, true, false>(w, params, grads, momentum, u);
    else sgd_dispatch<true, false, false>(w, params, grads, momentum, u);
  });
}

double squared_norm(const Tensor& x) {
  TESSERA_CHECK(x.device().is_cpu(), DeviceError, "squared_norm: tensor on {}, expected cpu",
                x.device());
  TESSERA_CHECK(is_floating(x.dtype()), DTypeError,
                "squared_norm: tensor {} is {} (a floating dtype expected)", shape_str(x.shape()),
                x.dtype());
  const std::int64_t n = x.numel();
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  // Fixed chunks summed in order: the result does not depend on the thread count.
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
  const DType dtype = x.dtype();
  const void* data = x.raw_data();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t b = c * kChunk, e = std::min(n, b + kChunk);
    double s = 0.0;
    if (dtype == DType::f32) s = squared_sum(static_cast<const float*>(data), b, e);
    else if (dtype == DType::f64) s = squared_sum(static_cast<const double*>(data), b, e);
    else s = squared_sum_bf16(static_cast<const std::uint16_t*>(data), b, e);
    partial[static_cast<std::size_t>(c)] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

TESSERA_CPU_ISA_END
