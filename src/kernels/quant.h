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

#ifdef __CUDACC__
#include <cuda_fp8.h>

namespace sanastream::kernels {

// kWidth values divided by `scale` (IEEE division, as the reference) and converted to E4M3 —
// saturating, to nearest, ties to even — into q (4-byte aligned when kWidth is 4).
template <int kWidth>
__device__ __forceinline__ void store_e4m3(__nv_fp8_storage_t* q, const float (&v)[kWidth], float scale) {
  __nv_fp8_storage_t e[kWidth];
#pragma unroll
  for (int i = 0; i < kWidth; ++i) e[i] = __nv_cvt_float_to_fp8(v[i] / scale, __NV_SATFINITE, __NV_E4M3);
  if constexpr (kWidth == 4) {
    *reinterpret_cast<uint32_t*>(q) =
        uint32_t(e[0]) | uint32_t(e[1]) << 8 | uint32_t(e[2]) << 16 | uint32_t(e[3]) << 24;
  } else {
    q[0] = e[0];
  }
}

// A row held in registers (common.h's pieces, one row per block) quantized as above: its absmax
// (a block max), the scale (to scales[row] by thread 0) and each piece stored by store_e4m3.
template <int kWidth, int kPieces>
__device__ __forceinline__ void quantize_row_fp8(const float (&v)[kPieces][kWidth], int64_t cols, float* scratch,
                                                 __nv_fp8_storage_t* q_row, float* scale_out) {
  float amax = 0.f;
  for_each_piece<kWidth, kPieces>(cols, [&](int k, int64_t) {
#pragma unroll
    for (int i = 0; i < kWidth; ++i) amax = fmaxf(amax, fabsf(v[k][i]));
  });
  amax = block_max(amax, scratch);
  const float scale = amax > 0.f ? amax / 448.f : 1.f;
  if (threadIdx.x == 0) *scale_out = scale;
  for_each_piece<kWidth, kPieces>(cols, [&](int k, int64_t c) { store_e4m3<kWidth>(q_row + c, v[k], scale); });
}

}  // namespace sanastream::kernels
#endif
