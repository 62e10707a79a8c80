// The FFN of the hybrid DiT (GLUMBConvTemp / CachedGLUMBConvTemp), per latent frame:
// 1×1 conv C→2F (+bias) → SiLU → depthwise 3×3 (+bias) → value·SiLU(gate) → 1×1 conv F→C, then
// over time h += Conv(C→C, k taps over t) with zero padding, or, streaming, the previous chunk's
// last frames as left context.
#pragma once

#include "model/dit_common.h"

namespace sanastream::model {

class MixFfn {
 public:
  // prec: the block's precisions ("mlp.inverted_conv", "mlp.point_conv", "mlp.t_conv").
  MixFfn(const io::TensorMap& w, const std::string& prefix, const BlockPrecisions& prec = {});

  int64_t context_frames() const { return (static_cast<int64_t>(taps_.size()) - 1) / 2; }

  // h: [B, N, C] → [B, N, C]; hq: h's rows in FP8 from its producer, or undefined (Projection's xq).
  // left_ctx: [B, P, S, C] (P = context_frames()) or undefined (zeros). last_frames (nullable)
  // receives, in place, this call's last P point-conv frames [B, P, S, C].
  at::Tensor forward(const at::Tensor& h, const ops::QuantRows& hq, const DitGrid& g, const at::Tensor& left_ctx,
                     at::Tensor* last_frames) const;
  // Whether the inverted 1×1 conv runs an FP8 GEMM (forward then reads hq).
  bool fp8_input() const { return in_.fp8_gemm(); }

  // The temporal conv over frames with its residual: out[t] = pc[t] + Σ_k W_k · pc[t + k − P], P = (K − 1)/2,
  // frames before the call from left_ctx [B, P, S, C] (zeros when undefined), after it zeros. One GEMM
  // per tap over the frames it reaches, each input a run of whole frames in place: the centre tap with
  // the residual writes every frame, the others add into theirs. pc: [B, T, S, C] → [B, T, S, C].
  static at::Tensor temporal(const std::vector<Projection>& taps, const at::Tensor& pc, const at::Tensor& left_ctx);

 private:
  Projection in_;                // [2F, C], [2F]
  at::Tensor w_dw_taps_, b_dw_;  // [9, 2F] (the depthwise 3×3 weight, tap-major), [2F]
  Projection out_;               // [C, F]
  std::vector<Projection> taps_; // the temporal conv's K taps, [C, C] each
};

}  // namespace sanastream::model
