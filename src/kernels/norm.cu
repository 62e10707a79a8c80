#include "kernels/norm.h"

#include "kernels/quant.h"

namespace sanastream::kernels {

namespace {
// One row per block, held in registers (common.h's pieces). x (and add) are read once, the mean and
// then the variance come from the registers (two block sums), out is written once and x, with add,
// written back once; with fp8, the rounded row is quantized from the registers too.
template <typename T, typename A, int kWidth, int kPieces>
__global__ void layer_norm_modulate_kernel(LayerNormModulateParams p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x, b = row / p.tokens, C = p.channels;
  float* x = p.x + row * C;
  const A* add = p.add ? static_cast<const A*>(p.add) + row * C : nullptr;
  const float* shift = p.shift + b * p.mod_stride;
  const float* scale = p.scale + b * p.mod_stride;
  const float* gate = p.gate ? p.gate + b * p.mod_stride : nullptr;
  T* out = static_cast<T*>(p.out) + row * C;
  float v[kPieces][kWidth];
  float s = 0.f, sq = 0.f;
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t c) {
    load_n<kWidth>(x + c, v[k]);
    if (add) {
      float a[kWidth], g[kWidth];
      load_n<kWidth>(add + c, a);
      if (gate) {
        load_n<kWidth>(gate + c, g);
#pragma unroll
        for (int i = 0; i < kWidth; ++i) a[i] *= g[i];
      }
#pragma unroll
      for (int i = 0; i < kWidth; ++i) v[k][i] += a[i];
      store_n<kWidth>(x + c, v[k]);
    }
#pragma unroll
    for (int i = 0; i < kWidth; ++i) s += v[k][i];
  });
  const float mean = block_sum(s, scratch) / static_cast<float>(C);
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t) {
#pragma unroll
    for (int i = 0; i < kWidth; ++i) sq += (v[k][i] - mean) * (v[k][i] - mean);
  });
  const float rstd = rsqrtf(block_sum(sq, scratch) / static_cast<float>(C) + p.eps);
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t c) {
    float sc[kWidth], sh[kWidth];
    load_n<kWidth>(scale + c, sc);
    load_n<kWidth>(shift + c, sh);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) v[k][i] = to_f32(from_f32<T>((v[k][i] - mean) * rstd * (1.f + sc[i]) + sh[i]));
    store_n<kWidth>(out + c, v[k]);
  });
  if (p.fp8)
    quantize_row<QuantFormat::kE4M3, kWidth, kPieces>(v, C, scratch, static_cast<char*>(p.fp8) + row * C,
                                                      p.fp8_scales + row);
}

// One row per block, held in registers as layer_norm_modulate_kernel's; then the epilogue, the
// rotation of each piece's pairs (4-element pieces never straddle a head: head_dim % 4 == 0) and
// the store to the piece's head.
template <typename T, typename W, int kWidth, int kPieces>
__global__ void rms_norm_kernel(RmsNormParams p) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x, b = row / p.tokens, n = row % p.tokens, C = p.cols;
  const T* x = static_cast<const T*>(p.x) + row * p.x_stride;
  const W* w = static_cast<const W*>(p.weight);
  T* out = static_cast<T*>(p.out) + b * p.out_batch_stride + n * p.out_stride;
  float v[kPieces][kWidth];
  float ss = 0.f;
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t c) {
    load_n<kWidth>(x + c, v[k]);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) ss += v[k][i] * v[k][i];
  });
  const float inv = rsqrtf(block_sum(ss, scratch) / static_cast<float>(C) + p.eps);
  for_each_piece<kWidth, kPieces>(C, [&](int k, int64_t c) {
    float wk[kWidth];
    load_n<kWidth>(w + c, wk);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      float y = wk[i] * (v[k][i] * inv);
      if (p.relu) y = fmaxf(y, 0.f);
      v[k][i] = to_f32(from_f32<T>(y * p.post_scale));
    }
    const int64_t h = c / p.head_dim, d = c % p.head_dim;
    if constexpr (kWidth % 2 == 0) {
      if (p.rope_cos) {
        const float* cs = p.rope_cos + n * (p.head_dim / 2) + d / 2;
        const float* sn = p.rope_sin + n * (p.head_dim / 2) + d / 2;
#pragma unroll
        for (int i = 0; i < kWidth; i += 2) {
          const float x0 = v[k][i], x1 = v[k][i + 1], cv = cs[i / 2], sv = sn[i / 2];
          v[k][i] = x0 * cv - x1 * sv;
          v[k][i + 1] = x0 * sv + x1 * cv;
        }
      }
    }
    store_n<kWidth>(out + h * p.out_head_stride + d, v[k]);
  });
}
}  // namespace

bool rms_norm_vectorized(const RmsNormParams& p) {
  const int64_t xb = elem_bytes(p.x_type);
  return p.cols % 4 == 0 && p.head_dim % 4 == 0 && p.x_stride % 4 == 0 && p.out_stride % 4 == 0 &&
         p.out_batch_stride % 4 == 0 && p.out_head_stride % 4 == 0 && is_aligned(p.x, 4 * xb) &&
         is_aligned(p.out, 4 * xb) && is_aligned(p.weight, 4 * elem_bytes(p.weight_type));
}

cudaError_t rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  const unsigned block = row_block_threads(p.cols);
  const bool vec = rms_norm_vectorized(p);
  if (block == 0 || p.cols % p.head_dim != 0 || (p.rope_cos && !vec)) return cudaErrorInvalidValue;
  const unsigned grid = static_cast<unsigned>(p.rows);
  SS_DISPATCH_ELEM(p.x_type, T, {
    SS_DISPATCH_ELEM(p.weight_type, W, {
      if (vec)
        rms_norm_kernel<T, W, 4, kRowPerThread / 4><<<grid, block, 0, stream>>>(p);
      else
        rms_norm_kernel<T, W, 1, kRowPerThread><<<grid, block, 0, stream>>>(p);
    });
  });
  return cudaGetLastError();
}

cudaError_t layer_norm_modulate(const LayerNormModulateParams& p, cudaStream_t stream) {
  if (p.batch * p.tokens == 0) return cudaSuccess;
  // 4-element pieces when every row and the modulation rows start aligned for them, else single elements.
  const unsigned block = row_block_threads(p.channels);
  if (block == 0) return cudaErrorInvalidValue;
  const bool vec = p.channels % 4 == 0 && p.mod_stride % 4 == 0 && is_aligned(p.x, 16) && is_aligned(p.shift, 16) &&
                   is_aligned(p.scale, 16) && (!p.gate || is_aligned(p.gate, 16)) &&
                   is_aligned(p.out, 4 * elem_bytes(p.out_type)) &&
                   (!p.add || is_aligned(p.add, 4 * elem_bytes(p.add_type)));
  const unsigned grid = static_cast<unsigned>(p.batch * p.tokens);
  SS_DISPATCH_ELEM(p.out_type, T, {
    SS_DISPATCH_ELEM(p.add_type, A, {
      if (vec)
        layer_norm_modulate_kernel<T, A, 4, kRowPerThread / 4><<<grid, block, 0, stream>>>(p);
      else
        layer_norm_modulate_kernel<T, A, 1, kRowPerThread><<<grid, block, 0, stream>>>(p);
    });
  });
  return cudaGetLastError();
}

}  // namespace sanastream::kernels
