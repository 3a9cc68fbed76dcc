// self_attention: the fused CPU kernel with its gradient, and the composed version.
// Letters: B batch, N tokens, D width, H heads, E = D / H head size.
#include <limits>

#include "tessera/autograd/profiler.h"
#include "tessera/ops/kernels.h"
#include "ops/op_utils.h"
#include "tessera/ops/ops.h"

namespace tessera {
namespace {

void check_qkv(const Tensor& qkv, std::int64_t heads) {
  detail::check_float("self_attention", qkv, "qkv");
  TESSERA_CHECK(qkv.dim() == 3 && qkv.size(2) % 3 == 0, ShapeError,
                "self_attention: qkv {} must be (B, N, 3D)", shape_str(qkv.shape()));
  const std::int64_t D = qkv.size(2) / 3;
  TESSERA_CHECK(heads > 0 && D % heads == 0, ShapeError,
                "self_attention: width {} (from qkv {}) is not divisible by {} heads", D, shape_str(qkv.shape()),
                heads);
}

bool masked(const AttentionOptions& o) { return o.causal || o.key_padding_mask.defined(); }

// 1 where query i may attend to key j, else 0: (B or 1, 1, N, N) in `like`'s dtype and device.
Tensor attention_keep(const AttentionOptions& o, std::int64_t B, std::int64_t N, const Tensor& like) {
  std::vector<std::uint8_t> pad;
  std::int64_t rows = 1;
  if (o.key_padding_mask.defined()) {
    const Tensor& m = o.key_padding_mask;
    TESSERA_CHECK(m.dim() == 2 && m.size(0) == B && m.size(1) == N, ShapeError,
                  "self_attention: key_padding_mask {} must be (B, N) = ({},{})", shape_str(m.shape()), B, N);
    for (const double v : m.cpu().to(DType::f64).to_vector<double>()) pad.push_back(v != 0.0);
    rows = B;
  }
  std::vector<double> keep(static_cast<std::size_t>(rows * N * N));
  for (std::int64_t b = 0; b < rows; ++b)
    for (std::int64_t i = 0; i < N; ++i)
      for (std::int64_t j = 0; j < N; ++j)
        keep[static_cast<std::size_t>((b * N + i) * N + j)] =
            (pad.empty() || !pad[static_cast<std::size_t>(b * N + j)]) && (!o.causal || j <= i);
  return from_vector(keep, {rows, 1, N, N}, {.dtype = like.dtype()}).to(like.device());
}

}  // namespace

Tensor self_attention_composed(const Tensor& qkv, std::int64_t heads, double scale, AttentionOptions opts) {
  check_qkv(qkv, heads);
  const std::int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3, E = D / heads;
  // (B, N, 3, H, E) -> (3, B, H, N, E)
  const Tensor split = permute(qkv.reshape({B, N, 3, heads, E}), {2, 0, 3, 1, 4});
  const Tensor q = slice(split, 0, 0, 1).reshape({B, heads, N, E});
  const Tensor k = slice(split, 0, 1, 2).reshape({B, heads, N, E});
  const Tensor v = slice(split, 0, 2, 3).reshape({B, heads, N, E});
  Tensor scores = matmul(q, k, false, true) * scale;  // (B, H, N, N)
  Tensor keep;
  if (masked(opts)) {
    keep = attention_keep(opts, B, N, qkv);
    const Tensor lowest = full({}, std::numeric_limits<double>::lowest(), {.dtype = qkv.dtype(), .device = qkv.device()});
    scores = where(keep, scores, lowest);
  }
  Tensor attn = softmax(scores, -1);
  if (keep.defined()) attn = attn * keep;  // rows with every key masked become zeros
  if (opts.weights) *opts.weights = attn;
  if (opts.dropout > 0.0 && opts.training)
    attn = dropout(attn, opts.dropout, true, opts.generator ? *opts.generator : default_generator());
  const Tensor out = matmul(attn, v);                               // (B, H, N, E)
  return permute(out, {0, 2, 1, 3}).reshape({B, N, D});
}

Tensor self_attention(const Tensor& qkv, std::int64_t heads, double scale, AttentionOptions opts) {
  check_qkv(qkv, heads);
  TESSERA_CHECK(opts.dropout >= 0.0 && opts.dropout < 1.0, Error,
                "self_attention: dropout must be in [0, 1), got {}", opts.dropout);
  if (!has_fused_attention(qkv.device()) || masked(opts)) return self_attention_composed(qkv, heads, scale, opts);
  const std::int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3;
  AttentionDropout drop;
  if (opts.dropout > 0.0 && opts.training) {
    Generator& gen = opts.generator ? *opts.generator : default_generator();
    drop = {opts.dropout, gen.seed(), gen.reserve_batch(static_cast<std::uint64_t>(B * heads * N * N), B)};
  }
  Tensor out = detail::empty_like_shape({B, N, D}, qkv);
  Tensor probs = detail::empty_like_shape({B, heads, N, N}, qkv);
  kernels::attention_forward(qkv, heads, scale, drop, out, probs);
  // q k^T and probs v: 2 products of B H N N E multiply-adds; backward does 4 of them.
  const double flops = 4.0 * static_cast<double>(B * N) * static_cast<double>(N * D);
  count_flops(flops);
  if (opts.weights) *opts.weights = probs;
  if (needs_recording({&qkv}))
    record("self_attention", {qkv}, out, [heads, scale, drop, probs, flops, qv = qkv.detach()](const Tensor& dout) {
      Tensor dqkv = empty_like(qv);
      kernels::attention_backward(qv, probs, dout, heads, scale, drop, dqkv);
      count_flops(2 * flops);
      return std::vector<Tensor>{dqkv};
    });
  return out;
}

}  // namespace tessera
