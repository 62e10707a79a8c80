// Cross-attention from tokens to the caption (MultiHeadCrossAttention with qk RMSNorm, eps 1e-6):
// no norm or modulation on the input, an additive mask bias (1 − m)·(−10000). The caption side
// (keys/values) is projected once per prompt.
#pragma once

#include "model/dit_common.h"

namespace sanastream::model {

class CrossAttention {
 public:
  // prec: the block's precisions ("cross_attn.q_linear", "cross_attn.kv_linear", "cross_attn.proj").
  CrossAttention(const io::TensorMap& w, const std::string& prefix, int64_t heads, const BlockPrecisions& prec = {});

  struct CaptionKV {
    at::Tensor k, v;  // [B, H, L, D]
  };
  // y: [B, L, C] (the normalised caption embedding).
  CaptionKV project_caption(const at::Tensor& y) const;

  // x: [B, N, C]; bias: [B, 1, 1, L] → [B, N, C]. xq: x's rows quantized by its producer for an FP8
  // q projection (fp8_input), or undefined.
  at::Tensor forward(const at::Tensor& x, const ops::QuantRows& xq, const CaptionKV& kv, const at::Tensor& bias) const;
  // Whether the q projection runs an FP8 GEMM (forward then reads xq).
  bool fp8_input() const { return q_.fp8_gemm(); }

 private:
  Projection q_, kv_, proj_;
  at::Tensor q_norm_, k_norm_;
  int64_t heads_;
};

}  // namespace sanastream::model
