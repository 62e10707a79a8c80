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

at::Tensor gated(const at::Tensor& x, const at::Tensor& gate_pre) {
  return x * at::silu(gate_pre.to(at::kFloat)).to(x.scalar_type());
}

}  // namespace sanastream::model
