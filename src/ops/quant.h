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

}  // namespace sanastream::ops
