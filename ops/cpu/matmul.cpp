// Matrix products: f32 through oneDNN matmul (transposes and batch broadcasting expressed
// as strides, no copies), f64 through reference loops.
#include "ops/cpu/dnnl_utils.h"
#include "tessera/ops/kernels.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

// Row-major strides of `shape`, with the last two axes swapped when `transposed`:
// the logical (..., R, C) view of a stored (..., C, R) operand.
struct Operand {
  dnnl::memory::dims dims, strides;
};

Operand operand_view(const Shape& stored, std::size_t rank, bool transposed) {
  Shape s(rank - stored.size(), 1);
  s.insert(s.end(), stored.begin(), stored.end());
  Operand op;
  op.dims = to_dims(s);
  op.strides.assign(rank, 0);
  std::int64_t st = 1;
  for (std::size_t i = rank; i-- > 0;) {
    op.strides[i] = st;
    st *= s[i];
  }
  if (transposed) {
    std::swap(op.dims[rank - 1], op.dims[rank - 2]);
    std::swap(op.strides[rank - 1], op.strides[rank - 2]);
  }
  return op;
}

// f32, or bf16 operands with an f32 or bf16 result (AVX-512 BF16 dot products).
void matmul_dnnl(const Tensor& a, const Tensor& b, bool ta, bool tb, Tensor& out) {
  const std::size_t rank = out.shape().size();
  const Operand va = operand_view(a.shape(), rank, ta), vb = operand_view(b.shape(), rank, tb);
  struct Entry { dnnl::matmul prim; dnnl::memory::desc a, b, o; };
  PrimitiveKey key{10, ta, tb, static_cast<std::int64_t>(a.dtype()), static_cast<std::int64_t>(out.dtype())};
  key.add(a.shape()).add(b.shape());
  const Entry& e = cached_primitive<Entry>(key, [&] {
    return dnnl_call("matmul", {&a, &b, &out}, [&] {
      auto ma = strided_md(va.dims, va.strides, a.dtype());
      auto mb = strided_md(vb.dims, vb.strides, b.dtype());
      auto mo = plain_md(out.shape(), out.dtype());
      dnnl::matmul::desc d(ma, mb, mo);
      return Entry{dnnl::matmul(dnnl::matmul::primitive_desc(d, dnnl_engine())), ma, mb, mo};
    });
  });
  dnnl_call("matmul", {&a, &b, &out}, [&] {
    execute(e.prim, {{DNNL_ARG_SRC, wrap(e.a, a.raw_data())},
                     {DNNL_ARG_WEIGHTS, wrap(e.b, b.raw_data())},
                     {DNNL_ARG_DST, wrap(e.o, out.raw_data())}});
  });
}

template <class T>
void matmul_ref(const Tensor& a, const Tensor& b, bool ta, bool tb, Tensor& out) {
  const std::size_t rank = out.shape().size();
  const Operand va = operand_view(a.shape(), rank, ta), vb = operand_view(b.shape(), rank, tb);
  const std::int64_t M = out.shape()[rank - 2], N = out.shape()[rank - 1], K = va.dims[rank - 1];
  const std::int64_t batch = out.numel() / std::max<std::int64_t>(M * N, 1);
  const T* pa = static_cast<const T*>(a.raw_data());
  const T* pb = static_cast<const T*>(b.raw_data());
  T* po = static_cast<T*>(out.raw_data());
#pragma omp parallel for schedule(static) if (batch * M * N * K > 65536)
  for (std::int64_t bm = 0; bm < batch * M; ++bm) {
    const std::int64_t bi = bm / M, i = bm % M;
    // Offsets of this batch element in a and b (broadcast axes contribute nothing).
    std::int64_t oa = 0, ob = 0, rem = bi;
    for (std::size_t ax = rank - 2; ax-- > 0;) {
      const std::int64_t idx = rem % out.shape()[ax];
      rem /= out.shape()[ax];
      if (va.dims[ax] != 1) oa += idx * va.strides[ax];
      if (vb.dims[ax] != 1) ob += idx * vb.strides[ax];
    }
    T* row = po + bm * N;
    for (std::int64_t j = 0; j < N; ++j) row[j] = T(0);
    for (std::int64_t k = 0; k < K; ++k) {
      const T av = pa[oa + i * va.strides[rank - 2] + k * va.strides[rank - 1]];
      const T* brow = pb + ob + k * vb.strides[rank - 2];
      const std::int64_t bs = vb.strides[rank - 1];
      for (std::int64_t j = 0; j < N; ++j) row[j] += av * brow[j * bs];
    }
  }
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, bool ta, bool tb, Tensor& out) {
  if (out.numel() == 0) return;
  if (a.shape()[a.dim() - (ta ? 2 : 1)] == 0) {  // K == 0: an empty sum
    out.fill_(0.0);
    return;
  }
  if (a.dtype() == DType::f32 || a.dtype() == DType::bf16) return matmul_dnnl(a, b, ta, tb, out);
  dispatch_float(a.dtype(), "matmul", [&](auto tag) {
    matmul_ref<typename decltype(tag)::type>(a, b, ta, tb, out);
  });
}

void linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) {
  const std::int64_t M = x.shape()[0], K = x.shape()[1], N = w.shape()[0];
  if (out.numel() == 0) return;
  // f32, or bf16 x and w (mixed precision) with an f32 bias and result.
  if (x.dtype() == DType::f32 || x.dtype() == DType::bf16) {
    struct Entry { dnnl::matmul prim; dnnl::memory::desc x, w, b, o; };
    const bool has_bias = bias.defined();
    const Entry& e = cached_primitive<Entry>(PrimitiveKey{11, M, K, N, has_bias, static_cast<std::int64_t>(x.dtype())}, [&] {
      return dnnl_call("linear", {&x, &w, &out}, [&] {
        auto mx = plain_md({M, K}, x.dtype());
        auto mw = strided_md({K, N}, {1, K}, w.dtype());  // w (N, K) read as w^T
        auto mb = has_bias ? plain_md({1, N}, DType::f32) : dnnl::memory::desc();
        auto mo = plain_md({M, N}, DType::f32);
        dnnl::matmul::desc d = has_bias ? dnnl::matmul::desc(mx, mw, mb, mo) : dnnl::matmul::desc(mx, mw, mo);
        return Entry{dnnl::matmul(dnnl::matmul::primitive_desc(d, dnnl_engine())), mx, mw, mb, mo};
      });
    });
    dnnl_call("linear", {&x, &w, &out}, [&] {
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(e.x, x.raw_data())},
                                                 {DNNL_ARG_WEIGHTS, wrap(e.w, w.raw_data())},
                                                 {DNNL_ARG_DST, wrap(e.o, out.raw_data())}};
      if (has_bias) args.emplace(DNNL_ARG_BIAS, wrap(e.b, bias.raw_data()));
      execute(e.prim, args);
    });
    return;
  }
  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pw = static_cast<const T*>(w.raw_data());
    const T* pb = bias.defined() ? static_cast<const T*>(bias.raw_data()) : nullptr;
    T* po = static_cast<T*>(out.raw_data());
#pragma omp parallel for schedule(static) if (M * N * K > 65536)
    for (std::int64_t i = 0; i < M; ++i)
      for (std::int64_t j = 0; j < N; ++j) {
        T s = pb ? pb[j] : T(0);
        for (std::int64_t k = 0; k < K; ++k) s += px[i * K + k] * pw[j * K + k];
        po[i * N + j] = s;
      }
  });
}

TESSERA_CPU_ISA_END
