// CUDA matmul, linear and conv2d (forward and both backwards) as cuBLAS GEMMs.

// cuBLAS is column-major; a row-major (R, C) matrix is its column-major transpose, so the
// row-major C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T. Batch
// broadcasting becomes zero batch strides, transposes become cuBLAS ops: no copies.

#include <algorithm>
#include <climits>
#include <type_traits>

#include "ops/cuda/runtime.h"
#include "tessera/ops/kernels.h"
#include "tessera/ops/ops.h"

namespace tessera::cuda {
namespace {

using launch::Elem;

int to_int(const char* op, std::int64_t v, const char* what) {
  TESSERA_CHECK(v >= 0 && v <= INT_MAX, DeviceError,
                "{}: {} = {} exceeds cuBLAS's 32-bit sizes", op, what, v);
  return static_cast<int>(v);
}

// Row-major C[i] (M, N) = alpha op(A[i]) op(B[i]) + beta C[i] for i < batch, where A[i] =
// A + i * stride_a (0 broadcasts) and lda/ldb/ldc are the row lengths of the stored matrices.
template <class T>
void gemm(const char* op, bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, const T* A,
          std::int64_t lda, std::int64_t stride_a, const T* B, std::int64_t ldb, std::int64_t stride_b,
          T beta, T* C, std::int64_t ldc, std::int64_t stride_c, std::int64_t batch) {
  const T alpha = T(1);
  const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = to_int(op, N, "N"), n = to_int(op, M, "M"), k = to_int(op, K, "K");
  const int la = to_int(op, lda, "lda"), lb = to_int(op, ldb, "ldb"), lc = to_int(op, ldc, "ldc");
  const int count = to_int(op, batch, "batch");
  cublasHandle_t h = cublas_handle(op);
  if constexpr (std::is_same_v<T, float>) {
    check_cublas(cublasSgemmStridedBatched(h, op_b, op_a, m, n, k, &alpha, B, lb, stride_b, A, la, stride_a,
                                           &beta, C, lc, stride_c, count),
                 op, "cublasSgemmStridedBatched");
  } else {
    check_cublas(cublasDgemmStridedBatched(h, op_b, op_a, m, n, k, &alpha, B, lb, stride_b, A, la, stride_a,
                                           &beta, C, lc, stride_c, count),
                 op, "cublasDgemmStridedBatched");
  }
}

// One axis of the batch: its size and each operand's element stride (0: broadcast).
struct BatchAxis { std::int64_t size, a, b, c; };

template <class T>
void matmul_t(const Tensor& a, const Tensor& b, bool ta, bool tb, Tensor& out) {
  const std::size_t rank = out.shape().size();
  const std::int64_t M = out.shape()[rank - 2], N = out.shape()[rank - 1];
  const std::int64_t K = a.shape()[a.dim() - (ta ? 2 : 1)];
  const std::int64_t lda = ta ? M : K, ldb = tb ? K : N;
  const T* pa = static_cast<const T*>(a.raw_data());
  const T* pb = static_cast<const T*>(b.raw_data());
  T* pc = static_cast<T*>(out.raw_data());

  // Batch axes, right-aligned against out's; strides in elements, 0 where an operand broadcasts.
  const std::size_t nbatch = rank - 2;
  std::vector<BatchAxis> axes;
  std::int64_t sa = M * K, sb = K * N, sc = M * N;
  std::int64_t batch_a = 1, batch_b = 1;
  for (std::size_t i = nbatch; i-- > 0;) {
    const auto from_right = static_cast<std::int64_t>(nbatch - i);  // 1 for the innermost batch axis
    const std::int64_t ia = a.dim() - 2 - from_right, ib = b.dim() - 2 - from_right;
    const std::int64_t da = ia >= 0 ? a.shape()[ia] : 1, db = ib >= 0 ? b.shape()[ib] : 1;
    const std::int64_t size = out.shape()[i];
    TESSERA_CHECK((da == size || da == 1) && (db == size || db == 1), ShapeError,
                  "matmul: batch axes of a {} and b {} do not broadcast to out {}", shape_str(a.shape()),
                  shape_str(b.shape()), shape_str(out.shape()));
    axes.push_back({size, da == 1 ? 0 : sa, db == 1 ? 0 : sb, sc});
    sa *= da;
    sb *= db;
    sc *= size;
    batch_a *= da;
    batch_b *= db;
  }
  std::reverse(axes.begin(), axes.end());
  const std::int64_t batch = out.numel() / (M * N);

  // b shared by the whole batch and a not transposed: fold the batch into M, one GEMM.
  if (batch_b == 1 && batch_a == batch && !ta) {
    gemm<T>("matmul", false, tb, batch * M, N, K, pa, lda, 0, pb, ldb, 0, T(0), pc, N, 0, 1);
    return;
  }
  // Coalesce the batch axes; the innermost becomes the strided batch, the rest a host loop.
  std::vector<BatchAxis> merged;
  for (const BatchAxis& ax : axes) {
    if (ax.size == 1) continue;
    if (!merged.empty()) {
      BatchAxis& o = merged.back();
      if (o.a == ax.a * ax.size && o.b == ax.b * ax.size && o.c == ax.c * ax.size) {
        o = {o.size * ax.size, ax.a, ax.b, ax.c};
        continue;
      }
    }
    merged.push_back(ax);
  }
  if (merged.empty()) merged.push_back({1, 0, 0, 0});
  const BatchAxis inner = merged.back();
  merged.pop_back();
  std::int64_t outer = 1;
  for (const BatchAxis& ax : merged) outer *= ax.size;
  for (std::int64_t o = 0; o < outer; ++o) {
    std::int64_t oa = 0, ob = 0, oc = 0, rem = o;
    for (std::size_t i = merged.size(); i-- > 0;) {
      const std::int64_t idx = rem % merged[i].size;
      rem /= merged[i].size;
      oa += idx * merged[i].a;
      ob += idx * merged[i].b;
      oc += idx * merged[i].c;
    }
    gemm<T>("matmul", ta, tb, M, N, K, pa + oa, lda, inner.a, pb + ob, ldb, inner.b, T(0), pc + oc, N,
            inner.c, inner.size);
  }
}

// ---- conv2d

constexpr std::int64_t kColumnBudget = std::int64_t{64} << 20;  // elements of im2col scratch

struct ConvShapes {
  std::int64_t B, C, H, W, O, KH, KW, OH, OW;
  launch::ConvGeometry geometry() const { return {C, H, W, KH, KW, OH, OW, 0, 0, 0, 0}; }
};

ConvShapes conv_shapes(const char* op, const Shape& x, const Shape& w, const Shape& y,
                       const Conv2dOptions& o) {
  TESSERA_CHECK(x.size() == 4 && w.size() == 4 && y.size() == 4, ShapeError,
                "{}: x {}, weight {} and y {} must all be 4-D ((B, C, H, W), (O, C, KH, KW), "
                "(B, O, OH, OW))", op, shape_str(x), shape_str(w), shape_str(y));
  TESSERA_CHECK(o.stride_h >= 1 && o.stride_w >= 1 && o.pad_h >= 0 && o.pad_w >= 0, Error,
                "{}: strides must be >= 1 and padding >= 0, got stride ({}, {}) padding ({}, {})", op,
                o.stride_h, o.stride_w, o.pad_h, o.pad_w);
  ConvShapes s{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0};
  const std::int64_t hp = s.H + 2 * o.pad_h, wp = s.W + 2 * o.pad_w;
  TESSERA_CHECK(w[1] == s.C && hp >= s.KH && wp >= s.KW, ShapeError,
                "{}: weight {} does not fit x {} with padding ({}, {})", op, shape_str(w), shape_str(x),
                o.pad_h, o.pad_w);
  s.OH = (hp - s.KH) / o.stride_h + 1;
  s.OW = (wp - s.KW) / o.stride_w + 1;
  const Shape want{s.B, s.O, s.OH, s.OW};
  TESSERA_CHECK(y == want, ShapeError, "{}: output {} should be {} for x {} and weight {}", op,
                shape_str(y), shape_str(want), shape_str(x), shape_str(w));
  return s;
}

launch::ConvGeometry geometry(const ConvShapes& s, const Conv2dOptions& o) {
  launch::ConvGeometry g = s.geometry();
  g.stride_h = o.stride_h;
  g.stride_w = o.stride_w;
  g.pad_h = o.pad_h;
  g.pad_w = o.pad_w;
  return g;
}

// A 1x1 kernel with stride 1 and no padding: the column buffer is x itself.
bool is_pointwise(const ConvShapes& s, const Conv2dOptions& o) {
  return s.KH == 1 && s.KW == 1 && o.stride_h == 1 && o.stride_w == 1 && o.pad_h == 0 && o.pad_w == 0;
}

// Images per chunk so that `per_image` scratch elements stay within the budget.
std::int64_t images_per_chunk(std::int64_t B, std::int64_t per_image) {
  return std::clamp<std::int64_t>(kColumnBudget / std::max<std::int64_t>(per_image, 1), 1, B);
}

template <class T>
void conv2d_forward_t(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& o, Tensor& y) {
  const ConvShapes s = conv_shapes("conv2d", x.shape(), w.shape(), y.shape(), o);
  const launch::ConvGeometry g = geometry(s, o);
  const std::int64_t CK = s.C * s.KH * s.KW, P = s.OH * s.OW;
  T beta = T(0);
  if (bias.defined()) {  // y starts as the bias; the GEMM adds onto it
    Tensor bias3 = bias.detach().reshape({s.O, 1, 1});
    cuda::broadcast_copy(bias3, y);
    beta = T(1);
  }
  if (CK == 0) {
    if (!bias.defined()) fill_zero(y.raw_data(), y.nbytes(), "conv2d");
    return;
  }
  const bool pointwise = is_pointwise(s, o);
  const std::int64_t nb = images_per_chunk(s.B, CK * P);
  Tensor col = pointwise ? Tensor() : device_scratch(nb * CK * P, x.dtype());
  const T* px = static_cast<const T*>(x.raw_data());
  const T* pw = static_cast<const T*>(w.raw_data());
  T* py = static_cast<T*>(y.raw_data());
  for (std::int64_t b0 = 0; b0 < s.B; b0 += nb) {
    const std::int64_t n = std::min(nb, s.B - b0);
    const T* xb = px + b0 * s.C * s.H * s.W;
    const T* cols = xb;
    if (!pointwise) {
      launch::im2col(elem_of(x.dtype()), xb, col.raw_data(), n, g, false);
      cols = static_cast<const T*>(col.raw_data());
    }
    // y[b] (O, P) = w (O, CK) @ col[b] (CK, P)
    gemm<T>("conv2d", false, false, s.O, P, CK, pw, CK, 0, cols, P, CK * P, beta, py + b0 * s.O * P, P,
            s.O * P, n);
  }
}

template <class T>
void conv2d_backward_data_t(const Tensor& w, const Tensor& dy, const Conv2dOptions& o, Tensor& dx) {
  const ConvShapes s = conv_shapes("conv2d_backward_data", dx.shape(), w.shape(), dy.shape(), o);
  const launch::ConvGeometry g = geometry(s, o);
  const std::int64_t CK = s.C * s.KH * s.KW, P = s.OH * s.OW;
  if (s.O == 0 || P == 0 || CK == 0) return fill_zero(dx.raw_data(), dx.nbytes(), "conv2d_backward_data");
  const bool pointwise = is_pointwise(s, o);
  const std::int64_t nb = images_per_chunk(s.B, CK * P);
  Tensor col = pointwise ? Tensor() : device_scratch(nb * CK * P, dx.dtype());
  const T* pw = static_cast<const T*>(w.raw_data());
  const T* pdy = static_cast<const T*>(dy.raw_data());
  T* pdx = static_cast<T*>(dx.raw_data());
  for (std::int64_t b0 = 0; b0 < s.B; b0 += nb) {
    const std::int64_t n = std::min(nb, s.B - b0);
    T* dxb = pdx + b0 * s.C * s.H * s.W;
    T* dcol = pointwise ? dxb : static_cast<T*>(col.raw_data());
    // dcol[b] (CK, P) = w^T (CK, O) @ dy[b] (O, P)
    gemm<T>("conv2d_backward_data", true, false, CK, P, s.O, pw, CK, 0, pdy + b0 * s.O * P, P, s.O * P,
            T(0), dcol, P, CK * P, n);
    if (!pointwise) launch::col2im(elem_of(dx.dtype()), dcol, dxb, n, g);
  }
}

template <class T>
void conv2d_backward_weights_t(const Tensor& x, const Tensor& dy, const Conv2dOptions& o, Tensor& dw,
                               Tensor& db) {
  const ConvShapes s = conv_shapes("conv2d_backward_weights", x.shape(), dw.shape(), dy.shape(), o);
  const launch::ConvGeometry g = geometry(s, o);
  const std::int64_t CK = s.C * s.KH * s.KW, P = s.OH * s.OW;
  if (db.defined()) {
    Tensor dy3 = dy.detach().reshape({s.B, s.O, P});
    Tensor db3 = db.detach().reshape({1, s.O, 1});
    cuda::reduce_sum(dy3, db3);
  }
  if (dw.numel() == 0) return;
  if (s.B == 0 || P == 0) return fill_zero(dw.raw_data(), dw.nbytes(), "conv2d_backward_weights");
  // dw (O, CK) = dy^T (O, n*P) @ rows (n*P, CK) per chunk of n images: dy is regrouped from
  // (n, O, P) to (O, n, P) and x unfolded row-wise, so one GEMM covers the chunk.
  const std::int64_t nb = images_per_chunk(s.B, CK * P + s.O * P);
  Tensor rows = device_scratch(nb * P * CK, x.dtype());
  Tensor dyt = device_scratch(nb * s.O * P, x.dtype());
  const T* px = static_cast<const T*>(x.raw_data());
  const T* pdy = static_cast<const T*>(dy.raw_data());
  T* pdw = static_cast<T*>(dw.raw_data());
  for (std::int64_t b0 = 0; b0 < s.B; b0 += nb) {
    const std::int64_t n = std::min(nb, s.B - b0);
    launch::im2col(elem_of(x.dtype()), px + b0 * s.C * s.H * s.W, rows.raw_data(), n, g, true);
    const auto plan = coalesced_plan("conv2d_backward_weights", {s.O, n, P}, {P, s.O * P, 1});
    launch::strided_copy(sizeof(T), pdy + b0 * s.O * P, 0, dyt.raw_data(), s.O * n * P, plan);
    gemm<T>("conv2d_backward_weights", false, false, s.O, CK, n * P, static_cast<const T*>(dyt.raw_data()),
            n * P, 0, static_cast<const T*>(rows.raw_data()), CK, 0, b0 == 0 ? T(0) : T(1), pdw, CK, 0, 1);
  }
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, bool ta, bool tb, Tensor& out) {
  require_float("matmul", a, "a");
  require_float("matmul", b, "b");
  require_float("matmul", out, "out");
  require_same_dtype("matmul", a, "a", b, "b");
  require_same_dtype("matmul", a, "a", out, "out");
  TESSERA_CHECK(a.dim() >= 2 && b.dim() >= 2 && out.dim() >= std::max(a.dim(), b.dim()), ShapeError,
                "matmul: a {}, b {} and out {} need at least 2 axes, out the most",
                shape_str(a.shape()), shape_str(b.shape()), shape_str(out.shape()));
  const std::int64_t M = a.size(ta ? -1 : -2), Ka = a.size(ta ? -2 : -1);
  const std::int64_t Kb = b.size(tb ? -1 : -2), N = b.size(tb ? -2 : -1);
  TESSERA_CHECK(Ka == Kb && out.size(-2) == M && out.size(-1) == N, ShapeError,
                "matmul: a {}{} times b {}{} cannot give out {}", shape_str(a.shape()), ta ? "^T" : "",
                shape_str(b.shape()), tb ? "^T" : "", shape_str(out.shape()));
  if (out.numel() == 0) return;
  if (Ka == 0) return fill_zero(out.raw_data(), out.nbytes(), "matmul");  // an empty sum
  dispatch_float(a.dtype(), "matmul", [&](auto tag) { matmul_t<typename decltype(tag)::type>(a, b, ta, tb, out); });
}

void linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) {
  require_float("linear", x, "x");
  require_float("linear", w, "weight");
  require_float("linear", out, "out");
  require_same_dtype("linear", x, "x", w, "weight");
  require_same_dtype("linear", x, "x", out, "out");
  TESSERA_CHECK(x.dim() == 2 && w.dim() == 2 && x.shape()[1] == w.shape()[1] && out.dim() == 2 &&
                    out.shape()[0] == x.shape()[0] && out.shape()[1] == w.shape()[0], ShapeError,
                "linear: x {} (M, K), weight {} (N, K) and out {} (M, N) do not match",
                shape_str(x.shape()), shape_str(w.shape()), shape_str(out.shape()));
  if (bias.defined()) {
    require_float("linear", bias, "bias");
    require_same_dtype("linear", x, "x", bias, "bias");
    require_numel("linear", bias, w.shape()[0], "bias");
  }
  const std::int64_t M = x.shape()[0], K = x.shape()[1], N = w.shape()[0];
  if (out.numel() == 0) return;
  if (bias.defined()) cuda::broadcast_copy(bias.detach().reshape({N}), out);  // the GEMM adds onto it
  if (K == 0) {
    if (!bias.defined()) fill_zero(out.raw_data(), out.nbytes(), "linear");
    return;
  }
  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = typename decltype(tag)::type;
    // out (M, N) = x (M, K) @ w^T (K, N)
    gemm<T>("linear", false, true, M, N, K, static_cast<const T*>(x.raw_data()), K, 0,
            static_cast<const T*>(w.raw_data()), K, 0, bias.defined() ? T(1) : T(0),
            static_cast<T*>(out.raw_data()), N, 0, 1);
  });
}

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opts,
                    Tensor& y) {
  require_float("conv2d", x, "x");
  require_float("conv2d", w, "weight");
  require_float("conv2d", y, "y");
  require_same_dtype("conv2d", x, "x", w, "weight");
  require_same_dtype("conv2d", x, "x", y, "y");
  if (bias.defined()) {
    require_float("conv2d", bias, "bias");
    require_same_dtype("conv2d", x, "x", bias, "bias");
    TESSERA_CHECK(w.dim() == 4 && bias.numel() == w.shape()[0], ShapeError,
                  "conv2d: bias {} does not match weight {}", shape_str(bias.shape()), shape_str(w.shape()));
  }
  if (y.numel() == 0) {
    conv_shapes("conv2d", x.shape(), w.shape(), y.shape(), opts);
    return;
  }
  dispatch_float(x.dtype(), "conv2d", [&](auto tag) {
    conv2d_forward_t<typename decltype(tag)::type>(x, w, bias, opts, y);
  });
}

void conv2d_backward_data(const Tensor& w, const Tensor& dy, const Conv2dOptions& opts, Tensor& dx) {
  require_float("conv2d_backward_data", w, "weight");
  require_float("conv2d_backward_data", dy, "dy");
  require_float("conv2d_backward_data", dx, "dx");
  require_same_dtype("conv2d_backward_data", w, "weight", dy, "dy");
  require_same_dtype("conv2d_backward_data", w, "weight", dx, "dx");
  if (dx.numel() == 0) {
    conv_shapes("conv2d_backward_data", dx.shape(), w.shape(), dy.shape(), opts);
    return;
  }
  dispatch_float(w.dtype(), "conv2d_backward_data", [&](auto tag) {
    conv2d_backward_data_t<typename decltype(tag)::type>(w, dy, opts, dx);
  });
}

void conv2d_backward_weights(const Tensor& x, const Tensor& dy, const Conv2dOptions& opts, Tensor& dw,
                             Tensor& db) {
  const char* op = "conv2d_backward_weights";
  require_float(op, x, "x");
  require_float(op, dy, "dy");
  require_float(op, dw, "dw");
  require_same_dtype(op, x, "x", dy, "dy");
  require_same_dtype(op, x, "x", dw, "dw");
  if (db.defined()) {
    require_float(op, db, "db");
    require_same_dtype(op, x, "x", db, "db");
    TESSERA_CHECK(dw.dim() == 4 && db.numel() == dw.shape()[0], ShapeError, "{}: db {} does not match dw {}",
                  op, shape_str(db.shape()), shape_str(dw.shape()));
  }
  dispatch_float(x.dtype(), op, [&](auto tag) {
    conv2d_backward_weights_t<typename decltype(tag)::type>(x, dy, opts, dw, db);
  });
}

}  // namespace tessera::cuda
