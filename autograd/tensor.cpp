#include "tessera/autograd/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "tessera/autograd/bf16.h"
#include "tessera/autograd/tape.h"

namespace tessera {

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    TESSERA_CHECK(d >= 0, ShapeError, "shape {} has a negative dimension", shape_str(shape));
    TESSERA_CHECK(d == 0 || n <= std::numeric_limits<std::int64_t>::max() / d, ShapeError,
                  "shape {} has more elements than fit in 64 bits", shape_str(shape));
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& shape) { return fmt::format("({})", fmt::join(shape, ",")); }

int normalize_axis(std::int64_t axis, std::int64_t rank, const char* op) {
  const std::int64_t a = axis < 0 ? axis + rank : axis;
  TESSERA_CHECK(a >= 0 && a < rank, ShapeError, "{}: axis {} is out of range for rank {}", op,
                axis, rank);
  return static_cast<int>(a);
}

Storage::Storage(std::size_t n, Device dev) : bytes(n), device(dev) {
  data = allocator_for(dev).allocate(n);
}

Storage::~Storage() { allocator_for(device).deallocate(data, bytes); }

std::int64_t Tensor::size(std::int64_t axis) const {
  return shape()[normalize_axis(axis, dim(), "Tensor::size")];
}

void* Tensor::raw_data() const {
  const TensorImpl& t = checked();
  return static_cast<char*>(t.storage->data) + t.offset * dtype_size(t.dtype);
}

Tensor& Tensor::set_requires_grad(bool on) {
  TESSERA_CHECK(is_leaf(), AutogradError,
                "set_requires_grad: only leaf tensors can be switched (this one comes from '{}')",
                checked().producer);
  TESSERA_CHECK(!on || is_floating(dtype()), DTypeError,
                "set_requires_grad: {} tensors cannot require a gradient", dtype());
  checked().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  const TensorImpl& t = checked();
  return t.grad ? Tensor(t.grad) : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  if (g.defined())
    TESSERA_CHECK(g.shape() == shape() && g.dtype() == dtype(), ShapeError,
                  "set_grad: gradient {} {} for a tensor {} {}", shape_str(g.shape()), g.dtype(),
                  shape_str(shape()), dtype());
  checked().grad = g.impl_ptr();
}

Tensor Tensor::detach() const {
  const TensorImpl& t = checked();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->offset = t.offset;
  impl->shape = t.shape;
  impl->numel = t.numel;
  impl->dtype = t.dtype;
  return Tensor(std::move(impl));
}

double Tensor::item() const {
  TESSERA_CHECK(numel() == 1, ShapeError, "item: tensor of shape {} has {} elements, not 1",
                shape_str(shape()), numel());
  const Tensor c = device().is_cpu() ? *this : cpu();
  switch (c.dtype()) {
    case DType::f32: return *c.data<float>();
    case DType::f64: return *c.data<double>();
    case DType::i64: return static_cast<double>(*c.data<std::int64_t>());
    case DType::bf16: return c.to(DType::f32).item();
  }
  return 0.0;
}

template <class T> std::vector<T> Tensor::to_vector() const {
  const Tensor c = device().is_cpu() ? *this : cpu();
  const Tensor typed = c.dtype() == dtype_of<T>() ? c : c.detach().to(dtype_of<T>());
  const T* p = typed.data<T>();
  return std::vector<T>(p, p + typed.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<std::int64_t> Tensor::to_vector<std::int64_t>() const;

Tensor Tensor::contiguous_copy() const {
  Tensor out = empty(shape(), {.dtype = dtype(), .device = device()});
  device_copy(out.raw_data(), out.device(), raw_data(), device(), nbytes());
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor out = empty(shape(), {.dtype = dtype(), .device = target});
  device_copy(out.raw_data(), target, raw_data(), device(), nbytes());
  if (needs_recording({this})) {
    const Device source = device();
    record("to_device", {*this}, out, [source](const Tensor& dout) {
      return std::vector<Tensor>{dout.to(source)};
    });
  }
  return out;
}

Tensor& Tensor::copy_(const Tensor& src) {
  TESSERA_CHECK(src.shape() == shape() && src.dtype() == dtype(), ShapeError,
                "copy_: source {} {} does not match destination {} {}", shape_str(src.shape()),
                src.dtype(), shape_str(shape()), dtype());
  device_copy(raw_data(), device(), src.raw_data(), src.device(), nbytes());
  return *this;
}

namespace {

Tensor make_tensor(const Shape& shape, TensorOptions opts) {
  for (std::int64_t d : shape)
    TESSERA_CHECK(d >= 0, ShapeError, "empty: negative dimension in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->numel = shape_numel(shape);
  impl->dtype = opts.dtype;
  const auto item = static_cast<std::int64_t>(dtype_size(opts.dtype));
  TESSERA_CHECK(impl->numel <= std::numeric_limits<std::int64_t>::max() / item, ShapeError,
                "empty: shape {} of {} holds more bytes than fit in 64 bits", shape_str(shape), opts.dtype);
  impl->storage = std::make_shared<Storage>(static_cast<std::size_t>(impl->numel * item), opts.device);
  Tensor t(std::move(impl));
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

// Builds on the CPU with `fill(ptr_as_double_or_int)`, then moves to the target device.
template <class Fill>
Tensor build_on_cpu(const Shape& shape, TensorOptions opts, Fill&& fill) {
  TensorOptions host = opts;
  host.device = Device::cpu();
  host.requires_grad = false;
  Tensor t = make_tensor(shape, host);
  fill(t);
  if (!opts.device.is_cpu()) t = t.to(opts.device);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

// Writes element i (as double) of a CPU tensor of any dtype.
void store(Tensor& t, std::int64_t i, double v) {
  switch (t.dtype()) {
    case DType::f32: static_cast<float*>(t.raw_data())[i] = static_cast<float>(v); break;
    case DType::f64: static_cast<double*>(t.raw_data())[i] = v; break;
    case DType::i64: static_cast<std::int64_t*>(t.raw_data())[i] = static_cast<std::int64_t>(v); break;
    case DType::bf16:
      static_cast<std::uint16_t*>(t.raw_data())[i] = float_to_bf16(static_cast<float>(v));
      break;
  }
}

double load(const Tensor& t, std::int64_t i) {
  switch (t.dtype()) {
    case DType::f32: return static_cast<const float*>(t.raw_data())[i];
    case DType::f64: return static_cast<const double*>(t.raw_data())[i];
    case DType::i64: return static_cast<double>(static_cast<const std::int64_t*>(t.raw_data())[i]);
    case DType::bf16: return bf16_to_float(static_cast<const std::uint16_t*>(t.raw_data())[i]);
  }
  return 0.0;
}

template <class Gen>
void fill_each(Tensor& t, Gen&& gen) {
  const std::int64_t n = t.numel();
  if (t.dtype() == DType::f32) {
    float* p = t.data<float>();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(gen(i));
  } else if (t.dtype() == DType::f64) {
    double* p = t.data<double>();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) p[i] = gen(i);
  } else {
    for (std::int64_t i = 0; i < n; ++i) store(t, i, gen(i));
  }
}

}  // namespace

Tensor& Tensor::fill_(double value) {
  if (!device().is_cpu()) {
    copy_(full(shape(), value, {.dtype = dtype()}));
    return *this;
  }
  Tensor self = *this;
  if (value == 0.0) {
    if (nbytes() > 0) std::memset(raw_data(), 0, nbytes());
  } else {
    fill_each(self, [value](std::int64_t) { return value; });
  }
  return *this;
}

Tensor empty(const Shape& shape, TensorOptions opts) { return make_tensor(shape, opts); }

Tensor zeros(const Shape& shape, TensorOptions opts) { return full(shape, 0.0, opts); }

Tensor ones(const Shape& shape, TensorOptions opts) { return full(shape, 1.0, opts); }

Tensor full(const Shape& shape, double value, TensorOptions opts) {
  if (!opts.device.is_cpu())
    return build_on_cpu(shape, opts, [value](Tensor& t) { t.fill_(value); });
  Tensor t = make_tensor(shape, {.dtype = opts.dtype, .device = opts.device});
  t.fill_(value);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }

Tensor arange(double start, double end, double step, TensorOptions opts) {
  TESSERA_CHECK(step != 0.0, Error, "arange: step must be non-zero");
  const auto n = static_cast<std::int64_t>(std::max(0.0, std::ceil((end - start) / step)));
  return build_on_cpu({n}, opts, [&](Tensor& t) {
    for (std::int64_t i = 0; i < n; ++i) store(t, i, start + static_cast<double>(i) * step);
  });
}

Tensor arange(std::int64_t n, TensorOptions opts) { return arange(0.0, static_cast<double>(n), 1.0, opts); }

Tensor scalar_tensor(double value, TensorOptions opts) { return full({}, value, opts); }

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opts) {
  TESSERA_CHECK(static_cast<std::int64_t>(values.size()) == shape_numel(shape), ShapeError,
                "from_vector: {} values cannot fill shape {}", values.size(), shape_str(shape));
  return build_on_cpu(shape, opts, [&](Tensor& t) {
    if (t.dtype() == dtype_of<T>()) {
      if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
    } else {
      for (std::size_t i = 0; i < values.size(); ++i)
        store(t, static_cast<std::int64_t>(i), static_cast<double>(values[i]));
    }
  });
}
template Tensor from_vector(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<std::int64_t>&, const Shape&, TensorOptions);

Tensor randn(const Shape& shape, TensorOptions opts, Generator& gen) {
  const std::uint64_t seed = gen.seed();
  const std::uint64_t base = gen.reserve(static_cast<std::uint64_t>(shape_numel(shape)));
  return build_on_cpu(shape, opts, [&](Tensor& t) {
    fill_each(t, [&](std::int64_t i) { return normal_from(philox4x32(seed, base + i)); });
  });
}

Tensor uniform(const Shape& shape, double low, double high, TensorOptions opts, Generator& gen) {
  TESSERA_CHECK(low <= high, Error, "uniform: low {} is above high {}", low, high);
  const std::uint64_t seed = gen.seed();
  const std::uint64_t base = gen.reserve(static_cast<std::uint64_t>(shape_numel(shape)));
  return build_on_cpu(shape, opts, [&](Tensor& t) {
    fill_each(t, [&](std::int64_t i) {
      return low + (high - low) * to_unit(philox4x32(seed, base + i)[0]);
    });
  });
}

Tensor trunc_normal(const Shape& shape, double std, double low, double high, double mean,
                    TensorOptions opts, Generator& gen) {
  TESSERA_CHECK(std > 0 && low < high && low <= mean && mean <= high, Error,
                "trunc_normal: need std > 0 and low <= mean <= high (std {}, [{}, {}], mean {})",
                std, low, high, mean);
  const std::uint64_t seed = gen.seed();
  const std::uint64_t base = gen.reserve(static_cast<std::uint64_t>(shape_numel(shape)));
  return build_on_cpu(shape, opts, [&](Tensor& t) {
    fill_each(t, [&](std::int64_t i) {
      // Redraw with the same counter and a new high word until inside [low, high].
      for (std::uint64_t round = 0;; ++round) {
        const double v = mean + std * normal_from(philox4x32(seed, base + i, round));
        if (v >= low && v <= high) return v;
      }
    });
  });
}

Tensor randint(const Shape& shape, std::int64_t high, Generator& gen) {
  TESSERA_CHECK(high > 0, Error, "randint: high must be positive, got {}", high);
  const std::uint64_t seed = gen.seed();
  const std::uint64_t base = gen.reserve(static_cast<std::uint64_t>(shape_numel(shape)));
  return build_on_cpu(shape, {.dtype = DType::i64}, [&](Tensor& t) {
    auto* p = t.data<std::int64_t>();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const auto r = philox4x32(seed, base + i);
      const std::uint64_t bits = (std::uint64_t{r[0]} << 32) | r[1];
      p[i] = static_cast<std::int64_t>(bits % static_cast<std::uint64_t>(high));
    }
  });
}

namespace {

void format_axis(const Tensor& t, std::int64_t axis, std::int64_t offset, std::int64_t max_per_axis,
                 std::string& out) {
  const std::int64_t n = t.shape()[axis];
  std::int64_t stride = 1;
  for (std::size_t k = axis + 1; k < t.shape().size(); ++k) stride *= t.shape()[k];
  out += '[';
  for (std::int64_t i = 0; i < n; ++i) {
    if (n > max_per_axis && i == max_per_axis / 2) {
      out += "..., ";
      i = n - max_per_axis / 2;
    }
    if (axis + 1 == t.dim()) {
      const double v = load(t, offset + i);
      out += t.dtype() == DType::i64 ? fmt::format("{}", static_cast<std::int64_t>(v))
                                     : fmt::format("{:.6g}", v);
    } else {
      format_axis(t, axis + 1, offset + i * stride, max_per_axis, out);
    }
    if (i + 1 < n) out += ", ";
  }
  out += ']';
}

}  // namespace

std::string Tensor::to_string(std::int64_t max_per_axis) const {
  if (!defined()) return "Tensor(undefined)";
  const Tensor c = device().is_cpu() ? *this : detach().cpu();
  std::string values;
  if (c.dim() == 0)
    values = fmt::format("{:.6g}", load(c, 0));
  else
    format_axis(c, 0, 0, std::max<std::int64_t>(max_per_axis, 2), values);
  return fmt::format("Tensor(shape={}, dtype={}, device={}{}, {})", shape_str(shape()), dtype(),
                     device(), requires_grad() ? ", requires_grad" : "", values);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  TESSERA_CHECK(a.shape() == b.shape(), ShapeError, "max_abs_diff: shapes {} and {} differ",
                shape_str(a.shape()), shape_str(b.shape()));
  const Tensor ca = a.detach().cpu(), cb = b.detach().cpu();
  double worst = 0.0;
  for (std::int64_t i = 0; i < ca.numel(); ++i)
    worst = std::max(worst, std::abs(load(ca, i) - load(cb, i)));
  return worst;
}

std::int64_t count_non_finite(const Tensor& t) {
  if (!is_floating(t.dtype())) return 0;
  std::int64_t bad = 0;
  for (const double v : t.to(DType::f64).to_vector<double>()) bad += !std::isfinite(v);
  return bad;
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return false;
  const Tensor ca = a.detach().cpu(), cb = b.detach().cpu();
  for (std::int64_t i = 0; i < ca.numel(); ++i) {
    const double x = load(ca, i), y = load(cb, i);
    if (std::isnan(x) != std::isnan(y)) return false;
    if (std::abs(x - y) > atol + rtol * std::abs(y)) return false;
  }
  return true;
}


// ---- the methods that are ops (registered by the ops layer: TensorOps)

namespace {
TensorOps g_tensor_ops;  // constant-initialised: safe whatever the order of static initialisers
}  // namespace

void register_tensor_ops(const TensorOps& ops) { g_tensor_ops = ops; }

const TensorOps& tensor_ops(const char* method) {
  TESSERA_CHECK(g_tensor_ops.cast != nullptr, Error,
                "Tensor::{}: the ops layer (libtessera_ops) is not loaded; link Tessera::tessera", method);
  return g_tensor_ops;
}

Tensor Tensor::to(DType target) const { return tensor_ops("to").cast(*this, target); }

Tensor Tensor::clone() const {
  Tensor out = contiguous_copy();
  if (needs_recording({this}))
    record("clone", {*this}, out, [](const Tensor& dout) { return std::vector<Tensor>{dout}; });
  return out;
}

Tensor Tensor::reshape(const Shape& s) const { return tensor_ops("reshape").reshape(*this, s); }

Tensor Tensor::flatten(std::int64_t start_axis, std::int64_t end_axis) const {
  if (dim() == 0) return reshape({1});
  const int s = normalize_axis(start_axis, dim(), "flatten");
  const int e = normalize_axis(end_axis, dim(), "flatten");
  TESSERA_CHECK(s <= e, ShapeError, "flatten: start axis {} after end axis {}", start_axis, end_axis);
  Shape out(shape().begin(), shape().begin() + s);
  std::int64_t n = 1;
  for (int i = s; i <= e; ++i) n *= shape()[i];
  out.push_back(n);
  out.insert(out.end(), shape().begin() + e + 1, shape().end());
  return reshape(out);
}

Tensor Tensor::unsqueeze(std::int64_t axis) const {
  Shape s = shape();
  const int a = normalize_axis(axis, dim() + 1, "unsqueeze");
  s.insert(s.begin() + a, 1);
  return reshape(s);
}

Tensor Tensor::squeeze(std::int64_t axis) const {
  const int a = normalize_axis(axis, dim(), "squeeze");
  TESSERA_CHECK(shape()[a] == 1, ShapeError, "squeeze: axis {} of {} has size {}, not 1", axis,
                shape_str(shape()), shape()[a]);
  Shape s = shape();
  s.erase(s.begin() + a);
  return reshape(s);
}

Tensor Tensor::permute(const std::vector<std::int64_t>& order) const {
  return tensor_ops("permute").permute(*this, order);
}

Tensor Tensor::transpose(std::int64_t a, std::int64_t b) const {
  std::vector<std::int64_t> order(static_cast<std::size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[static_cast<std::size_t>(normalize_axis(a, dim(), "transpose"))],
            order[static_cast<std::size_t>(normalize_axis(b, dim(), "transpose"))]);
  return permute(order);
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  TESSERA_CHECK(other.dtype() == dtype() && other.device() == device() && other.shape() == shape(), ShapeError,
                "add_: {} {} on {} into {} {} on {}", shape_str(other.shape()), other.dtype(), other.device(),
                shape_str(shape()), dtype(), device());
  tensor_ops("add_").add_inplace(*this, other, alpha);
  return *this;
}

Tensor& Tensor::mul_(double factor) {
  tensor_ops("mul_").scale_inplace(*this, factor);
  return *this;
}

}  // namespace tessera
