// The frame-wise gated delta rule of the hybrid DiT's GDN blocks (SPEC §2), both directions inside
// one call. Per head, frame f with keys K_f, values V_f (D × S) and per-token β:
//   M_f = g_f·M_{f−1}·(I − K̂ B K̂ᵀ) + V B K̂ᵀ      (K̂ rotated; M indexed [v, k])
//   z_f = g_f·z_{f−1} + K B (1 − Kᵀ g_f z_{f−1})   (K unrotated)
// The reverse scan sees strictly later frames. Output per token: q̂ᵀ(M_fwd + M_rev) / (qᵀ(z_fwd + z_rev) + eps).
#pragma once

#include <ATen/ATen.h>

#include "ops/rope.h"

namespace sanastream::ops {

struct GdnState {
  at::Tensor kv;  // [B, H, D, D] fp32, indexed [v_dim, k_dim]
  at::Tensor z;   // [B, H, D, 1] fp32
  bool defined() const { return kv.defined(); }
};

// Token-major per head and frame: row s of [.., S, D] is token s's head vector. q, k, v and the
// rotations come in the model's compute dtype (fp32 or bf16); states and gates are fp32.
struct GdnInputs {
  at::Tensor q, k;          // [B, H, T, S, D], after ReLU (k also scaled by 1/sqrt(D·S))
  at::Tensor q_rot, k_rot;  // [B, H, T, S, D], the same rotated by RoPE
  at::Tensor v;             // [B, H, T, S, D]
  at::Tensor beta;          // [B, H, T, S] fp32
  at::Tensor decay;         // [B, H, T] fp32, g_f = exp(−exp(A_log)·softplus(·))
};

struct GdnOutput {
  at::Tensor out;        // [B, H, T, S, D] fp32: num / (den + eps)
  GdnState final_state;  // forward state after the last frame (for the streaming cache)
};

// init: the forward scan's initial state (streaming: the previous chunk's), or undefined = zeros.
// On CUDA (unless SANASTREAM_REFERENCE=1) this runs the frame-matrix form; elsewhere the token
// recurrence of the official code (ops/ref).
GdnOutput gdn_bidirectional(const GdnInputs& in, const GdnState& init, double eps);

// The same function through per-frame summaries, batched over frames: P_f = I − K̂ᵀ diag(β) K̂,
// A_f = Vᵀ diag(β) K̂ (and Pz, b for the denominator), then the scans M_f = g_f·M_{f−1}·P_f + A_f
// forward and R_f = g_{f+1}·R_{f+1}·P_{f+1} + A_{f+1} backward, and one read-out of (M + R).
// With fp32 inputs it equals the recurrence up to fp32 rounding (≈ 1e-6 relative on the state);
// with bf16 inputs the per-frame products and the numerator read-out run on bf16 tensor cores
// (fp32 accumulation) while the scans, the denominator and the division stay fp32.
GdnOutput gdn_bidirectional_frames(const GdnInputs& in, const GdnState& init, double eps);

// The whole GDN block core from its projections' outputs (token-major, before any glue) to the
// merged output, ready for `proj`: q = ReLU(RMSNorm_C(q)), k = ReLU(RMSNorm_C(k))·k_scale, RoPE on
// the numerator side, β = sigmoid(logits), the gated delta rule both ways, then
// num/(den + eps) ⊙ SiLU(gate).
struct GdnProjections {
  at::Tensor q, k, v;       // [B, N, H·D] model dtype (N = T·S); q and k before RMSNorm
  at::Tensor beta_logits;   // [B, N, H] model dtype, before the sigmoid
  at::Tensor decay;         // [B, T, H] fp32 g_f
  at::Tensor gate;          // [B, N, H·D] model dtype, the output gate before SiLU
};
struct GdnFeatureMaps {
  at::Tensor q_norm, k_norm;  // [H·D] RMSNorm weights
  double norm_eps = 1e-5;
  double k_scale = 1.0;       // 1/sqrt(D·S)
  int64_t heads = 0, frames = 0;
};

// The decays g_f [B, T, H] fp32 from the gate projection of every token, logits [B, T·S, H] (unit
// stride along H): g = exp(neg_a·softplus(mean over the frame's tokens + dt_bias)); neg_a, dt_bias
// [H] fp32. The frame mean of the projections is the projection of the frame's mean token (the
// official order), so the gate projection runs in the block's input GEMM. On CUDA one kernel.
at::Tensor gdn_decay(const at::Tensor& logits, int64_t frames, const at::Tensor& neg_a, const at::Tensor& dt_bias);

// Returns [B, N, H·D] in the model dtype. init: the forward scan's initial state (undefined =
// zeros); final_state (nullable): receives the forward state after the last frame, in place when
// its tensors are defined, else assigned. On CUDA the fused kernels (kernels/gdn.h) run where they
// apply (head dim 112, bf16 or fp32, unless SANASTREAM_REFERENCE=1 or SANASTREAM_GDN_KERNEL=0 or
// `fused` is false); otherwise the ATen glue + gdn_bidirectional.
at::Tensor gdn_gated(const GdnProjections& p, const GdnFeatureMaps& fm, const RopeTable& rope, const GdnState& init,
                     GdnState* final_state, double eps, bool fused = true);

}  // namespace sanastream::ops
