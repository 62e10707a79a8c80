#include "kernels/glu.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

namespace sanastream::kernels {

namespace {
template <typename T>
__device__ __forceinline__ float to_f(T v) { return static_cast<float>(v); }
template <>
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T from_f(float v) { return static_cast<T>(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ __half from_f(float v) { return __float2half(v); }

// One thread per output element; rows on blockIdx.y keep the index math cheap.
template <typename T>
__global__ void silu_glu_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t cols, int64_t xs, int64_t os) {
  const int64_t row = blockIdx.y;
  const T* xr = x + row * xs;
  T* orow = out + row * os;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    const float v = to_f(xr[c]);
    const float g = to_f(xr[cols + c]);
    orow[c] = from_f<T>(v * (g / (1.0f + __expf(-g))));
  }
}

template <typename T>
void launch(const SiluGluParams& p, cudaStream_t stream) {
  const int threads = 256;
  const int64_t blocks_x = std::min<int64_t>((p.cols + threads - 1) / threads, 1024);
  dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(p.rows));
  silu_glu_kernel<T><<<grid, threads, 0, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.out), p.cols,
                                                   p.x_row_stride, p.out_row_stride);
}
}  // namespace

cudaError_t silu_glu(const SiluGluParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return cudaSuccess;
  switch (p.type) {
    case ElemType::kF32: launch<float>(p, stream); break;
    case ElemType::kBF16: launch<__nv_bfloat16>(p, stream); break;
    case ElemType::kF16: launch<__half>(p, stream); break;
  }
  return cudaGetLastError();
}

}  // namespace sanastream::kernels
