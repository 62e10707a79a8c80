#include "kernels/norm.h"

namespace sanastream::kernels {

namespace {
constexpr int kThreads = 256;

template <typename T, typename W>
__global__ void rms_norm_kernel(RmsNormParams p) {
  __shared__ float scratch[32];
  const T* x = static_cast<const T*>(p.x) + blockIdx.x * p.x_stride;
  const W* w = static_cast<const W*>(p.weight);
  T* out = static_cast<T*>(p.out) + blockIdx.x * p.out_stride;
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    const float v = to_f32(x[c]);
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss, scratch) / static_cast<float>(p.cols) + p.eps);
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    float v = to_f32(w[c]) * (to_f32(x[c]) * inv);
    if (p.relu) v = fmaxf(v, 0.f);
    out[c] = from_f32<T>(v * p.post_scale);
  }
}

template <typename T, typename A>
__global__ void layer_norm_modulate_kernel(LayerNormModulateParams p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x, b = row / p.tokens, C = p.channels;
  float* x = p.x + row * C;
  const A* add = p.add ? static_cast<const A*>(p.add) + row * C : nullptr;
  const float* shift = p.shift + b * p.mod_stride;
  const float* scale = p.scale + b * p.mod_stride;
  T* out = static_cast<T*>(p.out) + row * C;
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {  // each thread rereads only what it wrote
    float v = x[c];
    if (add) x[c] = v += to_f32(add[c]);
    s += v;
  }
  const float mean = block_sum(s, scratch) / static_cast<float>(C);
  float sq = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float d = x[c] - mean;
    sq += d * d;
  }
  const float rstd = rsqrtf(block_sum(sq, scratch) / static_cast<float>(C) + p.eps);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
    out[c] = from_f32<T>((x[c] - mean) * rstd * (1.f + scale[c]) + shift[c]);
}
}  // namespace

cudaError_t rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  SS_DISPATCH_ELEM(p.x_type, T, {
    SS_DISPATCH_ELEM(p.weight_type, W, rms_norm_kernel<T, W><<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p));
  });
  return cudaGetLastError();
}

cudaError_t layer_norm_modulate(const LayerNormModulateParams& p, cudaStream_t stream) {
  if (p.batch * p.tokens == 0) return cudaSuccess;
  SS_DISPATCH_ELEM(p.out_type, T, {
    SS_DISPATCH_ELEM(p.add_type, A, {
      layer_norm_modulate_kernel<T, A><<<static_cast<unsigned>(p.batch * p.tokens), kThreads, 0, stream>>>(p);
    });
  });
  return cudaGetLastError();
}

}  // namespace sanastream::kernels
