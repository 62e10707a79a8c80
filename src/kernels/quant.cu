#include "kernels/quant.h"

namespace sanastream::kernels {

namespace {
// One row per block, held in registers (common.h's pieces), then quantize_row_fp8.
template <typename T, int kWidth, int kPieces>
__global__ void quantize_rows_fp8_kernel(QuantizeRowsParams p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x, C = p.cols;
  const T* x = static_cast<const T*>(p.x) + row * p.x_stride;
  float v[kPieces][kWidth];
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t c) { load_n<kWidth>(x + c, v[k]); });
  quantize_row_fp8<kWidth, kPieces>(v, C, scratch, static_cast<__nv_fp8_storage_t*>(p.q) + row * C, p.scales + row);
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
