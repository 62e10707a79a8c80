#include "model/dit_common.h"

#include <algorithm>

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

Projection::Projection(const at::Tensor& w, const at::Tensor& b, ops::Precision p) : b_(b), precision_(p), out_(w.size(0)) {
  const bool fits = w.size(0) % 16 == 0 && w.size(1) % 16 == 0;
  if (p == ops::Precision::kFP8 && fits && ops::fp8_gemm_available(w.device(), w.scalar_type()))
    wq_ = ops::quantize_fp8_rows(w);
  else if (p == ops::Precision::kINT8 && fits && ops::int8_gemm_available(w.device(), w.scalar_type()))
    wq_ = ops::quantize_int8_rows(w);
  else
    w_ = p == ops::Precision::kBF16 ? w : ops::fake_quant(w, p, 1);
}

ops::QuantRows Projection::quantize(const at::Tensor& x) const {
  const at::Tensor rows = x.reshape({-1, x.size(-1)});
  return precision_ == ops::Precision::kFP8 ? ops::quantize_fp8_rows(rows) : ops::quantize_int8_rows(rows);
}

ops::QuantRows Projection::rows(const at::Tensor& x, const ops::QuantRows& xq) const {
  return xq.q.defined() && xq.q.scalar_type() == wq_.q.scalar_type() ? xq : quantize(x);
}

at::Tensor Projection::operator()(const at::Tensor& x, const ops::QuantRows& xq) const {
  if (quantized_gemm()) {
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes.back() = out_;
    const auto linear = fp8_gemm() ? ops::fp8_linear : ops::int8_linear;
    return linear(rows(x, xq), wq_, b_, {}).view(sizes);
  }
  return dense(ops::fake_quant(x, precision_, -1), w_, b_);
}

at::Tensor Projection::plus(const at::Tensor& residual, const at::Tensor& x, const ops::QuantRows& xq) const {
  at::Tensor r = residual.reshape({-1, out_});
  if (quantized_gemm()) return (fp8_gemm() ? ops::fp8_linear : ops::int8_linear)(rows(x, xq), wq_, b_, r);
  const at::Tensor xs = ops::fake_quant(x, precision_, -1);
  if (b_.defined()) r = r + b_;
  return at::addmm(r, xs.reshape({-1, xs.size(-1)}), w_.t());
}

void Projection::add_to_(at::Tensor& out, const at::Tensor& x, const ops::QuantRows& xq) const {
  if (quantized_gemm()) {
    (fp8_gemm() ? ops::fp8_linear_add_ : ops::int8_linear_add_)(out, rows(x, xq), wq_, b_);
    return;
  }
  out.addmm_(ops::fake_quant(x, precision_, -1), w_.t());
  if (b_.defined()) out.add_(b_);
}

FusedProjection::FusedProjection(const std::vector<ProjectionPart>& parts) : parts_(parts.size()) {
  SS_CHECK(!parts.empty(), "FusedProjection: no parts");
  std::vector<ops::Precision> precisions;  // in the order they first appear
  for (const ProjectionPart& part : parts)
    if (std::find(precisions.begin(), precisions.end(), part.precision) == precisions.end())
      precisions.push_back(part.precision);
  for (ops::Precision prec : precisions) {
    bool any_bias = false;
    for (const ProjectionPart& part : parts) any_bias = any_bias || (part.precision == prec && part.b.defined());
    std::vector<at::Tensor> ws, bs;
    std::vector<Slot> slots;
    int64_t total = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const ProjectionPart& part = parts[i];
      if (part.precision != prec) continue;
      ws.push_back(part.w);
      if (any_bias)
        bs.push_back(part.b.defined() ? part.b.to(part.w.scalar_type()) : at::zeros({part.w.size(0)}, part.w.options()));
      slots.push_back({i, part.w.size(0)});
      total += part.w.size(0);
    }
    const int64_t multiple = prec == ops::Precision::kBF16 ? 8 : 16, pad = (multiple - total % multiple) % multiple;
    if (pad > 0) {
      ws.push_back(at::zeros({pad, ws[0].size(1)}, ws[0].options()));
      if (any_bias) bs.push_back(at::zeros({pad}, ws[0].options()));
    }
    projections_.emplace_back(at::cat(ws), any_bias ? at::cat(bs) : at::Tensor(), prec);
    slots_.push_back(std::move(slots));
  }
}

bool FusedProjection::fp8_gemm() const {
  return std::any_of(projections_.begin(), projections_.end(), [](const Projection& p) { return p.fp8_gemm(); });
}

std::vector<at::Tensor> FusedProjection::operator()(const at::Tensor& x, const ops::QuantRows& xq) const {
  std::vector<at::Tensor> out(parts_);
  for (size_t g = 0; g < projections_.size(); ++g) {
    const at::Tensor y = projections_[g](x, xq);
    int64_t at = 0;
    for (const Slot& slot : slots_[g]) {
      out[slot.part] = y.narrow(-1, at, slot.width);
      at += slot.width;
    }
  }
  return out;
}

}  // namespace sanastream::model
