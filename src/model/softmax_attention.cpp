#include "model/softmax_attention.h"

#include "model/profile.h"
#include "ops/attention.h"
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
  const at::Tensor wq = center_tap(q), wk = center_tap(weight(w, p + "k.weight"));
  const at::Tensor &wv = weight(w, p + "v.weight"), &wo = weight(w, p + "output_gate.weight");
  const at::Tensor& bo = weight(w, p + "output_gate.bias");
  if (prec.unquantized({"attn.q", "attn.k", "attn.v"})) {
    in_ = FusedProjection({{wq, {}}, {wk, {}}, {wv, {}}, {wo, bo}});
  } else {
    q_ = Projection(wq, {}, prec("attn.q"));
    k_ = Projection(wk, {}, prec("attn.k"));
    v_ = Projection(wv, {}, prec("attn.v"));
    out_gate_ = Projection(wo, bo);
  }
  q_norm_ = weight(w, p + "q_norm.weight");
  k_norm_ = weight(w, p + "k_norm.weight");
  proj_ = Projection(weight(w, p + "proj.weight"), weight(w, p + "proj.bias"), prec("attn.proj"));
}

at::Tensor SoftmaxAttention::forward(const at::Tensor& h, const ops::RopeTable& rope, const at::Tensor& k_buf,
                                     const at::Tensor& v_buf, int64_t offset) const {
  const int64_t B = h.size(0), N = h.size(1), C = h.size(2), H = heads_, D = C / H;
  at::Tensor q, k, v, gate_pre;
  if (in_.defined()) {  // views of one [B, N, 4C] output
    const std::vector<at::Tensor> parts = in_(h);
    q = parts[0], k = parts[1], v = parts[2], gate_pre = parts[3];
  } else {
    q = q_(h), k = k_(h), v = v_(h);
    gate_pre = out_gate_(h);
  }
  q = ops::rms_norm(q, q_norm_, kNormEps).view({B, N, H, D});
  k = ops::rms_norm(k, k_norm_, kNormEps).view({B, N, H, D});
  v = v.reshape({B, N, H, D});
  mark_region("sa.qkv");
  q = ops::apply_rope(q, rope).transpose(1, 2);  // [B, H, N, D]
  k = ops::apply_rope(k, rope).transpose(1, 2);
  v = v.transpose(1, 2);
  mark_region("sa.rope");
  if (k_buf.defined()) {
    k_buf.narrow(2, offset, N).copy_(k);
    v_buf.narrow(2, offset, N).copy_(v);
    k = k_buf.narrow(2, 0, offset + N);
    v = v_buf.narrow(2, 0, offset + N);
  }
  at::Tensor out = fp32_attention_
                       ? ops::attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat)).to(h.scalar_type())
                       : ops::attention(q, k, v);
  mark_region("sa.attention");
  out = out.transpose(1, 2).reshape({B, N, C});
  at::Tensor result = proj_(gated(out, gate_pre));
  mark_region("sa.gate_proj");
  return result;
}

}  // namespace sanastream::model
