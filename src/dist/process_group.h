// Several processes working as one (docs/MULTI_GPU.md): c10d's process group — NCCL between GPUs,
// Gloo between CPU processes — and the few collectives sanastream uses. A group is started by
// dist/launch.h, which tells each process its rank, the group's size and the rendezvous file through
// the environment; every rank then constructs one ProcessGroup from it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace sanastream::dist {

// This process's place in a launched group. size 1: not in a group.
struct Membership {
  int rank = 0, size = 1;
  std::string store;  // the rendezvous file (c10d's FileStore)
};

// The environment variables launch.h sets in every rank it starts.
constexpr const char* kRankEnv = "SANASTREAM_RANK";
constexpr const char* kSizeEnv = "SANASTREAM_WORLD_SIZE";
constexpr const char* kStoreEnv = "SANASTREAM_STORE";

// The membership the environment names; size 1 without it; an Error for an inconsistent one.
Membership membership_from_env();

// Which backends this build has ("nccl", "gloo").
std::vector<std::string> available_backends();

class ProcessGroup {
 public:
  // backend: "nccl" (tensors on this process's GPU) or "gloo" (CPU tensors). A rank that does not
  // join within `timeout`, or a collective that waits longer, is an Error.
  ProcessGroup(const Membership& m, const std::string& backend, std::chrono::milliseconds timeout);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& backend() const { return backend_; }
  // Where the collectives' tensors live: this rank's GPU (nccl) or the CPU (gloo).
  at::Device device() const;

  // Each tensor replaced by its mean over the ranks (sums in the tensor's dtype; tensors of any shape
  // and number, reduced in flat buckets of one dtype and device).
  void average(const std::vector<at::Tensor>& tensors);
  // Each value replaced by its mean over the ranks (fp64).
  void average(std::vector<double>& values);
  // Whether any rank passed true: one rank's decision (a time limit, Ctrl-C) reaches every rank.
  bool any(bool flag);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
  std::string backend_;
};

}  // namespace sanastream::dist
