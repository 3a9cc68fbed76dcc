#include "ops/cpu/dnnl_utils.h"

namespace tessera::cpu {

dnnl::engine& dnnl_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& dnnl_stream() {
  thread_local dnnl::stream stream(dnnl_engine());
  return stream;
}

dnnl::memory::data_type dnnl_dtype(DType t) {
  switch (t) {
    case DType::f32: return dnnl::memory::data_type::f32;
    case DType::bf16: return dnnl::memory::data_type::bf16;
    default: throw DTypeError(fmt::format("oneDNN: no kernels for dtype {}", t));
  }
}

dnnl::memory::desc plain_md(const Shape& shape, DType t) {
  dnnl::memory::dims dims = shape.empty() ? dnnl::memory::dims{1} : to_dims(shape);
  dnnl::memory::dims strides(dims.size());
  std::int64_t s = 1;
  for (std::size_t i = dims.size(); i-- > 0;) {
    strides[i] = s;
    s *= dims[i];
  }
  return dnnl::memory::desc(dims, dnnl_dtype(t), strides);
}

dnnl::memory::desc strided_md(const dnnl::memory::dims& dims, const dnnl::memory::dims& strides,
                              DType t) {
  return dnnl::memory::desc(dims, dnnl_dtype(t), strides);
}

dnnl::memory wrap(const dnnl::memory::desc& md, const void* ptr) {
  return dnnl::memory(md, dnnl_engine(), const_cast<void*>(ptr));
}

void execute(const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args) {
  p.execute(dnnl_stream(), args);
  dnnl_stream().wait();
}

}  // namespace tessera::cpu
