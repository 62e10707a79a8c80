// Activation quantization for the quantized projections (SPEC §6, issue 15): one scale per row
// (absmax / the format's largest value, 1 for an all-zero row), the row divided by it and rounded —
// to nearest, ties to even, saturating — exactly as ops::fake_quant's grid: FP8 E4M3 (±448, for the
// FP8 GEMMs, which multiply the scales back per row and per weight channel) or INT8 (±127, for the
// INT8 GEMMs, whose int32 products dequantize_int32 scales back). dequantize_int32 also adds the
// bias and a residual and writes bf16: the INT8 GEMM's epilogue.
#pragma once

#include "kernels/common.h"

namespace sanastream::kernels {

enum class QuantFormat : uint8_t { kE4M3, kInt8 };

struct QuantizeRowsParams {
  const void* x = nullptr;  // [rows, cols], row stride x_stride (elements), x_type
  void* q = nullptr;        // [rows, cols] contiguous E4M3 or int8 bytes
  float* scales = nullptr;  // [rows]
  int64_t rows = 0, cols = 0, x_stride = 0;
  ElemType x_type = ElemType::kBF16;
  QuantFormat format = QuantFormat::kE4M3;
};
// Rows of at most 16,384 elements.
cudaError_t quantize_rows(const QuantizeRowsParams& p, cudaStream_t stream);

struct DequantizeParams {
  const int32_t* acc = nullptr;  // [rows, cols] contiguous: the INT8 GEMM's products
  const float* row_scales = nullptr;  // [rows]: the activation rows' scales
  const float* col_scales = nullptr;  // [cols]: the weight rows' (output channels') scales
  const void* bias = nullptr;         // [cols] in bias_type, or null
  ElemType bias_type = ElemType::kBF16;
  const void* c = nullptr;            // bf16 [rows, cols], row stride c_stride, or null (may be d)
  void* d = nullptr;                  // bf16 [rows, cols], row stride d_stride
  int64_t rows = 0, cols = 0, c_stride = 0, d_stride = 0;
};
// d = bf16(acc · row_scale · col_scale + bias + c), the sum in fp32.
cudaError_t dequantize_int32(const DequantizeParams& p, cudaStream_t stream);

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

// kWidth values divided by `scale` and rounded to the integers −127 … 127 (ties to even) into q
// (4-byte aligned when kWidth is 4).
template <int kWidth>
__device__ __forceinline__ void store_int8(int8_t* q, const float (&v)[kWidth], float scale) {
  int8_t e[kWidth];
#pragma unroll
  for (int i = 0; i < kWidth; ++i) e[i] = static_cast<int8_t>(fminf(fmaxf(rintf(v[i] / scale), -127.f), 127.f));
  if constexpr (kWidth == 4) {
    *reinterpret_cast<char4*>(q) = make_char4(e[0], e[1], e[2], e[3]);
  } else {
    q[0] = e[0];
  }
}

// A row held in registers (common.h's pieces, one row per block) quantized as above: its absmax
// (a block max), the scale (to scales[row] by thread 0) and each piece stored in the format.
template <QuantFormat kFormat, int kWidth, int kPieces>
__device__ __forceinline__ void quantize_row(const float (&v)[kPieces][kWidth], int64_t cols, float* scratch,
                                             void* q_row, float* scale_out) {
  float amax = 0.f;
  for_each_piece<kWidth, kPieces>(cols, [&](int k, int64_t) {
#pragma unroll
    for (int i = 0; i < kWidth; ++i) amax = fmaxf(amax, fabsf(v[k][i]));
  });
  amax = block_max(amax, scratch);
  const float top = kFormat == QuantFormat::kE4M3 ? 448.f : 127.f;
  const float scale = amax > 0.f ? amax / top : 1.f;
  if (threadIdx.x == 0) *scale_out = scale;
  for_each_piece<kWidth, kPieces>(cols, [&](int k, int64_t c) {
    if constexpr (kFormat == QuantFormat::kE4M3)
      store_e4m3<kWidth>(static_cast<__nv_fp8_storage_t*>(q_row) + c, v[k], scale);
    else
      store_int8<kWidth>(static_cast<int8_t*>(q_row) + c, v[k], scale);
  });
}

}  // namespace sanastream::kernels
#endif
