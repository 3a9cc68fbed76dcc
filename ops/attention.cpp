// self_attention, composed from the primitive ops (their gradients compose too).
// Letters: B batch, N tokens, D width, H heads, E = D / H head size.
#include "ops/op_utils.h"
#include "ops/ops.h"

namespace tessera {

Tensor self_attention(const Tensor& qkv, std::int64_t heads, double scale, AttentionOptions opts) {
  detail::check_float("self_attention", qkv, "qkv");
  TESSERA_CHECK(qkv.dim() == 3 && qkv.size(2) % 3 == 0, ShapeError,
                "self_attention: qkv {} must be (B, N, 3D)", shape_str(qkv.shape()));
  const std::int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3;
  TESSERA_CHECK(heads > 0 && D % heads == 0, ShapeError,
                "self_attention: width {} (from qkv {}) is not divisible by {} heads", D,
                shape_str(qkv.shape()), heads);
  const std::int64_t E = D / heads;
  // (B, N, 3, H, E) -> (3, B, H, N, E)
  const Tensor split = permute(qkv.reshape({B, N, 3, heads, E}), {2, 0, 3, 1, 4});
  const Tensor q = slice(split, 0, 0, 1).reshape({B, heads, N, E});
  const Tensor k = slice(split, 0, 1, 2).reshape({B, heads, N, E});
  const Tensor v = slice(split, 0, 2, 3).reshape({B, heads, N, E});
  Tensor attn = softmax(matmul(q, k, false, true) * scale, -1);  // (B, H, N, N)
  if (opts.weights) *opts.weights = attn;
  if (opts.dropout > 0.0 && opts.training)
    attn = dropout(attn, opts.dropout, true, opts.generator ? *opts.generator : default_generator());
  const Tensor out = matmul(attn, v);                               // (B, H, N, E)
  return permute(out, {0, 2, 1, 3}).reshape({B, N, D});
}

}  // namespace tessera
