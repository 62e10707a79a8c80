#include "kernels/quant.h"

namespace sanastream::kernels {

namespace {
// One row per block, held in registers (common.h's pieces), then quantize_row.
template <typename T, QuantFormat kFormat, int kWidth, int kPieces>
__global__ void quantize_rows_kernel(QuantizeRowsParams p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x, C = p.cols;
  const T* x = static_cast<const T*>(p.x) + row * p.x_stride;
  float v[kPieces][kWidth];
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t c) { load_n<kWidth>(x + c, v[k]); });
  quantize_row<kFormat, kWidth, kPieces>(v, C, scratch, static_cast<char*>(p.q) + row * C, p.scales + row);
}

template <typename T, QuantFormat kFormat>
void launch_quantize_rows(const QuantizeRowsParams& p, bool vec, unsigned block, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(p.rows);
  if (vec)
    quantize_rows_kernel<T, kFormat, 4, kRowPerThread / 4><<<grid, block, 0, stream>>>(p);
  else
    quantize_rows_kernel<T, kFormat, 1, kRowPerThread><<<grid, block, 0, stream>>>(p);
}

// kWidth consecutive columns of one row per thread; the bias in TB.
template <typename TB, int kWidth>
__global__ void dequantize_int32_kernel(DequantizeParams p) {
  const int64_t groups = p.cols / kWidth;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.rows * groups) return;
  const int64_t row = i / groups, col = (i % groups) * kWidth;
  const float rs = p.row_scales[row];
  const int32_t* acc = p.acc + row * p.cols + col;
  int32_t a[kWidth];
  if constexpr (kWidth == 4) {
    const int4 u = *reinterpret_cast<const int4*>(acc);
    a[0] = u.x, a[1] = u.y, a[2] = u.z, a[3] = u.w;
  } else {
    a[0] = acc[0];
  }
  float v[kWidth];
  load_n<kWidth>(p.col_scales + col, v);
#pragma unroll
  for (int k = 0; k < kWidth; ++k) v[k] *= static_cast<float>(a[k]) * rs;
  if (p.bias) {
    float b[kWidth];
    load_n<kWidth>(static_cast<const TB*>(p.bias) + col, b);
#pragma unroll
    for (int k = 0; k < kWidth; ++k) v[k] += b[k];
  }
  if (p.c) {
    float c[kWidth];
    load_n<kWidth>(static_cast<const __nv_bfloat16*>(p.c) + row * p.c_stride + col, c);
#pragma unroll
    for (int k = 0; k < kWidth; ++k) v[k] += c[k];
  }
  store_n<kWidth>(static_cast<__nv_bfloat16*>(p.d) + row * p.d_stride + col, v);
}
}  // namespace

cudaError_t quantize_rows(const QuantizeRowsParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  const unsigned block = row_block_threads(p.cols);
  if (block == 0) return cudaErrorInvalidValue;
  const bool vec = p.cols % 4 == 0 && p.x_stride % 4 == 0 && is_aligned(p.x, 4 * elem_bytes(p.x_type)) &&
                   is_aligned(p.q, 4);
  SS_DISPATCH_ELEM(p.x_type, T, {
    if (p.format == QuantFormat::kE4M3)
      launch_quantize_rows<T, QuantFormat::kE4M3>(p, vec, block, stream);
    else
      launch_quantize_rows<T, QuantFormat::kInt8>(p, vec, block, stream);
  });
  return cudaGetLastError();
}

cudaError_t dequantize_int32(const DequantizeParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return cudaSuccess;
  const bool vec = p.cols % 4 == 0 && p.d_stride % 4 == 0 && is_aligned(p.d, 8) && is_aligned(p.acc, 16) &&
                   is_aligned(p.col_scales, 16) &&
                   (!p.c || (p.c_stride % 4 == 0 && is_aligned(p.c, 8))) &&
                   (!p.bias || is_aligned(p.bias, 4 * elem_bytes(p.bias_type)));
  const int width = vec ? 4 : 1;
  const int64_t threads = p.rows * (p.cols / width);
  constexpr unsigned kBlock = 256;
  const unsigned grid = static_cast<unsigned>((threads + kBlock - 1) / kBlock);
  SS_DISPATCH_ELEM(p.bias_type, TB, {
    if (vec)
      dequantize_int32_kernel<TB, 4><<<grid, kBlock, 0, stream>>>(p);
    else
      dequantize_int32_kernel<TB, 1><<<grid, kBlock, 0, stream>>>(p);
  });
  return cudaGetLastError();
}

}  // namespace sanastream::kernels
