#include "kernels/elementwise.h"

#include <algorithm>

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

template <typename T>
__global__ void gate_residual_kernel(GateResidualParams p) {
  const int64_t total = p.batch * p.tokens * p.channels;
  const T* br = static_cast<const T*>(p.branch);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const float b = to_f32(br[i]);
    if (p.gate) {
      const int64_t c = i % p.channels, batch = i / (p.tokens * p.channels);
      p.x[i] += p.gate[batch * p.gate_stride + c] * b;
    } else {
      p.x[i] += b;
    }
  }
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
  SS_DISPATCH_ELEM(p.branch_type, T, gate_residual_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(p));
  return cudaGetLastError();
}

}  // namespace sanastream::kernels
