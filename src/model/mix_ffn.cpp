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
  for (int64_t k = 0; k < t.size(2); ++k)
    taps_.emplace_back(t.select(2, k).squeeze(-1).contiguous(), at::Tensor(), prec("mlp.t_conv"));
}

at::Tensor MixFfn::temporal(const std::vector<Projection>& taps, const at::Tensor& pc, const at::Tensor& left_ctx) {
  const int64_t B = pc.size(0), T = pc.size(1), S = pc.size(2), C = pc.size(3);
  const int64_t K = static_cast<int64_t>(taps.size()), P = (K - 1) / 2;
  // Quantized taps read each input's rows quantized once (per-row scales: a run of rows is the run's own).
  auto rows_of = [&](const at::Tensor& src) {
    return taps[P].quantized_gemm() && src.defined() ? taps[P].quantize(src.reshape({-1, C})) : ops::QuantRows{};
  };
  const ops::QuantRows pc_q = rows_of(pc), ctx_q = rows_of(left_ctx);
  at::Tensor out = taps[P].plus(pc, pc, pc_q).view({B, T, S, C});
  // out[t0 .. t0 + n) += W_k · src[s0 .. s0 + n), per batch row (its frames are contiguous).
  auto add = [&](int64_t k, int64_t t0, const at::Tensor& src, const ops::QuantRows& src_q, int64_t s0, int64_t n) {
    if (n <= 0) return;
    for (int64_t b = 0; b < B; ++b) {
      at::Tensor o = out[b].narrow(0, t0, n).view({n * S, C});
      const int64_t first = (b * src.size(1) + s0) * S;
      taps[k].add_to_(o, src[b].narrow(0, s0, n).reshape({n * S, C}),
                      src_q.q.defined() ? src_q.rows(first, n * S) : ops::QuantRows{});
    }
  };
  for (int64_t k = 0; k < K; ++k) {
    const int64_t shift = k - P;  // output frame t reads frame t + shift
    if (shift == 0) continue;
    const int64_t n_left = std::clamp<int64_t>(-shift, 0, T), t1 = std::clamp<int64_t>(T - shift, 0, T);
    if (left_ctx.defined()) add(k, 0, left_ctx, ctx_q, P + shift, n_left);
    add(k, n_left, pc, pc_q, n_left + shift, t1 - n_left);
  }
  return out;
}

at::Tensor MixFfn::forward(const at::Tensor& h, const ops::QuantRows& hq, const DitGrid& g, const at::Tensor& left_ctx,
                           at::Tensor* last_frames) const {
  const int64_t B = h.size(0), C = h.size(2), T = g.T, S = g.S(), F2 = in_.out_features();
  // Spatial part on each frame, channels-last: SiLU → depthwise 3×3 → value·SiLU(gate), fused.
  at::Tensor x = in_(h, hq).view({B * T, g.H, g.W, F2});                    // [B·T, H, W, 2F]
  mark_region("ffn.in");
  x = ops::depthwise_glu(x, w_dw_taps_, b_dw_);                                            // [B·T, H, W, F]
  mark_region("ffn.depthwise_glu");
  at::Tensor pc = out_(x.view({B, T, S, F2 / 2}));                                // [B, T, S, C]
  at::Tensor out = temporal(taps_, pc, left_ctx).view({B, T * S, C});
  if (last_frames) last_frames->copy_(pc.narrow(1, T - context_frames(), context_frames()));
  mark_region("ffn.temporal");
  return out;
}

}  // namespace sanastream::model
