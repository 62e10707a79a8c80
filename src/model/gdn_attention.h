// GDN self-attention of the hybrid DiT (V2VBiGDNAttention / V2VStateCachedBiGDNAttention):
// projections, RMSNorm + ReLU feature maps, RoPE on the numerator side, β and per-frame decay
// gates, then ops::gdn_gated (the delta rule both ways and the SiLU-gated merge; fused kernels on
// CUDA), proj.
#pragma once

#include "model/dit_common.h"
#include "ops/gdn.h"
#include "ops/rope.h"

namespace sanastream::model {

class GdnAttention {
 public:
  // prefix: "blocks.N.attn."; prec: the block's precisions ("attn.q", "attn.k", "attn.v", "attn.proj").
  GdnAttention(const io::TensorMap& w, const std::string& prefix, int64_t heads, const BlockPrecisions& prec = {});

  // h: [B, N, C] model dtype → [B, N, C]; hq: h's rows in FP8 from its producer, or undefined
  // (Projection's xq). init: the forward scan's initial state (undefined = zeros); final_state
  // (nullable) receives, in place, the state after the call's last frame.
  at::Tensor forward(const at::Tensor& h, const ops::QuantRows& hq, const DitGrid& g, const ops::RopeTable& rope,
                     const ops::GdnState& init, ops::GdnState* final_state) const;
  // Whether the input projection runs an FP8 GEMM (forward then reads hq).
  bool fp8_input() const { return in_.fp8_gemm(); }

 private:
  FusedProjection in_;            // q, k, v, output gate [C, C] each, β logits and decay gate [H, C] each
  Projection proj_;               // [C, C]
  at::Tensor q_norm_, k_norm_;    // [C]
  at::Tensor neg_a_, dt_bias_;    // [H] fp32: −exp(A_log), dt_bias
  int64_t heads_;
};

}  // namespace sanastream::model
