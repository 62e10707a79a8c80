// The one comparison helper for tensors against references (SPEC §9, CONVENTIONS numerics policy):
// NaN/Inf check first, then relative L2, max abs error with its index, max relative error and NMSE.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace sanastream {

struct TensorDiff {
  bool shape_ok = true;
  bool finite = true;       // ours has no NaN/Inf
  double rel_l2 = 0;        // ||ours - ref|| / ||ref||
  double max_abs = 0;       // max |ours - ref|
  std::vector<int64_t> max_abs_index;
  double max_rel = 0;       // max |ours - ref| / max(|ref|, tiny)
  double nmse = 0;          // ||ours - ref||^2 / ||ref||^2
  double ref_max_abs = 0;
  std::string describe() const;  // "rel 1.2e-05, max abs 3.4e-06 at [0, 12, 3], ..."
};

// Compares in float64 on the CPU. Shapes must have the same number of elements; a differing
// shape with the same count is accepted only when allow_reshape is set.
TensorDiff compare_tensors(const at::Tensor& ours, const at::Tensor& ref, bool allow_reshape = false);

std::string shape_str(at::IntArrayRef sizes);

}  // namespace sanastream
