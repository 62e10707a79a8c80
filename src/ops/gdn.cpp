#include "ops/gdn.h"

#include "core/compare.h"
#include "core/error.h"
#include "ops/ref/ref.h"

namespace sanastream::ops {

GdnOutput gdn_bidirectional(const GdnInputs& in, const GdnState& init, double eps) {
  SS_CHECK(in.q.dim() == 5, "GDN: q expected [B, H, T, D, S], got {}", shape_str(in.q.sizes()));
  const auto s = in.q.sizes();
  for (const at::Tensor* t : {&in.k, &in.q_rot, &in.k_rot, &in.v})
    SS_CHECK(t->sizes() == s, "GDN: expected q, k, v and their rotations of shape {}, got {}", shape_str(s),
             shape_str(t->sizes()));
  SS_CHECK(in.beta.sizes() == at::IntArrayRef({s[0], s[1], s[2], s[4]}), "GDN: beta expected [B, H, T, S], got {}",
           shape_str(in.beta.sizes()));
  SS_CHECK(in.decay.sizes() == at::IntArrayRef({s[0], s[1], s[2]}), "GDN: decay expected [B, H, T], got {}",
           shape_str(in.decay.sizes()));
  if (init.defined()) {
    SS_CHECK(init.kv.sizes() == at::IntArrayRef({s[0], s[1], s[3], s[3]}) &&
                 init.z.sizes() == at::IntArrayRef({s[0], s[1], s[3], 1}),
             "GDN: initial state expected [B, H, D, D] and [B, H, D, 1], got {} and {}", shape_str(init.kv.sizes()),
             shape_str(init.z.sizes()));
  }
  return ref::gdn_bidirectional(in, init, eps);
}

}  // namespace sanastream::ops
