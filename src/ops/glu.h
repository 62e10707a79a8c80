// The FFN's gated linear unit: value · SiLU(gate), with value and gate the two halves of dim 1.
#pragma once

#include <ATen/ATen.h>

namespace sanastream::ops {

// x: [B, 2F, ...] → [B, F, ...] (value = first F channels, gate = last F).
at::Tensor silu_glu(const at::Tensor& x);

// The FFN's spatial middle on channels-last frames: SiLU, depthwise 3×3 (+bias, zero padding),
// then value · SiLU(gate). x: [BT, H, W, 2F] (the inverted 1×1 conv's output, pre-SiLU);
// weight_taps: [9, 2F] (the depthwise weight [2F, 1, 3, 3] tap-major); bias: [2F] → [BT, H, W, F].
at::Tensor depthwise_glu(const at::Tensor& x, const at::Tensor& weight_taps, const at::Tensor& bias);

}  // namespace sanastream::ops
