// out = value · SiLU(gate), value/gate the two halves of each row (the FFN's GLU).
#pragma once

#include "kernels/common.h"

namespace sanastream::kernels {

struct SiluGluParams {
  const void* x = nullptr;   // [rows, 2·cols] elements, rows with stride x_row_stride (elements)
  void* out = nullptr;       // [rows, cols], stride out_row_stride
  int64_t rows = 0;
  int64_t cols = 0;          // value width; gate starts at column `cols`
  int64_t x_row_stride = 0;
  int64_t out_row_stride = 0;
  ElemType type = ElemType::kF32;
};

cudaError_t silu_glu(const SiluGluParams& p, cudaStream_t stream);

}  // namespace sanastream::kernels
