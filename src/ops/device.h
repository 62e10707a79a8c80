// Device bookkeeping shared by the tools: peak memory figures and device-side timing.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "core/runtime.h"

namespace sanastream::ops {

// Peak memory since reset_peak_memory() (MiB): resident set of this process (Linux VmHWM, reset through
// /proc/self/clear_refs; where that is refused, the whole process's peak) and, on CUDA, the caching
// allocator's peak of allocated bytes (0 on the CPU).
struct PeakMemory {
  double host_rss_mib = 0;
  double device_mib = 0;
  int64_t device_bytes = 0;
};
void reset_peak_memory(const Runtime& rt);
PeakMemory peak_memory(const Runtime& rt);
// The resident set now (MiB, Linux VmRSS).
double current_rss_mib();
// Waits until the runtime's device has finished all work queued on it (a no-op on the CPU).
void synchronize(const Runtime& rt);
// The runtime's GPU memory in bytes (0 on the CPU).
int64_t device_memory_bytes(const Runtime& rt);
// t in host memory: from a GPU into pinned memory (a DMA copy at the bus's speed instead of a staged
// pageable one; the caching host allocator reuses the buffers), a CPU tensor as it is.
at::Tensor to_host(const at::Tensor& t);

// The CUDA profiler's collection range (cudaProfilerStart / cudaProfilerStop): a kernel profiler run
// with collection off at start (`ncu --profile-from-start off`) sees only the kernels inside. A no-op
// on the CPU.
void profiler_range(const Runtime& rt, bool on);

// Elapsed seconds between marks, without waiting for the device: CUDA events recorded on the
// current stream (cuda), else the host clock. intervals() waits for the last mark's event.
class DeviceClock {
 public:
  explicit DeviceClock(bool cuda);
  ~DeviceClock();
  DeviceClock(DeviceClock&&) noexcept;
  DeviceClock& operator=(DeviceClock&&) noexcept;
  void mark();
  std::vector<double> intervals();  // seconds between mark i and i + 1

 private:
  struct Events;
  bool cuda_;
  std::unique_ptr<Events> events_;
  std::vector<std::chrono::steady_clock::time_point> host_;
};

}  // namespace sanastream::ops
