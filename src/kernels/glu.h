// out = value · SiLU(gate), the SiLU taken in fp32 and rounded to the element type first (as the
// official modules' silu then product): value/gate the two halves of each row (the FFN's GLU), or
// gate rows of their own (the softmax blocks' output gate).
#pragma once

#include "kernels/common.h"

namespace sanastream::kernels {

struct SiluGluParams {
  const void* x = nullptr;     // [rows, 2·cols] elements, rows with stride x_row_stride (elements)
  const void* gate = nullptr;  // [rows, cols], stride gate_row_stride; null: the gate is x's column `cols` on
  void* out = nullptr;         // [rows, cols], stride out_row_stride
  int64_t rows = 0;
  int64_t cols = 0;            // value width
  int64_t x_row_stride = 0;
  int64_t gate_row_stride = 0;
  int64_t out_row_stride = 0;
  ElemType type = ElemType::kF32;
};

cudaError_t silu_glu(const SiluGluParams& p, cudaStream_t stream);

}  // namespace sanastream::kernels
