// `COMMAND --gpus N` (docs/MULTI_GPU.md): the process the user started becomes rank 0 of N and starts
// ranks 1 … N−1 as copies of itself — the same executable and arguments — whose environment names
// each one's rank, the group's size and the rendezvous file (process_group.h). On CUDA every rank
// sees one GPU (CUDA_VISIBLE_DEVICES: the r-th of the launcher's visible ones), so each rank's
// tensors live on its cuda:0. NVLink multicast is off in every rank (NCCL_NVLS_ENABLE=0 and its
// kin).
// The launcher watches the ranks it started: one that fails ends the group — the others are
// terminated and this process exits with an error naming it; a rank whose launcher dies gets SIGTERM.
#pragma once

#include <atomic>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include "dist/process_group.h"

namespace sanastream::dist {

class Launch {
 public:
  // Starts ranks 1 … n−1 (n ≥ 2). cuda: one GPU per rank (an Error when fewer than n are visible).
  // Must run before this process initialises CUDA when the launcher's own GPU is to be pinned.
  // The rendezvous file lives in a fresh directory under $TMPDIR (default /tmp).
  Launch(int n, bool cuda);
  // Terminates the ranks still running (this process failed) and removes the rendezvous file.
  ~Launch();
  Launch(const Launch&) = delete;
  Launch& operator=(const Launch&) = delete;

  // Rank 0's membership.
  const Membership& membership() const { return m_; }
  // Waits for every started rank to exit (one that fails has already ended the process, see above).
  void wait();

 private:
  void watch();  // the watcher thread: ends the group when a rank fails

  Membership m_;
  std::string dir_;  // holds the rendezvous file
  std::vector<pid_t> pids_;
  std::vector<int> status_;  // per started rank: its wait status, −1 while running
  std::atomic<bool> stop_{false};
  std::thread watcher_;
};

// The environment NVLink multicast needs off, set in this process (inherited by what it starts).
void disable_nvlink_multicast();

}  // namespace sanastream::dist
