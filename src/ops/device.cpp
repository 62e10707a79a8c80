#include "ops/device.h"

#include <sys/resource.h>

#include <cstdio>

#ifdef SANASTREAM_HAS_CUDA
#include <cuda_profiler_api.h>

#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include "ops/cuda/launch.h"
#endif

namespace sanastream::ops {

namespace {

#ifdef SANASTREAM_HAS_CUDA
c10::DeviceIndex device_index(const Runtime& rt) {
  return rt.device.index() < 0 ? c10::cuda::current_device() : rt.device.index();
}
#endif

// A "Name: N kB" line of /proc/self/status, in MiB (0 when absent).
double status_mib(const char* key) {
  double mib = 0;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    long kib = 0;
    const std::string pattern = std::string(key) + ": %ld kB";
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, pattern.c_str(), &kib) == 1) mib = static_cast<double>(kib) / 1024.0;
    std::fclose(f);
  }
  return mib;
}

}  // namespace

void reset_peak_memory(const Runtime& rt) {
  if (std::FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);  // resets VmHWM to the current resident set
    std::fclose(f);
  }
#ifdef SANASTREAM_HAS_CUDA
  if (rt.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device_index(rt));
#endif
}

PeakMemory peak_memory(const Runtime& rt) {
  PeakMemory m;
  m.host_rss_mib = status_mib("VmHWM");
  rusage u{};
  if (m.host_rss_mib == 0 && getrusage(RUSAGE_SELF, &u) == 0)
    m.host_rss_mib = static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
#ifdef SANASTREAM_HAS_CUDA
  if (rt.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_index(rt));
    m.device_bytes = stats.allocated_bytes[0].peak;  // [0] = aggregate
    m.device_mib = static_cast<double>(m.device_bytes) / (1024.0 * 1024.0);
  }
#endif
  return m;
}

double current_rss_mib() { return status_mib("VmRSS"); }

void synchronize(const Runtime& rt) {
#ifdef SANASTREAM_HAS_CUDA
  if (rt.device.is_cuda()) c10::cuda::device_synchronize();
#else
  (void)rt;
#endif
}

struct DeviceClock::Events {
#ifdef SANASTREAM_HAS_CUDA
  std::vector<std::unique_ptr<at::cuda::CUDAEvent>> marks;
#endif
};

void profiler_range(const Runtime& rt, bool on) {
#ifdef SANASTREAM_HAS_CUDA
  if (rt.is_cuda()) cuda::check_cuda(on ? cudaProfilerStart() : cudaProfilerStop(), "the CUDA profiler range");
#else
  (void)rt;
  (void)on;
#endif
}

DeviceClock::DeviceClock(bool cuda) : cuda_(cuda), events_(std::make_unique<Events>()) {}
DeviceClock::~DeviceClock() = default;
DeviceClock::DeviceClock(DeviceClock&&) noexcept = default;
DeviceClock& DeviceClock::operator=(DeviceClock&&) noexcept = default;

void DeviceClock::mark() {
#ifdef SANASTREAM_HAS_CUDA
  if (cuda_) {
    events_->marks.emplace_back(std::make_unique<at::cuda::CUDAEvent>(cudaEventDefault));
    events_->marks.back()->record();
    return;
  }
#endif
  host_.push_back(std::chrono::steady_clock::now());
}

std::vector<double> DeviceClock::intervals() {
  std::vector<double> out;
#ifdef SANASTREAM_HAS_CUDA
  if (cuda_) {
    auto& m = events_->marks;
    if (!m.empty()) m.back()->synchronize();
    for (size_t i = 0; i + 1 < m.size(); ++i) out.push_back(m[i]->elapsed_time(*m[i + 1]) / 1e3);
    return out;
  }
#endif
  for (size_t i = 0; i + 1 < host_.size(); ++i)
    out.push_back(std::chrono::duration<double>(host_[i + 1] - host_[i]).count());
  return out;
}

int64_t device_memory_bytes(const Runtime& rt) {
#ifdef SANASTREAM_HAS_CUDA
  if (rt.is_cuda()) return static_cast<int64_t>(at::cuda::getDeviceProperties(device_index(rt))->totalGlobalMem);
#endif
  (void)rt;
  return 0;
}

at::Tensor to_host(const at::Tensor& t) {
  if (t.device().is_cpu()) return t;
  return at::empty(t.sizes(), t.options().device(at::kCPU).pinned_memory(true)).copy_(t);
}

}  // namespace sanastream::ops
