// Gated softmax self-attention of the hybrid DiT's softmax blocks. Streaming
// (V2VAfterRoPEGatedSoftmaxAttention): q/k are Conv1d k=3 weights of which only the centre tap is
// used; the current chunk attends over cached post-RoPE keys/values (sink + previous chunk) and
// itself. Bidirectional (V2VGatedSoftmaxAttention): Linear q/k, attention over the whole clip in fp32.
#pragma once

#include "model/dit_common.h"
#include "ops/rope.h"

namespace sanastream::model {

class SoftmaxAttention {
 public:
  // prec: the block's precisions ("attn.q", "attn.k", "attn.v", "attn.proj").
  SoftmaxAttention(const io::TensorMap& w, const std::string& prefix, int64_t heads, const BlockPrecisions& prec = {});

  // h: [B, N, C] → [B, N, C]; hq: h's rows in FP8 from its producer, or undefined (Projection's xq).
  // Without a cache (k_buf undefined) the call attends over itself. With one, k_buf/v_buf
  // [B, H, capacity, D] hold `offset` cached post-RoPE keys/values: the call writes its own at
  // [offset, offset + N) and attends over [0, offset + N).
  at::Tensor forward(const at::Tensor& h, const ops::QuantRows& hq, const ops::RopeTable& rope, const at::Tensor& k_buf,
                     const at::Tensor& v_buf, int64_t offset) const;
  // Whether the input projection runs an FP8 GEMM (forward then reads hq).
  bool fp8_input() const { return in_.fp8_gemm(); }

 private:
  FusedProjection in_;  // q, k, v, output gate
  Projection proj_;
  at::Tensor q_norm_, k_norm_;
  int64_t heads_;
  bool fp32_attention_;  // the bidirectional class upcasts q/k/v to fp32
};

}  // namespace sanastream::model
