#include "ops/attention.h"

#include <algorithm>
#include <vector>

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
  // The reference by blocks of queries (each row of the softmax is its own): the scores never exceed
  // kQueryBlock × M per head, instead of N × M (at the demo model's 5,376 queries per chunk, ~0.5 GB
  // allocated, filled and freed per call).
  constexpr int64_t kQueryBlock = 256;
  const int64_t N = q.size(2);
  if (ref::reference_mode() || N <= kQueryBlock) return ref::attention(q, k, v, bias);
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < N; i += kQueryBlock) {
    const int64_t n = std::min(kQueryBlock, N - i);
    const at::Tensor b = !bias.defined() || bias.size(-2) == 1 ? bias : bias.narrow(-2, i, n);
    out.push_back(ref::attention(q.narrow(2, i, n), k, v, b));
  }
  return at::cat(out, 2);
}

}  // namespace sanastream::ops
