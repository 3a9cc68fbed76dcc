// 2-D convolution: f32 through oneDNN (forward, backward data, backward weights), f64
// reference loops. Our tensors are plain NCHW/OIHW; oneDNN picks the layouts its fastest
// kernels want (blocked or channels-last; on plain layouts it falls back to im2col + GEMM,
// several times slower and with a 9x copy of the input), and each call reorders its operands
// into them and its result back.
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

// One operand of a primitive: our plain layout, the one the primitive chose, and the reorder
// between them (none when they agree).
struct Operand {
  dnnl::memory::desc plain, chosen;
  dnnl::reorder reorder;  // plain -> chosen for inputs, chosen -> plain for outputs

  static Operand input(const dnnl::memory::desc& plain, const dnnl::memory::desc& chosen) {
    return {plain, chosen, plain == chosen ? dnnl::reorder() : dnnl::reorder(wrap(plain, nullptr), wrap(chosen, nullptr))};
  }
  static Operand output(const dnnl::memory::desc& plain, const dnnl::memory::desc& chosen) {
    return {plain, chosen, plain == chosen ? dnnl::reorder() : dnnl::reorder(wrap(chosen, nullptr), wrap(plain, nullptr))};
  }
  bool same() const { return plain == chosen; }

  // The tensor as the primitive reads it: itself, or its reordered copy (kept in `copy`).
  dnnl::memory read(const Tensor& t, Tensor& copy) const {
    const dnnl::memory mine = wrap(plain, t.raw_data());
    if (same()) return mine;
    copy = empty({static_cast<std::int64_t>((chosen.get_size() + 3) / 4)});
    const dnnl::memory theirs = wrap(chosen, copy.raw_data());
    execute(reorder, {{DNNL_ARG_FROM, mine}, {DNNL_ARG_TO, theirs}});
    return theirs;
  }
  // Where the primitive writes the tensor: into it, or into `copy` for written_back().
  dnnl::memory write(const Tensor& t, Tensor& copy) const {
    if (same()) return wrap(plain, t.raw_data());
    copy = empty({static_cast<std::int64_t>((chosen.get_size() + 3) / 4)});
    return wrap(chosen, copy.raw_data());
  }
  void written_back(const dnnl::memory& theirs, const Tensor& t) const {
    if (!same()) execute(reorder, {{DNNL_ARG_FROM, theirs}, {DNNL_ARG_TO, wrap(plain, t.raw_data())}});
  }
};

dnnl::memory::desc any_md(const dnnl::memory::dims& dims) {
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
}

// An activation (B, channels, H, W) in oneDNN's choice of layout, except with few channels:
// blocked layouts pad the channels to 16, which for one channel is 16 times the memory.
dnnl::memory::desc activation_md(const dnnl::memory::dims& dims) {
  constexpr std::int64_t kBlock = 16;
  if (dims[1] >= kBlock) return any_md(dims);
  return plain_md(Shape(dims.begin(), dims.end()), DType::f32);
}

// Scratch memory comes from our allocator (counted by the memory probe, refused at its
// limit with an error) rather than from oneDNN's own, which the probe cannot see.
dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// The primitive's scratchpad, allocated for one call.
dnnl::memory scratchpad(const dnnl::memory::desc& md, Tensor& keep) {
  keep = empty({static_cast<std::int64_t>((md.get_size() + 3) / 4)});
  return wrap(md, keep.raw_data());
}

struct ConvFwd {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  Operand x, w, y;
  dnnl::memory::desc b, scratch;
};

PrimitiveKey conv_key(std::int64_t tag, const ConvGeometry& g, bool bias) {
  PrimitiveKey key{tag, g.B, g.C, g.H, g.W, g.O, g.KH, g.KW, g.OH, g.OW, bias};
  key.add(std::vector<std::int64_t>(g.strides.begin(), g.strides.end()))
      .add(std::vector<std::int64_t>(g.pad_l.begin(), g.pad_l.end()));
  return key;
}

const ConvFwd& conv_forward_primitive(const ConvGeometry& g, bool bias) {
  return cached_primitive<ConvFwd>(conv_key(40, g, bias), [&] {
    return dnnl_call("conv2d", [&] {
      const dnnl::memory::dims xd{g.B, g.C, g.H, g.W}, wd{g.O, g.C, g.KH, g.KW}, yd{g.B, g.O, g.OH, g.OW};
      auto b = bias ? plain_md({g.O}, DType::f32) : dnnl::memory::desc();
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                        activation_md(xd), any_md(wd), b, activation_md(yd), g.strides, g.pad_l,
                                        g.pad_r);
      dnnl::convolution_forward::primitive_desc pd(d, user_scratchpad(), dnnl_engine());
      return ConvFwd{pd,
                     dnnl::convolution_forward(pd),
                     Operand::input(plain_md({g.B, g.C, g.H, g.W}, DType::f32), pd.src_desc()),
                     Operand::input(plain_md({g.O, g.C, g.KH, g.KW}, DType::f32), pd.weights_desc()),
                     Operand::output(plain_md({g.B, g.O, g.OH, g.OW}, DType::f32), pd.dst_desc()),
                     b,
                     pd.scratchpad_desc()};
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
    dnnl_call("conv2d", {&x, &w}, [&] {
      Tensor xc, wc, yc, scratch;
      const dnnl::memory out = e.y.write(y, yc);
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, e.x.read(x, xc)},
                                                 {DNNL_ARG_WEIGHTS, e.w.read(w, wc)},
                                                 {DNNL_ARG_DST, out},
                                                 {DNNL_ARG_SCRATCHPAD, scratchpad(e.scratch, scratch)}};
      if (bias.defined()) args.emplace(DNNL_ARG_BIAS, wrap(e.b, bias.raw_data()));
      execute(e.prim, args);
      e.y.written_back(out, y);
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
    struct Entry {
      dnnl::convolution_backward_data prim;
      Operand dy, w, dx;
      dnnl::memory::desc scratch;
    };
    const Entry& e = cached_primitive<Entry>(conv_key(41, g, false), [&] {
      return dnnl_call("conv2d_backward_data", [&] {
        dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct,
                                                activation_md(f.x.plain.dims()), any_md(f.w.plain.dims()),
                                                activation_md(f.y.plain.dims()), g.strides, g.pad_l, g.pad_r);
        dnnl::convolution_backward_data::primitive_desc pd(d, user_scratchpad(), dnnl_engine(), f.pd);
        return Entry{dnnl::convolution_backward_data(pd), Operand::input(f.y.plain, pd.diff_dst_desc()),
                     Operand::input(f.w.plain, pd.weights_desc()), Operand::output(f.x.plain, pd.diff_src_desc()),
                     pd.scratchpad_desc()};
      });
    });
    dnnl_call("conv2d_backward_data", {&w, &dy}, [&] {
      Tensor dyc, wc, dxc, scratch;
      const dnnl::memory out = e.dx.write(dx, dxc);
      execute(e.prim, {{DNNL_ARG_DIFF_DST, e.dy.read(dy, dyc)},
                       {DNNL_ARG_WEIGHTS, e.w.read(w, wc)},
                       {DNNL_ARG_DIFF_SRC, out},
                       {DNNL_ARG_SCRATCHPAD, scratchpad(e.scratch, scratch)}});
      e.dx.written_back(out, dx);
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
    struct Entry {
      dnnl::convolution_backward_weights prim;
      Operand x, dy, dw;
      dnnl::memory::desc scratch;
    };
    const Entry& e = cached_primitive<Entry>(conv_key(42, g, bias), [&] {
      return dnnl_call("conv2d_backward_weights", [&] {
        const auto xd = activation_md(f.x.plain.dims()), wd = any_md(f.w.plain.dims()),
                   yd = activation_md(f.y.plain.dims());
        auto d = bias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, xd, wd, f.b,
                                                                 yd, g.strides, g.pad_l, g.pad_r)
                      : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, xd, wd, yd,
                                                                 g.strides, g.pad_l, g.pad_r);
        dnnl::convolution_backward_weights::primitive_desc pd(d, user_scratchpad(), dnnl_engine(), f.pd);
        return Entry{dnnl::convolution_backward_weights(pd), Operand::input(f.x.plain, pd.src_desc()),
                     Operand::input(f.y.plain, pd.diff_dst_desc()),
                     Operand::output(f.w.plain, pd.diff_weights_desc()), pd.scratchpad_desc()};
      });
    });
    dnnl_call("conv2d_backward_weights", {&x, &dy}, [&] {
      Tensor xc, dyc, dwc, scratch;
      const dnnl::memory out = e.dw.write(dw, dwc);
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, e.x.read(x, xc)},
                                                 {DNNL_ARG_DIFF_DST, e.dy.read(dy, dyc)},
                                                 {DNNL_ARG_DIFF_WEIGHTS, out},
                                                 {DNNL_ARG_SCRATCHPAD, scratchpad(e.scratch, scratch)}};
      if (bias) args.emplace(DNNL_ARG_DIFF_BIAS, wrap(f.b, db.raw_data()));
      execute(e.prim, args);
      e.dw.written_back(out, dw);
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
