#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/dropout_mask.h"

namespace tessera::cpu {
namespace {

// The dropout factor of weight (bh, i, j): 0 or 1/(1-p), the same rule as ops' dropout.
template <class T>
T keep_factor(const AttentionDropout& d, std::uint64_t flat) {
  return dropout_keep(d.seed, d.offset + flat, dropout_threshold(d.p)) ? static_cast<T>(1.0 / (1.0 - d.p)) : T(0);
}

// One head's q, k, v (N, E) gathered contiguously, plus k and v transposed (E, N) so the
// inner loops run over contiguous memory.
template <class T>
struct HeadScratch {
  std::vector<T> q, k, v, kt, vt, row, dp;
  void resize(std::int64_t N, std::int64_t E) {
    for (auto* b : {&q, &k, &v, &kt, &vt}) b->resize(static_cast<std::size_t>(N * E));
    row.resize(static_cast<std::size_t>(N));
    dp.resize(static_cast<std::size_t>(N * N));
  }
};

template <class T>
void gather_head(const T* qkv, std::int64_t b, std::int64_t h, std::int64_t N, std::int64_t D, std::int64_t E,
                 HeadScratch<T>& s) {
  for (std::int64_t n = 0; n < N; ++n) {
    const T* row = qkv + (b * N + n) * 3 * D + h * E;
    for (std::int64_t e = 0; e < E; ++e) {
      s.q[n * E + e] = row[e];
      s.k[n * E + e] = s.kt[e * N + n] = row[D + e];
      s.v[n * E + e] = s.vt[e * N + n] = row[2 * D + e];
    }
  }
}

template <class T>
void forward_t(const Tensor& qkv, std::int64_t H, double scale, const AttentionDropout& drop, Tensor& out,
               Tensor& probs) {
  const std::int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3, E = D / H;
  const T* px = static_cast<const T*>(qkv.raw_data());
  T* po = static_cast<T*>(out.raw_data());
  T* pp = static_cast<T*>(probs.raw_data());
  const T sc = static_cast<T>(scale);
#pragma omp parallel
  {
    HeadScratch<T> s;
    s.resize(N, E);
#pragma omp for schedule(static)
    for (std::int64_t bh = 0; bh < B * H; ++bh) {
      const std::int64_t b = bh / H, h = bh % H;
      gather_head(px, b, h, N, D, E, s);
      T* P = pp + bh * N * N;
      for (std::int64_t i = 0; i < N; ++i) {
        T* p = P + i * N;
        // Scores of query i against every key, vectorised over keys.
        std::fill(p, p + N, T(0));
        for (std::int64_t e = 0; e < E; ++e) {
          const T qe = s.q[i * E + e] * sc;
          const T* kt = s.kt.data() + e * N;
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) p[j] += qe * kt[j];
        }
        T m = p[0];
        for (std::int64_t j = 1; j < N; ++j) m = std::max(m, p[j]);
        T total = 0;
        for (std::int64_t j = 0; j < N; ++j) total += (p[j] = std::exp(p[j] - m));
        const T inv = T(1) / total;
#pragma omp simd
        for (std::int64_t j = 0; j < N; ++j) p[j] *= inv;
        // out_i = sum_j p_ij v_j (dropped weights when training with dropout).
        T* o = po + (b * N + i) * D + h * E;
        std::fill(o, o + E, T(0));
        for (std::int64_t j = 0; j < N; ++j) {
          const T w = drop.p > 0 ? p[j] * keep_factor<T>(drop, static_cast<std::uint64_t>((bh * N + i) * N + j)) : p[j];
          const T* v = s.v.data() + j * E;
#pragma omp simd
          for (std::int64_t e = 0; e < E; ++e) o[e] += w * v[e];
        }
      }
    }
  }
}

template <class T>
void backward_t(const Tensor& qkv, const Tensor& probs, const Tensor& dout, std::int64_t H, double scale,
                const AttentionDropout& drop, Tensor& dqkv) {
  const std::int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3, E = D / H;
  const T* px = static_cast<const T*>(qkv.raw_data());
  const T* pp = static_cast<const T*>(probs.raw_data());
  const T* pdo = static_cast<const T*>(dout.raw_data());
  T* pd = static_cast<T*>(dqkv.raw_data());
  const T sc = static_cast<T>(scale);
#pragma omp parallel
  {
    HeadScratch<T> s;
    s.resize(N, E);
    std::vector<T> dq(static_cast<std::size_t>(N * E)), dk(dq.size()), dv(dq.size()), dO(dq.size());
#pragma omp for schedule(static)
    for (std::int64_t bh = 0; bh < B * H; ++bh) {
      const std::int64_t b = bh / H, h = bh % H;
      gather_head(px, b, h, N, D, E, s);
      for (std::int64_t n = 0; n < N; ++n)
        std::copy_n(pdo + (b * N + n) * D + h * E, E, dO.data() + n * E);
      std::fill(dk.begin(), dk.end(), T(0));
      std::fill(dv.begin(), dv.end(), T(0));
      const T* P = pp + bh * N * N;
      for (std::int64_t i = 0; i < N; ++i) {
        const T* p = P + i * N;
        T* dp = s.dp.data() + i * N;
        const T* g = dO.data() + i * E;
        // dP_ij = dO_i . v_j, vectorised over j.
        std::fill(dp, dp + N, T(0));
        for (std::int64_t e = 0; e < E; ++e) {
          const T ge = g[e];
          const T* vt = s.vt.data() + e * N;
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) dp[j] += ge * vt[j];
        }
        // Through dropout: dP *= keep; dv_j += (p_ij * keep) dO_i.
        for (std::int64_t j = 0; j < N; ++j) {
          const T keep = drop.p > 0 ? keep_factor<T>(drop, static_cast<std::uint64_t>((bh * N + i) * N + j)) : T(1);
          dp[j] *= keep;
          const T w = p[j] * keep;
          T* dvj = dv.data() + j * E;
#pragma omp simd
          for (std::int64_t e = 0; e < E; ++e) dvj[e] += w * g[e];
        }
        // Softmax backward: dS_ij = p_ij (dP_ij - sum_k p_ik dP_ik), times the scale.
        T dot = 0;
        for (std::int64_t j = 0; j < N; ++j) dot += p[j] * dp[j];
#pragma omp simd
        for (std::int64_t j = 0; j < N; ++j) dp[j] = p[j] * (dp[j] - dot) * sc;
        // dq_i = sum_j dS_ij k_j;  dk_j += dS_ij q_i.
        T* dqi = dq.data() + i * E;
        std::fill(dqi, dqi + E, T(0));
        const T* qi = s.q.data() + i * E;
        for (std::int64_t j = 0; j < N; ++j) {
          const T w = dp[j];
          const T* kj = s.k.data() + j * E;
          T* dkj = dk.data() + j * E;
#pragma omp simd
          for (std::int64_t e = 0; e < E; ++e) {
            dqi[e] += w * kj[e];
            dkj[e] += w * qi[e];
          }
        }
      }
      for (std::int64_t n = 0; n < N; ++n) {
        T* row = pd + (b * N + n) * 3 * D + h * E;
        std::copy_n(dq.data() + n * E, E, row);
        std::copy_n(dk.data() + n * E, E, row + D);
        std::copy_n(dv.data() + n * E, E, row + 2 * D);
      }
    }
  }
}

}  // namespace

void attention_forward(const Tensor& qkv, std::int64_t heads, double scale, const AttentionDropout& drop,
                       Tensor& out, Tensor& probs) {
  if (out.numel() == 0) return;
  dispatch_float(qkv.dtype(), "self_attention", [&](auto tag) {
    forward_t<typename decltype(tag)::type>(qkv, heads, scale, drop, out, probs);
  });
}

void attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& dout, std::int64_t heads,
                        double scale, const AttentionDropout& drop, Tensor& dqkv) {
  if (dqkv.numel() == 0) return;
  dispatch_float(qkv.dtype(), "self_attention_backward", [&](auto tag) {
    backward_t<typename decltype(tag)::type>(qkv, probs, dout, heads, scale, drop, dqkv);
  });
}

}  // namespace tessera::cpu
