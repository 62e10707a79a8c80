// ATen front ends of the CUDA kernels (only built with SANASTREAM_CUDA): tensors to params
// structs, launched on the current stream. Callers check shapes; these check layouts.
#pragma once

#include <utility>

#include <ATen/ATen.h>

#include "core/torch_compat.h"
#include "ops/quant.h"
#include "ops/vae.h"

namespace sanastream::ops::cuda {

at::Tensor silu_glu(const at::Tensor& x);
at::Tensor silu_gate(const at::Tensor& x, const at::Tensor& gate);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, bool relu, double post_scale);
// rms_norm then RoPE, x [B, N, C] (evenly strided rows) into out [B, N, H, D] (unit stride along D),
// fp32 tables [N, D/2]. False, with nothing written, when the layout does not suit the kernel.
bool rms_norm_rope_into(const at::Tensor& x, const at::Tensor& weight, double eps, const at::Tensor& cos,
                        const at::Tensor& sin, const at::Tensor& out);
// fp8 (nullable): also the output's E4M3 rows (ops::layer_norm_modulate), where float8 types exist.
at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                               at::ScalarType out_dtype, QuantRows* fp8);
at::Tensor add_layer_norm_modulate_(at::Tensor& x, const at::Tensor& branch, const at::Tensor& shift,
                                    const at::Tensor& scale, double eps, at::ScalarType out_dtype,
                                    const at::Tensor& gate, QuantRows* fp8);
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
// fp8 (nullable): also the copy's E4M3 rows (ops::gate_residual_), where float8 types exist.
at::Tensor gate_residual_(at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch, at::ScalarType copy_dtype,
                          QuantRows* fp8);
at::Tensor depthwise_glu(const at::Tensor& x, const at::Tensor& weight_taps, const at::Tensor& bias);
// ops::vae_conv_input on channels-last frames (channel stride 1, history too); undefined when the
// layout or the width does not suit the kernel.
at::Tensor vae_conv_input(const at::Tensor& x, const at::Tensor& history, const ConvInputSpec& spec);
#if SS_HAS_FLOAT8
// x [rows, cols] (rows evenly strided) → E4M3 or int8 [rows, cols] and fp32 scales [rows, 1]
// (ops::quantize_fp8_rows, ops::quantize_int8_rows).
std::pair<at::Tensor, at::Tensor> quantize_rows(const at::Tensor& x, Precision format);
// d = x·wᵀ·(scales) + bias [+ c] (ops::fp8_linear, ops::int8_linear); c may be d itself. d and c bf16
// [M, N] with unit column stride, bias bf16 [N] or undefined. FP8 through cuBLASLt's epilogue; INT8
// through at::_int_mm's int32 products and kernels::dequantize_int32.
void fp8_gemm(const QuantRows& x, const QuantRows& w, const at::Tensor& bias, const at::Tensor& c, at::Tensor& d);
void int8_gemm(const QuantRows& x, const QuantRows& w, const at::Tensor& bias, const at::Tensor& c, at::Tensor& d);
#endif
#if SS_HAS_FLOAT8 && defined(SANASTREAM_HAS_CUDNN_FP8)
// ops::conv3d_fp8 through cuDNN's backend API; whether the loaded cuDNN has it (version 9+).
bool cudnn_fp8_conv_supported();
at::Tensor conv3d_fp8(const at::Tensor& xq, const at::Tensor& wq, const at::Tensor& out_scale, const at::Tensor& bias,
                      int64_t stride, int64_t pad);
#endif

}  // namespace sanastream::ops::cuda
