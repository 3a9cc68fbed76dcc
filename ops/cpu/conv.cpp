// 2-D convolution: f32 through oneDNN (forward, backward data, backward weights) on plain
// NCHW/OIHW layouts, f64 reference loops.
// x (B, C, H, W), w (O, C, KH, KW), y (B, O, OH, OW).
#include "ops/cpu/dnnl_utils.h"
#include "tessera/ops/kernels.h"
#include "tessera/ops/ops.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

struct ConvGeometry {
  std::int64_t B, C, H, W, O, KH, KW, OH, OW;
  dnnl::memory::dims strides, pad_l, pad_r;
};

ConvGeometry geometry(const Shape& x, const Shape& w, const Shape& y, const Conv2dOptions& o) {
  ConvGeometry g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], y[2], y[3], {}, {}, {}};
  g.strides = {o.stride_h, o.stride_w};
  g.pad_l = {o.pad_h, o.pad_w};
  // Right/bottom padding that makes oneDNN produce exactly (OH, OW).
  g.pad_r = {(g.OH - 1) * o.stride_h + g.KH - g.H - o.pad_h, (g.OW - 1) * o.stride_w + g.KW - g.W - o.pad_w};
  return g;
}

struct ConvFwd {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  dnnl::memory::desc x, w, b, y;
};

const ConvFwd& conv_forward_primitive(const ConvGeometry& g, bool bias) {
  PrimitiveKey key{40, g.B, g.C, g.H, g.W, g.O, g.KH, g.KW, g.OH, g.OW, bias};
  key.add(std::vector<std::int64_t>(g.strides.begin(), g.strides.end()))
      .add(std::vector<std::int64_t>(g.pad_l.begin(), g.pad_l.end()));
  return cached_primitive<ConvFwd>(key, [&] {
    return dnnl_call("conv2d", [&] {
      auto x = plain_md({g.B, g.C, g.H, g.W}, DType::f32);
      auto w = plain_md({g.O, g.C, g.KH, g.KW}, DType::f32);
      auto b = bias ? plain_md({g.O}, DType::f32) : dnnl::memory::desc();
      auto y = plain_md({g.B, g.O, g.OH, g.OW}, DType::f32);
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training,
                                        dnnl::algorithm::convolution_direct, x, w, b, y, g.strides,
                                        g.pad_l, g.pad_r);
      dnnl::convolution_forward::primitive_desc pd(d, dnnl_engine());
      return ConvFwd{pd, dnnl::convolution_forward(pd), x, w, b, y};
    });
  });
}

template <class T, class F>
void for_each_tap(const ConvGeometry& g, const Conv2dOptions& o, F&& f) {
  // f(b, oc, c, oh, ow, ih, iw, kh, kw) for every in-bounds tap.
  for (std::int64_t b = 0; b < g.B; ++b)
    for (std::int64_t oc = 0; oc < g.O; ++oc)
      for (std::int64_t c = 0; c < g.C; ++c)
        for (std::int64_t oh = 0; oh < g.OH; ++oh)
          for (std::int64_t ow = 0; ow < g.OW; ++ow)
            for (std::int64_t kh = 0; kh < g.KH; ++kh) {
              const std::int64_t ih = oh * o.stride_h - o.pad_h + kh;
              if (ih < 0 || ih >= g.H) continue;
              for (std::int64_t kw = 0; kw < g.KW; ++kw) {
                const std::int64_t iw = ow * o.stride_w - o.pad_w + kw;
                if (iw < 0 || iw >= g.W) continue;
                f(b, oc, c, oh, ow, ih, iw, kh, kw);
              }
            }
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& o, Tensor& y) {
  const ConvGeometry g = geometry(x.shape(), w.shape(), y.shape(), o);
  if (y.numel() == 0) return;
  if (x.dtype() == DType::f32) {
    const ConvFwd& e = conv_forward_primitive(g, bias.defined());
    dnnl_call("conv2d", [&] {
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(e.x, x.raw_data())},
                                                 {DNNL_ARG_WEIGHTS, wrap(e.w, w.raw_data())},
                                                 {DNNL_ARG_DST, wrap(e.y, y.raw_data())}};
      if (bias.defined()) args.emplace(DNNL_ARG_BIAS, wrap(e.b, bias.raw_data()));
      execute(e.prim, args);
    });
    return;
  }
  dispatch_float(x.dtype(), "conv2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pw = static_cast<const T*>(w.raw_data());
    T* py = static_cast<T*>(y.raw_data());
    for (std::int64_t i = 0; i < y.numel(); ++i)
      py[i] = bias.defined() ? static_cast<const T*>(bias.raw_data())[(i / (g.OH * g.OW)) % g.O] : T(0);
    for_each_tap<T>(g, o, [&](auto b, auto oc, auto c, auto oh, auto ow, auto ih, auto iw, auto kh, auto kw) {
      py[((b * g.O + oc) * g.OH + oh) * g.OW + ow] +=
          px[((b * g.C + c) * g.H + ih) * g.W + iw] * pw[((oc * g.C + c) * g.KH + kh) * g.KW + kw];
    });
  });
}

void conv2d_backward_data(const Tensor& w, const Tensor& dy, const Conv2dOptions& o, Tensor& dx) {
  const ConvGeometry g = geometry(dx.shape(), w.shape(), dy.shape(), o);
  if (dx.numel() == 0) return;
  if (dy.numel() == 0 || g.C * g.KH * g.KW == 0) {
    dx.fill_(0.0);
    return;
  }
  if (w.dtype() == DType::f32) {
    const ConvFwd& f = conv_forward_primitive(g, false);
    struct Entry { dnnl::convolution_backward_data prim; };
    PrimitiveKey key{41, g.B, g.C, g.H, g.W, g.O, g.KH, g.KW, g.OH, g.OW};
    key.add(std::vector<std::int64_t>(g.strides.begin(), g.strides.end()))
        .add(std::vector<std::int64_t>(g.pad_l.begin(), g.pad_l.end()));
    const Entry& e = cached_primitive<Entry>(key, [&] {
      return dnnl_call("conv2d_backward_data", [&] {
        dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, f.x, f.w, f.y,
                                                g.strides, g.pad_l, g.pad_r);
        return Entry{dnnl::convolution_backward_data(
            dnnl::convolution_backward_data::primitive_desc(d, dnnl_engine(), f.pd))};
      });
    });
    dnnl_call("conv2d_backward_data", [&] {
      execute(e.prim, {{DNNL_ARG_DIFF_DST, wrap(f.y, dy.raw_data())},
                       {DNNL_ARG_WEIGHTS, wrap(f.w, w.raw_data())},
                       {DNNL_ARG_DIFF_SRC, wrap(f.x, dx.raw_data())}});
    });
    return;
  }
  dispatch_float(w.dtype(), "conv2d_backward_data", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pw = static_cast<const T*>(w.raw_data());
    const T* pdy = static_cast<const T*>(dy.raw_data());
    T* pdx = static_cast<T*>(dx.raw_data());
    for (std::int64_t i = 0; i < dx.numel(); ++i) pdx[i] = T(0);
    for_each_tap<T>(g, o, [&](auto b, auto oc, auto c, auto oh, auto ow, auto ih, auto iw, auto kh, auto kw) {
      pdx[((b * g.C + c) * g.H + ih) * g.W + iw] +=
          pdy[((b * g.O + oc) * g.OH + oh) * g.OW + ow] * pw[((oc * g.C + c) * g.KH + kh) * g.KW + kw];
    });
  });
}

void conv2d_backward_weights(const Tensor& x, const Tensor& dy, const Conv2dOptions& o, Tensor& dw, Tensor& db) {
  const ConvGeometry g = geometry(x.shape(), dw.shape(), dy.shape(), o);
  if (dy.numel() == 0 || x.numel() == 0) {
    if (dw.defined()) dw.fill_(0.0);
    if (db.defined()) db.fill_(0.0);
    return;
  }
  if (x.dtype() == DType::f32) {
    const bool bias = db.defined();
    const ConvFwd& f = conv_forward_primitive(g, bias);
    struct Entry { dnnl::convolution_backward_weights prim; };
    PrimitiveKey key{42, g.B, g.C, g.H, g.W, g.O, g.KH, g.KW, g.OH, g.OW, bias};
    key.add(std::vector<std::int64_t>(g.strides.begin(), g.strides.end()))
        .add(std::vector<std::int64_t>(g.pad_l.begin(), g.pad_l.end()));
    const Entry& e = cached_primitive<Entry>(key, [&] {
      return dnnl_call("conv2d_backward_weights", [&] {
        auto d = bias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, f.x, f.w,
                                                                 f.b, f.y, g.strides, g.pad_l, g.pad_r)
                      : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, f.x, f.w,
                                                                 f.y, g.strides, g.pad_l, g.pad_r);
        return Entry{dnnl::convolution_backward_weights(
            dnnl::convolution_backward_weights::primitive_desc(d, dnnl_engine(), f.pd))};
      });
    });
    dnnl_call("conv2d_backward_weights", [&] {
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(f.x, x.raw_data())},
                                                 {DNNL_ARG_DIFF_DST, wrap(f.y, dy.raw_data())},
                                                 {DNNL_ARG_DIFF_WEIGHTS, wrap(f.w, dw.raw_data())}};
      if (bias) args.emplace(DNNL_ARG_DIFF_BIAS, wrap(f.b, db.raw_data()));
      execute(e.prim, args);
    });
    return;
  }
  dispatch_float(x.dtype(), "conv2d_backward_weights", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = static_cast<const T*>(x.raw_data());
    const T* pdy = static_cast<const T*>(dy.raw_data());
    T* pdw = static_cast<T*>(dw.raw_data());
    for (std::int64_t i = 0; i < dw.numel(); ++i) pdw[i] = T(0);
    for_each_tap<T>(g, o, [&](auto b, auto oc, auto c, auto oh, auto ow, auto ih, auto iw, auto kh, auto kw) {
      pdw[((oc * g.C + c) * g.KH + kh) * g.KW + kw] +=
          pdy[((b * g.O + oc) * g.OH + oh) * g.OW + ow] * px[((b * g.C + c) * g.H + ih) * g.W + iw];
    });
    if (db.defined()) {
      T* pdb = static_cast<T*>(db.raw_data());
      for (std::int64_t oc = 0; oc < g.O; ++oc) pdb[oc] = T(0);
      for (std::int64_t i = 0; i < dy.numel(); ++i) pdb[(i / (g.OH * g.OW)) % g.O] += pdy[i];
    }
  });
}

TESSERA_CPU_ISA_END
