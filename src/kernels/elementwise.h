// Elementwise kernels of the DiT: rotary embedding and the gated residual update.
#pragma once

#include "kernels/common.h"

namespace sanastream::kernels {

// out[b, n, h, 2i..2i+1] = rotate(x[b, n, h, 2i..2i+1], angle table row n, pair i), computed in the
// table's precision (fp32 or fp64). x and out contiguous [B, N, H, D].
struct RopeParams {
  const void* x = nullptr;
  void* out = nullptr;
  const void* cos = nullptr;  // [N or 1, D/2]
  const void* sin = nullptr;
  int64_t batch = 0, tokens = 0, heads = 0, head_dim = 0;
  bool table_per_token = true;  // false: one row for every token
  bool table_f64 = false;
  ElemType type = ElemType::kBF16;
};
cudaError_t rope(const RopeParams& p, cudaStream_t stream);

// x[b, n, c] += gate[b, c] · branch[b, n, c] in fp32 (gate null: x += branch); with `copy`, the
// updated x is also written there, rounded to copy_type, by the same pass; with `fp8` too, the copy's
// rows quantized to E4M3 as quantize_rows (one row per block then; at most 16,384 channels).
struct GateResidualParams {
  float* x = nullptr;             // [B, N, C] fp32 contiguous
  const float* gate = nullptr;    // [B, C] fp32, row stride gate_stride, or null
  const void* branch = nullptr;   // [B, N, C] contiguous
  void* copy = nullptr;           // [B, N, C] contiguous, or null
  void* fp8 = nullptr;            // [B·N, C] contiguous E4M3 of the copy, or null (needs the copy)
  float* fp8_scales = nullptr;    // [B·N] the rows' scales (with fp8)
  int64_t batch = 0, tokens = 0, channels = 0, gate_stride = 0;
  ElemType branch_type = ElemType::kBF16, copy_type = ElemType::kBF16;
};
cudaError_t gate_residual(const GateResidualParams& p, cudaStream_t stream);

}  // namespace sanastream::kernels
