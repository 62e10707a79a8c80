#include "ops/glu.h"

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
  if (x.is_cuda() && !ref::reference_mode()) return cuda::silu_glu(x);
#endif
  return ref::silu_glu(x);
}

}  // namespace sanastream::ops
