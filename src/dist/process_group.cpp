#include "dist/process_group.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#ifdef SANASTREAM_HAS_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SANASTREAM_HAS_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/torch_compat.h"

namespace sanastream::dist {

namespace {

// c10d's backends derive from Backend since 2.0, from ProcessGroup before.
#if SS_TORCH_AT_LEAST(2, 0)
using Backend = c10d::Backend;
#else
using Backend = c10d::ProcessGroup;
#endif

// Elements per flat buffer of average(): 64 Mi fp32 = 256 MiB of extra memory at most.
constexpr int64_t kBucketElements = int64_t{64} << 20;

int env_int(const char* name) {
  const char* v = std::getenv(name);
  SS_CHECK(v && *v, "expected ${} in a launched process (with ${} set)", name, kRankEnv);
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  SS_CHECK(*end == '\0' && n >= 0, "${}: expected a non-negative integer, got '{}'", name, v);
  return static_cast<int>(n);
}

}  // namespace

Membership membership_from_env() {
  Membership m;
  const char* rank = std::getenv(kRankEnv);
  if (!rank || !*rank) return m;
  m.rank = env_int(kRankEnv);
  m.size = env_int(kSizeEnv);
  const char* store = std::getenv(kStoreEnv);
  SS_CHECK(store && *store, "expected ${} in a launched process", kStoreEnv);
  m.store = store;
  SS_CHECK(m.size >= 1 && m.rank < m.size, "${}={} and ${}={}: expected 0 <= rank < size", kRankEnv, m.rank,
           kSizeEnv, m.size);
  return m;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> b;
#ifdef SANASTREAM_HAS_NCCL
  b.push_back("nccl");
#endif
#ifdef SANASTREAM_HAS_GLOO
  b.push_back("gloo");
#endif
  return b;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Backend> group;
};

namespace {

// A c10d error's first line (the rest is its C++ context).
std::string first_line(const c10::Error& e) {
  const std::string msg = e.what_without_backtrace();
  return msg.substr(0, msg.find('\n'));
}

// Runs one collective and waits for it; c10d's errors become one-line Errors.
template <typename Fn>
void collective(const std::string& backend, const char* what, Fn&& fn) {
  try {
    fn()->wait();
  } catch (const c10::Error& e) {
    SS_FAIL("{} {} failed (a rank stopped or timed out?): {}", backend, what, first_line(e));
  }
}

}  // namespace

ProcessGroup::ProcessGroup(const Membership& m, const std::string& backend, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()), rank_(m.rank), size_(m.size), backend_(backend) {
  SS_CHECK(!m.store.empty(), "a process group needs a rendezvous file (not launched by --gpus?)");
  try {
    impl_->store = c10::make_intrusive<c10d::FileStore>(m.store, m.size);
    impl_->store->setTimeout(timeout);
    if (backend == "gloo") {
#ifdef SANASTREAM_HAS_GLOO
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, m.rank, m.size, opts);
      return;
#endif
    } else if (backend == "nccl") {
#ifdef SANASTREAM_HAS_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, m.rank, m.size, opts);
      return;
#endif
    }
  } catch (const c10::Error& e) {
    SS_FAIL("{} process group (rank {} of {}): {}", backend, m.rank, m.size, first_line(e));
  }
  const std::vector<std::string> have = available_backends();
  SS_FAIL("process group backend '{}': this build has {}", backend,
          have.empty() ? std::string("none (no c10d Gloo or NCCL headers at build time)") : fmt::format("{}", fmt::join(have, ", ")));
}

ProcessGroup::~ProcessGroup() = default;

at::Device ProcessGroup::device() const { return backend_ == "nccl" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU); }

void ProcessGroup::average(const std::vector<at::Tensor>& tensors) {
  if (size_ == 1) return;
  // Flat buckets of one dtype and device each: one collective per bucket.
  std::map<std::pair<int, std::string>, std::vector<at::Tensor>> groups;
  for (const at::Tensor& t : tensors)
    groups[{static_cast<int>(t.scalar_type()), t.device().str()}].push_back(t);
  for (auto& [key, group] : groups) {
    size_t i = 0;
    while (i < group.size()) {
      std::vector<at::Tensor> bucket;
      int64_t n = 0;
      do {
        bucket.push_back(group[i]);
        n += group[i].numel();
        ++i;
      } while (i < group.size() && n + group[i].numel() <= kBucketElements);
      std::vector<at::Tensor> parts;
      for (const at::Tensor& t : bucket) parts.push_back(t.reshape(-1));
      std::vector<at::Tensor> flat{at::cat(parts)};
      collective(backend_, "all-reduce", [&] { return impl_->group->allreduce(flat); });
      flat[0].div_(size_);
      int64_t offset = 0;
      for (const at::Tensor& t : bucket) {
        t.copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
  }
}

void ProcessGroup::average(std::vector<double>& values) {
  if (size_ == 1 || values.empty()) return;
  const at::Tensor t = at::tensor(values, at::kDouble).to(device());
  average({t});
  const at::Tensor host = t.cpu();
  std::copy(host.data_ptr<double>(), host.data_ptr<double>() + values.size(), values.begin());
}

bool ProcessGroup::any(bool flag) {
  if (size_ == 1) return flag;
  std::vector<at::Tensor> t{at::full({1}, flag ? 1.0f : 0.0f, at::TensorOptions().device(device()))};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  collective(backend_, "all-reduce", [&] { return impl_->group->allreduce(t, opts); });
  return t[0].item<float>() > 0;
}

}  // namespace sanastream::dist
