// The FFN's gated linear unit: value · SiLU(gate), with value and gate the two halves of dim 1.
#pragma once

#include <ATen/ATen.h>

namespace sanastream::ops {

// x: [B, 2F, ...] → [B, F, ...] (value = first F channels, gate = last F).
at::Tensor silu_glu(const at::Tensor& x);

}  // namespace sanastream::ops
