#include "ops/cpu/dnnl_utils.h"

#include "tessera/ops/cpu_info.h"

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

void throw_dnnl_error(const char* op, std::initializer_list<const Tensor*> operands, const dnnl::error& e) {
  std::string what;
  bool bf16 = false;
  for (const Tensor* t : operands) {
    what += fmt::format("{}{} {}", what.empty() ? "" : ", ", shape_str(t->shape()), t->dtype());
    bf16 = bf16 || t->dtype() == DType::bf16;
  }
  const std::string on = what.empty() ? "" : fmt::format(" on {}", what);
  const CpuInfo& cpu = cpu_info();
  const std::string isa = fmt::format("oneDNN ISA {}{}", cpu.onednn_isa, cpu.isa_cap.empty() ? "" : ", " + cpu.isa_cap);
  switch (e.status) {
    case dnnl_unimplemented:
      if (bf16 && !cpu.bf16) throw DeviceError(fmt::format("{}{}: {}", op, on, bf16_unavailable_reason()));
      throw DeviceError(fmt::format("{}: this CPU has no kernel for it{} ({}; {})", op, on, cpu.model, isa));
    case dnnl_out_of_memory:
      throw Error(fmt::format("{}: out of memory{}", op, on));
    default:
      // Anything else is a Tessera bug (arguments oneDNN rejects): say so, with its status.
      throw Error(fmt::format("{}: internal error{}: oneDNN status {} ({}; {}); please report it", op, on,
                              static_cast<int>(e.status), cpu.model, isa));
  }
}

}  // namespace tessera::cpu
