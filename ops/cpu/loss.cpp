// Dropout and cross-entropy kernels (plain loops for f32 and f64).
#include <algorithm>
#include <cmath>

#include "ops/dropout_mask.h"
#include "tessera/ops/kernels.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)

void dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t offset, Tensor& out) {
  const std::int64_t n = x.numel();
  dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    const std::uint32_t threshold = dropout_threshold(p);
#pragma omp parallel for schedule(static) if (n > 8192)
    for (std::int64_t i = 0; i < n; ++i)
      po[i] = dropout_keep(seed, offset + static_cast<std::uint64_t>(i), threshold) ? px[i] * scale : T(0);
  });
}

// loss_i = lse - (1 - s) * z_t - (s / C) * sum_c z_c: cross-entropy against the smoothed
// target (1 - s) * onehot(t) + s / C.
void cross_entropy_forward(const Tensor& logits, const Tensor& target, double smoothing,
                           std::int64_t ignore_index, Tensor& loss) {
  const std::int64_t N = logits.shape()[0], C = logits.shape()[1];
  const auto* pt = target.data<std::int64_t>();
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pz = static_cast<const T*>(logits.raw_data());
    T* pl = static_cast<T*>(loss.raw_data());
#pragma omp parallel for schedule(static) if (N * C > 32768)
    for (std::int64_t i = 0; i < N; ++i) {
      if (pt[i] == ignore_index) {
        pl[i] = T(0);
        continue;
      }
      const T* z = pz + i * C;
      T m = z[0], total = 0;
      for (std::int64_t c = 1; c < C; ++c) m = std::max(m, z[c]);
      T s = 0;
      for (std::int64_t c = 0; c < C; ++c) {
        s += std::exp(z[c] - m);
        total += z[c] - m;
      }
      // lse - x written as (m - x) + log s, and sums of x - m: m + log s, or a sum of large
      // logits, would lose the digits that matter.
      pl[i] = static_cast<T>(1 - smoothing) * (m - z[pt[i]]) - static_cast<T>(smoothing) * (total / T(C)) +
              std::log(s);
    }
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& dloss,
                            double smoothing, std::int64_t ignore_index, Tensor& dlogits) {
  const std::int64_t N = logits.shape()[0], C = logits.shape()[1];
  const auto* pt = target.data<std::int64_t>();
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pz = static_cast<const T*>(logits.raw_data());
    const T* pd = static_cast<const T*>(dloss.raw_data());
    T* pg = static_cast<T*>(dlogits.raw_data());
    const T off = static_cast<T>(smoothing / C), on = static_cast<T>(1 - smoothing) + off;
#pragma omp parallel for schedule(static) if (N * C > 32768)
    for (std::int64_t i = 0; i < N; ++i) {
      T* g = pg + i * C;
      if (pt[i] == ignore_index) {
        std::fill(g, g + C, T(0));
        continue;
      }
      const T* z = pz + i * C;
      T m = z[0];
      for (std::int64_t c = 1; c < C; ++c) m = std::max(m, z[c]);
      T s = 0;
      for (std::int64_t c = 0; c < C; ++c) s += std::exp(z[c] - m);
      const T inv = T(1) / s;
      for (std::int64_t c = 0; c < C; ++c)
        g[c] = pd[i] * (std::exp(z[c] - m) * inv - (c == pt[i] ? on : off));
    }
  });
}

TESSERA_CPU_ISA_END
