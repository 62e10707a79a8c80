#include "ops/attention.h"

#include "core/compare.h"
#include "core/error.h"
#include "core/torch_compat.h"
#include "ops/ref/ref.h"

namespace sanastream::ops {

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias) {
  SS_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && q.size(0) == k.size(0) && q.size(1) == k.size(1) &&
               q.size(3) == k.size(3) && k.sizes() == v.sizes(),
           "attention: expected q [B, H, N, D] and k, v [B, H, M, D], got {}, {}, {}", shape_str(q.sizes()),
           shape_str(k.sizes()), shape_str(v.sizes()));
#if SS_HAS_SDPA
  if (!ref::reference_mode()) {
    c10::optional<at::Tensor> mask;
    if (bias.defined()) mask = bias.to(q.scalar_type());
    return at::scaled_dot_product_attention(q, k, v, mask);
  }
#endif
  return ref::attention(q, k, v, bias);
}

}  // namespace sanastream::ops
