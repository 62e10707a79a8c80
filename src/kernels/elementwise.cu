#include "kernels/elementwise.h"

#include <algorithm>

#include "kernels/quant.h"

namespace sanastream::kernels {

namespace {
constexpr int kThreads = 256;

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20)); }

template <typename T, typename A>
__global__ void rope_kernel(RopeParams p) {
  const int64_t pairs = p.head_dim / 2;
  const int64_t total = p.batch * p.tokens * p.heads * pairs;
  const T* x = static_cast<const T*>(p.x);
  T* out = static_cast<T*>(p.out);
  const A* cs = static_cast<const A*>(p.cos);
  const A* sn = static_cast<const A*>(p.sin);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pair = i % pairs;
    const int64_t n = (i / (pairs * p.heads)) % p.tokens;
    const int64_t row = p.table_per_token ? n : 0;
    const A c = cs[row * pairs + pair], s = sn[row * pairs + pair];
    const A x0 = static_cast<A>(to_f32(x[2 * i])), x1 = static_cast<A>(to_f32(x[2 * i + 1]));
    out[2 * i] = from_f32<T>(static_cast<float>(x0 * c - x1 * s));
    out[2 * i + 1] = from_f32<T>(static_cast<float>(x0 * s + x1 * c));
  }
}

// kVec consecutive channels per step (4: 16-byte x loads, C a multiple of 4 and aligned rows).
template <typename T, typename Y, int kVec>
__global__ void gate_residual_kernel(GateResidualParams p) {
  const int64_t units_per_row = p.channels / kVec, total = p.batch * p.tokens * units_per_row;
  const T* br = static_cast<const T*>(p.branch);
  Y* copy = static_cast<Y*>(p.copy);
  for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < total; u += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = u / units_per_row, c = (u % units_per_row) * kVec, i = row * p.channels + c;
    const float* gate = p.gate ? p.gate + (row / p.tokens) * p.gate_stride + c : nullptr;
    float x[kVec];
    if constexpr (kVec == 4) {
      const float4 v = *reinterpret_cast<const float4*>(p.x + i);
      x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
    } else {
      x[0] = p.x[i];
    }
#pragma unroll
    for (int k = 0; k < kVec; ++k) x[k] += gate ? gate[k] * to_f32(br[i + k]) : to_f32(br[i + k]);
    if constexpr (kVec == 4) {
      *reinterpret_cast<float4*>(p.x + i) = make_float4(x[0], x[1], x[2], x[3]);
    } else {
      p.x[i] = x[0];
    }
    if (copy)
#pragma unroll
      for (int k = 0; k < kVec; ++k) copy[i + k] = from_f32<Y>(x[k]);
  }
}

// With fp8: one row per block, held in registers (common.h's pieces) as gate_residual_kernel
// computes it, so the copy's E4M3 rows come from the same pass.
template <typename T, typename Y, int kWidth, int kPieces>
__global__ void gate_residual_rows_kernel(GateResidualParams p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x, C = p.channels;
  float* x = p.x + row * C;
  const T* br = static_cast<const T*>(p.branch) + row * C;
  const float* gate = p.gate ? p.gate + (row / p.tokens) * p.gate_stride : nullptr;
  Y* copy = static_cast<Y*>(p.copy) + row * C;
  float v[kPieces][kWidth];
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t c) {
    float b[kWidth], g[kWidth];
    load_n<kWidth>(x + c, v[k]);
    load_n<kWidth>(br + c, b);
    if (gate) load_n<kWidth>(gate + c, g);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) v[k][i] += gate ? g[i] * b[i] : b[i];
    store_n<kWidth>(x + c, v[k]);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) v[k][i] = to_f32(from_f32<Y>(v[k][i]));
    store_n<kWidth>(copy + c, v[k]);
  });
  quantize_row<QuantFormat::kE4M3, kWidth, kPieces>(v, C, scratch, static_cast<char*>(p.fp8) + row * C,
                                                    p.fp8_scales + row);
}
}  // namespace

cudaError_t rope(const RopeParams& p, cudaStream_t stream) {
  const int64_t total = p.batch * p.tokens * p.heads * (p.head_dim / 2);
  if (total == 0) return cudaSuccess;
  SS_DISPATCH_ELEM(p.type, T, {
    if (p.table_f64) {
      rope_kernel<T, double><<<grid_for(total), kThreads, 0, stream>>>(p);
    } else {
      rope_kernel<T, float><<<grid_for(total), kThreads, 0, stream>>>(p);
    }
  });
  return cudaGetLastError();
}

cudaError_t gate_residual(const GateResidualParams& p, cudaStream_t stream) {
  const int64_t total = p.batch * p.tokens * p.channels;
  if (total == 0) return cudaSuccess;
  const bool vec = p.channels % 4 == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
                   (!p.gate || (p.gate_stride % 4 == 0 && reinterpret_cast<uintptr_t>(p.gate) % 16 == 0));
  if (p.fp8) {
    const unsigned block = row_block_threads(p.channels);
    if (block == 0 || !p.copy) return cudaErrorInvalidValue;
    const bool vec_rows = vec && is_aligned(p.branch, 4 * elem_bytes(p.branch_type)) &&
                          is_aligned(p.copy, 4 * elem_bytes(p.copy_type)) && is_aligned(p.fp8, 4);
    const unsigned grid = static_cast<unsigned>(p.batch * p.tokens);
    SS_DISPATCH_ELEM(p.branch_type, T, {
      SS_DISPATCH_ELEM(p.copy_type, Y, {
        if (vec_rows)
          gate_residual_rows_kernel<T, Y, 4, kRowPerThread / 4><<<grid, block, 0, stream>>>(p);
        else
          gate_residual_rows_kernel<T, Y, 1, kRowPerThread><<<grid, block, 0, stream>>>(p);
      });
    });
    return cudaGetLastError();
  }
  SS_DISPATCH_ELEM(p.branch_type, T, {
    SS_DISPATCH_ELEM(p.copy_type, Y, {
      if (vec) {
        gate_residual_kernel<T, Y, 4><<<grid_for(total / 4), kThreads, 0, stream>>>(p);
      } else {
        gate_residual_kernel<T, Y, 1><<<grid_for(total), kThreads, 0, stream>>>(p);
      }
    });
  });
  return cudaGetLastError();
}

}  // namespace sanastream::kernels
