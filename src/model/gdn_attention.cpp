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
  q_ = Projection(weight(w, p + "q.weight").squeeze(-1), {}, prec("attn.q"));  // Conv1d k=1 → [C, C]
  k_ = Projection(weight(w, p + "k.weight").squeeze(-1), {}, prec("attn.k"));
  v_ = Projection(weight(w, p + "v.weight"), {}, prec("attn.v"));
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
  proj_ = Projection(weight(w, p + "proj.weight"), weight(w, p + "proj.bias"), prec("attn.proj"));
}

at::Tensor GdnAttention::forward(const at::Tensor& h, const DitGrid& g, const ops::RopeTable& rope,
                                 const ops::GdnState& init, ops::GdnState* final_state) const {
  const int64_t B = h.size(0), C = h.size(2), H = heads_, D = C / H, T = g.T, S = g.S();
  ops::GdnProjections p;
  p.q = q_(h);
  p.k = k_(h);
  p.v = v_(h);
  mark_region("gdn.qkv");
  // β logits per token and head; decay per frame and head from the frame's mean token.
  p.beta_logits = dense(h, beta_w_, beta_b_);
  at::Tensor a = dense(h.view({B, T, S, C}).mean(2), gate_w_, gate_b_).to(at::kFloat);  // [B, T, H]
  p.decay = at::exp(-at::exp(a_log_.to(at::kFloat)) * at::softplus(a + dt_bias_.to(at::kFloat)));
  p.gate = dense(h, out_gate_w_, out_gate_b_);
  mark_region("gdn.gates");
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
