// The frame-wise gated delta rule of the hybrid DiT's GDN blocks (SPEC §2), both directions inside
// one call. Per head, frame f with keys K_f, values V_f (D × S) and per-token β:
//   M_f = g_f·M_{f−1}·(I − K̂ B K̂ᵀ) + V B K̂ᵀ      (K̂ rotated; M indexed [v, k])
//   z_f = g_f·z_{f−1} + K B (1 − Kᵀ g_f z_{f−1})   (K unrotated)
// The reverse scan sees strictly later frames. Output per token: q̂ᵀ(M_fwd + M_rev) / (qᵀ(z_fwd + z_rev) + eps).
#pragma once

#include <ATen/ATen.h>

namespace sanastream::ops {

struct GdnState {
  at::Tensor kv;  // [B, H, D, D] fp32, indexed [v_dim, k_dim]
  at::Tensor z;   // [B, H, D, 1] fp32
  bool defined() const { return kv.defined(); }
};

struct GdnInputs {
  at::Tensor q, k;          // [B, H, T, D, S] fp32, after ReLU (k also scaled by 1/sqrt(D·S))
  at::Tensor q_rot, k_rot;  // [B, H, T, D, S] fp32, the same rotated by RoPE
  at::Tensor v;             // [B, H, T, D, S] fp32
  at::Tensor beta;          // [B, H, T, S] fp32
  at::Tensor decay;         // [B, H, T] fp32, g_f = exp(−exp(A_log)·softplus(·))
};

struct GdnOutput {
  at::Tensor out;        // [B, H, T, D, S] fp32: num / (den + eps)
  GdnState final_state;  // forward state after the last frame (for the streaming cache)
};

// init: the forward scan's initial state (streaming: the previous chunk's), or undefined = zeros.
GdnOutput gdn_bidirectional(const GdnInputs& in, const GdnState& init, double eps);

}  // namespace sanastream::ops
