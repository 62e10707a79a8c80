#include "model/softmax_attention.h"

#include "ops/attention.h"
#include "ops/norm.h"

namespace sanastream::model {

namespace {
constexpr double kNormEps = 1e-5;

at::Tensor center_tap(const at::Tensor& w) {
  return w.dim() == 3 ? w.select(2, w.size(2) / 2).contiguous() : w;
}
}  // namespace

SoftmaxAttention::SoftmaxAttention(const io::TensorMap& w, const std::string& p, int64_t heads) : heads_(heads) {
  const at::Tensor& q = weight(w, p + "q.weight");
  fp32_attention_ = q.dim() == 2;
  wq_ = center_tap(q);
  wk_ = center_tap(weight(w, p + "k.weight"));
  wv_ = weight(w, p + "v.weight");
  q_norm_ = weight(w, p + "q_norm.weight");
  k_norm_ = weight(w, p + "k_norm.weight");
  out_gate_w_ = weight(w, p + "output_gate.weight");
  out_gate_b_ = weight(w, p + "output_gate.bias");
  proj_w_ = weight(w, p + "proj.weight");
  proj_b_ = weight(w, p + "proj.bias");
}

at::Tensor SoftmaxAttention::forward(const at::Tensor& h, const ops::RopeTable& rope, const at::Tensor& cached_k,
                                     const at::Tensor& cached_v, at::Tensor* new_k, at::Tensor* new_v) const {
  const int64_t B = h.size(0), N = h.size(1), C = h.size(2), H = heads_, D = C / H;
  at::Tensor q = ops::rms_norm(dense(h, wq_), q_norm_, kNormEps).view({B, N, H, D});
  at::Tensor k = ops::rms_norm(dense(h, wk_), k_norm_, kNormEps).view({B, N, H, D});
  at::Tensor v = dense(h, wv_).view({B, N, H, D});
  q = ops::apply_rope(q, rope).transpose(1, 2);  // [B, H, N, D]
  k = ops::apply_rope(k, rope).transpose(1, 2);
  v = v.transpose(1, 2);
  if (new_k) *new_k = k.contiguous();
  if (new_v) *new_v = v.contiguous();
  if (cached_k.defined()) {
    k = at::cat({cached_k, k}, 2);
    v = at::cat({cached_v, v}, 2);
  }
  at::Tensor out = fp32_attention_
                       ? ops::attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat)).to(h.scalar_type())
                       : ops::attention(q.contiguous(), k.contiguous(), v.contiguous());
  out = out.transpose(1, 2).reshape({B, N, C});
  return dense(gated(out, dense(h, out_gate_w_, out_gate_b_)), proj_w_, proj_b_);
}

}  // namespace sanastream::model
