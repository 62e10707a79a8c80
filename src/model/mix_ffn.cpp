#include "model/mix_ffn.h"

#include <algorithm>

#include "model/profile.h"
#include "ops/glu.h"

namespace sanastream::model {

MixFfn::MixFfn(const io::TensorMap& w, const std::string& p, const BlockPrecisions& prec) {
  in_ = Projection(weight(w, p + "inverted_conv.conv.weight").flatten(1), weight(w, p + "inverted_conv.conv.bias"),
                   prec("mlp.inverted_conv"));
  w_dw_taps_ = weight(w, p + "depth_conv.conv.weight").reshape({-1, 9}).t().contiguous();
  b_dw_ = weight(w, p + "depth_conv.conv.bias");
  out_ = Projection(weight(w, p + "point_conv.conv.weight").flatten(1), {}, prec("mlp.point_conv"));
  const at::Tensor& t = weight(w, p + "t_conv.weight");  // [C, C, K, 1]
  t_kernel_ = t.size(2);
  // [C_out, C_in, K, 1] → [C_out, K·C_in]: the K taps as one GEMM over time-shifted copies.
  temporal_ = Projection(t.squeeze(-1).permute({0, 2, 1}).reshape({t.size(0), -1}).contiguous(), {}, prec("mlp.t_conv"));
}

at::Tensor MixFfn::forward(const at::Tensor& h, const DitGrid& g, const at::Tensor& left_ctx,
                           at::Tensor* last_frames) const {
  const int64_t B = h.size(0), C = h.size(2), T = g.T, S = g.S(), F2 = in_.out_features();
  // Spatial part on each frame, channels-last: SiLU → depthwise 3×3 → value·SiLU(gate), fused.
  at::Tensor x = in_(h).view({B * T, g.H, g.W, F2});                    // [B·T, H, W, 2F]
  mark_region("ffn.in");
  x = ops::depthwise_glu(x, w_dw_taps_, b_dw_);                                            // [B·T, H, W, F]
  mark_region("ffn.depthwise_glu");
  at::Tensor pc = out_(x.view({B, T, S, F2 / 2}));                                // [B, T, S, C]
  // Temporal conv over frames, residual included: out[t] = pc[t] + Σ_k W_k · pc[t + k − P], P = (K − 1)/2,
  // frames before the call from left_ctx (zeros when undefined), after it zeros. The K shifted
  // inputs side by side as one GEMM input, written straight from their sources.
  const int64_t P = context_frames(), K = t_kernel_;
  at::Tensor taps = at::empty({B, T, S, K * C}, pc.options());  // [B, T, S, K·C]
  for (int64_t k = 0; k < K; ++k) {
    at::Tensor dst = taps.narrow(3, k * C, C);
    const int64_t shift = k - P;  // output frame t reads frame t + shift
    const int64_t n_left = std::clamp<int64_t>(-shift, 0, T), t1 = std::clamp<int64_t>(T - shift, 0, T);
    if (n_left > 0) {
      at::Tensor d = dst.narrow(1, 0, n_left);
      if (left_ctx.defined()) d.copy_(left_ctx.narrow(1, P + shift, n_left));
      else d.zero_();
    }
    if (t1 > n_left) dst.narrow(1, n_left, t1 - n_left).copy_(pc.narrow(1, n_left + shift, t1 - n_left));
    if (t1 < T) dst.narrow(1, t1, T - t1).zero_();
  }
  at::Tensor out = temporal_.plus(pc, taps).view({B, T * S, C});
  if (last_frames) last_frames->copy_(pc.narrow(1, T - P, P));
  mark_region("ffn.temporal");
  return out;
}

}  // namespace sanastream::model
