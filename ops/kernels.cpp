// Routes each kernel to the backend of its tensors' device.
#include "ops/kernels.h"

#include "ops/ops.h"

namespace tessera {

#ifdef TESSERA_WITH_CUDA
#define TESSERA_ROUTE(device, fn, ...) \
  return (device).is_cuda() ? cuda::fn(__VA_ARGS__) : cpu::fn(__VA_ARGS__)
#else
#define TESSERA_ROUTE(device, fn, ...)                                                       \
  do {                                                                                       \
    TESSERA_CHECK((device).is_cpu(), DeviceError, #fn ": tensors on {}, but this build has " \
                  "no CUDA backend", device);                                                \
    return cpu::fn(__VA_ARGS__);                                                             \
  } while (0)
#endif

namespace kernels {

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  TESSERA_ROUTE(out.device(), binary, op, a, b, out);
}
void unary_forward(UnaryOp op, const Tensor& x, Tensor& y, double alpha, double beta) {
  TESSERA_ROUTE(x.device(), unary_forward, op, x, y, alpha, beta);
}
void unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx, double alpha,
                    double beta) {
  TESSERA_ROUTE(x.device(), unary_backward, op, x, dy, dx, alpha, beta);
}
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  TESSERA_ROUTE(out.device(), where, cond, a, b, out);
}
void cast(const Tensor& x, Tensor& out) { TESSERA_ROUTE(x.device(), cast, x, out); }
void add_inplace(Tensor& dst, const Tensor& src, double alpha) {
  TESSERA_ROUTE(dst.device(), add_inplace, dst, src, alpha);
}
void scale_inplace(Tensor& dst, double factor) { TESSERA_ROUTE(dst.device(), scale_inplace, dst, factor); }
void matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b, Tensor& out) {
  TESSERA_ROUTE(out.device(), matmul, a, b, transpose_a, transpose_b, out);
}
void linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) {
  TESSERA_ROUTE(out.device(), linear, x, w, bias, out);
}
void reduce_sum(const Tensor& x, Tensor& out) { TESSERA_ROUTE(x.device(), reduce_sum, x, out); }
void reduce_max(const Tensor& x, Tensor& out, Tensor& argmax) {
  TESSERA_ROUTE(x.device(), reduce_max, x, out, argmax);
}
void scatter_add_flat(Tensor& dst, const Tensor& index, const Tensor& src) {
  TESSERA_ROUTE(dst.device(), scatter_add_flat, dst, index, src);
}
void broadcast_copy(const Tensor& x, Tensor& out) { TESSERA_ROUTE(x.device(), broadcast_copy, x, out); }
void permute(const Tensor& x, const std::vector<std::int64_t>& order, Tensor& out) {
  TESSERA_ROUTE(x.device(), permute, x, order, out);
}
void slice_copy(const Tensor& x, int axis, std::int64_t start, std::int64_t step, Tensor& out) {
  TESSERA_ROUTE(x.device(), slice_copy, x, axis, start, step, out);
}
void slice_assign(const Tensor& src, int axis, std::int64_t start, std::int64_t step, Tensor& out,
                  bool accumulate) {
  TESSERA_ROUTE(out.device(), slice_assign, src, axis, start, step, out, accumulate);
}
void index_select(const Tensor& x, int axis, const Tensor& index, Tensor& out) {
  TESSERA_ROUTE(x.device(), index_select, x, axis, index, out);
}
void index_add(const Tensor& src, int axis, const Tensor& index, Tensor& out) {
  TESSERA_ROUTE(out.device(), index_add, src, axis, index, out);
}
void gather(const Tensor& x, int axis, const Tensor& index, Tensor& out) {
  TESSERA_ROUTE(x.device(), gather, x, axis, index, out);
}
void scatter_add(const Tensor& src, int axis, const Tensor& index, Tensor& out) {
  TESSERA_ROUTE(out.device(), scatter_add, src, axis, index, out);
}
void softmax_forward(const Tensor& x, int axis, bool log, Tensor& y) {
  TESSERA_ROUTE(x.device(), softmax_forward, x, axis, log, y);
}
void softmax_backward(const Tensor& y, const Tensor& dy, int axis, bool log, Tensor& dx) {
  TESSERA_ROUTE(y.device(), softmax_backward, y, dy, axis, log, dx);
}
void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y,
                        Tensor& mean, Tensor& rstd) {
  TESSERA_ROUTE(x.device(), layer_norm_forward, x, w, b, eps, y, mean, rstd);
}
void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, double eps, Tensor& dx, Tensor& dw, Tensor& db) {
  TESSERA_ROUTE(x.device(), layer_norm_backward, x, w, mean, rstd, dy, eps, dx, dw, db);
}
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opts,
                    Tensor& y) {
  TESSERA_ROUTE(x.device(), conv2d_forward, x, w, bias, opts, y);
}
void conv2d_backward_data(const Tensor& w, const Tensor& dy, const Conv2dOptions& opts, Tensor& dx) {
  TESSERA_ROUTE(w.device(), conv2d_backward_data, w, dy, opts, dx);
}
void conv2d_backward_weights(const Tensor& x, const Tensor& dy, const Conv2dOptions& opts,
                             Tensor& dw, Tensor& db) {
  TESSERA_ROUTE(x.device(), conv2d_backward_weights, x, dy, opts, dw, db);
}
void dropout(const Tensor& x, double p, std::uint64_t seed, std::uint64_t offset, Tensor& out) {
  TESSERA_ROUTE(x.device(), dropout, x, p, seed, offset, out);
}
void cross_entropy_forward(const Tensor& logits, const Tensor& target, double smoothing,
                           std::int64_t ignore_index, Tensor& loss) {
  TESSERA_ROUTE(logits.device(), cross_entropy_forward, logits, target, smoothing, ignore_index, loss);
}
void cross_entropy_backward(const Tensor& logits, const Tensor& target, const Tensor& dloss,
                            double smoothing, std::int64_t ignore_index, Tensor& dlogits) {
  TESSERA_ROUTE(logits.device(), cross_entropy_backward, logits, target, dloss, smoothing,
                ignore_index, dlogits);
}

void adam_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                 const std::vector<Tensor>& m, const std::vector<Tensor>& v, const AdamUpdate& u) {
  if (params.empty()) return;
  TESSERA_ROUTE(params.front().device(), adam_update, params, grads, m, v, u);
}
void sgd_update(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& momentum, const SgdUpdate& u) {
  if (params.empty()) return;
  TESSERA_ROUTE(params.front().device(), sgd_update, params, grads, momentum, u);
}
double squared_norm(const Tensor& x) { TESSERA_ROUTE(x.device(), squared_norm, x); }

}  // namespace kernels

#ifndef TESSERA_WITH_CUDA
bool cuda_built() { return false; }
bool cuda_available() { return false; }
#endif

}  // namespace tessera
