// CUDA runtime glue: GPU detection, device allocator and copies (registered at load), cuBLAS, checks.
#include "ops/cuda/runtime.h"

#include <limits>

#include "tessera/ops/kernels.h"

namespace tessera {

namespace {

// The kernels are compiled for sm_80 and sm_90 (CMakeLists.txt), so older GPUs cannot run
// them: they count as unusable rather than failing at the first launch.
bool gpu_usable() {
  static const bool available = [] {
    constexpr int kMinComputeMajor = 8;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      cudaGetLastError();  // no driver or no device: not an error for a CPU-only run
      return false;
    }
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return major >= kMinComputeMajor;
  }();
  return available;
}

}  // namespace

namespace cuda {
namespace {

void* raw_alloc(std::size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();  // the caching allocator frees its cache and retries, then throws
    return nullptr;
  }
  return p;
}

// Called from destructors and cache releases, where there is no one to report to; the error
// is cleared so that a later check does not blame an unrelated launch for it.
void raw_free(void* p) {
  if (cudaFree(p) != cudaSuccess) cudaGetLastError();
}

void check_device_index(const char* op, Device d) {
  TESSERA_CHECK(d.is_cpu() || d.index == 0, DeviceError,
                "{}: tensor on {}; the CUDA backend drives one GPU, cuda:0 (pick it with "
                "CUDA_VISIBLE_DEVICES)", op, d);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes) {
  check_device_index("device_copy", dst_device);
  check_device_index("device_copy", src_device);
  // cudaMemcpy waits for earlier kernels on the default stream before copying to the host.
  const cudaError_t status = cudaMemcpy(dst, src, bytes, cudaMemcpyDefault);
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw DeviceError(fmt::format(
        "device_copy: copying {} bytes from {} to {} failed: {} ({}); errors of earlier "
        "asynchronous kernels surface here, CUDA_LAUNCH_BLOCKING=1 reports them at their launch",
        bytes, src_device, dst_device, cudaGetErrorName(status), cudaGetErrorString(status)));
  }
}

// Registers the backend, and where a GPU can run it its allocator and copy function, when
// the library is loaded: the device layer (autograd/allocator.h) answers from that.
[[maybe_unused]] const bool g_registered = [] {
  register_device_backend(DeviceType::cuda);
  if (!gpu_usable()) return false;
  register_device_allocator(DeviceType::cuda, &cuda_allocator());
  register_device_copy(DeviceType::cuda, &copy_bytes);
  return true;
}();

}  // namespace

void throw_cuda_error(const char* op, const char* call, cudaError_t status) {
  cudaGetLastError();  // clear a non-sticky error so the next call does not report it again
  throw DeviceError(fmt::format("{}: {} failed: {} ({})", op, call, cudaGetErrorName(status),
                                cudaGetErrorString(status)));
}

void check_cublas(cublasStatus_t status, const char* op, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) [[unlikely]]
    throw DeviceError(fmt::format("{}: {} failed: {}", op, call, cublasGetStatusString(status)));
}

cublasHandle_t cublas_handle(const char* op) {
  struct Holder {
    cublasHandle_t handle = nullptr;
    ~Holder() {
      if (handle != nullptr) cublasDestroy(handle);
    }
  };
  thread_local Holder holder;
  if (holder.handle == nullptr) check_cublas(cublasCreate(&holder.handle), op, "cublasCreate");
  return holder.handle;
}

CachingAllocator& cuda_allocator() {
  // Leaked on purpose, like the CPU allocator: tensors in static objects may outlive it.
  // No cache limit: like PyTorch, the cache is only returned when cudaMalloc fails.
  static auto* alloc = [] {
    auto* a = new CachingAllocator(raw_alloc, raw_free, "cuda");
    a->set_cache_limit(std::numeric_limits<std::size_t>::max());
    return a;
  }();
  return *alloc;
}

launch::Elem elem_of(DType t) {
  switch (t) {
    case DType::f32: return launch::Elem::f32;
    case DType::f64: return launch::Elem::f64;
    case DType::bf16: return launch::Elem::bf16;
    case DType::i64: return launch::Elem::i64;
  }
  return launch::Elem::f32;
}

void require_cuda(const char* op, const Tensor& t, const char* name) {
  TESSERA_CHECK(t.defined(), Error, "{}: {} is undefined", op, name);
  TESSERA_CHECK(t.device().is_cuda(), DeviceError,
                "{}: {} {} is on {}; the CUDA kernel needs every tensor on cuda:0", op, name,
                shape_str(t.shape()), t.device());
  check_device_index(op, t.device());
}

void require_float(const char* op, const Tensor& t, const char* name) {
  require_cuda(op, t, name);
  TESSERA_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, DTypeError,
                "{}: {} {} has dtype {}; the CUDA kernel takes f32 or f64", op, name,
                shape_str(t.shape()), t.dtype());
}

void require_same_dtype(const char* op, const Tensor& a, const char* name_a, const Tensor& b,
                        const char* name_b) {
  TESSERA_CHECK(a.dtype() == b.dtype(), DTypeError, "{}: {} is {} but {} is {}", op, name_a,
                a.dtype(), name_b, b.dtype());
}

void require_numel(const char* op, const Tensor& t, std::int64_t numel, const char* name) {
  TESSERA_CHECK(t.numel() == numel, ShapeError, "{}: {} {} has {} elements, expected {}", op, name,
                shape_str(t.shape()), t.numel(), numel);
}

Tensor index_on_device(const char* op, const Tensor& index, const char* name) {
  TESSERA_CHECK(index.defined(), Error, "{}: {} is undefined", op, name);
  TESSERA_CHECK(index.dtype() == DType::i64, DTypeError, "{}: {} {} has dtype {}; i64 expected", op,
                name, shape_str(index.shape()), index.dtype());
  if (index.device().is_cpu()) return index.detach().to(Device::cuda());
  check_device_index(op, index.device());
  return index;
}

Tensor device_scratch(std::int64_t numel, DType dtype) {
  return empty({numel}, {.dtype = dtype, .device = Device::cuda()});
}

void fill_zero(void* ptr, std::size_t bytes, const char* op) {
  if (bytes == 0) return;
  check_cuda(cudaMemsetAsync(ptr, 0, bytes, nullptr), op, "cudaMemsetAsync");
}

void copy_on_device(void* dst, const void* src, std::size_t bytes, const char* op) {
  if (bytes == 0 || dst == src) return;
  check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, nullptr), op, "cudaMemcpyAsync");
}

std::vector<std::int64_t> broadcast_strides(const Shape& operand, const Shape& out) {
  std::vector<std::int64_t> s(out.size(), 0);
  std::int64_t stride = 1;
  for (std::size_t i = operand.size(); i-- > 0;) {
    const std::size_t oi = out.size() - (operand.size() - i);
    s[oi] = operand[i] == 1 ? 0 : stride;
    stride *= operand[i];
  }
  return s;
}

std::vector<std::int64_t> contiguous_strides(const Shape& shape) {
  std::vector<std::int64_t> s(shape.size(), 1);
  for (std::size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

template <int N>
launch::Plan<N> coalesced_plan(const char* op, const Shape& out,
                               const std::array<std::vector<std::int64_t>, N>& strides) {
  launch::Plan<N> plan;
  std::vector<std::int64_t> shape;
  std::array<std::vector<std::int64_t>, N> st;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 1) continue;
    if (!shape.empty()) {
      bool mergeable = true;  // the outer axis steps exactly over the inner one, for everyone
      for (int k = 0; k < N; ++k)
        if (st[k].back() != strides[k][i] * out[i]) mergeable = false;
      if (mergeable) {
        shape.back() *= out[i];
        for (int k = 0; k < N; ++k) st[k].back() = strides[k][i];
        continue;
      }
    }
    shape.push_back(out[i]);
    for (int k = 0; k < N; ++k) st[k].push_back(strides[k][i]);
  }
  if (shape.empty()) {  // a single element
    shape.push_back(1);
    for (int k = 0; k < N; ++k) st[k].push_back(0);
  }
  TESSERA_CHECK(shape.size() <= static_cast<std::size_t>(launch::kMaxDims), ShapeError,
                "{}: output {} needs {} non-mergeable axes; the CUDA kernels handle at most {}", op,
                shape_str(out), shape.size(), launch::kMaxDims);
  plan.rank = static_cast<int>(shape.size());
  for (int d = 0; d < plan.rank; ++d) {
    plan.shape[d] = shape[d];
    for (int k = 0; k < N; ++k) plan.strides[k][d] = st[k][d];
  }
  return plan;
}

template launch::Plan<1> coalesced_plan<1>(const char*, const Shape&,
                                           const std::array<std::vector<std::int64_t>, 1>&);
template launch::Plan<2> coalesced_plan<2>(const char*, const Shape&,
                                           const std::array<std::vector<std::int64_t>, 2>&);
template launch::Plan<3> coalesced_plan<3>(const char*, const Shape&,
                                           const std::array<std::vector<std::int64_t>, 3>&);

}  // namespace cuda

namespace cuda::launch {

void check_launch(const char* op) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) [[unlikely]]
    throw DeviceError(fmt::format(
        "{}: kernel launch failed: {} ({}); an error of an earlier asynchronous kernel can surface "
        "here, CUDA_LAUNCH_BLOCKING=1 reports it at its own launch",
        op, cudaGetErrorName(status), cudaGetErrorString(status)));
}

}  // namespace cuda::launch

}  // namespace tessera
