// Low-precision number formats of the mixed-precision quantization (SPEC §6, issue 15), simulated:
// values are rounded onto a format's grid and scaled back in fp32 ("quantize → dequantize"), so a
// model runs with exactly the values the quantized kernels would see, on any device. FP8 E4M3
// (Hopper's FP8 tensor-core input) and symmetric INT8; scales map a slice's absolute maximum to the
// format's largest value: per output channel for weights, per token for activations.
#pragma once

#include <string>

#include <ATen/ATen.h>

namespace sanastream::ops {

enum class Precision : uint8_t { kBF16, kFP8, kINT8 };

const char* precision_name(Precision p);  // "bf16", "fp8", "int8"
// Parses a precision name; anything else is an error naming the accepted ones.
Precision parse_precision(const std::string& name);
// The format's largest finite magnitude: 448 (E4M3), 127 (INT8).
double format_max(Precision p);

// Rounds y onto the format's grid, to nearest, ties to even, saturating at ±format_max (fp32 in,
// fp32 out; NaN stays NaN). E4M3: 3 mantissa bits, exponent bias 7, subnormal steps of 2⁻⁹;
// INT8: the integers −127 … 127. kBF16: y unchanged.
at::Tensor round_to_grid(const at::Tensor& y, Precision p);

// Quantize → dequantize with one scale per slice along `dim` (absmax / format_max; an all-zero
// slice stays zero): dim = 1 on a weight [out, in] gives per-output-channel scales, dim = −1 on an
// activation [..., in] per-token scales. Computed in fp32, returned in x's dtype.
at::Tensor fake_quant(const at::Tensor& x, Precision p, int64_t dim);

// Real quantized GEMMs (issue 15), on the GPU build (PyTorch 2.1+), one fp32 scale per row of each
// operand; the quantized values are fake_quant's, so each GEMM equals the simulated
// dense(fake_quant(x, p, −1), fake_quant(w, p, 1), b) up to accumulation order and the dequantized
// operands' rounding to the model dtype, which the GEMM skips.
//   FP8: E4M3 operands, on compute capability 8.9+ with cuBLASLt's per-row scaling (CUDA 12.9+): the
//        scales, the bias and a residual applied in the GEMM's epilogue.
//   INT8 (W8A8): int8 operands, int32 products (at::_int_mm), then one pass
//        (kernels::dequantize_int32) that scales them, adds the bias and the residual, writes bf16.
struct QuantRows {
  at::Tensor q;      // [rows, cols] float8_e4m3fn or int8
  at::Tensor scale;  // [rows, 1] fp32: absmax / format_max, 1 for an all-zero row
  // Rows [start, start + n) (views).
  QuantRows rows(int64_t start, int64_t n) const { return {q.narrow(0, start, n), scale.narrow(0, start, n)}; }
};
// Whether fp8_linear / int8_linear run on `device` for `dtype` activations (bf16 on a capable GPU).
bool fp8_gemm_available(const at::Device& device, at::ScalarType dtype);
bool int8_gemm_available(const at::Device& device, at::ScalarType dtype);
// x [rows, cols] (rows evenly strided) quantized per row: the CUDA kernel on the GPU (rows of up to
// 16,384), ATen ops elsewhere; the same values either way.
QuantRows quantize_fp8_rows(const at::Tensor& x);
QuantRows quantize_int8_rows(const at::Tensor& x);
// x·wᵀ·(scales) + bias [+ residual] in bf16: x [M, K] and w [N, K] from quantize_*_rows of one
// format, K and N multiples of 16; bias [N] bf16 or undefined; residual [M, N] bf16 or undefined.
at::Tensor fp8_linear(const QuantRows& x, const QuantRows& w, const at::Tensor& bias, const at::Tensor& residual = {});
at::Tensor int8_linear(const QuantRows& x, const QuantRows& w, const at::Tensor& bias,
                       const at::Tensor& residual = {});
// out += x·wᵀ·(scales) + bias; out [M, N] bf16 with unit column stride.
void fp8_linear_add_(at::Tensor& out, const QuantRows& x, const QuantRows& w, const at::Tensor& bias);
void int8_linear_add_(at::Tensor& out, const QuantRows& x, const QuantRows& w, const at::Tensor& bias);

}  // namespace sanastream::ops
