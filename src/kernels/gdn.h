// The GDN block's core in fused kernels (SPEC §2, issue 12): from the q/k/v/β/gate projections'
// outputs to the merged output num/(den + eps)·SiLU(gate), ready for `proj`. Per head and frame f:
//   summaries  Pk_f = K̂ᵀ diag(β) K̂,  A_f = Vᵀ diag(β) K̂ [v, k],  Pz_f = Kᵀ diag(β) K,  b_f = K β
//   scans      M_f = g_f·M_{f−1}·(I − Pk_f) + A_f  (seeded by init),  R_f = g_{f+1}·R_{f+1}·(I − Pk_{f+1}) + A_{f+1}
//              z_f = g_f·(I − Pz_f)ᵀ z_{f−1} + b_f, z_r likewise
//   read-out   out = q̂ᵀ(M_f + R_f) / (qᵀ(z_f + zr_f) + eps) · SiLU(gate)
// with q = ReLU(RMSNorm_C(q)), k = ReLU(RMSNorm_C(k))·k_scale (inverse RMS over all C channels),
// q̂, k̂ rotated by RoPE. Five launches: the keys' inverse RMS (and sigmoid(β)); the three summaries
// of a frame from one pass over its keys, on tensor cores (bf16) or in fp32 FMA (fp32), token slices
// of a frame added across a thread-block cluster (sm_90); the queries' inverse RMS, beside the
// summaries; the fp32 scans, their products in TF32 on tensor cores — bf16 inputs on sm_90a on
// warpgroup tensor cores (wgmma, one product per step), otherwise mma.sync (3×TF32 splits for fp32
// inputs) — writing the combined states once; the read-out + merge, each frame's blocks starting
// as soon as the scans have finished that frame. Built for head dim 112 and up to 16 frames a call
// (gdn_supported()).
#pragma once

#include "kernels/common.h"

namespace sanastream::kernels {

struct GdnParams {
  // Token-major projection outputs; row b·N + n with n = f·S + s (N = T·S). `type` elements; the
  // rows of q, k, v, gate and out start 16-byte aligned (pointer and stride).
  const void* q = nullptr;     // [B, N, H·D] before RMSNorm, row stride q_stride (elements)
  const void* k = nullptr;     // [B, N, H·D] before RMSNorm, row stride k_stride
  const void* v = nullptr;     // [B, N, H·D], row stride v_stride
  const void* gate = nullptr;  // [B, N, H·D] output-gate projection before SiLU, row stride gate_stride
  const void* beta = nullptr;  // [B, N, H] β logits before the sigmoid, row stride beta_stride
  const float* decay = nullptr;     // [B, T, H] fp32 g_f, contiguous
  const void* q_norm = nullptr;     // [H·D] RMSNorm weight, norm_type
  const void* k_norm = nullptr;     // [H·D] RMSNorm weight, norm_type
  const float* rope_cos = nullptr;  // [N, D/2] fp32, contiguous
  const float* rope_sin = nullptr;  // [N, D/2] fp32, contiguous
  const float* init_kv = nullptr;   // [B, H, D, D] fp32 indexed [v, k], or null (zeros)
  const float* init_z = nullptr;    // [B, H, D] fp32, or null (zeros)
  float* final_kv = nullptr;        // [B, H, D, D] fp32 forward state after frame T−1 (may alias init_kv)
  float* final_z = nullptr;         // [B, H, D] fp32 (may alias init_z)
  void* out = nullptr;              // [B, N, H·D], row stride out_stride
  void* workspace = nullptr;        // gdn_workspace_bytes(*this) bytes, 256-byte aligned
  int64_t batch = 0, frames = 0, tokens = 0, heads = 0, head_dim = 0;  // B, T, S, H, D
  int64_t q_stride = 0, k_stride = 0, v_stride = 0, gate_stride = 0, beta_stride = 0, out_stride = 0;
  float norm_eps = 1e-5f;  // RMSNorm
  float k_scale = 1.f;     // 1/sqrt(D·S)
  float eps = 1e-8f;       // num / (den + eps)
  ElemType type = ElemType::kBF16;       // q, k, v, gate, beta, out: kBF16 or kF32
  ElemType norm_type = ElemType::kBF16;  // q_norm, k_norm
  bool portable_scans = false;           // the mma.sync scans even where the wgmma ones run (tests)
};

// Whether the kernels handle this head dim, frame count (≤ 16) and element type (else use the
// ATen path).
bool gdn_supported(int64_t head_dim, int64_t frames, ElemType type);
// Whether calls with this element type run the wgmma scans on the current device (bf16, Hopper, a
// build with sm_90a code), else the portable mma.sync ones.
bool gdn_wgmma_scans(ElemType type);
size_t gdn_workspace_bytes(const GdnParams& p);
cudaError_t gdn_forward(const GdnParams& p, cudaStream_t stream);

// The decays of a call, one launch: g[b, f, h] = exp(neg_a[h]·softplus(mean_s logits[b, f·S + s, h] +
// dt_bias[h])), softplus(x) = x above 20 (as torch's). The logits are the gate projection of each token
// (its mean over the frame is the projection of the frame's mean token).
struct GdnDecayParams {
  const void* logits = nullptr;    // [B, T·S, H] `type` elements, row stride `stride` (unit along H)
  const float* neg_a = nullptr;    // [H] −exp(A_log)
  const float* dt_bias = nullptr;  // [H]
  float* decay = nullptr;          // [B, T, H], contiguous
  int64_t batch = 0, frames = 0, tokens = 0, heads = 0, stride = 0;  // B, T, S, H
  ElemType type = ElemType::kBF16;  // kBF16 or kF32
};
cudaError_t gdn_decay(const GdnDecayParams& p, cudaStream_t stream);

}  // namespace sanastream::kernels
