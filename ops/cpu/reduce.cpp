// Reductions over axes, and the scatter used by max's backward.
#include <algorithm>
#include <limits>

#include "tessera/ops/kernels.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

constexpr std::int64_t kParallelMin = 32768;

struct Group { std::int64_t size; bool reduced; };

// Merges adjacent axes that are both kept or both reduced; drops size-1 axes.
std::vector<Group> coalesce(const Shape& in, const Shape& out) {
  std::vector<Group> groups;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == 1) continue;
    const bool reduced = out[i] == 1;
    if (!groups.empty() && groups.back().reduced == reduced) groups.back().size *= in[i];
    else groups.push_back({in[i], reduced});
  }
  return groups;
}

// out (A, B) = sum over r of x (A, R, B).
template <class T>
void sum_middle(const T* x, T* out, std::int64_t A, std::int64_t R, std::int64_t B) {
  if (B == 1) {
#pragma omp parallel for schedule(static) if (A * R > kParallelMin && A > 1)
    for (std::int64_t a = 0; a < A; ++a) {
      const T* row = x + a * R;
      T s = T(0);
#pragma omp simd reduction(+ : s)
      for (std::int64_t r = 0; r < R; ++r) s += row[r];
      out[a] = s;
    }
    return;
  }
  // Split the B columns into chunks so that A == 1 (bias gradients) still runs in parallel.
  constexpr std::int64_t kChunk = 256;
  const std::int64_t chunks = (B + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (A * R * B > kParallelMin)
  for (std::int64_t t = 0; t < A * chunks; ++t) {
    const std::int64_t a = t / chunks, b0 = (t % chunks) * kChunk, b1 = std::min(B, b0 + kChunk);
    T* o = out + a * B;
    for (std::int64_t b = b0; b < b1; ++b) o[b] = T(0);
    for (std::int64_t r = 0; r < R; ++r) {
      const T* row = x + (a * R + r) * B;
#pragma omp simd
      for (std::int64_t b = b0; b < b1; ++b) o[b] += row[b];
    }
  }
}

template <class T>
void reduce_sum_t(const Tensor& x, Tensor& out) {
  std::vector<Group> groups = coalesce(x.shape(), out.shape());
  Tensor current = x;
  while (true) {
    auto it = std::find_if(groups.rbegin(), groups.rend(), [](const Group& g) { return g.reduced; });
    if (it == groups.rend()) break;
    const std::size_t gi = static_cast<std::size_t>(groups.rend() - it - 1);
    std::int64_t A = 1, B = 1;
    for (std::size_t i = 0; i < gi; ++i) A *= groups[i].size;
    for (std::size_t i = gi + 1; i < groups.size(); ++i) B *= groups[i].size;
    const std::int64_t R = groups[gi].size;
    groups.erase(groups.begin() + static_cast<std::ptrdiff_t>(gi));
    const bool last = std::none_of(groups.begin(), groups.end(), [](const Group& g) { return g.reduced; });
    Tensor next = last ? out : empty({A * B}, {.dtype = x.dtype()});
    sum_middle(static_cast<const T*>(current.raw_data()), static_cast<T*>(next.raw_data()), A, R, B);
    if (last) return;
    // Merge the groups around the removed one if both were kept.
    if (gi > 0 && gi < groups.size() && !groups[gi - 1].reduced && !groups[gi].reduced) {
      groups[gi - 1].size *= groups[gi].size;
      groups.erase(groups.begin() + static_cast<std::ptrdiff_t>(gi));
    }
    current = next;
  }
  // Nothing reduced (only size-1 axes): a copy.
  std::copy_n(static_cast<const T*>(x.raw_data()), x.numel(), static_cast<T*>(out.raw_data()));
}

template <class T>
void reduce_max_t(const Tensor& x, Tensor& out, Tensor& argmax) {
  const Shape& in = x.shape();
  const std::size_t rank = in.size();
  std::vector<std::int64_t> stride(rank, 1);
  for (std::size_t i = rank; i-- > 1;) stride[i - 1] = stride[i] * in[i];
  std::vector<std::int64_t> kept, red;
  for (std::size_t i = 0; i < rank; ++i) (out.shape()[i] == 1 && in[i] != 1 ? red : kept).push_back(i);
  std::int64_t rcount = 1;
  for (auto a : red) rcount *= in[a];
  const T* px = static_cast<const T*>(x.raw_data());
  T* po = static_cast<T*>(out.raw_data());
  auto* pi = argmax.data<std::int64_t>();
  const std::int64_t n_out = out.numel();
#pragma omp parallel for schedule(static) if (n_out * rcount > kParallelMin)
  for (std::int64_t o = 0; o < n_out; ++o) {
    std::int64_t base = 0, rem = o;
    for (std::size_t k = kept.size(); k-- > 0;) {
      const std::int64_t ax = kept[k];
      base += (rem % in[ax]) * stride[ax];
      rem /= in[ax];
    }
    T best = -std::numeric_limits<T>::infinity();
    std::int64_t best_at = base;
    bool first = true;
    for (std::int64_t r = 0; r < rcount; ++r) {
      std::int64_t off = base, rr = r;
      for (std::size_t k = red.size(); k-- > 0;) {
        const std::int64_t ax = red[k];
        off += (rr % in[ax]) * stride[ax];
        rr /= in[ax];
      }
      const T v = px[off];
      if (first || v > best || (v != v && best == best)) {  // NaN wins, like torch.max
        best = v;
        best_at = off;
        first = false;
      }
    }
    po[o] = best;
    pi[o] = best_at;
  }
}

}  // namespace

void reduce_sum(const Tensor& x, Tensor& out) {
  if (out.numel() == 0) return;
  if (x.numel() == 0) {
    out.fill_(0.0);
    return;
  }
  dispatch_float(x.dtype(), "sum", [&](auto tag) { reduce_sum_t<typename decltype(tag)::type>(x, out); });
}

void reduce_max(const Tensor& x, Tensor& out, Tensor& argmax) {
  if (out.numel() == 0) return;
  dispatch_float(x.dtype(), "max", [&](auto tag) {
    reduce_max_t<typename decltype(tag)::type>(x, out, argmax);
  });
}

void scatter_add_flat(Tensor& dst, const Tensor& index, const Tensor& src) {
  const auto* idx = index.data<std::int64_t>();
  dispatch_float(dst.dtype(), "scatter_add_flat", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* d = static_cast<T*>(dst.raw_data());
    const T* s = static_cast<const T*>(src.raw_data());
    for (std::int64_t i = 0; i < src.numel(); ++i) d[idx[i]] += s[i];
  });
}

TESSERA_CPU_ISA_END
