// Summary statistics of measurements (benchmarks, run reports).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
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

// Quantiles of a stream of positive measurements in constant memory (a session that runs for hours
// measures every frame): log-spaced bins 1 % wide from 1e-3 to 1e7, so a quantile is within 0.5 % of
// the exact one (values outside the range are clamped to it).
class LogHistogram {
 public:
  void add(double x) {
    const double v = std::clamp(x, kMin, kMax);
    const size_t bin = static_cast<size_t>(std::log(v / kMin) / std::log(kStep));
    ++bins_[std::min(bin, bins_.size() - 1)];
    ++count_;
  }
  size_t count() const { return count_; }
  // The p-quantile (0 … 1), the centre of its bin; 0 for no values.
  double quantile(double p) const {
    if (count_ == 0) return 0;
    const double rank = std::clamp(p, 0.0, 1.0) * static_cast<double>(count_ - 1);
    size_t seen = 0;
    for (size_t b = 0; b < bins_.size(); ++b) {
      seen += bins_[b];
      if (static_cast<double>(seen) > rank) return kMin * std::pow(kStep, static_cast<double>(b) + 0.5);
    }
    return kMax;
  }

 private:
  static constexpr double kMin = 1e-3, kMax = 1e7, kStep = 1.01;
  std::vector<size_t> bins_ = std::vector<size_t>(static_cast<size_t>(std::log(kMax / kMin) / std::log(kStep)) + 1);
  size_t count_ = 0;
};

}  // namespace sanastream
