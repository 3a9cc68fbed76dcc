// CUDA kernels for index_select, gather and their scatters (index_add, scatter_add).

// The scatters are atomic because indices may repeat. Indices are validated by the ops; an
// out-of-range one is skipped (selects read as 0) rather than faulting the device.

#include "ops/cuda/device_utils.cuh"

namespace tessera::cuda::launch {
namespace {

using dev::grid_for;
using dev::kThreads;

// out (A, n, B)
template <class U>
__global__ void __launch_bounds__(dev::kThreads)
index_select_kernel(const U* x, const i64* index, U* out, i64 A, i64 L, i64 B, i64 n) {
  TESSERA_GRID_LOOP(t, A * n * B) {
    const i64 b = t % B;
    const i64 i = (t / B) % n;
    const i64 a = t / (B * n);
    const i64 j = index[i];
    out[t] = (j >= 0 && j < L) ? x[(a * L + j) * B + b] : U(0);
  }
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
index_add_kernel(const T* src, const i64* index, T* out, i64 A, i64 L, i64 B, i64 n) {
  TESSERA_GRID_LOOP(t, A * n * B) {
    const i64 b = t % B;
    const i64 i = (t / B) % n;
    const i64 a = t / (B * n);
    const i64 j = index[i];
    if (j >= 0 && j < L) atomicAdd(out + (a * L + j) * B + b, src[t]);
  }
}

// index and out share the shape (A, n, B)
template <class U>
__global__ void __launch_bounds__(dev::kThreads)
gather_kernel(const U* x, const i64* index, U* out, i64 A, i64 L, i64 B, i64 n) {
  TESSERA_GRID_LOOP(t, A * n * B) {
    const i64 b = t % B;
    const i64 a = t / (B * n);
    const i64 j = index[t];
    out[t] = (j >= 0 && j < L) ? x[(a * L + j) * B + b] : U(0);
  }
}

template <class T>
__global__ void __launch_bounds__(dev::kThreads)
scatter_add_kernel(const T* src, const i64* index, T* out, i64 A, i64 L, i64 B, i64 n) {
  TESSERA_GRID_LOOP(t, A * n * B) {
    const i64 b = t % B;
    const i64 a = t / (B * n);
    const i64 j = index[t];
    if (j >= 0 && j < L) atomicAdd(out + (a * L + j) * B + b, src[t]);
  }
}

// Runs K<U> for the unsigned type of `size` bytes.
#define TESSERA_BY_SIZE(size, KERNEL, ...)                                              \
  do {                                                                                 \
    if ((size) == 2) {                                                                 \
      using U = dev::Bits<2>::type;                                                    \
      KERNEL<U><<<grid_for(total), kThreads>>>(__VA_ARGS__);                           \
    } else if ((size) == 4) {                                                          \
      using U = dev::Bits<4>::type;                                                    \
      KERNEL<U><<<grid_for(total), kThreads>>>(__VA_ARGS__);                           \
    } else {                                                                           \
      using U = dev::Bits<8>::type;                                                    \
      KERNEL<U><<<grid_for(total), kThreads>>>(__VA_ARGS__);                           \
    }                                                                                  \
  } while (0)

}  // namespace

void index_select(std::size_t elem_size, const void* x, const std::int64_t* index, void* out, i64 A,
                  i64 L, i64 B, i64 n) {
  const i64 total = A * n * B;
  TESSERA_BY_SIZE(elem_size, index_select_kernel, static_cast<const U*>(x), index, static_cast<U*>(out),
                  A, L, B, n);
  check_launch("index_select");
}

void index_add(Elem t, const void* src, const std::int64_t* index, void* out, i64 A, i64 L, i64 B, i64 n) {
  const i64 total = A * n * B;
  if (t == Elem::f32)
    index_add_kernel<float><<<grid_for(total), kThreads>>>(static_cast<const float*>(src), index,
                                                           static_cast<float*>(out), A, L, B, n);
  else
    index_add_kernel<double><<<grid_for(total), kThreads>>>(static_cast<const double*>(src), index,
                                                            static_cast<double*>(out), A, L, B, n);
  check_launch("index_add");
}

void gather(std::size_t elem_size, const void* x, const std::int64_t* index, void* out, i64 A, i64 L,
            i64 B, i64 n) {
  const i64 total = A * n * B;
  TESSERA_BY_SIZE(elem_size, gather_kernel, static_cast<const U*>(x), index, static_cast<U*>(out), A, L,
                  B, n);
  check_launch("gather");
}

void scatter_add(Elem t, const void* src, const std::int64_t* index, void* out, i64 A, i64 L, i64 B, i64 n) {
  const i64 total = A * n * B;
  if (t == Elem::f32)
    scatter_add_kernel<float><<<grid_for(total), kThreads>>>(static_cast<const float*>(src), index,
                                                             static_cast<float*>(out), A, L, B, n);
  else
    scatter_add_kernel<double><<<grid_for(total), kThreads>>>(static_cast<const double*>(src), index,
                                                              static_cast<double*>(out), A, L, B, n);
  check_launch("scatter_add");
}

}  // namespace tessera::cuda::launch
