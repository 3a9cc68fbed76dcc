// Fused multi-head self-attention on the CPU: reads q, k, v straight out of the fused
// projection (B, N, 3D) and writes heads straight into (B, N, D), one task per
// (batch, head); no permutes, and only the attention weights are kept for backward.
// Letters: B batch, N tokens, D width, H heads, E = D / H head size.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/dnnl_utils.h"
#include "ops/cpu/vec_math.h"
#include "tessera/ops/kernels.h"
#include "ops/dropout_mask.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
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
#pragma omp simd reduction(+ : total)
        for (std::int64_t j = 0; j < N; ++j) total += (p[j] = exp_vec(p[j] - m));
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

// ---- f32: oneDNN batched matmuls over strided views of the fused layouts, so heads are
// read from (B, N, 3D) and written to (B, N, D) without a single permute copy.

// A 4-D view (B, H, rows, cols) of a buffer: dims and element strides.
struct View4 {
  dnnl::memory::dims dims, strides;
};

// q, k or v of every head inside qkv (B, N, 3D): (B, H, N, E).
View4 head_view(std::int64_t B, std::int64_t H, std::int64_t N, std::int64_t E, std::int64_t row_stride) {
  return {{B, H, N, E}, {N * row_stride, E, row_stride, 1}};
}
View4 transposed(View4 v) {
  std::swap(v.dims[2], v.dims[3]);
  std::swap(v.strides[2], v.strides[3]);
  return v;
}
View4 dense(std::int64_t B, std::int64_t H, std::int64_t R, std::int64_t C) { return {{B, H, R, C}, {H * R * C, R * C, C, 1}}; }

// c = scale * a @ b on views, with a per-thread cache of primitives keyed by the views.
void view_matmul(const View4& a, const void* pa, const View4& b, const void* pb, const View4& c, void* pc,
                 float scale) {
  struct Entry { dnnl::matmul prim; dnnl::memory::desc a, b, c; };
  PrimitiveKey key{12, static_cast<std::int64_t>(std::bit_cast<std::uint32_t>(scale))};
  for (const View4* v : {&a, &b, &c})
    key.add(std::vector<std::int64_t>(v->dims.begin(), v->dims.end()))
        .add(std::vector<std::int64_t>(v->strides.begin(), v->strides.end()));
  const Entry& e = cached_primitive<Entry>(key, [&] {
    return dnnl_call("self_attention", [&] {
      auto ma = strided_md(a.dims, a.strides, DType::f32), mb = strided_md(b.dims, b.strides, DType::f32);
      auto mc = strided_md(c.dims, c.strides, DType::f32);
      dnnl::primitive_attr attr;
      if (scale != 1.0f) attr.set_output_scales(0, {scale});
      dnnl::matmul::desc d(ma, mb, mc);
      return Entry{dnnl::matmul(dnnl::matmul::primitive_desc(d, attr, dnnl_engine())), ma, mb, mc};
    });
  });
  dnnl_call("self_attention", [&] {
    execute(e.prim, {{DNNL_ARG_SRC, wrap(e.a, pa)}, {DNNL_ARG_WEIGHTS, wrap(e.b, pb)}, {DNNL_ARG_DST, wrap(e.c, pc)}});
  });
}

// In-place multiply of the (B, H, N, N) weights by their dropout factors.
void apply_dropout(float* w, std::int64_t count, const AttentionDropout& drop) {
  const std::uint32_t threshold = dropout_threshold(drop.p);
  const float scale = static_cast<float>(1.0 / (1.0 - drop.p));
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < count; ++i)
    w[i] = dropout_keep(drop.seed, drop.offset + static_cast<std::uint64_t>(i), threshold) ? w[i] * scale : 0.0f;
}

void forward_f32(const Tensor& qkv, std::int64_t H, double scale, const AttentionDropout& drop, Tensor& out,
                 Tensor& probs) {
  const std::int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3, E = D / H;
  const float* x = static_cast<const float*>(qkv.raw_data());
  const View4 q = head_view(B, H, N, E, 3 * D), kt = transposed(head_view(B, H, N, E, 3 * D));
  const View4 p = dense(B, H, N, N);
  view_matmul(q, x, kt, x + D, p, probs.raw_data(), static_cast<float>(scale));  // scores
  Tensor probs_view = probs.detach().reshape({B * H * N, N});
  cpu::softmax_forward(probs_view, 1, false, probs_view);                             // in place
  const float* weights = static_cast<const float*>(probs.raw_data());
  Tensor dropped;
  if (drop.p > 0) {
    dropped = probs.contiguous_copy();
    apply_dropout(static_cast<float*>(dropped.raw_data()), dropped.numel(), drop);
    weights = static_cast<const float*>(dropped.raw_data());
  }
  view_matmul(p, weights, head_view(B, H, N, E, 3 * D), x + 2 * D, head_view(B, H, N, E, D), out.raw_data(), 1.0f);
}

void backward_f32(const Tensor& qkv, const Tensor& probs, const Tensor& dout, std::int64_t H, double scale,
                  const AttentionDropout& drop, Tensor& dqkv) {
  const std::int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3, E = D / H;
  const float* x = static_cast<const float*>(qkv.raw_data());
  float* dx = static_cast<float*>(dqkv.raw_data());
  const View4 heads = head_view(B, H, N, E, 3 * D), out_heads = head_view(B, H, N, E, D), p = dense(B, H, N, N);
  // dP = dO v^T (through dropout: times the keep factors).
  Tensor dp = empty(probs.shape());
  view_matmul(out_heads, dout.raw_data(), transposed(heads), x + 2 * D, p, dp.raw_data(), 1.0f);
  const float* weights = static_cast<const float*>(probs.raw_data());
  Tensor dropped;
  if (drop.p > 0) {
    apply_dropout(static_cast<float*>(dp.raw_data()), dp.numel(), drop);
    dropped = probs.contiguous_copy();
    apply_dropout(static_cast<float*>(dropped.raw_data()), dropped.numel(), drop);
    weights = static_cast<const float*>(dropped.raw_data());
  }
  // dv = P_dropped^T dO
  view_matmul(transposed(p), weights, out_heads, dout.raw_data(), heads, dx + 2 * D, 1.0f);
  // dS = softmax backward, in place over dP
  Tensor dp_rows = dp.detach().reshape({B * H * N, N});
  cpu::softmax_backward(probs.detach().reshape({B * H * N, N}), dp_rows, 1, false, dp_rows);
  // dq = scale dS k;  dk = scale dS^T q
  view_matmul(p, dp.raw_data(), heads, x + D, heads, dx, static_cast<float>(scale));
  view_matmul(transposed(p), dp.raw_data(), heads, x, heads, dx + D, static_cast<float>(scale));
}

}  // namespace

void attention_forward(const Tensor& qkv, std::int64_t heads, double scale, const AttentionDropout& drop,
                       Tensor& out, Tensor& probs) {
  if (out.numel() == 0) return;
  if (qkv.dtype() == DType::f32) return forward_f32(qkv, heads, scale, drop, out, probs);
  dispatch_float(qkv.dtype(), "self_attention", [&](auto tag) {
    forward_t<typename decltype(tag)::type>(qkv, heads, scale, drop, out, probs);
  });
}

void attention_backward(const Tensor& qkv, const Tensor& probs, const Tensor& dout, std::int64_t heads,
                        double scale, const AttentionDropout& drop, Tensor& dqkv) {
  if (dqkv.numel() == 0) return;
  if (qkv.dtype() == DType::f32) return backward_f32(qkv, probs, dout, heads, scale, drop, dqkv);
  dispatch_float(qkv.dtype(), "self_attention_backward", [&](auto tag) {
    backward_t<typename decltype(tag)::type>(qkv, probs, dout, heads, scale, drop, dqkv);
  });
}

TESSERA_CPU_ISA_END
