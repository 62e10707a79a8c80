#include "ops/gdn.h"

#include <cstdlib>
#include <string>

#include "core/compare.h"
#include "core/error.h"
#include "ops/norm.h"
#include "ops/ref/ref.h"
#ifdef SANASTREAM_HAS_CUDA
#include "ops/cuda/gdn_cuda.h"
#endif

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
  // The frames as views, taken once: under autograd one unbind costs one stack in the backward pass,
  // where a select per frame would cost a zero-filled tensor of all frames each.
  const std::vector<at::Tensor> gf = g.unbind(2), Pf = P.unbind(2), Af = A.unbind(2), Pzf = Pz.unbind(2),
                                bzf = bz.unbind(2);
  std::vector<at::Tensor> M(T), z(T), R(T), zr(T);
  at::Tensor m = init.defined() ? init.kv.to(at::kFloat) : at::zeros({B, H, D, D}, f32);
  at::Tensor zz = init.defined() ? init.z.to(at::kFloat) : at::zeros({B, H, D, 1}, f32);
  for (int64_t f = 0; f < T; ++f) {
    m = gf[f] * at::matmul(m, Pf[f]) + Af[f];
    zz = gf[f] * at::matmul(Pzf[f], zz) + bzf[f];
    M[f] = m;
    z[f] = zz;
  }
  R[T - 1] = at::zeros({B, H, D, D}, f32);
  zr[T - 1] = at::zeros({B, H, D, 1}, f32);
  for (int64_t f = T - 2; f >= 0; --f) {
    R[f] = gf[f + 1] * at::matmul(R[f + 1], Pf[f + 1]) + Af[f + 1];
    zr[f] = gf[f + 1] * at::matmul(Pzf[f + 1], zr[f + 1]) + bzf[f + 1];
  }
  // Read-out of both directions at once: num = Q̂ (M + R)ᵀ, den = Q (z + z_r).   [B, H, T, S, ·]
  at::Tensor states = (at::stack(M, 2) + at::stack(R, 2)).to(cdt);
  at::Tensor zs = at::stack(z, 2) + at::stack(zr, 2);
  at::Tensor num = at::matmul(in.q_rot, states.transpose(-1, -2)).to(at::kFloat);
  at::Tensor den = at::matmul(in.q.to(at::kFloat), zs);
  return {num / (den + eps), {M[T - 1], z[T - 1]}};
}

namespace {

#ifdef SANASTREAM_HAS_CUDA
// SANASTREAM_GDN_KERNEL=0 turns the fused kernels off (the ATen path then runs on CUDA too).
bool gdn_kernel_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("SANASTREAM_GDN_KERNEL");
    return !(v && std::string(v) == "0");
  }();
  return on;
}
#endif

void set_final_state(GdnState* dst, const GdnState& src) {
  if (!dst) return;
  if (dst->kv.defined()) {
    dst->kv.copy_(src.kv);
    dst->z.copy_(src.z.view_as(dst->z));
  } else {
    *dst = src;
  }
}

// The ATen path: the glue kernels (RMSNorm/ReLU/scale, RoPE, layout, β), gdn_bidirectional, then
// the merge in the model dtype as the official block does (SiLU of the gate in fp32, cast back).
at::Tensor gdn_gated_aten(const GdnProjections& p, const GdnFeatureMaps& fm, const RopeTable& rope,
                          const GdnState& init, GdnState* final_state, double eps) {
  const int64_t B = p.q.size(0), N = p.q.size(1), C = p.q.size(2), H = fm.heads, D = C / H, T = fm.frames, S = N / T;
  at::Tensor q = rms_norm(p.q, fm.q_norm, fm.norm_eps, /*relu=*/true);
  at::Tensor k = rms_norm(p.k, fm.k_norm, fm.norm_eps, /*relu=*/true, fm.k_scale);
  auto heads = [&](const at::Tensor& t) { return t.view({B, N, H, D}); };
  at::Tensor q_rot = apply_rope(heads(q), rope);
  at::Tensor k_rot = apply_rope(heads(k), rope);
  // [B, N, H, D] → [B, H, T, S, D], the scan's layout (head-dim rows stay contiguous).
  auto to_scan = [&](const at::Tensor& t) { return t.reshape({B, T, S, H, D}).permute({0, 3, 1, 2, 4}).contiguous(); };
  GdnInputs in;
  in.q = to_scan(q);
  in.k = to_scan(k);
  in.q_rot = to_scan(q_rot);
  in.k_rot = to_scan(k_rot);
  in.v = to_scan(p.v);
  in.beta = at::sigmoid(p.beta_logits).view({B, T, S, H}).permute({0, 3, 1, 2}).to(at::kFloat).contiguous();
  in.decay = p.decay.to(at::kFloat).permute({0, 2, 1}).contiguous();
  GdnOutput r = gdn_bidirectional(in, init, eps);
  set_final_state(final_state, r.final_state);
  at::Tensor out = r.out.to(p.q.scalar_type()).permute({0, 2, 3, 1, 4}).reshape({B, N, C});
  return out * at::silu(p.gate.to(at::kFloat)).to(out.scalar_type());
}

}  // namespace

at::Tensor gdn_decay(const at::Tensor& logits, int64_t frames, const at::Tensor& neg_a, const at::Tensor& dt_bias) {
  SS_CHECK(logits.dim() == 3 && frames > 0 && logits.size(1) % frames == 0 && neg_a.numel() == logits.size(2) &&
               dt_bias.numel() == logits.size(2) && neg_a.scalar_type() == at::kFloat &&
               dt_bias.scalar_type() == at::kFloat,
           "GDN decay: expected logits [B, T·S, H] with T = {} and fp32 neg_a, dt_bias [H], got {}, {}, {}", frames,
           shape_str(logits.sizes()), shape_str(neg_a.sizes()), shape_str(dt_bias.sizes()));
#ifdef SANASTREAM_HAS_CUDA
  if (logits.is_cuda() && !ref::reference_mode() && !ref::records_grad({logits, neg_a, dt_bias})) {
    at::Tensor g = cuda::gdn_decay(logits, frames, neg_a, dt_bias);
    if (g.defined()) return g;
  }
#endif
  return ref::gdn_decay(logits, frames, neg_a, dt_bias);
}

at::Tensor gdn_gated(const GdnProjections& p, const GdnFeatureMaps& fm, const RopeTable& rope, const GdnState& init,
                     GdnState* final_state, double eps, bool fused) {
  SS_CHECK(p.q.dim() == 3 && fm.heads > 0 && fm.frames > 0 && p.q.size(2) % fm.heads == 0 &&
               p.q.size(1) % fm.frames == 0,
           "GDN: q expected [B, T·S, H·D] with H = {}, T = {}, got {}", fm.heads, fm.frames, shape_str(p.q.sizes()));
  for (const at::Tensor* t : {&p.k, &p.v, &p.gate})
    SS_CHECK(t->sizes() == p.q.sizes(), "GDN: expected k, v and gate of shape {}, got {}", shape_str(p.q.sizes()),
             shape_str(t->sizes()));
  SS_CHECK(p.beta_logits.sizes() == at::IntArrayRef({p.q.size(0), p.q.size(1), fm.heads}),
           "GDN: beta expected [B, N, H], got {}", shape_str(p.beta_logits.sizes()));
#ifdef SANASTREAM_HAS_CUDA
  // The kernels have no backward: under autograd the ATen path runs.
  if (fused && gdn_kernel_enabled() && !ref::reference_mode() &&
      !ref::records_grad({p.q, p.k, p.v, p.gate, p.beta_logits, p.decay, fm.q_norm, fm.k_norm, init.kv, init.z}) &&
      cuda::gdn_fused_applies(p, fm, rope))
    return cuda::gdn_gated(p, fm, rope, init, final_state, eps);
#else
  (void)fused;
#endif
  return gdn_gated_aten(p, fm, rope, init, final_state, eps);
}

}  // namespace sanastream::ops
