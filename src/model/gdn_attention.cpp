#include "model/gdn_attention.h"

#include <cmath>

#include "model/profile.h"
#include "ops/norm.h"

namespace sanastream::model {

namespace {
constexpr double kNormEps = 1e-5;  // q/k RMSNorm over all C channels
constexpr double kDenEps = 1e-8;   // num / (den + eps)
}  // namespace

GdnAttention::GdnAttention(const io::TensorMap& w, const std::string& p, int64_t heads) : heads_(heads) {
  wq_ = weight(w, p + "q.weight").squeeze(-1);  // Conv1d k=1 → [C, C]
  wk_ = weight(w, p + "k.weight").squeeze(-1);
  wv_ = weight(w, p + "v.weight");
  q_norm_ = weight(w, p + "q_norm.weight");
  k_norm_ = weight(w, p + "k_norm.weight");
  beta_w_ = weight(w, p + "beta_proj.weight");
  beta_b_ = weight(w, p + "beta_proj.bias");
  gate_w_ = weight(w, p + "gate_proj.weight");
  gate_b_ = weight(w, p + "gate_proj.bias");
  a_log_ = weight(w, p + "A_log");
  dt_bias_ = weight(w, p + "dt_bias");
  out_gate_w_ = weight(w, p + "output_gate.weight");
  out_gate_b_ = weight(w, p + "output_gate.bias");
  proj_w_ = weight(w, p + "proj.weight");
  proj_b_ = weight(w, p + "proj.bias");
}

at::Tensor GdnAttention::forward(const at::Tensor& h, const DitGrid& g, const ops::RopeTable& rope,
                                 const ops::GdnState& init, ops::GdnState* final_state) const {
  const int64_t B = h.size(0), N = h.size(1), C = h.size(2), H = heads_, D = C / H, T = g.T, S = g.S();
  // Feature maps: ReLU(RMSNorm_C(x W)); keys scaled by 1/sqrt(D·S).
  at::Tensor q = ops::rms_norm(dense(h, wq_), q_norm_, kNormEps, /*relu=*/true);
  at::Tensor k = ops::rms_norm(dense(h, wk_), k_norm_, kNormEps, /*relu=*/true,
                               1.0 / std::sqrt(static_cast<double>(D)) / std::sqrt(static_cast<double>(S)));
  at::Tensor v = dense(h, wv_);
  mark_region("gdn.qkv");
  auto heads = [&](const at::Tensor& t) { return t.view({B, N, H, D}); };
  at::Tensor q_rot = ops::apply_rope(heads(q), rope);
  at::Tensor k_rot = ops::apply_rope(heads(k), rope);
  mark_region("gdn.rope");
  // [B, N, H, D] → [B, H, T, S, D] in the compute dtype, the scan's layout (head-dim rows stay
  // contiguous).
  auto to_scan = [&](const at::Tensor& t) { return t.reshape({B, T, S, H, D}).permute({0, 3, 1, 2, 4}).contiguous(); };
  ops::GdnInputs in;
  in.q = to_scan(q);
  in.k = to_scan(k);
  in.q_rot = to_scan(q_rot);
  in.k_rot = to_scan(k_rot);
  in.v = to_scan(v);
  // β per token and head; decay per frame and head from the frame's mean token.
  in.beta = at::sigmoid(dense(h, beta_w_, beta_b_)).view({B, T, S, H}).permute({0, 3, 1, 2}).to(at::kFloat).contiguous();
  at::Tensor a = dense(h.view({B, T, S, C}).mean(2), gate_w_, gate_b_).to(at::kFloat);  // [B, T, H]
  at::Tensor decay = at::exp(-at::exp(a_log_.to(at::kFloat)) * at::softplus(a + dt_bias_.to(at::kFloat)));
  in.decay = decay.permute({0, 2, 1}).contiguous();  // [B, H, T]

  mark_region("gdn.layout_gates");
  ops::GdnOutput r = ops::gdn_bidirectional(in, init, kDenEps);
  mark_region("gdn.scan");
  if (final_state) {
    final_state->kv.copy_(r.final_state.kv);
    final_state->z.copy_(r.final_state.z);
  }
  at::Tensor out = r.out.to(h.scalar_type()).permute({0, 2, 3, 1, 4}).reshape({B, N, C});
  at::Tensor result = dense(gated(out, dense(h, out_gate_w_, out_gate_b_)), proj_w_, proj_b_);
  mark_region("gdn.gate_proj");
  return result;
}

}  // namespace sanastream::model
