// Summary statistics of measurements (benchmarks, run reports).
#pragma once

#include <algorithm>
#include <vector>

namespace sanastream {

// The p-quantile (0 … 1) with linear interpolation between order statistics; 0 for no values.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = p * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(idx), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

}  // namespace sanastream
