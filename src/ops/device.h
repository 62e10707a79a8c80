// Device bookkeeping shared by the tools: waiting for the device, and peak memory figures.
#pragma once

#include "core/runtime.h"

namespace sanastream::ops {

// Waits until the device has finished the work queued so far (no-op on the CPU).
void synchronize(const Runtime& rt);

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

}  // namespace sanastream::ops
