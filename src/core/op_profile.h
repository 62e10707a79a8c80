// Where a span of code spends its time, per operator and per GPU kernel, from PyTorch's profiler
// (Kineto): `sanastream train --profile N` prints this table for N steps. CPU rows are ATen operators,
// timed on the host and inclusive (aten::linear contains its aten::addmm); CUDA rows are kernels and
// copies, timed on the device and never nested, so their totals add up to the device's busy time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sanastream {

struct OpTime {
  std::string name;
  bool cuda = false;  // a device kernel or copy (else a host operator)
  int64_t calls = 0;
  double total_ms = 0;
};

class OpProfile {
 public:
  explicit OpProfile(bool cuda);  // starts recording: host operators, and CUDA kernels when `cuda`
  ~OpProfile();                   // stops a recording that stop() did not end
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  // Ends the recording: one row per (name, device), longest total first.
  std::vector<OpTime> stop();

 private:
  bool recording_ = false;
};

// The table: every row whose name starts with `phase_prefix` (scopes the caller recorded with
// RECORD_USER_SCOPE: their host spans, and on CUDA their device spans), then the `top` longest CUDA
// rows and their sum (the device's busy time), then the `top` longest other host rows; each with its
// share of `span_ms`, the wall time recorded.
std::string format_op_table(const std::vector<OpTime>& rows, double span_ms, size_t top,
                            const std::string& phase_prefix);

}  // namespace sanastream
