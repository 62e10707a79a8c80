// Normalisations of the DiT (SPEC §2).
#pragma once

#include <ATen/ATen.h>

#include "ops/quant.h"
#include "ops/rope.h"

namespace sanastream::ops {

// RMSNorm over the last dim, computed in fp32: (w * x * rsqrt(mean(x²) + eps)) cast to x's dtype,
// then optionally ReLU and a scale (the GDN feature maps). x: [..., C]; weight: [C]
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, bool relu = false,
                    double post_scale = 1.0);

// rms_norm(x, weight, eps) then apply_rope(…, table), written into out: x [B, N, C]; out [B, N, H, D]
// with H·D = C, any strides (e.g. a transposed view of [B, H, N', D] key cache rows). On CUDA one pass
// when the layout allows it (same values: the normalised value is rounded to x's dtype first).
void rms_norm_rope_into(const at::Tensor& x, const at::Tensor& weight, double eps, const RopeTable& table,
                        const at::Tensor& out);

// LayerNorm without affine (eps) followed by adaLN modulation: LN(x)·(1 + scale) + shift, computed
// in fp32 and rounded once to out_dtype.
// x: [B, N, C] (the fp32 residual stream); shift, scale: [B, 1, C] (broadcast over tokens)
// fp8 (nullable): receives the output's rows quantized as quantize_fp8_rows(out.view(B·N, C)) when
// the CUDA kernel makes them in the same pass (an FP8 GEMM reads the output next); else left as is.
at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                               at::ScalarType out_dtype, QuantRows* fp8 = nullptr);

// x += gate · branch (gate undefined: x += branch), then layer_norm_modulate(x, …), in one pass on
// CUDA. x, gate and branch as gate_residual_'s.
at::Tensor add_layer_norm_modulate_(at::Tensor& x, const at::Tensor& branch, const at::Tensor& shift,
                                    const at::Tensor& scale, double eps, at::ScalarType out_dtype,
                                    const at::Tensor& gate = {}, QuantRows* fp8 = nullptr);

// x += gate · branch in place, in fp32 (gate undefined: x += branch). With a copy_dtype, also returns
// the updated x in that dtype, written by the same pass (else an undefined tensor).
// x: [B, N, C] fp32 contiguous (the residual stream); gate: [B, 1, C]; branch: [B, N, C]
// fp8 (nullable, with a copy_dtype): receives the copy's rows quantized as quantize_fp8_rows when the
// CUDA kernel makes them in the same pass (an FP8 GEMM reads the copy next); else left as is.
at::Tensor gate_residual_(at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch,
                          at::ScalarType copy_dtype = at::ScalarType::Undefined, QuantRows* fp8 = nullptr);

}  // namespace sanastream::ops
