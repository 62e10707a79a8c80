// The FFN's gated linear unit: value · SiLU(gate), with value and gate the two halves of dim 1.
#pragma once

#include <ATen/ATen.h>

namespace sanastream::ops {

// x: [B, 2F, ...] → [B, F, ...] (value = first F channels, gate = last F).
at::Tensor silu_glu(const at::Tensor& x);

// x · SiLU(gate), the SiLU taken in fp32 and rounded to x's dtype first (the softmax blocks' output
// gate, as the official `x * silu(gate.float()).to(x.dtype)`). x, gate: [..., C] of one shape and
// dtype; gate may be a view of a wider output (rows evenly strided).
at::Tensor silu_gate(const at::Tensor& x, const at::Tensor& gate);

// The FFN's spatial middle on channels-last frames: SiLU, depthwise 3×3 (+bias, zero padding),
// then value · SiLU(gate). x: [BT, H, W, 2F] (the inverted 1×1 conv's output, pre-SiLU);
// weight_taps: [9, 2F] (the depthwise weight [2F, 1, 3, 3] tap-major); bias: [2F] → [BT, H, W, F].
at::Tensor depthwise_glu(const at::Tensor& x, const at::Tensor& weight_taps, const at::Tensor& bias);

}  // namespace sanastream::ops
