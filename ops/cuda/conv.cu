// CUDA im2col / col2im: the column buffers that turn conv2d into GEMMs (ops/cuda/blas.cpp).

// col2im gathers (one thread per input pixel), so the backward is deterministic without atomics.

#include "ops/cuda/device_utils.cuh"

namespace tessera::cuda::launch {
namespace {

using dev::grid_for;
using dev::kThreads;

// x (nb, C, H, W) -> col (nb, C, KH, KW, OH, OW) or, rows_layout, (nb, OH, OW, C, KH, KW).
template <class T>
__global__ void __launch_bounds__(dev::kThreads)
im2col_kernel(const T* x, T* col, i64 total, ConvGeometry g, bool rows_layout) {
  TESSERA_GRID_LOOP(t, total) {
    i64 r = t, kw, kh, c, ow, oh;
    if (rows_layout) {
      kw = r % g.KW; r /= g.KW;
      kh = r % g.KH; r /= g.KH;
      c = r % g.C; r /= g.C;
      ow = r % g.OW; r /= g.OW;
      oh = r % g.OH; r /= g.OH;
    } else {
      ow = r % g.OW; r /= g.OW;
      oh = r % g.OH; r /= g.OH;
      kw = r % g.KW; r /= g.KW;
      kh = r % g.KH; r /= g.KH;
      c = r % g.C; r /= g.C;
    }
    const i64 b = r;
    const i64 h = oh * g.stride_h - g.pad_h + kh;
    const i64 w = ow * g.stride_w - g.pad_w + kw;
    col[t] = (h >= 0 && h < g.H && w >= 0 && w < g.W) ? x[((b * g.C + c) * g.H + h) * g.W + w] : T(0);
  }
}

// dx (nb, C, H, W) = sum of the col (nb, C*KH*KW, OH*OW) taps that read each pixel.
template <class T>
__global__ void __launch_bounds__(dev::kThreads)
col2im_kernel(const T* col, T* dx, i64 total, ConvGeometry g) {
  const i64 P = g.OH * g.OW;
  TESSERA_GRID_LOOP(t, total) {
    const i64 w = t % g.W;
    const i64 h = (t / g.W) % g.H;
    const i64 c = (t / (g.W * g.H)) % g.C;
    const i64 b = t / (g.W * g.H * g.C);
    const T* cb = col + (b * g.C + c) * g.KH * g.KW * P;
    T acc = T(0);
    for (i64 kh = 0; kh < g.KH; ++kh) {
      const i64 hh = h + g.pad_h - kh;  // = oh * stride_h
      if (hh < 0 || hh % g.stride_h != 0) continue;
      const i64 oh = hh / g.stride_h;
      if (oh >= g.OH) continue;
      for (i64 kw = 0; kw < g.KW; ++kw) {
        const i64 ww = w + g.pad_w - kw;
        if (ww < 0 || ww % g.stride_w != 0) continue;
        const i64 ow = ww / g.stride_w;
        if (ow >= g.OW) continue;
        acc += cb[(kh * g.KW + kw) * P + oh * g.OW + ow];
      }
    }
    dx[t] = acc;
  }
}

}  // namespace

void im2col(Elem t, const void* x, void* col, i64 nb, const ConvGeometry& g, bool rows_layout) {
  const i64 total = nb * g.C * g.KH * g.KW * g.OH * g.OW;
  if (t == Elem::f32)
    im2col_kernel<float><<<grid_for(total), kThreads>>>(static_cast<const float*>(x),
                                                        static_cast<float*>(col), total, g, rows_layout);
  else
    im2col_kernel<double><<<grid_for(total), kThreads>>>(static_cast<const double*>(x),
                                                         static_cast<double*>(col), total, g, rows_layout);
  check_launch("conv2d (im2col)");
}

void col2im(Elem t, const void* col, void* dx, i64 nb, const ConvGeometry& g) {
  const i64 total = nb * g.C * g.H * g.W;
  if (t == Elem::f32)
    col2im_kernel<float><<<grid_for(total), kThreads>>>(static_cast<const float*>(col),
                                                        static_cast<float*>(dx), total, g);
  else
    col2im_kernel<double><<<grid_for(total), kThreads>>>(static_cast<const double*>(col),
                                                         static_cast<double*>(dx), total, g);
  check_launch("conv2d_backward_data (col2im)");
}

}  // namespace tessera::cuda::launch
