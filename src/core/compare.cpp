#include "core/compare.h"

#include <cmath>

#include <fmt/format.h>

namespace sanastream {

std::string shape_str(at::IntArrayRef sizes) {
  std::string s = "(";
  for (size_t i = 0; i < sizes.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", sizes[i]);
  return s + ")";
}

std::string TensorDiff::describe() const {
  if (!shape_ok) return "shape mismatch";
  if (!finite) return "NaN/Inf in output";
  std::string idx;
  for (size_t i = 0; i < max_abs_index.size(); ++i) idx += fmt::format("{}{}", i ? "," : "", max_abs_index[i]);
  return fmt::format("rel {:.3e}, max abs {:.3e} at [{}] (max |ref| {:.3g}), max rel {:.3e}, nmse {:.3e}", rel_l2,
                     max_abs, idx, ref_max_abs, max_rel, nmse);
}

TensorDiff compare_tensors(const at::Tensor& ours_in, const at::Tensor& ref_in, bool allow_reshape) {
  TensorDiff d;
  if (ours_in.sizes() != ref_in.sizes() && !(allow_reshape && ours_in.numel() == ref_in.numel())) {
    d.shape_ok = false;
    return d;
  }
  at::Tensor ours = ours_in.detach().to(at::kCPU).to(at::kDouble).reshape(ref_in.sizes()).contiguous();
  at::Tensor ref = ref_in.detach().to(at::kCPU).to(at::kDouble).contiguous();
  d.finite = at::isfinite(ours).all().item<bool>();
  if (!d.finite) return d;
  at::Tensor diff = (ours - ref).abs();
  const double ref_norm = ref.norm().item<double>();
  const double diff_norm = diff.norm().item<double>();
  d.rel_l2 = ref_norm > 0 ? diff_norm / ref_norm : diff_norm;
  d.nmse = d.rel_l2 * d.rel_l2;
  d.ref_max_abs = ref.numel() ? ref.abs().max().item<double>() : 0.0;
  if (diff.numel() > 0) {
    int64_t flat = diff.reshape({-1}).argmax().item<int64_t>();
    d.max_abs = diff.reshape({-1})[flat].item<double>();
    int64_t rem = flat;
    d.max_abs_index.assign(ref.dim(), 0);
    for (int64_t i = ref.dim() - 1; i >= 0; --i) {
      d.max_abs_index[i] = rem % ref.size(i);
      rem /= ref.size(i);
    }
    const double tiny = std::max(1e-12, 1e-6 * d.ref_max_abs);
    d.max_rel = (diff / ref.abs().clamp_min(tiny)).max().item<double>();
  }
  return d;
}

}  // namespace sanastream
