#include "model/cross_attention.h"

#include "model/profile.h"
#include "ops/attention.h"
#include "ops/norm.h"

namespace sanastream::model {

namespace {
constexpr double kNormEps = 1e-6;
}

CrossAttention::CrossAttention(const io::TensorMap& w, const std::string& p, int64_t heads, const BlockPrecisions& prec)
    : heads_(heads) {
  q_ = Projection(weight(w, p + "q_linear.weight"), weight(w, p + "q_linear.bias"), prec("cross_attn.q_linear"));
  kv_ = Projection(weight(w, p + "kv_linear.weight"), weight(w, p + "kv_linear.bias"), prec("cross_attn.kv_linear"));
  proj_ = Projection(weight(w, p + "proj.weight"), weight(w, p + "proj.bias"), prec("cross_attn.proj"));
  q_norm_ = weight(w, p + "q_norm.weight");
  k_norm_ = weight(w, p + "k_norm.weight");
}

CrossAttention::CaptionKV CrossAttention::project_caption(const at::Tensor& y) const {
  const int64_t B = y.size(0), L = y.size(1), C = y.size(2), H = heads_, D = C / H;
  at::Tensor kv = kv_(y).view({B, L, 2, C});  // rows: K then V
  at::Tensor k = ops::rms_norm(kv.select(2, 0), k_norm_, kNormEps);
  at::Tensor v = kv.select(2, 1);
  return {k.reshape({B, L, H, D}).transpose(1, 2).contiguous(), v.reshape({B, L, H, D}).transpose(1, 2).contiguous()};
}

at::Tensor CrossAttention::forward(const at::Tensor& x, const ops::QuantRows& xq, const CaptionKV& kv,
                                  const at::Tensor& bias) const {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), H = heads_, D = C / H;
  at::Tensor q = ops::rms_norm(q_(x, xq), q_norm_, kNormEps).view({B, N, H, D}).transpose(1, 2);
  mark_region("ca.q");
  at::Tensor out = ops::attention(q, kv.k, kv.v, bias);
  mark_region("ca.attention");
  out = proj_(out.transpose(1, 2).reshape({B, N, C}));
  mark_region("ca.proj");
  return out;
}

}  // namespace sanastream::model
