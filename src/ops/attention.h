// Softmax attention (non-causal), scale 1/sqrt(D). SDPA on PyTorch 2.x, explicit math on 1.13.
#pragma once

#include <ATen/ATen.h>

namespace sanastream::ops {

// q: [B, H, N, D]; k, v: [B, H, M, D]; bias: undefined or additive, broadcastable to [B, H, N, M].
// Returns [B, H, N, D] in q's dtype.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias = {});

}  // namespace sanastream::ops
