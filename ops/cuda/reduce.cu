// CUDA reductions: deterministic sums, max with first-argmax, max's scatter, sums of squares.
#include <climits>

#include "ops/cuda/device_utils.cuh"

namespace tessera::cuda::launch {
namespace {

using dev::grid_for;
using dev::kThreads;

// out (A, S) = sums of x (A, R) over S consecutive chunks of `chunk` elements of each row:
// one block per (row, chunk).
template <class T>
__global__ void __launch_bounds__(dev::kMaxRowThreads)
sum_rows_kernel(const T* x, T* out, i64 A, i64 R, i64 S, i64 chunk) {
  for (i64 task = blockIdx.x; task < A * S; task += gridDim.x) {
    const i64 a = task / S, s = task % S;
    const i64 r0 = s * chunk;
    const i64 r1 = r0 + chunk < R ? r0 + chunk : R;
    const T* p = x + a * R;
    T acc = T(0);
    for (i64 r = r0 + threadIdx.x; r < r1; r += blockDim.x) acc += p[r];
    acc = dev::block_reduce(acc, dev::SumOp{}, T(0));
    if (threadIdx.x == 0) out[task] = acc;
  }
}

// out (A, S, B): thread (a, s, b) sums x[a, r, b] for r in chunk s; neighbours read
// neighbouring b, so the loads coalesce.
template <class T>
__global__ void __launch_bounds__(dev::kThreads)
sum_middle_kernel(const T* x, T* out, i64 A, i64 R, i64 B, i64 S, i64 chunk) {
  TESSERA_GRID_LOOP(t, A * S * B) {
    const i64 b = t % B;
    const i64 s = (t / B) % S;
    const i64 a = t / (B * S);
    const i64 r0 = s * chunk;
    const i64 r1 = r0 + chunk < R ? r0 + chunk : R;
    const T* p = x + (a * R + r0) * B + b;
    T acc = T(0);
    for (i64 r = r0; r < r1; ++r, p += B) acc += *p;
    out[t] = acc;
  }
}

// (value, flat offset) candidates for max: NaN beats numbers, larger beats smaller, and
// among equals the smaller offset (the first in row-major order) wins.
template <class T>
__device__ __forceinline__ bool better(T v1, i64 i1, T v2, i64 i2) {
  const bool n1 = v1 != v1, n2 = v2 != v2;
  if (n1 != n2) return n1;
  if (!n1 && v1 != v2) return v1 > v2;
  return i1 < i2;
}

template <class T>
__device__ __forceinline__ void scan_group(const T* x, i64 base, const Plan<1>& reduced, i64 first,
                                           i64 group, i64 step, T& best, i64& best_at) {
  for (i64 r = first; r < group; r += step) {
    const i64 off = base + dev::plan_offset(reduced, r);
    const T v = x[off];
    if (better(v, off, best, best_at)) {
      best = v;
      best_at = off;
    }
  }
}

// One thread per output: for small groups.
template <class T>
__global__ void __launch_bounds__(dev::kThreads)
max_thread_kernel(const T* x, T* out, i64* argmax, i64 n_out, Plan<1> kept,
                                  Plan<1> reduced, i64 group) {
  TESSERA_GRID_LOOP(o, n_out) {
    T best = dev::neg_infinity<T>();
    i64 best_at = LLONG_MAX;
    scan_group(x, dev::plan_offset(kept, o), reduced, 0, group, 1, best, best_at);
    out[o] = best;
    argmax[o] = best_at;
  }
}

// One warp per output.
template <class T>
__global__ void __launch_bounds__(dev::kThreads)
max_warp_kernel(const T* x, T* out, i64* argmax, i64 n_out, Plan<1> kept,
                                Plan<1> reduced, i64 group) {
  const int lane = threadIdx.x & 31;
  const i64 warps = static_cast<i64>(gridDim.x) * (blockDim.x >> 5);
  for (i64 o = dev::global_index() >> 5; o < n_out; o += warps) {
    T best = dev::neg_infinity<T>();
    i64 best_at = LLONG_MAX;
    scan_group(x, dev::plan_offset(kept, o), reduced, lane, group, 32, best, best_at);
    for (int d = 16; d > 0; d >>= 1) {
      const T v = __shfl_xor_sync(0xffffffffu, best, d);
      const i64 at = __shfl_xor_sync(0xffffffffu, best_at, d);
      if (better(v, at, best, best_at)) {
        best = v;
        best_at = at;
      }
    }
    if (lane == 0) {
      out[o] = best;
      argmax[o] = best_at;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
scatter_add_flat_kernel(T* dst, const i64* index, const T* src, i64 n) {
  TESSERA_GRID_LOOP(i, n) atomicAdd(dst + index[i], src[i]);
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
sum_squares_kernel(const T* x, i64 n, double* partial) {
  double s = 0.0;
  TESSERA_GRID_LOOP(i, n) {
    const double v = static_cast<double>(x[i]);
    s += v * v;
  }
  s = dev::block_reduce(s, dev::SumOp{}, 0.0);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void __launch_bounds__(dev::kMaxRowThreads)
sum_doubles_kernel(const double* x, i64 n, double* out) {
  double s = 0.0;
  for (i64 i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
  s = dev::block_reduce(s, dev::SumOp{}, 0.0);
  if (threadIdx.x == 0) out[0] = s;
}

}  // namespace

void sum_rows(Elem t, const void* x, void* out, i64 A, i64 R, i64 chunk) {
  const i64 S = (R + chunk - 1) / chunk;
  const int threads = dev::row_threads(chunk);
  const unsigned blocks = static_cast<unsigned>(A * S < dev::kMaxBlocks ? A * S : dev::kMaxBlocks);
  if (t == Elem::f32)
    sum_rows_kernel<float><<<blocks, threads>>>(static_cast<const float*>(x), static_cast<float*>(out), A, R,
                                                S, chunk);
  else
    sum_rows_kernel<double><<<blocks, threads>>>(static_cast<const double*>(x), static_cast<double*>(out), A,
                                                 R, S, chunk);
  check_launch("sum");
}

void sum_middle(Elem t, const void* x, void* out, i64 A, i64 R, i64 B, i64 chunk) {
  const i64 S = (R + chunk - 1) / chunk;
  const i64 n = A * S * B;
  if (t == Elem::f32)
    sum_middle_kernel<float><<<grid_for(n), kThreads>>>(static_cast<const float*>(x),
                                                        static_cast<float*>(out), A, R, B, S, chunk);
  else
    sum_middle_kernel<double><<<grid_for(n), kThreads>>>(static_cast<const double*>(x),
                                                         static_cast<double*>(out), A, R, B, S, chunk);
  check_launch("sum");
}

void reduce_max(Elem t, const void* x, void* out, std::int64_t* argmax, i64 n_out, const Plan<1>& kept,
                const Plan<1>& reduced, i64 group_size) {
  auto* am = reinterpret_cast<i64*>(argmax);
  if (group_size <= 16) {
    if (t == Elem::f32)
      max_thread_kernel<float><<<grid_for(n_out), kThreads>>>(
          static_cast<const float*>(x), static_cast<float*>(out), am, n_out, kept, reduced, group_size);
    else
      max_thread_kernel<double><<<grid_for(n_out), kThreads>>>(
          static_cast<const double*>(x), static_cast<double*>(out), am, n_out, kept, reduced, group_size);
  } else {
    const unsigned blocks = grid_for(n_out * 32);
    if (t == Elem::f32)
      max_warp_kernel<float><<<blocks, kThreads>>>(static_cast<const float*>(x), static_cast<float*>(out),
                                                   am, n_out, kept, reduced, group_size);
    else
      max_warp_kernel<double><<<blocks, kThreads>>>(static_cast<const double*>(x),
                                                    static_cast<double*>(out), am, n_out, kept, reduced,
                                                    group_size);
  }
  check_launch("max");
}

void scatter_add_flat(Elem t, void* dst, const std::int64_t* index, const void* src, i64 n) {
  const auto* idx = reinterpret_cast<const i64*>(index);
  if (t == Elem::f32)
    scatter_add_flat_kernel<float><<<grid_for(n), kThreads>>>(static_cast<float*>(dst), idx,
                                                              static_cast<const float*>(src), n);
  else
    scatter_add_flat_kernel<double><<<grid_for(n), kThreads>>>(static_cast<double*>(dst), idx,
                                                               static_cast<const double*>(src), n);
  check_launch("scatter_add_flat");
}

int sum_squares_partial(Elem t, const void* x, i64 n, double* partial, int max_blocks) {
  unsigned blocks = grid_for(n);
  if (blocks > static_cast<unsigned>(max_blocks)) blocks = static_cast<unsigned>(max_blocks);
  if (t == Elem::f32)
    sum_squares_kernel<float><<<blocks, kThreads>>>(static_cast<const float*>(x), n, partial);
  else
    sum_squares_kernel<double><<<blocks, kThreads>>>(static_cast<const double*>(x), n, partial);
  check_launch("squared_norm");
  return static_cast<int>(blocks);
}

void sum_doubles(const double* x, i64 n, double* out) {
  sum_doubles_kernel<<<1, dev::kMaxRowThreads>>>(x, n, out);
  check_launch("squared_norm");
}

}  // namespace tessera::cuda::launch
