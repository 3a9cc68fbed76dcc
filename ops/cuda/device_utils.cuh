// Device-side helpers for the CUDA kernels: launch geometry, typed math, block reductions, plans.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "ops/cuda/launch.h"

namespace tessera::cuda::dev {

using launch::i64;

constexpr int kThreads = 256;      // grid-stride kernels
constexpr int kMaxRowThreads = 1024;  // one-block-per-row kernels (see row_threads)
// Grid-stride loops cover the rest; 2^16 blocks of 256 threads saturate any current GPU.
constexpr i64 kMaxBlocks = 65536;

inline unsigned grid_for(i64 n, int threads = kThreads) {
  i64 b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > kMaxBlocks) b = kMaxBlocks;
  return static_cast<unsigned>(b);
}

__device__ __forceinline__ i64 global_index() {
  return static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ i64 grid_stride() { return static_cast<i64>(gridDim.x) * blockDim.x; }

#define TESSERA_GRID_LOOP(i, n)                                                   \
  for (::tessera::cuda::launch::i64 i = ::tessera::cuda::dev::global_index(); i < (n); \
       i += ::tessera::cuda::dev::grid_stride())

// ---- typed math (float -> the f suffixed functions, double -> the plain ones)
__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return log(x); }
__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float d_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double d_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float d_erf(float x) { return erff(x); }
__device__ __forceinline__ double d_erf(double x) { return erf(x); }
__device__ __forceinline__ float d_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double d_pow(double x, double y) { return pow(x, y); }
__device__ __forceinline__ bool d_isnan(float x) { return x != x; }
__device__ __forceinline__ bool d_isnan(double x) { return x != x; }

template <class T> __device__ __forceinline__ T neg_infinity();
template <> __device__ __forceinline__ float neg_infinity<float>() { return -__int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double neg_infinity<double>() {
  return -__longlong_as_double(0x7ff0000000000000LL);
}
template <class T> __device__ __forceinline__ T quiet_nan();
template <> __device__ __forceinline__ float quiet_nan<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ __forceinline__ double quiet_nan<double>() {
  return __longlong_as_double(0x7ff8000000000000LL);
}

struct SumOp {
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {  // NaN-propagating, like a serial loop that lets NaN win
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const {
    if (a != a) return a;
    if (b != b) return b;
    return a > b ? a : b;
  }
};

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Reduces v over the block and returns the result to every thread. Every thread of the
// block must call it (blockDim.x a multiple of 32, at most 1024); safe to call repeatedly.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = static_cast<int>(blockDim.x >> 5);
  v = warp_reduce(v, op);
  __syncthreads();  // earlier readers of `partial` are done
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  T r = lane < warps ? partial[lane] : identity;
  return warp_reduce(r, op);
}

// Threads per block for one-block-per-row kernels: enough for the row, a multiple of 32.
inline int row_threads(i64 len) {
  if (len <= 32) return 32;
  if (len <= 64) return 64;
  if (len <= 128) return 128;
  if (len <= 256) return 256;
  if (len <= 2048) return 512;
  return kMaxRowThreads;
}

// Offsets of output element i in each operand of a plan.
template <int N>
__device__ __forceinline__ void plan_offsets(const launch::Plan<N>& p, i64 i, i64 (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = p.rank - 1; d >= 0; --d) {
    const i64 size = p.shape[d];
    const i64 idx = i % size;
    i /= size;
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += idx * p.strides[k][d];
  }
}

__device__ __forceinline__ i64 plan_offset(const launch::Plan<1>& p, i64 i) {
  i64 off[1];
  plan_offsets<1>(p, i, off);
  return off[0];
}

// Element types by size, for dtype-agnostic copies.
template <std::size_t S> struct Bits;
template <> struct Bits<2> { using type = unsigned short; };
template <> struct Bits<4> { using type = unsigned int; };
template <> struct Bits<8> { using type = unsigned long long; };

}  // namespace tessera::cuda::dev
