#include "model/softmax_attention.h"

#include "model/profile.h"
#include "ops/attention.h"
#include "ops/glu.h"
#include "ops/norm.h"

namespace sanastream::model {

namespace {
constexpr double kNormEps = 1e-5;

at::Tensor center_tap(const at::Tensor& w) {
  return w.dim() == 3 ? w.select(2, w.size(2) / 2).contiguous() : w;
}
}  // namespace

SoftmaxAttention::SoftmaxAttention(const io::TensorMap& w, const std::string& p, int64_t heads,
                                   const BlockPrecisions& prec)
    : heads_(heads) {
  const at::Tensor& q = weight(w, p + "q.weight");
  fp32_attention_ = q.dim() == 2;
  in_ = FusedProjection({{center_tap(q), {}, prec("attn.q")},
                         {center_tap(weight(w, p + "k.weight")), {}, prec("attn.k")},
                         {weight(w, p + "v.weight"), {}, prec("attn.v")},
                         {weight(w, p + "output_gate.weight"), weight(w, p + "output_gate.bias")}});
  q_norm_ = weight(w, p + "q_norm.weight");
  k_norm_ = weight(w, p + "k_norm.weight");
  proj_ = Projection(weight(w, p + "proj.weight"), weight(w, p + "proj.bias"), prec("attn.proj"));
}

at::Tensor SoftmaxAttention::forward(const at::Tensor& h, const ops::QuantRows& hq, const ops::RopeTable& rope,
                                     const at::Tensor& k_buf, const at::Tensor& v_buf, int64_t offset) const {
  const int64_t B = h.size(0), N = h.size(1), C = h.size(2), H = heads_, D = C / H;
  const std::vector<at::Tensor> parts = in_(h, hq);  // q, k, v, gate: fused, views of one [B, N, 4C] output
  const at::Tensor& gate_pre = parts[3];
  mark_region("sa.qkv");
  // q and k: RMSNorm over all C channels and RoPE in one pass, k straight into its cache rows.
  // q laid out token-major ([B, N, H, D] in memory): the attention's output takes its layout, so the
  // heads merge back into [B, N, C] without a copy.
  at::Tensor q = at::empty({B, N, H, D}, h.options()).transpose(1, 2);
  at::Tensor k = k_buf.defined() ? k_buf.narrow(2, offset, N) : at::empty({B, H, N, D}, h.options());
  at::Tensor v = parts[2].view({B, N, H, D}).transpose(1, 2);
  ops::rms_norm_rope_into(parts[0], q_norm_, kNormEps, rope, q.transpose(1, 2));
  ops::rms_norm_rope_into(parts[1], k_norm_, kNormEps, rope, k.transpose(1, 2));
  if (k_buf.defined()) {
    v_buf.narrow(2, offset, N).copy_(v);
    k = k_buf.narrow(2, 0, offset + N);
    v = v_buf.narrow(2, 0, offset + N);
  }
  mark_region("sa.norm_rope");
  at::Tensor out = fp32_attention_
                       ? ops::attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat)).to(h.scalar_type())
                       : ops::attention(q, k, v);
  mark_region("sa.attention");
  out = out.transpose(1, 2).reshape({B, N, C});
  at::Tensor result = proj_(ops::silu_gate(out, gate_pre));
  mark_region("sa.gate_proj");
  return result;
}

}  // namespace sanastream::model
