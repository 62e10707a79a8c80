// ATen front ends of the CUDA kernels (only built with SANASTREAM_CUDA): tensors to params
// structs, launched on the current stream.
#pragma once

#include <ATen/ATen.h>

namespace sanastream::ops::cuda {

at::Tensor silu_glu(const at::Tensor& x);

}  // namespace sanastream::ops::cuda
