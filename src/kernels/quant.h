// Activation quantization for the FP8 projections (SPEC §6, issue 15): one scale per row (absmax /
// 448, 1 for an all-zero row), the row divided by it and rounded to FP8 E4M3 — to nearest, ties to
// even, saturating at ±448 — exactly as ops::fake_quant's grid. The GEMM (at::_scaled_mm) then
// multiplies the scales back per row and per weight channel.
#pragma once

#include "kernels/common.h"

namespace sanastream::kernels {

struct QuantizeRowsParams {
  const void* x = nullptr;  // [rows, cols], row stride x_stride (elements), x_type
  void* q = nullptr;        // [rows, cols] contiguous E4M3 bytes
  float* scales = nullptr;  // [rows]
  int64_t rows = 0, cols = 0, x_stride = 0;
  ElemType x_type = ElemType::kBF16;
};
// Rows of at most 16,384 elements.
cudaError_t quantize_rows_fp8(const QuantizeRowsParams& p, cudaStream_t stream);

}  // namespace sanastream::kernels
