#include "core/op_profile.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include "core/torch_compat.h"

namespace sanastream {

namespace prof = torch::profiler::impl;

OpProfile::OpProfile(bool cuda) {
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO);
  std::set<prof::ActivityType> activities{prof::ActivityType::CPU};
  if (cuda) activities.insert(prof::ActivityType::CUDA);
  torch::autograd::profiler::prepareProfiler(config, activities);
  torch::autograd::profiler::enableProfiler(config, activities);
  recording_ = true;
}

OpProfile::~OpProfile() {
  if (recording_) torch::autograd::profiler::disableProfiler();
}

std::vector<OpTime> OpProfile::stop() {
  recording_ = false;
  const std::unique_ptr<torch::autograd::profiler::ProfilerResult> result =
      torch::autograd::profiler::disableProfiler();
  std::map<std::pair<std::string, bool>, OpTime> by_name;
  for (const torch::autograd::profiler::KinetoEvent& e : result->events()) {
    const bool cuda = e.deviceType() == c10::DeviceType::CUDA;
#if SS_TORCH_AT_LEAST(2, 1)
    const double ms = static_cast<double>(e.durationNs()) * 1e-6;
#else
    const double ms = static_cast<double>(e.durationUs()) * 1e-3;
#endif
    OpTime& t = by_name[{e.name(), cuda}];
    t.name = e.name();
    t.cuda = cuda;
    ++t.calls;
    t.total_ms += ms;
  }
  std::vector<OpTime> rows;
  for (auto& [key, t] : by_name) rows.push_back(std::move(t));
  std::sort(rows.begin(), rows.end(), [](const OpTime& a, const OpTime& b) { return a.total_ms > b.total_ms; });
  return rows;
}

std::string format_op_table(const std::vector<OpTime>& rows, double span_ms, size_t top,
                            const std::string& phase_prefix) {
  auto line = [span_ms](double ms, const std::string& calls, const std::string& name) {
    return fmt::format("{:>10.2f} {:>6.1f} {:>8}  {}\n", ms, 100.0 * ms / span_ms, calls, name.substr(0, 120));
  };
  // A scope shows twice: its host span, and (CUDA) the device span of the work it queued.
  auto is_phase = [&](const OpTime& t) { return t.name.rfind(phase_prefix, 0) == 0; };
  std::string out =
      fmt::format("{:>10} {:>6} {:>8}  {}   (of {:.1f} ms recorded)\n", "total ms", "%", "calls", "name", span_ms);
  for (const OpTime& t : rows)
    if (is_phase(t)) out += line(t.total_ms, std::to_string(t.calls), (t.cuda ? "[cuda] " : "") + t.name);
  for (const bool cuda : {true, false}) {
    double sum = 0;
    size_t shown = 0;
    for (const OpTime& t : rows) {
      if (t.cuda != cuda || is_phase(t)) continue;
      sum += t.total_ms;
      if (shown++ < top) out += line(t.total_ms, std::to_string(t.calls), (cuda ? "[cuda] " : "") + t.name);
    }
    if (cuda && shown > 0) out += line(sum, "", "[cuda] all kernels and copies");
  }
  return out;
}

}  // namespace sanastream
