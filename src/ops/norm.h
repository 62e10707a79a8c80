// Normalisations of the DiT (SPEC §2).
#pragma once

#include <ATen/ATen.h>

namespace sanastream::ops {

// RMSNorm over the last dim, computed in fp32: (w * x * rsqrt(mean(x²) + eps)) cast to x's dtype.
// x: [..., C]; weight: [C]
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// LayerNorm without affine (eps) followed by adaLN modulation: LN(x)·(1 + scale) + shift, computed
// in fp32 and rounded once to out_dtype.
// x: [B, N, C] (the fp32 residual stream); shift, scale: [B, 1, C] (broadcast over tokens)
at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                               at::ScalarType out_dtype);

}  // namespace sanastream::ops
