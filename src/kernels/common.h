// Shared by the CUDA kernels: element types and conversions. No torch headers here; launchers
// return the cudaError_t of their launch and the ops front ends turn it into the library's error.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace sanastream::kernels {

enum class ElemType : uint8_t { kF32, kBF16, kF16 };

inline int64_t elem_bytes(ElemType t) { return t == ElemType::kF32 ? 4 : 2; }
inline bool is_aligned(const void* p, int64_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

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

// Block-wide reduction for blockDim.x a multiple of 32 (≤ 1024): `op` over every thread's v, in a
// fixed order, `identity` for the missing warps; `scratch` holds 32 floats.
template <typename Op>
__device__ __forceinline__ float block_reduce(float v, float* scratch, Op op, float identity) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = lane < warps ? scratch[lane] : identity;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  return block_reduce(v, scratch, [](float a, float b) { return a + b; }, 0.f);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  return block_reduce(v, scratch, [](float a, float b) { return fmaxf(a, b); }, -INFINITY);
}

// Row kernels hold one row per block in registers, kRowPerThread elements a thread: thread t owns
// the kWidth-element pieces t, t + blockDim, … (at most kPieces).
constexpr int kRowPerThread = 16;
// fn(k, c) for each of the thread's pieces k that starts inside the row, c its first element.
template <int kWidth, int kPieces, typename Fn>
__device__ __forceinline__ void for_each_piece(int64_t cols, Fn fn) {
#pragma unroll
  for (int k = 0; k < kPieces; ++k) {
    const int64_t c = (threadIdx.x + int64_t(k) * blockDim.x) * kWidth;
    if (c < cols) fn(k, c);
  }
}
// The fewest warps that hold a row of `cols` elements (0: more than 16,384).
inline unsigned row_block_threads(int64_t cols) {
  const int64_t threads = ((cols + kRowPerThread - 1) / kRowPerThread + 31) / 32 * 32;
  return threads > 1024 ? 0u : static_cast<unsigned>(threads < 32 ? 32 : threads);
}

// kWidth consecutive elements as fp32 (kWidth · sizeof aligned), and back.
template <int kWidth>
__device__ __forceinline__ void load_n(const float* p, float (&v)[kWidth]) {
  if constexpr (kWidth == 4) {
    const float4 u = *reinterpret_cast<const float4*>(p);
    v[0] = u.x, v[1] = u.y, v[2] = u.z, v[3] = u.w;
  } else {
    v[0] = p[0];
  }
}
template <int kWidth, typename A>
__device__ __forceinline__ void load_n(const A* p, float (&v)[kWidth]) {
  if constexpr (kWidth == 4 && sizeof(A) == 2) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const A* e = reinterpret_cast<const A*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = to_f32(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < kWidth; ++i) v[i] = to_f32(p[i]);
  }
}
template <int kWidth>
__device__ __forceinline__ void store_n(float* p, const float (&v)[kWidth]) {
  if constexpr (kWidth == 4)
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  else
    p[0] = v[0];
}
template <int kWidth, typename T>
__device__ __forceinline__ void store_n(T* p, const float (&v)[kWidth]) {
  if constexpr (kWidth == 4 && sizeof(T) == 2) {
    uint2 u;
    T* e = reinterpret_cast<T*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) e[i] = from_f32<T>(v[i]);
    *reinterpret_cast<uint2*>(p) = u;
  } else {
#pragma unroll
    for (int i = 0; i < kWidth; ++i) p[i] = from_f32<T>(v[i]);
  }
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
