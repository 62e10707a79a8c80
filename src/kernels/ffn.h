// The FFN's spatial middle after the inverted 1×1 conv: SiLU (once per element, rounded to the
// element type as the official module does), depthwise 3×3 (+bias, zero padding), then
// value · SiLU(gate) with value = the first F channels and gate = the last F — one pass over the
// 2F-channel tensor. Channels-last, so no transposes around the GEMMs.
#pragma once

#include "kernels/common.h"

namespace sanastream::kernels {

struct DepthwiseGluParams {
  const void* x = nullptr;       // [frames, height, width, 2F] contiguous, before the SiLU
  const void* weight = nullptr;  // [9, 2F] contiguous: the depthwise 3×3 weight, tap-major
  const void* bias = nullptr;    // [2F]
  void* out = nullptr;           // [frames, height, width, F] contiguous
  int64_t frames = 0, height = 0, width = 0, channels = 0;  // channels = F
  ElemType type = ElemType::kBF16, weight_type = ElemType::kBF16;
};

cudaError_t depthwise_glu(const DepthwiseGluParams& p, cudaStream_t stream);

}  // namespace sanastream::kernels
