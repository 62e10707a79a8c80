// Helpers shared by the CUDA front ends.
#pragma once

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/common.h"

namespace sanastream::ops::cuda {

// Throws when a launch failed; with SANASTREAM_CUDA_SYNC=1 it also synchronises, so an
// asynchronous fault is reported at the launch that caused it.
void check_cuda(cudaError_t err, const char* what);

inline kernels::ElemType elem_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return kernels::ElemType::kF32;
    case at::kBFloat16: return kernels::ElemType::kBF16;
    case at::kHalf: return kernels::ElemType::kF16;
    default: SS_FAIL("CUDA kernels take fp32, bf16 or fp16 tensors, got {}", c10::toString(t.scalar_type()));
  }
}

}  // namespace sanastream::ops::cuda
