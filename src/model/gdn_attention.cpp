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
  // q and k are Conv1d k=1 weights: [C, C, 1] → [C, C].
  in_ = FusedProjection({{weight(w, p + "q.weight").squeeze(-1), {}, prec("attn.q")},
                         {weight(w, p + "k.weight").squeeze(-1), {}, prec("attn.k")},
                         {weight(w, p + "v.weight"), {}, prec("attn.v")},
                         {weight(w, p + "output_gate.weight"), weight(w, p + "output_gate.bias")},
                         {weight(w, p + "beta_proj.weight"), weight(w, p + "beta_proj.bias")},
                         {weight(w, p + "gate_proj.weight"), weight(w, p + "gate_proj.bias")}});
  q_norm_ = weight(w, p + "q_norm.weight");
  k_norm_ = weight(w, p + "k_norm.weight");
  neg_a_ = -at::exp(weight(w, p + "A_log").to(at::kFloat));
  dt_bias_ = weight(w, p + "dt_bias").to(at::kFloat);
  proj_ = Projection(weight(w, p + "proj.weight"), weight(w, p + "proj.bias"), prec("attn.proj"));
}

at::Tensor GdnAttention::forward(const at::Tensor& h, const ops::QuantRows& hq, const DitGrid& g,
                                 const ops::RopeTable& rope, const ops::GdnState& init,
                                 ops::GdnState* final_state) const {
  const int64_t C = h.size(2), H = heads_, D = C / H, T = g.T, S = g.S();
  ops::GdnProjections p;
  const std::vector<at::Tensor> parts = in_(h, hq);  // fused: views of one [B, N, 4C + 2H (+ pad)] output
  p.q = parts[0], p.k = parts[1], p.v = parts[2], p.gate = parts[3], p.beta_logits = parts[4];
  mark_region("gdn.in");
  // Decay per frame and head from the gate projection of the frame's mean token, taken as the mean of
  // the tokens' projections (parts[5]).
  p.decay = ops::gdn_decay(parts[5], T, neg_a_, dt_bias_);
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
