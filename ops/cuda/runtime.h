// Host-side helpers of the CUDA backend: status checks, cuBLAS handle, scratch memory, stride plans.
#pragma once

#include <array>
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "tessera/autograd/tensor.h"
#include "ops/cuda/launch.h"

namespace tessera::cuda {

// Throws DeviceError("<op>: <call> failed: <error name> (<error string>)").
[[noreturn]] void throw_cuda_error(const char* op, const char* call, cudaError_t status);
inline void check_cuda(cudaError_t status, const char* op, const char* call) {
  if (status != cudaSuccess) [[unlikely]] throw_cuda_error(op, call, status);
}
void check_cublas(cublasStatus_t status, const char* op, const char* call);

// This thread's cuBLAS handle (created on first use; work goes to the default stream).
cublasHandle_t cublas_handle(const char* op);

// The caching allocator behind Device::cuda() tensors.
CachingAllocator& cuda_allocator();

launch::Elem elem_of(DType t);

// Argument checks: DeviceError unless `t` is defined and on cuda:0; DTypeError unless f32/f64
// (require_float) or i64 (require_index).
void require_cuda(const char* op, const Tensor& t, const char* name);
void require_float(const char* op, const Tensor& t, const char* name);
void require_same_dtype(const char* op, const Tensor& a, const char* name_a, const Tensor& b,
                        const char* name_b);
void require_numel(const char* op, const Tensor& t, std::int64_t numel, const char* name);
// An i64 index tensor on the GPU: copied there when the caller passed a CPU one.
Tensor index_on_device(const char* op, const Tensor& index, const char* name = "index");

// Uninitialised device memory from the caching allocator, released when the tensor dies.
// Safe to drop right after enqueueing kernels: everything runs on the one default stream,
// so a later user of the block is ordered after them.
Tensor device_scratch(std::int64_t numel, DType dtype);
void fill_zero(void* ptr, std::size_t bytes, const char* op);
void copy_on_device(void* dst, const void* src, std::size_t bytes, const char* op);

// A coalesced plan over `out` for operands with the given per-axis element strides
// (0 on broadcast axes): size-1 axes are dropped and axes merged where every operand
// allows it. Throws ShapeError naming `op` past launch::kMaxDims axes.
template <int N>
launch::Plan<N> coalesced_plan(const char* op, const Shape& out,
                               const std::array<std::vector<std::int64_t>, N>& strides);
inline launch::Plan<1> coalesced_plan(const char* op, const Shape& out, std::vector<std::int64_t> strides) {
  return coalesced_plan<1>(op, out, std::array<std::vector<std::int64_t>, 1>{std::move(strides)});
}
// Strides of `operand` broadcast against `out` (right-aligned, 0 on size-1 axes).
std::vector<std::int64_t> broadcast_strides(const Shape& operand, const Shape& out);
std::vector<std::int64_t> contiguous_strides(const Shape& shape);

}  // namespace tessera::cuda
