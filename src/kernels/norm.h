// Row normalisations of the DiT, fp32 arithmetic, one rounding to the output type.
#pragma once

#include "kernels/common.h"

namespace sanastream::kernels {

// out = epilogue(w · x · rsqrt(mean(x²) + eps)), epilogue = optional ReLU then × post_scale, then
// optionally RoPE per head on interleaved pairs (the normalised value rounded to x's type first, as
// rms_norm followed by a separate rotation). Rows of at most 16,384 channels.
struct RmsNormParams {
  const void* x = nullptr;       // [rows, cols], row stride x_stride (elements)
  const void* weight = nullptr;  // [cols]
  // Row r = b·tokens + n, column c = h·head_dim + d goes to
  // out + b·out_batch_stride + n·out_stride + h·out_head_stride + d (elements).
  void* out = nullptr;
  int64_t rows = 0, cols = 0, x_stride = 0;
  int64_t tokens = 1, head_dim = 1, out_stride = 0, out_batch_stride = 0, out_head_stride = 0;
  float eps = 1e-5f;
  bool relu = false;
  float post_scale = 1.f;
  const float* rope_cos = nullptr;  // [tokens, head_dim / 2] fp32, or null: no rotation
  const float* rope_sin = nullptr;
  ElemType x_type = ElemType::kF32, weight_type = ElemType::kF32;  // out has x's type
};
// Whether the launch takes 4-element pieces: every row, piece and head aligned for them. RoPE needs
// them (rms_norm refuses a rotation without).
bool rms_norm_vectorized(const RmsNormParams& p);
cudaError_t rms_norm(const RmsNormParams& p, cudaStream_t stream);

// out[b, n, :] = LN(x[b, n, :]) · (1 + scale[b, :]) + shift[b, :], LN without affine; with `add`,
// x += add first (written back), in the same pass. Rows of at most 16,384 channels.
struct LayerNormModulateParams {
  float* x = nullptr;            // [B, N, C] fp32 (the residual stream), contiguous; written only with add
  const void* add = nullptr;     // [B, N, C] contiguous, add_type, or null
  const float* gate = nullptr;   // [B, C] fp32, row stride mod_stride: x += gate·add (null: x += add)
  const float* shift = nullptr;  // [B, C] fp32, row stride mod_stride
  const float* scale = nullptr;  // [B, C] fp32, row stride mod_stride
  void* out = nullptr;           // [B, N, C] contiguous, out_type
  void* fp8 = nullptr;           // or null: [B·N, C] contiguous E4M3 of out (as rounded), per row as quantize_rows
  float* fp8_scales = nullptr;   // [B·N] the rows' scales (with fp8)
  int64_t batch = 0, tokens = 0, channels = 0, mod_stride = 0;
  float eps = 1e-6f;
  ElemType out_type = ElemType::kBF16, add_type = ElemType::kBF16;
};
cudaError_t layer_norm_modulate(const LayerNormModulateParams& p, cudaStream_t stream);

}  // namespace sanastream::kernels
