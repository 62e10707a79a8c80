#include "ops/gdn.h"

#include "core/compare.h"
#include "core/error.h"
#include "ops/ref/ref.h"

namespace sanastream::ops {

GdnOutput gdn_bidirectional(const GdnInputs& in, const GdnState& init, double eps) {
  SS_CHECK(in.q.dim() == 5, "GDN: q expected [B, H, T, S, D], got {}", shape_str(in.q.sizes()));
  const auto s = in.q.sizes();
  for (const at::Tensor* t : {&in.k, &in.q_rot, &in.k_rot, &in.v})
    SS_CHECK(t->sizes() == s, "GDN: expected q, k, v and their rotations of shape {}, got {}", shape_str(s),
             shape_str(t->sizes()));
  SS_CHECK(in.beta.sizes() == at::IntArrayRef({s[0], s[1], s[2], s[3]}), "GDN: beta expected [B, H, T, S], got {}",
           shape_str(in.beta.sizes()));
  SS_CHECK(in.decay.sizes() == at::IntArrayRef({s[0], s[1], s[2]}), "GDN: decay expected [B, H, T], got {}",
           shape_str(in.decay.sizes()));
  if (init.defined()) {
    SS_CHECK(init.kv.sizes() == at::IntArrayRef({s[0], s[1], s[4], s[4]}) &&
                 init.z.sizes() == at::IntArrayRef({s[0], s[1], s[4], 1}),
             "GDN: initial state expected [B, H, D, D] and [B, H, D, 1], got {} and {}", shape_str(init.kv.sizes()),
             shape_str(init.z.sizes()));
  }
  if (in.q.is_cuda() && !ref::reference_mode()) return gdn_bidirectional_frames(in, init, eps);
  return ref::gdn_bidirectional(in, init, eps);
}

GdnOutput gdn_bidirectional_frames(const GdnInputs& in, const GdnState& init, double eps) {
  const int64_t B = in.q.size(0), H = in.q.size(1), T = in.q.size(2), D = in.q.size(4);
  const at::ScalarType cdt = in.q.scalar_type();  // compute dtype of the products
  const auto f32 = in.q.options().dtype(at::kFloat);
  at::Tensor beta = in.beta.unsqueeze(-1);  // [B, H, T, S, 1] fp32
  // Per-frame summaries, all frames in one batched product each.  [B, H, T, D, D] fp32
  at::Tensor eye = at::eye(D, f32);
  at::Tensor kb_rot = (in.k_rot.to(at::kFloat) * beta).to(cdt);                           // β ∘ K̂
  at::Tensor P = eye - at::matmul(in.k_rot.transpose(-1, -2), kb_rot).to(at::kFloat);     // I − K̂ᵀ diag(β) K̂
  at::Tensor A = at::matmul(in.v.transpose(-1, -2), kb_rot).to(at::kFloat);               // Vᵀ diag(β) K̂  [v, k]
  at::Tensor kb32 = in.k.to(at::kFloat) * beta;
  at::Tensor Pz = eye - at::matmul(kb32.to(cdt).transpose(-1, -2), in.k).to(at::kFloat);  // I − K diag(β) Kᵀ
  at::Tensor bz = kb32.sum(-2).unsqueeze(-1);                                               // K β   [B, H, T, D, 1]
  at::Tensor g = in.decay.view({B, H, T, 1, 1});

  // Forward: M_f = g_f·M_{f−1}·P_f + A_f, z_f = g_f·Pz_f·z_{f−1} + b_f. Reverse: frame f reads
  // frames f+1 … T−1 (zero for the last frame).
  std::vector<at::Tensor> M(T), z(T), R(T), zr(T);
  at::Tensor m = init.defined() ? init.kv.to(at::kFloat) : at::zeros({B, H, D, D}, f32);
  at::Tensor zz = init.defined() ? init.z.to(at::kFloat) : at::zeros({B, H, D, 1}, f32);
  for (int64_t f = 0; f < T; ++f) {
    m = g.select(2, f) * at::matmul(m, P.select(2, f)) + A.select(2, f);
    zz = g.select(2, f) * at::matmul(Pz.select(2, f), zz) + bz.select(2, f);
    M[f] = m;
    z[f] = zz;
  }
  R[T - 1] = at::zeros({B, H, D, D}, f32);
  zr[T - 1] = at::zeros({B, H, D, 1}, f32);
  for (int64_t f = T - 2; f >= 0; --f) {
    R[f] = g.select(2, f + 1) * at::matmul(R[f + 1], P.select(2, f + 1)) + A.select(2, f + 1);
    zr[f] = g.select(2, f + 1) * at::matmul(Pz.select(2, f + 1), zr[f + 1]) + bz.select(2, f + 1);
  }
  // Read-out of both directions at once: num = Q̂ (M + R)ᵀ, den = Q (z + z_r).   [B, H, T, S, ·]
  at::Tensor states = (at::stack(M, 2) + at::stack(R, 2)).to(cdt);
  at::Tensor zs = at::stack(z, 2) + at::stack(zr, 2);
  at::Tensor num = at::matmul(in.q_rot, states.transpose(-1, -2)).to(at::kFloat);
  at::Tensor den = at::matmul(in.q.to(at::kFloat), zs);
  return {num / (den + eps), {M[T - 1], z[T - 1]}};
}

}  // namespace sanastream::ops
