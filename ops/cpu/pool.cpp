// 2-D max and average pooling: f32 through oneDNN (pooling_v2 forward_training and backward,
// max with oneDNN's workspace), f64 reference loops over the window math of ops/pool_window.h.
// x (B, C, H, W), y (B, C, OH, OW); the loops run one (H, W) plane per iteration.
#include "ops/cpu/dnnl_utils.h"
#include "ops/pool_window.h"
#include "tessera/ops/kernels.h"
#include "tessera/ops/ops.h"
#include "ops/cpu/isa.h"  // last: what follows is built per ISA level

TESSERA_CPU_ISA_BEGIN(tessera::cpu)
namespace {

Pool2dGeometry pool_geometry(const Shape& x, const Shape& y, const Pool2dOptions& o) {
  return {x[0],       x[1],       x[2],       x[3],    y[2],    y[3], o.kernel_h, o.kernel_w,
          o.stride_h, o.stride_w, o.pad_h,    o.pad_w, o.count_include_pad};
}

dnnl::algorithm pool_algorithm(PoolKind kind, const Pool2dGeometry& g) {
  if (kind == PoolKind::max) return dnnl::algorithm::pooling_max;
  return g.count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                             : dnnl::algorithm::pooling_avg_exclude_padding;
}

PrimitiveKey pool_key(std::int64_t tag, PoolKind kind, const Pool2dGeometry& g) {
  return PrimitiveKey{tag,  g.B,  g.C,  g.H,  g.W,  g.OH, g.OW, g.KH, g.KW, g.SH,
                      g.SW, g.PH, g.PW, static_cast<std::int64_t>(kind), g.count_include_pad};
}

struct PoolFwd {
  dnnl::pooling_v2_forward::primitive_desc pd;
  dnnl::pooling_v2_forward prim;
  dnnl::memory::desc x, y, workspace;
  dnnl::memory::dims strides, kernel, dilation, pad_l, pad_r;
};

const PoolFwd& pool_forward_primitive(PoolKind kind, const Pool2dGeometry& g) {
  return cached_primitive<PoolFwd>(pool_key(60, kind, g), [&] {
    return dnnl_call(kind == PoolKind::max ? "max_pool2d" : "avg_pool2d", [&] {
      auto x = plain_md({g.B, g.C, g.H, g.W}, DType::f32), y = plain_md({g.B, g.C, g.OH, g.OW}, DType::f32);
      // Right/bottom padding that makes oneDNN produce exactly (OH, OW); below the left one
      // (even negative) where the floor drops the last inputs.
      dnnl::memory::dims strides{g.SH, g.SW}, kernel{g.KH, g.KW}, dilation{0, 0}, pad_l{g.PH, g.PW};
      dnnl::memory::dims pad_r{(g.OH - 1) * g.SH + g.KH - g.H - g.PH, (g.OW - 1) * g.SW + g.KW - g.W - g.PW};
      dnnl::pooling_v2_forward::desc d(dnnl::prop_kind::forward_training, pool_algorithm(kind, g), x, y,
                                       strides, kernel, dilation, pad_l, pad_r);
      dnnl::pooling_v2_forward::primitive_desc pd(d, dnnl_engine());
      return PoolFwd{pd, dnnl::pooling_v2_forward(pd), x, y, pd.workspace_desc(), strides, kernel, dilation,
                     pad_l, pad_r};
    });
  });
}

template <class T>
void pool_forward_ref(PoolKind kind, const Pool2dGeometry& g, const T* x, T* y, std::int64_t* argmax) {
#pragma omp parallel for schedule(static) if (g.B * g.C * g.OH * g.OW > 32768)
  for (std::int64_t p = 0; p < g.B * g.C; ++p) {
    const T* plane = x + p * g.H * g.W;
    for (std::int64_t oh = 0; oh < g.OH; ++oh) {
      const PoolRange rh = pool_input_range(oh, g.H, g.KH, g.SH, g.PH);
      for (std::int64_t ow = 0; ow < g.OW; ++ow) {
        const PoolRange rw = pool_input_range(ow, g.W, g.KW, g.SW, g.PW);
        const std::int64_t o = (p * g.OH + oh) * g.OW + ow;
        if (kind == PoolKind::max) {
          const PoolMax<T> m = pool_window_max(plane, g.W, rh, rw);
          y[o] = m.value;
          argmax[o] = m.index;
        } else {
          y[o] = pool_window_sum(plane, g.W, rh, rw) / static_cast<T>(pool_avg_divisor(g, rh, rw));
        }
      }
    }
  }
}

template <class T>
void pool_backward_ref(PoolKind kind, const Pool2dGeometry& g, const T* dy, const std::int64_t* argmax, T* dx) {
#pragma omp parallel for schedule(static) if (g.B * g.C * g.H * g.W > 32768)
  for (std::int64_t p = 0; p < g.B * g.C; ++p) {
    const T* dyp = dy + p * g.OH * g.OW;
    const std::int64_t* ap = argmax ? argmax + p * g.OH * g.OW : nullptr;
    for (std::int64_t ih = 0; ih < g.H; ++ih)
      for (std::int64_t iw = 0; iw < g.W; ++iw)
        dx[(p * g.H + ih) * g.W + iw] = pool_input_grad(g, kind == PoolKind::max, dyp, ap, ih, iw);
  }
}

}  // namespace

void pool2d_forward(PoolKind kind, const Tensor& x, const Pool2dOptions& opts, Tensor& y, Tensor& workspace) {
  const Pool2dGeometry g = pool_geometry(x.shape(), y.shape(), opts);
  workspace = Tensor();
  if (x.dtype() == DType::f32) {
    if (y.numel() == 0) {
      if (kind == PoolKind::max) workspace = empty({0}, {.dtype = DType::i64});
      return;
    }
    const PoolFwd& e = pool_forward_primitive(kind, g);
    // Bytes held in i64 words (the tensors have no byte dtype): 8-byte aligned, freed with the tape.
    const auto words = static_cast<std::int64_t>((e.workspace.get_size() + 7) / 8);
    const Tensor ws = words > 0 ? empty({words}, {.dtype = DType::i64}) : Tensor();
    TESSERA_CHECK(kind != PoolKind::max || ws.defined(), Error, "max_pool2d: oneDNN asks for no workspace");
    dnnl_call(kind == PoolKind::max ? "max_pool2d" : "avg_pool2d", {&x}, [&] {
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(e.x, x.raw_data())},
                                                 {DNNL_ARG_DST, wrap(e.y, y.raw_data())}};
      if (ws.defined()) args.emplace(DNNL_ARG_WORKSPACE, wrap(e.workspace, ws.raw_data()));
      execute(e.prim, args);
    });
    if (kind == PoolKind::max) workspace = ws;
    return;
  }
  if (kind == PoolKind::max) workspace = empty(y.shape(), {.dtype = DType::i64});
  if (y.numel() == 0) return;
  dispatch_float(x.dtype(), kind == PoolKind::max ? "max_pool2d" : "avg_pool2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    pool_forward_ref<T>(kind, g, static_cast<const T*>(x.raw_data()), static_cast<T*>(y.raw_data()),
                        kind == PoolKind::max ? workspace.data<std::int64_t>() : nullptr);
  });
}

void pool2d_backward(PoolKind kind, const Tensor& dy, const Tensor& workspace, const Pool2dOptions& opts,
                     Tensor& dx) {
  const Pool2dGeometry g = pool_geometry(dx.shape(), dy.shape(), opts);
  if (dx.numel() == 0) return;
  const char* op = kind == PoolKind::max ? "max_pool2d_backward" : "avg_pool2d_backward";
  TESSERA_CHECK(kind != PoolKind::max || workspace.defined(), Error, "{}: the forward's workspace is missing", op);
  if (dy.dtype() == DType::f32) {
    const PoolFwd& f = pool_forward_primitive(kind, g);
    struct Entry { dnnl::pooling_v2_backward prim; };
    const Entry& e = cached_primitive<Entry>(pool_key(61, kind, g), [&] {
      return dnnl_call(op, [&] {
        dnnl::pooling_v2_backward::desc d(pool_algorithm(kind, g), f.x, f.y, f.strides, f.kernel, f.dilation,
                                          f.pad_l, f.pad_r);
        return Entry{dnnl::pooling_v2_backward(dnnl::pooling_v2_backward::primitive_desc(d, dnnl_engine(), f.pd))};
      });
    });
    dnnl_call(op, {&dy}, [&] {
      std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DIFF_DST, wrap(f.y, dy.raw_data())},
                                                 {DNNL_ARG_DIFF_SRC, wrap(f.x, dx.raw_data())}};
      if (kind == PoolKind::max) {
        TESSERA_CHECK(workspace.nbytes() >= f.workspace.get_size(), Error,
                      "{}: workspace of {} bytes, oneDNN's needs {}", op, workspace.nbytes(), f.workspace.get_size());
        args.emplace(DNNL_ARG_WORKSPACE, wrap(f.workspace, workspace.raw_data()));
      }
      execute(e.prim, args);
    });
    return;
  }
  dispatch_float(dy.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    pool_backward_ref<T>(kind, g, static_cast<const T*>(dy.raw_data()),
                         kind == PoolKind::max ? workspace.data<std::int64_t>() : nullptr,
                         static_cast<T*>(dx.raw_data()));
  });
}

TESSERA_CPU_ISA_END
