#include "kernels/ffn.h"

#include <algorithm>

namespace sanastream::kernels {

namespace {
constexpr int kThreads = 256;
constexpr int kGroupBytes = 32;   // per half and pixel: a block's channel group is 32 bytes of value + 32 of gate
constexpr int kRowPadBytes = 32;  // shared-memory row padding: four consecutive rows on disjoint banks
constexpr int kSegment = 8;       // output pixels per thread item, along a row
constexpr int kStageBatch = 8;    // staged cells a thread loads at once
constexpr int kSmemBudget = 64 << 10;  // shared memory per block, unless three rows need more

__device__ __forceinline__ float silu(float v) { return __fdividef(v, 1.0f + __expf(-v)); }

// Two consecutive elements (4- or 8-byte aligned) as fp32, and back.
__device__ __forceinline__ float2 load_pair(const float* s) { return *reinterpret_cast<const float2*>(s); }
__device__ __forceinline__ float2 load_pair(const __nv_bfloat16* s) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(s));
}
__device__ __forceinline__ float2 load_pair(const __half* s) { return __half22float2(*reinterpret_cast<const __half2*>(s)); }
__device__ __forceinline__ void store_pair(float* d, float a, float b) { *reinterpret_cast<float2*>(d) = make_float2(a, b); }
__device__ __forceinline__ void store_pair(__nv_bfloat16* d, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(d) = __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ void store_pair(__half* d, float a, float b) {
  *reinterpret_cast<__half2*>(d) = __floats2half2_rn(a, b);
}

// Grid (row tiles, channel groups, frames). A block stages rows [y0 − 1, y0 + rows + 1) × columns
// [−1, W] of its channel group (value and gate) in shared memory, SiLU applied and rounded once per
// element, zeros outside the frame; then each item (channel pair, output row, segment of kSegment
// pixels) slides a 3 × 3 window along its row. Taps add in the order of the reference loop
// (bias, then rows, then columns). kVec: 16-byte loads (F a multiple of the group, aligned rows).
template <typename T, typename W, bool kVec>
__global__ void __launch_bounds__(kThreads) depthwise_glu_kernel(DepthwiseGluParams p, int tile_rows) {
  constexpr int kGroup = kGroupBytes / sizeof(T), kE = 16 / sizeof(T), kPairs = kGroup / 2;
  constexpr int kPixel = 2 * kGroup;  // elements per staged pixel: value group, then gate group
  extern __shared__ __align__(16) unsigned char smem[];
  T* tile = reinterpret_cast<T*>(smem);
  const int64_t F = p.channels, H = p.height, Wd = p.width, f = blockIdx.z;
  const int64_t c0 = int64_t(blockIdx.y) * kGroup, y0 = int64_t(blockIdx.x) * tile_rows;
  const int rows = static_cast<int>(H - y0 < tile_rows ? H - y0 : tile_rows);
  const int cols = static_cast<int>(Wd) + 2, row_stride = cols * kPixel + kRowPadBytes / static_cast<int>(sizeof(T));
  const T* x = static_cast<const T*>(p.x);

  // 1. Stage with SiLU: cell (r, col, half, vector) ← SiLU(x[y0 − 1 + r, col − 1, half·F + c0 + …]),
  // rounded to the element type, zeros outside the frame. A thread's cells are tid, tid + kThreads, …:
  // always the same (half, vector), its pixel advancing by kThreads / 4 (one division per thread).
  // kStageBatch of them are loaded into registers at once, then SiLU'd and stored.
  constexpr int kVecs = kGroup / kE, kCellsPerPixel = 2 * kVecs, kPixelStep = kThreads / kCellsPerPixel;
  static_assert(kThreads % kCellsPerPixel == 0, "a thread keeps its (half, vector)");
  const int cells = (rows + 2) * cols * kCellsPerPixel;
  const int v = threadIdx.x % kVecs, half = (threadIdx.x / kVecs) % 2;
  const int64_t sc = c0 + v * kE;  // the thread's first channel
  const int dr = kPixelStep / cols, dc = kPixelStep % cols;
  int sr = static_cast<int>(threadIdx.x / kCellsPerPixel) / cols, scol = static_cast<int>(threadIdx.x / kCellsPerPixel) % cols;
  for (int i0 = threadIdx.x; i0 < cells; i0 += kStageBatch * kThreads) {
    alignas(16) T e[kStageBatch][kE];
    int at[kStageBatch];  // the cell's offset in the tile, −1 past the last cell
#pragma unroll
    for (int j = 0; j < kStageBatch; ++j) {
      const int64_t y = y0 - 1 + sr, xx = scol - 1;
      const bool live = i0 + j * kThreads < cells, inside = live && y >= 0 && y < H && xx >= 0 && xx < Wd;
      const T* src = x + ((f * H + y) * Wd + xx) * 2 * F + half * F + sc;
      if constexpr (kVec) {
        *reinterpret_cast<uint4*>(e[j]) = inside ? __ldg(reinterpret_cast<const uint4*>(src)) : make_uint4(0, 0, 0, 0);
      } else {
#pragma unroll
        for (int k = 0; k < kE; ++k) e[j][k] = inside && sc + k < F ? src[k] : from_f32<T>(0.f);
      }
      at[j] = live ? sr * row_stride + scol * kPixel + half * kGroup + v * kE : -1;
      scol += dc, sr += dr;
      if (scol >= cols) scol -= cols, ++sr;
    }
#pragma unroll
    for (int j = 0; j < kStageBatch; ++j) {
      if (at[j] < 0) continue;
#pragma unroll
      for (int k = 0; k < kE; ++k) e[j][k] = from_f32<T>(silu(to_f32(e[j][k])));
      *reinterpret_cast<uint4*>(tile + at[j]) = *reinterpret_cast<const uint4*>(e[j]);
    }
  }
  __syncthreads();

  // 2. Items (output row, segment of kSegment pixels), row fastest, for the thread's channel pair
  // cp = tid % kPairs — fixed, as kThreads is a multiple of kPairs — whose weights it loads once.
  static_assert(kThreads % kPairs == 0, "a thread keeps its channel pair");
  const int cp = threadIdx.x % kPairs;
  const int64_t c = c0 + 2 * cp;
  if (c >= F) return;
  const bool two = c + 1 < F;
  const W* w = static_cast<const W*>(p.weight);
  const W* bias = static_cast<const W*>(p.bias);
  auto wpair = [&](const W* src) { return make_float2(to_f32(src[0]), two ? to_f32(src[1]) : 0.f); };
  float2 wv[9], wg[9];
#pragma unroll
  for (int tap = 0; tap < 9; ++tap) {
    wv[tap] = wpair(w + tap * 2 * F + c);
    wg[tap] = wpair(w + tap * 2 * F + F + c);
  }
  const float2 bv = wpair(bias + c), bg = wpair(bias + F + c);
  const int segments = static_cast<int>((Wd + kSegment - 1) / kSegment), items = segments * rows;
  for (int i = threadIdx.x / kPairs; i < items; i += kThreads / kPairs) {
    const int r = i % rows, seg = i / rows;
    // window[dy][dx]: staged (value, gate) pairs of rows r + dy, columns x − 1 + dx.
    auto load = [&](int rr, int col, int half) {
      return load_pair(tile + rr * row_stride + col * kPixel + half * kGroup + 2 * cp);
    };
    const int xa = seg * kSegment, xb = static_cast<int>(xa + kSegment < Wd ? xa + kSegment : Wd);
    float2 val[3][3], gat[3][3];
#pragma unroll
    for (int dy = 0; dy < 3; ++dy)
#pragma unroll
      for (int dx = 0; dx < 2; ++dx) {
        val[dy][dx + 1] = load(r + dy, xa + dx, 0);
        gat[dy][dx + 1] = load(r + dy, xa + dx, 1);
      }
    T* dst = static_cast<T*>(p.out) + ((f * H + y0 + r) * Wd + xa) * F + c;
    for (int xo = xa; xo < xb; ++xo, dst += F) {
#pragma unroll
      for (int dy = 0; dy < 3; ++dy) {
        val[dy][0] = val[dy][1], val[dy][1] = val[dy][2], val[dy][2] = load(r + dy, xo + 2, 0);
        gat[dy][0] = gat[dy][1], gat[dy][1] = gat[dy][2], gat[dy][2] = load(r + dy, xo + 2, 1);
      }
      float2 sv = bv, sg = bg;
#pragma unroll
      for (int dy = 0; dy < 3; ++dy)
#pragma unroll
        for (int dx = 0; dx < 3; ++dx) {
          const int tap = dy * 3 + dx;
          sv.x += wv[tap].x * val[dy][dx].x, sv.y += wv[tap].y * val[dy][dx].y;
          sg.x += wg[tap].x * gat[dy][dx].x, sg.y += wg[tap].y * gat[dy][dx].y;
        }
      const float o0 = sv.x * silu(sg.x), o1 = sv.y * silu(sg.y);
      if (two && F % 2 == 0) {
        store_pair(dst, o0, o1);
      } else {
        dst[0] = from_f32<T>(o0);
        if (two) dst[1] = from_f32<T>(o1);
      }
    }
  }
}

template <typename T, typename W>
cudaError_t launch(const DepthwiseGluParams& p, cudaStream_t stream) {
  constexpr int kGroup = kGroupBytes / sizeof(T), kE = 16 / sizeof(T);
  const bool vec = p.channels % kGroup == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0;
  // The most rows (with their two halo rows) that fit the budget; wide frames may ask for more.
  const int64_t row_bytes = (p.width + 2) * 2 * kGroupBytes + kRowPadBytes;
  int dev = 0, optin = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  const int64_t budget = 3 * row_bytes > kSmemBudget ? optin : kSmemBudget;
  const int64_t tile_rows = std::min<int64_t>(p.height, budget / row_bytes - 2);
  if (tile_rows < 1) return cudaErrorInvalidValue;  // a frame too wide for three staged rows
  const int smem = static_cast<int>((tile_rows + 2) * row_bytes);
  auto kernel = vec ? depthwise_glu_kernel<T, W, true> : depthwise_glu_kernel<T, W, false>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>((p.height + tile_rows - 1) / tile_rows),
                  static_cast<unsigned>((p.channels + kGroup - 1) / kGroup), static_cast<unsigned>(p.frames));
  static_assert(kGroup % kE == 0, "whole 16-byte vectors per group");
  kernel<<<grid, kThreads, smem, stream>>>(p, static_cast<int>(tile_rows));
  return cudaGetLastError();
}
}  // namespace

cudaError_t depthwise_glu(const DepthwiseGluParams& p, cudaStream_t stream) {
  if (p.frames * p.height * p.width * p.channels == 0) return cudaSuccess;
  cudaError_t err = cudaSuccess;
  SS_DISPATCH_ELEM(p.type, T, { SS_DISPATCH_ELEM(p.weight_type, W, err = (launch<T, W>(p, stream))); });
  return err;
}

}  // namespace sanastream::kernels
