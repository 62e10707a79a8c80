// Helpers shared by the CUDA front ends.
#pragma once

#include <ATen/ATen.h>

#include "core/error.h"
#include "kernels/common.h"

namespace sanastream::ops::cuda {

// Throws when a launch failed; with SANASTREAM_CUDA_SYNC=1 it also synchronises, so an
// asynchronous fault is reported at the launch that caused it.
void check_cuda(cudaError_t err, const char* what);

// The current CUDA stream of t's device.
cudaStream_t stream_of(const at::Tensor& t);

// Rows a kernel can read in place: unit stride along the last dim and, for [B, N, C], the batches
// evenly spaced (e.g. one part of a fused projection's output); else the caller copies.
inline bool evenly_strided_rows(const at::Tensor& x) {
  return x.dim() >= 2 && x.stride(-1) == 1 &&
         (x.dim() == 2 || (x.dim() == 3 && x.stride(0) == x.stride(1) * x.size(1)));
}

inline kernels::ElemType elem_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return kernels::ElemType::kF32;
    case at::kBFloat16: return kernels::ElemType::kBF16;
    case at::kHalf: return kernels::ElemType::kF16;
    default: SS_FAIL("CUDA kernels take fp32, bf16 or fp16 tensors, got {}", c10::toString(t.scalar_type()));
  }
}

}  // namespace sanastream::ops::cuda
