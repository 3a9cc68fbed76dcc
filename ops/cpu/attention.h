// Fused multi-head self-attention on the CPU: reads q, k, v straight out of the fused
// projection (B, N, 3D) and writes heads straight into (B, N, D), one task per
// (batch, head); no permutes, and only the attention weights are kept for backward.
// Letters: B batch, N tokens, D width, H heads, E = D / H head size.
#pragma once

#include "ops/kernels.h"

namespace tessera::cpu {

struct AttentionDropout {
  double p = 0.0;  // 0: no dropout on the weights
  std::uint64_t seed = 0, offset = 0;  // Philox stream of the mask (element (b,h,i,j))
};

// X(return type, name, (parameters), (arguments), device), as TESSERA_KERNELS.
#define TESSERA_CPU_ATTENTION_KERNELS(X)                                                                 \
  /* qkv (B, N, 3D) -> out (B, N, D); probs (B, H, N, N) receives softmax(q k^T * scale) (before dropout) */ \
  X(void, attention_forward,                                                                             \
    (const Tensor& qkv, std::int64_t heads, double scale, const AttentionDropout& drop, Tensor& out,     \
     Tensor& probs),                                                                                     \
    (qkv, heads, scale, drop, out, probs), qkv.device())                                                 \
  /* dout (B, N, D) -> dqkv (B, N, 3D) */                                                                \
  X(void, attention_backward,                                                                            \
    (const Tensor& qkv, const Tensor& probs, const Tensor& dout, std::int64_t heads, double scale,       \
     const AttentionDropout& drop, Tensor& dqkv),                                                        \
    (qkv, probs, dout, heads, scale, drop, dqkv), qkv.device())

TESSERA_CPU_ATTENTION_KERNELS(TESSERA_DECLARE_KERNEL)

}  // namespace tessera::cpu
