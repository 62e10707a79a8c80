#include "ops/glu.h"

#include "core/compare.h"
#include "core/error.h"
#include "ops/ref/ref.h"
#ifdef SANASTREAM_HAS_CUDA
#include "ops/cuda_dispatch.h"
#endif

namespace sanastream::ops {

at::Tensor silu_glu(const at::Tensor& x) {
  SS_CHECK(x.dim() >= 2 && x.size(1) % 2 == 0, "silu_glu: expected an even channel dim 1, got {} channels",
           x.dim() >= 2 ? x.size(1) : -1);
#ifdef SANASTREAM_HAS_CUDA
  if (x.is_cuda() && !ref::reference_mode() && !ref::records_grad({x})) return cuda::silu_glu(x);
#endif
  return ref::silu_glu(x);
}

at::Tensor silu_gate(const at::Tensor& x, const at::Tensor& gate) {
  SS_CHECK(x.sizes() == gate.sizes() && x.scalar_type() == gate.scalar_type() && x.dim() >= 1,
           "silu_gate: expected x and gate of one shape and dtype, got {} {} and {} {}", shape_str(x.sizes()),
           c10::toString(x.scalar_type()), shape_str(gate.sizes()), c10::toString(gate.scalar_type()));
#ifdef SANASTREAM_HAS_CUDA
  if (x.is_cuda() && !ref::reference_mode() && !ref::records_grad({x, gate})) return cuda::silu_gate(x, gate);
#endif
  return ref::silu_gate(x, gate);
}

at::Tensor depthwise_glu(const at::Tensor& x, const at::Tensor& weight_taps, const at::Tensor& bias) {
  SS_CHECK(x.dim() == 4 && x.size(3) % 2 == 0 && weight_taps.dim() == 2 && weight_taps.size(0) == 9 &&
               weight_taps.size(1) == x.size(3) && bias.numel() == x.size(3),
           "depthwise_glu: expected x [BT, H, W, 2F], weight [9, 2F], bias [2F], got {}, {}, {}",
           shape_str(x.sizes()), shape_str(weight_taps.sizes()), shape_str(bias.sizes()));
#ifdef SANASTREAM_HAS_CUDA
  if (x.is_cuda() && !ref::reference_mode() && !ref::records_grad({x, weight_taps, bias}))
    return cuda::depthwise_glu(x, weight_taps, bias);
#endif
  return ref::depthwise_glu(x, weight_taps, bias);
}

}  // namespace sanastream::ops
