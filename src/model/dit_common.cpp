#include "model/dit_common.h"

#include "core/error.h"

namespace sanastream::model {

const at::Tensor& weight(const io::TensorMap& w, const std::string& key) {
  auto it = w.find(key);
  SS_CHECK(it != w.end(), "DiT weights: missing tensor '{}'", key);
  return it->second;
}

at::Tensor dense(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

Projection::Projection(const at::Tensor& w, const at::Tensor& b, ops::Precision p)
    : w_(p == ops::Precision::kBF16 ? w : ops::fake_quant(w, p, 1)), b_(b), precision_(p) {}

at::Tensor Projection::operator()(const at::Tensor& x) const { return dense(ops::fake_quant(x, precision_, -1), w_, b_); }

at::Tensor Projection::plus(const at::Tensor& residual, const at::Tensor& x) const {
  const at::Tensor xq = ops::fake_quant(x, precision_, -1);
  at::Tensor r = residual.reshape({-1, w_.size(0)});
  if (b_.defined()) r = r + b_;
  return at::addmm(r, xq.reshape({-1, xq.size(-1)}), w_.t());
}

FusedProjection::FusedProjection(const std::vector<ProjectionPart>& parts) {
  SS_CHECK(!parts.empty(), "FusedProjection: no parts");
  bool quantized = false, any_bias = false;
  for (const ProjectionPart& part : parts) {
    quantized = quantized || part.precision != ops::Precision::kBF16;
    any_bias = any_bias || part.b.defined();
  }
  if (quantized) {
    for (const ProjectionPart& part : parts) projections_.emplace_back(part.w, part.b, part.precision);
    return;
  }
  std::vector<at::Tensor> ws, bs;
  int64_t total = 0;
  for (const ProjectionPart& part : parts) {
    ws.push_back(part.w);
    if (any_bias) bs.push_back(part.b.defined() ? part.b.to(part.w.scalar_type()) : at::zeros({part.w.size(0)}, part.w.options()));
    widths_.push_back(part.w.size(0));
    total += part.w.size(0);
  }
  const int64_t pad = (8 - total % 8) % 8;
  if (pad > 0) {
    ws.push_back(at::zeros({pad, ws[0].size(1)}, ws[0].options()));
    if (any_bias) bs.push_back(at::zeros({pad}, ws[0].options()));
  }
  projections_.emplace_back(at::cat(ws), any_bias ? at::cat(bs) : at::Tensor());
}

std::vector<at::Tensor> FusedProjection::operator()(const at::Tensor& x) const {
  std::vector<at::Tensor> out;
  if (widths_.empty()) {
    for (const Projection& p : projections_) out.push_back(p(x));
    return out;
  }
  const at::Tensor y = projections_[0](x);
  int64_t at = 0;
  for (int64_t w : widths_) {
    out.push_back(y.narrow(-1, at, w));
    at += w;
  }
  return out;
}

at::Tensor gated(const at::Tensor& x, const at::Tensor& gate_pre) {
  return x * at::silu(gate_pre.to(at::kFloat)).to(x.scalar_type());
}

}  // namespace sanastream::model
