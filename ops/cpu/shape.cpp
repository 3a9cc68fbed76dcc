// Data movement: broadcasting copies, permutes, slices, index_select and gather, and the
// scatters that are their gradients. Axis-based kernels view a tensor as (A, L, B): the
// axes before `axis`, the axis itself, and the axes after it.
#include <cstring>

#include "ops/cpu/strided_loop.h"
#include "ops/axis_view.h"
#include "tessera/ops/kernels.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

constexpr std::int64_t kParallelMin = 32768;


template <class F>
void for_each_typed(DType t, const char* op, F&& f) { dispatch_float(t, op, f); }

}  // namespace

void broadcast_copy(const Tensor& x, Tensor& out) {
  if (out.numel() == 0) return;
  const std::size_t es = dtype_size(x.dtype());
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  StridedLoop<1> loop(out.shape(), {&x.shape()});
  const std::int64_t n = loop.inner(), rows = loop.rows(), s = loop.strides[0].back();
#pragma omp parallel for schedule(static) if (out.numel() > kParallelMin)
  for (std::int64_t r = 0; r < rows; ++r) {
    const char* src = px + loop.row_offsets(r)[0] * es;
    char* dst = po + r * n * es;
    if (s == 1) {
      std::memcpy(dst, src, n * es);
    } else {
      for (std::int64_t i = 0; i < n; ++i) std::memcpy(dst + i * es, src + i * s * es, es);
    }
  }
}

void permute(const Tensor& x, const std::vector<std::int64_t>& order, Tensor& out) {
  if (out.numel() == 0) return;
  const std::size_t rank = order.size(), es = dtype_size(x.dtype());
  std::vector<std::int64_t> xs(rank, 1);
  for (std::size_t i = rank; i-- > 1;) xs[i - 1] = xs[i] * x.shape()[i];
  // Output axis i walks input axis order[i].
  std::vector<std::int64_t> st(rank);
  for (std::size_t i = 0; i < rank; ++i) st[i] = xs[order[i]];
  const Shape& os = out.shape();
  const std::int64_t n = os.empty() ? 1 : os.back(), rows = out.numel() / std::max<std::int64_t>(n, 1);
  const std::int64_t s = st.empty() ? 1 : st.back();
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
#pragma omp parallel for schedule(static) if (out.numel() > kParallelMin)
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t off = 0, rem = r;
    for (std::size_t i = rank - 1; i-- > 0;) {
      off += (rem % os[i]) * st[i];
      rem /= os[i];
    }
    char* dst = po + r * n * es;
    if (es == 4) {
      const auto* src = reinterpret_cast<const std::uint32_t*>(px) + off;
      auto* d = reinterpret_cast<std::uint32_t*>(dst);
      for (std::int64_t i = 0; i < n; ++i) d[i] = src[i * s];
    } else if (es == 8) {
      const auto* src = reinterpret_cast<const std::uint64_t*>(px) + off;
      auto* d = reinterpret_cast<std::uint64_t*>(dst);
      for (std::int64_t i = 0; i < n; ++i) d[i] = src[i * s];
    } else {
      for (std::int64_t i = 0; i < n; ++i) std::memcpy(dst + i * es, px + (off + i * s) * es, es);
    }
  }
}

void slice_copy(const Tensor& x, int axis, std::int64_t start, std::int64_t step, Tensor& out) {
  if (out.numel() == 0) return;
  const AxisView v = axis_view(x.shape(), axis);
  const std::int64_t n = out.shape()[axis];
  const std::size_t row = v.B * dtype_size(x.dtype());
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
#pragma omp parallel for schedule(static) if (out.numel() > kParallelMin)
  for (std::int64_t t = 0; t < v.A * n; ++t) {
    const std::int64_t a = t / n, i = t % n;
    std::memcpy(po + t * row, px + (a * v.L + start + i * step) * row, row);
  }
}

void slice_assign(const Tensor& src, int axis, std::int64_t start, std::int64_t step, Tensor& out,
                  bool accumulate) {
  if (src.numel() == 0) return;
  const AxisView v = axis_view(out.shape(), axis);
  const std::int64_t n = src.shape()[axis];
  if (!accumulate) {
    const std::size_t row = v.B * dtype_size(out.dtype());
    const char* ps = static_cast<const char*>(src.raw_data());
    char* po = static_cast<char*>(out.raw_data());
#pragma omp parallel for schedule(static) if (src.numel() > kParallelMin)
    for (std::int64_t t = 0; t < v.A * n; ++t) {
      const std::int64_t a = t / n, i = t % n;
      std::memcpy(po + (a * v.L + start + i * step) * row, ps + t * row, row);
    }
    return;
  }
  for_each_typed(out.dtype(), "slice_assign", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* ps = static_cast<const T*>(src.raw_data());
    T* po = static_cast<T*>(out.raw_data());
#pragma omp parallel for schedule(static) if (src.numel() > kParallelMin)
    for (std::int64_t t = 0; t < v.A * n; ++t) {
      const std::int64_t a = t / n, i = t % n;
      T* d = po + (a * v.L + start + i * step) * v.B;
      const T* s = ps + t * v.B;
      for (std::int64_t b = 0; b < v.B; ++b) d[b] += s[b];
    }
  });
}

void index_select(const Tensor& x, int axis, const Tensor& index, Tensor& out) {
  if (out.numel() == 0) return;
  const AxisView v = axis_view(x.shape(), axis);
  const std::int64_t n = index.numel();
  const auto* idx = index.data<std::int64_t>();
  const std::size_t row = v.B * dtype_size(x.dtype());
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
#pragma omp parallel for schedule(static) if (out.numel() > kParallelMin)
  for (std::int64_t t = 0; t < v.A * n; ++t) {
    const std::int64_t a = t / n, i = t % n;
    std::memcpy(po + t * row, px + (a * v.L + idx[i]) * row, row);
  }
}

void index_add(const Tensor& src, int axis, const Tensor& index, Tensor& out) {
  if (src.numel() == 0) return;
  const AxisView v = axis_view(out.shape(), axis);
  const std::int64_t n = index.numel();
  const auto* idx = index.data<std::int64_t>();
  for_each_typed(out.dtype(), "index_add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* ps = static_cast<const T*>(src.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    // Parallel over A only: repeated indices within one a would race.
#pragma omp parallel for schedule(static) if (v.A > 1 && src.numel() > kParallelMin)
    for (std::int64_t a = 0; a < v.A; ++a)
      for (std::int64_t i = 0; i < n; ++i) {
        T* d = po + (a * v.L + idx[i]) * v.B;
        const T* s = ps + (a * n + i) * v.B;
        for (std::int64_t b = 0; b < v.B; ++b) d[b] += s[b];
      }
  });
}

void gather(const Tensor& x, int axis, const Tensor& index, Tensor& out) {
  if (out.numel() == 0) return;
  const AxisView v = axis_view(x.shape(), axis);
  const std::int64_t n = index.shape()[axis];
  const auto* idx = index.data<std::int64_t>();
  const std::size_t es = dtype_size(x.dtype());
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
#pragma omp parallel for schedule(static) if (out.numel() > kParallelMin)
  for (std::int64_t t = 0; t < v.A * n; ++t) {
    const std::int64_t a = t / n;
    for (std::int64_t b = 0; b < v.B; ++b) {
      const std::int64_t k = t * v.B + b;
      std::memcpy(po + k * es, px + ((a * v.L + idx[k]) * v.B + b) * es, es);
    }
  }
}

void scatter_add(const Tensor& src, int axis, const Tensor& index, Tensor& out) {
  if (src.numel() == 0) return;
  const AxisView v = axis_view(out.shape(), axis);
  const std::int64_t n = index.shape()[axis];
  const auto* idx = index.data<std::int64_t>();
  for_each_typed(out.dtype(), "scatter_add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* ps = static_cast<const T*>(src.raw_data());
    T* po = static_cast<T*>(out.raw_data());
#pragma omp parallel for schedule(static) if (v.A > 1 && src.numel() > kParallelMin)
    for (std::int64_t a = 0; a < v.A; ++a)
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t b = 0; b < v.B; ++b) {
          const std::int64_t k = (a * n + i) * v.B + b;
          po[(a * v.L + idx[k]) * v.B + b] += ps[k];
        }
  });
}

TESSERA_CPU_ISA_END
