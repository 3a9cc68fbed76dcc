// CUDA softmax / log-softmax, layer norm and cross entropy (with label smoothing) kernels.

// One block per row when the reduced axis is the innermost, else one thread per column.

#include "ops/cuda/device_utils.cuh"

namespace tessera::cuda::launch {
namespace {

using dev::grid_for;
using dev::kThreads;
using dev::MaxOp;
using dev::SumOp;

inline unsigned row_blocks(i64 rows) {
  return static_cast<unsigned>(rows < dev::kMaxBlocks ? rows : dev::kMaxBlocks);
}

// ---- softmax over the innermost axis: x, y (A, L)

template <class T>
__global__ void __launch_bounds__(dev::kMaxRowThreads)
softmax_rows_kernel(const T* x, T* y, i64 A, i64 L, bool log) {
  for (i64 row = blockIdx.x; row < A; row += gridDim.x) {
    const T* xr = x + row * L;
    T* yr = y + row * L;
    T m = dev::neg_infinity<T>();
    for (i64 l = threadIdx.x; l < L; l += blockDim.x) m = MaxOp{}(m, xr[l]);
    m = dev::block_reduce(m, MaxOp{}, dev::neg_infinity<T>());
    T s = T(0);
    for (i64 l = threadIdx.x; l < L; l += blockDim.x) s += dev::d_exp(xr[l] - m);
    s = dev::block_reduce(s, SumOp{}, T(0));
    if (log) {
      // (x - m) first: x - (m + log s) would lose x - m's digits to a large m.
      const T log_s = dev::d_log(s);
      for (i64 l = threadIdx.x; l < L; l += blockDim.x) yr[l] = (xr[l] - m) - log_s;
    } else {
      for (i64 l = threadIdx.x; l < L; l += blockDim.x) yr[l] = dev::d_exp(xr[l] - m) / s;
    }
  }
}

// ---- softmax over a middle axis: x, y (A, L, B), one thread per (a, b)

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
softmax_cols_kernel(const T* x, T* y, i64 A, i64 L, i64 B, bool log) {
  TESSERA_GRID_LOOP(t, A * B) {
    const i64 a = t / B, b = t % B;
    const T* xc = x + a * L * B + b;
    T* yc = y + a * L * B + b;
    T m = dev::neg_infinity<T>();
    for (i64 l = 0; l < L; ++l) m = MaxOp{}(m, xc[l * B]);
    T s = T(0);
    for (i64 l = 0; l < L; ++l) s += dev::d_exp(xc[l * B] - m);
    if (log) {
      const T log_s = dev::d_log(s);
      for (i64 l = 0; l < L; ++l) yc[l * B] = (xc[l * B] - m) - log_s;
    } else {
      for (i64 l = 0; l < L; ++l) yc[l * B] = dev::d_exp(xc[l * B] - m) / s;
    }
  }
}

// softmax: dx = y * (dy - sum(dy * y));  log-softmax: dx = dy - exp(y) * sum(dy)
template <class T>
__global__ void __launch_bounds__(dev::kMaxRowThreads)
softmax_backward_rows_kernel(const T* y, const T* dy, T* dx, i64 A, i64 L, bool log) {
  for (i64 row = blockIdx.x; row < A; row += gridDim.x) {
    const T* yr = y + row * L;
    const T* gr = dy + row * L;
    T* dr = dx + row * L;
    T s = T(0);
    for (i64 l = threadIdx.x; l < L; l += blockDim.x) s += log ? gr[l] : gr[l] * yr[l];
    s = dev::block_reduce(s, SumOp{}, T(0));
    if (log) {
      for (i64 l = threadIdx.x; l < L; l += blockDim.x) dr[l] = gr[l] - dev::d_exp(yr[l]) * s;
    } else {
      for (i64 l = threadIdx.x; l < L; l += blockDim.x) dr[l] = yr[l] * (gr[l] - s);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
softmax_backward_cols_kernel(const T* y, const T* dy, T* dx, i64 A, i64 L, i64 B, bool log) {
  TESSERA_GRID_LOOP(t, A * B) {
    const i64 a = t / B, b = t % B;
    const i64 base = a * L * B + b;
    T s = T(0);
    for (i64 l = 0; l < L; ++l) s += log ? dy[base + l * B] : dy[base + l * B] * y[base + l * B];
    if (log) {
      for (i64 l = 0; l < L; ++l) dx[base + l * B] = dy[base + l * B] - dev::d_exp(y[base + l * B]) * s;
    } else {
      for (i64 l = 0; l < L; ++l) dx[base + l * B] = y[base + l * B] * (dy[base + l * B] - s);
    }
  }
}

// ---- layer norm over the last axis: x (rows, D)

template <class T>
__global__ void __launch_bounds__(dev::kMaxRowThreads)
layer_norm_forward_kernel(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd,
                                          i64 rows, i64 D, T eps) {
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    T s = T(0);
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) s += xr[j];
    const T mu = dev::block_reduce(s, SumOp{}, T(0)) / T(D);
    T q = T(0);  // two passes: the variance does not suffer E[x^2] - E[x]^2 cancellation
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) {
      const T c = xr[j] - mu;
      q += c * c;
    }
    const T var = dev::block_reduce(q, SumOp{}, T(0)) / T(D);
    const T rs = T(1) / dev::d_sqrt(var + eps);
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) {
      T v = (xr[j] - mu) * rs;
      if (w != nullptr) v *= w[j];
      if (b != nullptr) v += b[j];
      yr[j] = v;
    }
    if (threadIdx.x == 0) {
      mean[row] = mu;
      rstd[row] = rs;
    }
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w
template <class T>
__global__ void __launch_bounds__(dev::kMaxRowThreads)
layer_norm_backward_dx_kernel(const T* x, const T* w, const T* mean, const T* rstd,
                                              const T* dy, T* dx, i64 rows, i64 D) {
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * D;
    const T* gr = dy + row * D;
    T* dr = dx + row * D;
    const T mu = mean[row], rs = rstd[row];
    T s1 = T(0), s2 = T(0);
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) {
      const T g = w != nullptr ? gr[j] * w[j] : gr[j];
      s1 += g;
      s2 += g * (xr[j] - mu) * rs;
    }
    const T c1 = dev::block_reduce(s1, SumOp{}, T(0)) / T(D);
    const T c2 = dev::block_reduce(s2, SumOp{}, T(0)) / T(D);
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) {
      const T g = w != nullptr ? gr[j] * w[j] : gr[j];
      const T xhat = (xr[j] - mu) * rs;
      dr[j] = rs * (g - c1 - xhat * c2);
    }
  }
}

// Partial column sums over chunks of rows: thread (s, j).
template <class T>
__global__ void __launch_bounds__(dev::kThreads)
layer_norm_backward_dwdb_kernel(const T* x, const T* mean, const T* rstd, const T* dy,
                                                T* dw, T* db, i64 rows, i64 D, i64 S, i64 chunk) {
  TESSERA_GRID_LOOP(t, S * D) {
    const i64 j = t % D, s = t / D;
    const i64 r0 = s * chunk;
    const i64 r1 = r0 + chunk < rows ? r0 + chunk : rows;
    T acc_w = T(0), acc_b = T(0);
    for (i64 r = r0; r < r1; ++r) {
      const T g = dy[r * D + j];
      acc_b += g;
      acc_w += g * (x[r * D + j] - mean[r]) * rstd[r];
    }
    if (dw != nullptr) dw[t] = acc_w;
    if (db != nullptr) db[t] = acc_b;
  }
}

// ---- cross entropy: logits (N, C), target (N), one block per row

// PyTorch's label smoothing: the target distribution is (1 - e) onehot + e / C, so
// loss = (1 - e) (lse - x_t) + e (lse - mean(x)).
template <class T>
__global__ void __launch_bounds__(dev::kMaxRowThreads)
cross_entropy_forward_kernel(const T* logits, const i64* target, T* loss, i64 N, i64 C,
                                             T smoothing, i64 ignore_index) {
  for (i64 row = blockIdx.x; row < N; row += gridDim.x) {
    const i64 t = target[row];
    if (t == ignore_index) {  // uniform over the block
      if (threadIdx.x == 0) loss[row] = T(0);
      continue;
    }
    if (t < 0 || t >= C) {  // the op validates targets; NaN marks a bad one rather than a fault
      if (threadIdx.x == 0) loss[row] = dev::quiet_nan<T>();
      continue;
    }
    const T* xr = logits + row * C;
    T m = dev::neg_infinity<T>();
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) m = MaxOp{}(m, xr[c]);
    m = dev::block_reduce(m, MaxOp{}, dev::neg_infinity<T>());
    T s = T(0), sx = T(0);
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) {
      s += dev::d_exp(xr[c] - m);
      sx += xr[c] - m;
    }
    s = dev::block_reduce(s, SumOp{}, T(0));
    sx = dev::block_reduce(sx, SumOp{}, T(0));
    if (threadIdx.x == 0) {
      // lse - x written as (m - x) + log s, and sx summing x - m: exact for large logits.
      const T log_s = dev::d_log(s);
      const T nll = (m - xr[t]) + log_s;
      loss[row] = smoothing == T(0) ? nll : (T(1) - smoothing) * nll + smoothing * (log_s - sx / T(C));
    }
  }
}

// dlogits = dloss * (softmax - (1 - e) onehot - e / C)
template <class T>
__global__ void __launch_bounds__(dev::kMaxRowThreads)
cross_entropy_backward_kernel(const T* logits, const i64* target, const T* dloss,
                                              T* dlogits, i64 N, i64 C, T smoothing, i64 ignore_index) {
  for (i64 row = blockIdx.x; row < N; row += gridDim.x) {
    const i64 t = target[row];
    T* dr = dlogits + row * C;
    if (t == ignore_index || t < 0 || t >= C) {
      const T fill = t == ignore_index ? T(0) : dev::quiet_nan<T>();
      for (i64 c = threadIdx.x; c < C; c += blockDim.x) dr[c] = fill;
      continue;
    }
    const T* xr = logits + row * C;
    T m = dev::neg_infinity<T>();
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) m = MaxOp{}(m, xr[c]);
    m = dev::block_reduce(m, MaxOp{}, dev::neg_infinity<T>());
    T s = T(0);
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) s += dev::d_exp(xr[c] - m);
    s = dev::block_reduce(s, SumOp{}, T(0));
    const T g = dloss[row];
    const T uniform = smoothing / T(C);
    const T on_target = T(1) - smoothing;
    for (i64 c = threadIdx.x; c < C; c += blockDim.x) {
      const T p = dev::d_exp(xr[c] - m) / s;
      dr[c] = g * (p - (c == t ? on_target : T(0)) - uniform);
    }
  }
}

}  // namespace

void softmax_forward(Elem t, const void* x, void* y, i64 A, i64 L, i64 B, bool log) {
  if (B == 1) {
    const int threads = dev::row_threads(L);
    if (t == Elem::f32)
      softmax_rows_kernel<float><<<row_blocks(A), threads>>>(static_cast<const float*>(x),
                                                             static_cast<float*>(y), A, L, log);
    else
      softmax_rows_kernel<double><<<row_blocks(A), threads>>>(static_cast<const double*>(x),
                                                              static_cast<double*>(y), A, L, log);
  } else {
    if (t == Elem::f32)
      softmax_cols_kernel<float><<<grid_for(A * B), kThreads>>>(static_cast<const float*>(x),
                                                                static_cast<float*>(y), A, L, B, log);
    else
      softmax_cols_kernel<double><<<grid_for(A * B), kThreads>>>(static_cast<const double*>(x),
                                                                 static_cast<double*>(y), A, L, B, log);
  }
  check_launch(log ? "log_softmax" : "softmax");
}

void softmax_backward(Elem t, const void* y, const void* dy, void* dx, i64 A, i64 L, i64 B, bool log) {
  if (B == 1) {
    const int threads = dev::row_threads(L);
    if (t == Elem::f32)
      softmax_backward_rows_kernel<float><<<row_blocks(A), threads>>>(
          static_cast<const float*>(y), static_cast<const float*>(dy), static_cast<float*>(dx), A, L, log);
    else
      softmax_backward_rows_kernel<double><<<row_blocks(A), threads>>>(
          static_cast<const double*>(y), static_cast<const double*>(dy), static_cast<double*>(dx), A, L, log);
  } else {
    if (t == Elem::f32)
      softmax_backward_cols_kernel<float><<<grid_for(A * B), kThreads>>>(
          static_cast<const float*>(y), static_cast<const float*>(dy), static_cast<float*>(dx), A, L, B, log);
    else
      softmax_backward_cols_kernel<double><<<grid_for(A * B), kThreads>>>(
          static_cast<const double*>(y), static_cast<const double*>(dy), static_cast<double*>(dx), A, L,
          B, log);
  }
  check_launch(log ? "log_softmax_backward" : "softmax_backward");
}

void layer_norm_forward(Elem t, const void* x, const void* w, const void* b, void* y, void* mean,
                        void* rstd, i64 rows, i64 D, double eps) {
  const int threads = dev::row_threads(D);
  if (t == Elem::f32)
    layer_norm_forward_kernel<float><<<row_blocks(rows), threads>>>(
        static_cast<const float*>(x), static_cast<const float*>(w), static_cast<const float*>(b),
        static_cast<float*>(y), static_cast<float*>(mean), static_cast<float*>(rstd), rows, D,
        static_cast<float>(eps));
  else
    layer_norm_forward_kernel<double><<<row_blocks(rows), threads>>>(
        static_cast<const double*>(x), static_cast<const double*>(w), static_cast<const double*>(b),
        static_cast<double*>(y), static_cast<double*>(mean), static_cast<double*>(rstd), rows, D, eps);
  check_launch("layer_norm");
}

void layer_norm_backward_dx(Elem t, const void* x, const void* w, const void* mean, const void* rstd,
                            const void* dy, void* dx, i64 rows, i64 D) {
  const int threads = dev::row_threads(D);
  if (t == Elem::f32)
    layer_norm_backward_dx_kernel<float><<<row_blocks(rows), threads>>>(
        static_cast<const float*>(x), static_cast<const float*>(w), static_cast<const float*>(mean),
        static_cast<const float*>(rstd), static_cast<const float*>(dy), static_cast<float*>(dx), rows, D);
  else
    layer_norm_backward_dx_kernel<double><<<row_blocks(rows), threads>>>(
        static_cast<const double*>(x), static_cast<const double*>(w), static_cast<const double*>(mean),
        static_cast<const double*>(rstd), static_cast<const double*>(dy), static_cast<double*>(dx), rows, D);
  check_launch("layer_norm_backward");
}

void layer_norm_backward_dwdb(Elem t, const void* x, const void* mean, const void* rstd, const void* dy,
                              void* dw_partial, void* db_partial, i64 rows, i64 D, i64 chunk) {
  const i64 S = (rows + chunk - 1) / chunk;
  if (t == Elem::f32)
    layer_norm_backward_dwdb_kernel<float><<<grid_for(S * D), kThreads>>>(
        static_cast<const float*>(x), static_cast<const float*>(mean), static_cast<const float*>(rstd),
        static_cast<const float*>(dy), static_cast<float*>(dw_partial), static_cast<float*>(db_partial),
        rows, D, S, chunk);
  else
    layer_norm_backward_dwdb_kernel<double><<<grid_for(S * D), kThreads>>>(
        static_cast<const double*>(x), static_cast<const double*>(mean), static_cast<const double*>(rstd),
        static_cast<const double*>(dy), static_cast<double*>(dw_partial), static_cast<double*>(db_partial),
        rows, D, S, chunk);
  check_launch("layer_norm_backward");
}

void cross_entropy_forward(Elem t, const void* logits, const std::int64_t* target, void* loss, i64 N,
                           i64 C, double smoothing, std::int64_t ignore_index) {
  const int threads = dev::row_threads(C);
  if (t == Elem::f32)
    cross_entropy_forward_kernel<float><<<row_blocks(N), threads>>>(
        static_cast<const float*>(logits), target, static_cast<float*>(loss), N, C,
        static_cast<float>(smoothing), ignore_index);
  else
    cross_entropy_forward_kernel<double><<<row_blocks(N), threads>>>(
        static_cast<const double*>(logits), target, static_cast<double*>(loss), N, C, smoothing,
        ignore_index);
  check_launch("cross_entropy");
}

void cross_entropy_backward(Elem t, const void* logits, const std::int64_t* target, const void* dloss,
                            void* dlogits, i64 N, i64 C, double smoothing, std::int64_t ignore_index) {
  const int threads = dev::row_threads(C);
  if (t == Elem::f32)
    cross_entropy_backward_kernel<float><<<row_blocks(N), threads>>>(
        static_cast<const float*>(logits), target, static_cast<const float*>(dloss),
        static_cast<float*>(dlogits), N, C, static_cast<float>(smoothing), ignore_index);
  else
    cross_entropy_backward_kernel<double><<<row_blocks(N), threads>>>(
        static_cast<const double*>(logits), target, static_cast<const double*>(dloss),
        static_cast<double*>(dlogits), N, C, smoothing, ignore_index);
  check_launch("cross_entropy_backward");
}

}  // namespace tessera::cuda::launch
