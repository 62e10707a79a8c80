#include "kernels/quant.h"

#include <cuda_fp8.h>

namespace sanastream::kernels {

namespace {
constexpr float kE4M3Max = 448.f;

// One row per block, held in registers (common.h's pieces): its absmax, then each element divided
// by the scale (IEEE division, as the reference) and converted.
template <typename T, int kWidth, int kPieces>
__global__ void quantize_rows_fp8_kernel(QuantizeRowsParams p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x, C = p.cols;
  const T* x = static_cast<const T*>(p.x) + row * p.x_stride;
  __nv_fp8_storage_t* q = static_cast<__nv_fp8_storage_t*>(p.q) + row * C;
  float v[kPieces][kWidth];
  float amax = 0.f;
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t c) {
    load_n<kWidth>(x + c, v[k]);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) amax = fmaxf(amax, fabsf(v[k][i]));
  });
  amax = block_max(amax, scratch);
  const float scale = amax > 0.f ? amax / kE4M3Max : 1.f;
  if (threadIdx.x == 0) p.scales[row] = scale;
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t c) {
    __nv_fp8_storage_t e[kWidth];
#pragma unroll
    for (int i = 0; i < kWidth; ++i) e[i] = __nv_cvt_float_to_fp8(v[k][i] / scale, __NV_SATFINITE, __NV_E4M3);
    if constexpr (kWidth == 4) {
      *reinterpret_cast<uint32_t*>(q + c) = uint32_t(e[0]) | uint32_t(e[1]) << 8 | uint32_t(e[2]) << 16 | uint32_t(e[3]) << 24;
    } else {
      q[c] = e[0];
    }
  });
}
}  // namespace

cudaError_t quantize_rows_fp8(const QuantizeRowsParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  const unsigned block = row_block_threads(p.cols);
  if (block == 0) return cudaErrorInvalidValue;
  const bool vec = p.cols % 4 == 0 && p.x_stride % 4 == 0 && is_aligned(p.x, 4 * elem_bytes(p.x_type)) &&
                   is_aligned(p.q, 4);
  const unsigned grid = static_cast<unsigned>(p.rows);
  SS_DISPATCH_ELEM(p.x_type, T, {
    if (vec)
      quantize_rows_fp8_kernel<T, 4, kRowPerThread / 4><<<grid, block, 0, stream>>>(p);
    else
      quantize_rows_fp8_kernel<T, 1, kRowPerThread><<<grid, block, 0, stream>>>(p);
  });
  return cudaGetLastError();
}

}  // namespace sanastream::kernels
