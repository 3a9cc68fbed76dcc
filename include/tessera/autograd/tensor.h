// Tensor: a cheap handle to shared, contiguous, row-major storage with a shape, a dtype,
// a device and (when it takes part in autograd) a gradient.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tessera/autograd/allocator.h"
#include "tessera/autograd/dtype.h"
#include "tessera/autograd/error.h"
#include "tessera/autograd/random.h"

namespace tessera {

using Shape = std::vector<std::int64_t>;

std::int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "(8,197,192)"
// Resolves a possibly negative axis against a rank; throws ShapeError naming `op`.
int normalize_axis(std::int64_t axis, std::int64_t rank, const char* op);

// Owns one device allocation; shared by every tensor viewing it.
struct Storage {
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  std::size_t bytes = 0;
  Device device;
};

struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  std::size_t offset = 0;  // in elements
  Shape shape;
  std::int64_t numel = 0;
  DType dtype = DType::f32;

  // Autograd. A tensor produced by a recorded op points at its tape node; a leaf does not.
  bool requires_grad = false;
  bool retains_grad = false;
  bool has_grad_fn = false;
  const char* producer = nullptr;  // op name of the node that produced it, for error messages
  std::weak_ptr<Node> grad_fn;
  std::shared_ptr<TensorImpl> grad;
};

struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // --- shape and type
  const Shape& shape() const { return checked().shape; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape().size()); }
  std::int64_t size(std::int64_t axis) const;  // negative axes count from the end
  std::int64_t numel() const { return checked().numel; }
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype()); }

  // --- data (CPU or device pointer; typed access checks the dtype)
  void* raw_data() const;
  template <class T> T* data() const {
    TESSERA_CHECK(dtype() == dtype_of<T>(), DTypeError, "Tensor::data: tensor is {}, asked for {}",
                  dtype(), dtype_of<T>());
    return static_cast<T*>(raw_data());
  }

  // --- autograd
  bool requires_grad() const { return checked().requires_grad; }
  // Only leaves (tensors not produced by a recorded op) can be switched.
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return !checked().has_grad_fn; }
  // The accumulated gradient, or an undefined tensor before the first backward.
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  void zero_grad() const { checked().grad.reset(); }
  // Keep the gradient of a non-leaf after backward (leaves always keep theirs).
  void retain_grad() const { checked().retains_grad = true; }
  // Same storage, no autograd history.
  Tensor detach() const;

  // --- conversions
  double item() const;  // the value of a one-element tensor
  template <class T> std::vector<T> to_vector() const;
  Tensor to(DType dtype) const;    // differentiable cast
  Tensor to(Device device) const;  // copy across devices
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor clone() const;            // differentiable copy into new storage
  Tensor contiguous_copy() const;  // new storage, no autograd

  // --- shape views (no copy; differentiable)
  Tensor reshape(const Shape& shape) const;  // one axis may be -1
  Tensor flatten(std::int64_t start_axis = 0, std::int64_t end_axis = -1) const;
  Tensor unsqueeze(std::int64_t axis) const;
  Tensor squeeze(std::int64_t axis) const;
  Tensor transpose(std::int64_t a, std::int64_t b) const;
  Tensor permute(const std::vector<std::int64_t>& order) const;

  // Fills in place, outside autograd (initialisers, optimizers).
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);  // same shape and dtype
  Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha * other, same shape
  Tensor& mul_(double factor);

  std::string to_string(std::int64_t max_per_axis = 6) const;

  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  TensorImpl& checked() const {
    if (!impl_) [[unlikely]] throw Error("Tensor: use of an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

// --- factories
Tensor empty(const Shape& shape, TensorOptions opts = {});
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
// [start, end) with `step`; arange(5) = 0..4.
Tensor arange(double start, double end, double step = 1.0, TensorOptions opts = {});
Tensor arange(std::int64_t n, TensorOptions opts = {});
Tensor scalar_tensor(double value, TensorOptions opts = {});

// The dtype defaults to the element type's (float -> f32, double -> f64, int64 -> i64).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                   TensorOptions opts = {.dtype = dtype_of<T>()});
template <class T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, {static_cast<std::int64_t>(values.size())});
}

Tensor randn(const Shape& shape, TensorOptions opts = {}, Generator& gen = default_generator());
Tensor uniform(const Shape& shape, double low, double high, TensorOptions opts = {},
               Generator& gen = default_generator());
// Normal(mean, std) redrawn until inside [low, high] (timm's trunc_normal_ uses a=-2, b=2).
Tensor trunc_normal(const Shape& shape, double std, double low, double high, double mean = 0.0,
                    TensorOptions opts = {}, Generator& gen = default_generator());
// Integers uniformly in [0, high) as i64 (labels for tests and benchmarks).
Tensor randint(const Shape& shape, std::int64_t high, Generator& gen = default_generator());

// Numeric equality helpers for tests and checks (CPU, any floating dtype).
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);
// How many elements are NaN or infinite (0 for integer tensors).
std::int64_t count_non_finite(const Tensor& t);
double max_abs_diff(const Tensor& a, const Tensor& b);

inline std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

// What the methods above that compute (casts, reshapes, permutes, in-place arithmetic) and
// the tape's gradient accumulation take from the ops, one layer up: the ops layer registers
// them here when it is loaded, so that autograd links on its own and no call runs upward.
struct TensorOps {
  Tensor (*cast)(const Tensor& x, DType dtype) = nullptr;  // differentiable
  Tensor (*reshape)(const Tensor& x, const Shape& shape) = nullptr;
  Tensor (*permute)(const Tensor& x, const std::vector<std::int64_t>& order) = nullptr;
  void (*add_inplace)(Tensor& dst, const Tensor& src, double alpha) = nullptr;
  void (*scale_inplace)(Tensor& dst, double factor) = nullptr;
  Tensor (*add_unrecorded)(const Tensor& a, const Tensor& b) = nullptr;
};
void register_tensor_ops(const TensorOps& ops);
// The registered ops; Error naming `method` when the ops layer is not loaded.
const TensorOps& tensor_ops(const char* method);

}  // namespace tessera

template <> struct fmt::formatter<tessera::Tensor> : fmt::formatter<std::string_view> {
  auto format(const tessera::Tensor& t, format_context& ctx) const {
    return fmt::format_to(ctx.out(), "{}", t.to_string());
  }
};
