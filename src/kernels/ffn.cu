#include "kernels/ffn.h"

#include <algorithm>

namespace sanastream::kernels {

namespace {
constexpr int kThreads = 256;

__device__ __forceinline__ float silu(float v) { return v / (1.0f + __expf(-v)); }

// One thread computes kVec consecutive output channels of one pixel: 9 taps of value and gate,
// read through vector loads of the channels-last (already activated) input; neighbouring pixels hit
// in L1/L2. SiLU is applied only to the gate sums here: the input's SiLU is one elementwise pass
// before (ops front end), not 9 recomputations per element — the SFU, not memory, bound the
// one-pass version (5.6 ms per 2B forward, docs/PERF.md).
template <typename T, typename W, int kVec>
__global__ void depthwise_glu_kernel(DepthwiseGluParams p) {
  const int64_t F = p.channels, groups = F / kVec;
  const int64_t total = p.frames * p.height * p.width * groups;
  const T* x = static_cast<const T*>(p.x);
  const W* w = static_cast<const W*>(p.weight);
  const W* bias = static_cast<const W*>(p.bias);
  T* out = static_cast<T*>(p.out);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c0 = (i % groups) * kVec;
    const int64_t pix = i / groups;
    const int64_t xw = pix % p.width, yh = (pix / p.width) % p.height, f = pix / (p.width * p.height);
    float val[kVec], gate[kVec];
#pragma unroll
    for (int v = 0; v < kVec; ++v) {
      val[v] = to_f32(bias[c0 + v]);
      gate[v] = to_f32(bias[F + c0 + v]);
    }
    for (int dy = -1; dy <= 1; ++dy) {
      const int64_t yy = yh + dy;
      if (yy < 0 || yy >= p.height) continue;
      for (int dx = -1; dx <= 1; ++dx) {
        const int64_t xx = xw + dx;
        if (xx < 0 || xx >= p.width) continue;
        const int tap = (dy + 1) * 3 + (dx + 1);
        const T* src = x + ((f * p.height + yy) * p.width + xx) * 2 * F;
        alignas(16) T a[kVec], g[kVec];
        if constexpr (kVec * sizeof(T) == 16) {
          *reinterpret_cast<uint4*>(a) = *reinterpret_cast<const uint4*>(src + c0);
          *reinterpret_cast<uint4*>(g) = *reinterpret_cast<const uint4*>(src + F + c0);
        } else {
#pragma unroll
          for (int v = 0; v < kVec; ++v) {
            a[v] = src[c0 + v];
            g[v] = src[F + c0 + v];
          }
        }
        const W* wt = w + tap * 2 * F;
        alignas(16) W wa[kVec], wg[kVec];
        if constexpr (kVec * sizeof(W) == 16) {
          *reinterpret_cast<uint4*>(wa) = *reinterpret_cast<const uint4*>(wt + c0);
          *reinterpret_cast<uint4*>(wg) = *reinterpret_cast<const uint4*>(wt + F + c0);
        } else {
#pragma unroll
          for (int v = 0; v < kVec; ++v) {
            wa[v] = wt[c0 + v];
            wg[v] = wt[F + c0 + v];
          }
        }
#pragma unroll
        for (int v = 0; v < kVec; ++v) {
          val[v] += to_f32(wa[v]) * to_f32(a[v]);
          gate[v] += to_f32(wg[v]) * to_f32(g[v]);
        }
      }
    }
    T* dst = out + pix * F + c0;
#pragma unroll
    for (int v = 0; v < kVec; ++v) dst[v] = from_f32<T>(val[v] * silu(gate[v]));
  }
}

template <typename T, typename W>
void launch(const DepthwiseGluParams& p, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool vec = p.channels % kVec == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.weight) % 16 == 0;
  const int64_t total = p.frames * p.height * p.width * (vec ? p.channels / kVec : p.channels);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + kThreads - 1) / kThreads, 1 << 20));
  if (vec) {
    depthwise_glu_kernel<T, W, kVec><<<blocks, kThreads, 0, stream>>>(p);
  } else {
    depthwise_glu_kernel<T, W, 1><<<blocks, kThreads, 0, stream>>>(p);
  }
}
}  // namespace

cudaError_t depthwise_glu(const DepthwiseGluParams& p, cudaStream_t stream) {
  if (p.frames * p.height * p.width * p.channels == 0) return cudaSuccess;
  SS_DISPATCH_ELEM(p.type, T, { SS_DISPATCH_ELEM(p.weight_type, W, launch<T, W>(p, stream)); });
  return cudaGetLastError();
}

}  // namespace sanastream::kernels
