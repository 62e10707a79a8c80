// Version guards for features that only PyTorch 2.x's libtorch has (SDPA, float8, _scaled_mm).
// The code builds against Debian's libtorch 1.13 (CPU) and PyTorch 2.11 (CUDA).
#pragma once

#include <torch/version.h>

#define SS_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// at::scaled_dot_product_attention (2.0+).
#define SS_HAS_SDPA SS_TORCH_AT_LEAST(2, 0)
// at::kFloat8_e4m3fn / at::kFloat8_e5m2 (2.1+).
#define SS_HAS_FLOAT8 SS_TORCH_AT_LEAST(2, 1)
