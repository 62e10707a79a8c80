#include "model/gdn_attention.h"

#include <cmath>

#include "model/profile.h"

namespace sanastream::model {

namespace {
constexpr double kNormEps = 1e-5;  // q/k RMSNorm over all C channels
constexpr double kDenEps = 1e-8;   // num / (den + eps)
}  // namespace

GdnAttention::GdnAttention(const io::TensorMap& w, const std::string& p, int64_t heads, const BlockPrecisions& prec)
    : heads_(heads) {
  const at::Tensor wq = weight(w, p + "q.weight").squeeze(-1), wk = weight(w, p + "k.weight").squeeze(-1);  // Conv1d k=1 → [C, C]
  const at::Tensor &wv = weight(w, p + "v.weight"), &wo = weight(w, p + "output_gate.weight");
  const at::Tensor &bo = weight(w, p + "output_gate.bias"), &wb = weight(w, p + "beta_proj.weight");
  const at::Tensor& bb = weight(w, p + "beta_proj.bias");
  if (prec.unquantized({"attn.q", "attn.k", "attn.v"})) {
    in_ = FusedProjection({{wq, {}}, {wk, {}}, {wv, {}}, {wo, bo}, {wb, bb}});
  } else {
    q_ = Projection(wq, {}, prec("attn.q"));
    k_ = Projection(wk, {}, prec("attn.k"));
    v_ = Projection(wv, {}, prec("attn.v"));
    out_gate_ = Projection(wo, bo);
    beta_ = Projection(wb, bb);
  }
  q_norm_ = weight(w, p + "q_norm.weight");
  k_norm_ = weight(w, p + "k_norm.weight");
  gate_w_ = weight(w, p + "gate_proj.weight");
  gate_b_ = weight(w, p + "gate_proj.bias");
  neg_a_ = -at::exp(weight(w, p + "A_log").to(at::kFloat));
  dt_bias_ = weight(w, p + "dt_bias").to(at::kFloat);
  proj_ = Projection(weight(w, p + "proj.weight"), weight(w, p + "proj.bias"), prec("attn.proj"));
}

at::Tensor GdnAttention::forward(const at::Tensor& h, const DitGrid& g, const ops::RopeTable& rope,
                                 const ops::GdnState& init, ops::GdnState* final_state) const {
  const int64_t B = h.size(0), C = h.size(2), H = heads_, D = C / H, T = g.T, S = g.S();
  ops::GdnProjections p;
  if (in_.defined()) {  // views of one [B, N, 4C + H (+ pad)] output
    const std::vector<at::Tensor> parts = in_(h);
    p.q = parts[0], p.k = parts[1], p.v = parts[2], p.gate = parts[3], p.beta_logits = parts[4];
  } else {
    p.q = q_(h);
    p.k = k_(h);
    p.v = v_(h);
    p.beta_logits = beta_(h);
    p.gate = out_gate_(h);
  }
  mark_region("gdn.in");
  // Decay per frame and head from the frame's mean token.
  at::Tensor a = dense(h.view({B, T, S, C}).mean(2), gate_w_, gate_b_).to(at::kFloat);  // [B, T, H]
  p.decay = at::exp(neg_a_ * at::softplus(a + dt_bias_));
  mark_region("gdn.decay");
  ops::GdnFeatureMaps fm;
  fm.q_norm = q_norm_;
  fm.k_norm = k_norm_;
  fm.norm_eps = kNormEps;
  fm.k_scale = 1.0 / std::sqrt(static_cast<double>(D)) / std::sqrt(static_cast<double>(S));
  fm.heads = H;
  fm.frames = T;
  at::Tensor merged = ops::gdn_gated(p, fm, rope, init, final_state, kDenEps);
  mark_region("gdn.core");
  at::Tensor result = proj_(merged);
  mark_region("gdn.proj");
  return result;
}

}  // namespace sanastream::model
