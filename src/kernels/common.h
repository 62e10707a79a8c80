// Shared by the CUDA kernels: element types and conversions. No torch headers here; launchers
// return the cudaError_t of their launch and the ops front ends turn it into the library's error.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace sanastream::kernels {

enum class ElemType : uint8_t { kF32, kBF16, kF16 };

}  // namespace sanastream::kernels

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace sanastream::kernels {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half(v); }

// Asynchronous copies global → shared (sm_80+): kBytes (4, 8 or 16), or zeros when !valid (gmem
// must still be a valid address).
template <int kBytes>
__device__ __forceinline__ void cp_async(void* smem, const void* gmem, bool valid) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  if constexpr (kBytes == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(s), "l"(gmem), "n"(kBytes),
                 "r"(valid ? kBytes : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most `kPending` of this thread's committed groups are still in flight (and keeps the
// compiler from moving shared-memory reads above it).
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Block-wide sum for blockDim.x a multiple of 32 (≤ 1024); `scratch` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = lane < warps ? scratch[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace sanastream::kernels

// Instantiates `body` with T bound to the CUDA type of `type` (fp32, bf16, fp16).
#define SS_DISPATCH_ELEM(type, T, ...)                       \
  switch (type) {                                            \
    case ::sanastream::kernels::ElemType::kF32: {            \
      using T = float;                                       \
      __VA_ARGS__;                                           \
      break;                                                 \
    }                                                        \
    case ::sanastream::kernels::ElemType::kBF16: {           \
      using T = __nv_bfloat16;                               \
      __VA_ARGS__;                                           \
      break;                                                 \
    }                                                        \
    case ::sanastream::kernels::ElemType::kF16: {            \
      using T = __half;                                      \
      __VA_ARGS__;                                           \
      break;                                                 \
    }                                                        \
  }
#endif
