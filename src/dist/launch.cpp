#include "dist/launch.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/cuda.h>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"

extern char** environ;

namespace sanastream::dist {

namespace {

// This process's command line (/proc/self/cmdline: the arguments, NUL-separated).
std::vector<std::string> command_line() {
  const std::string raw = read_text_file("/proc/self/cmdline");
  std::vector<std::string> args;
  size_t begin = 0;
  while (begin < raw.size()) {
    const size_t end = raw.find('\0', begin);
    args.push_back(raw.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return args;
}

// The GPUs this process sees, as CUDA_VISIBLE_DEVICES names them (indices or UUIDs).
std::vector<std::string> visible_gpus() {
  const size_t n = torch::cuda::device_count();
  std::vector<std::string> names;
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES"); v && *v) {
    std::istringstream in(v);
    std::string name;
    while (std::getline(in, name, ',') && names.size() < n) names.push_back(name);
  } else {
    for (size_t i = 0; i < n; ++i) names.push_back(std::to_string(i));
  }
  return names;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("ended with wait status {}", status);
}

bool failed(int status) { return status != -1 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }

}  // namespace

void disable_nvlink_multicast() {
  ::setenv("NCCL_NVLS_ENABLE", "0", 1);
  ::setenv("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1", 1);
  ::setenv("NVSHMEM_DISABLE_NVLS", "1", 1);
}

Launch::Launch(int n, bool cuda) {
  SS_CHECK(n >= 2, "--gpus: expected 2 or more processes to launch, got {}", n);
  SS_CHECK(membership_from_env().size == 1, "--gpus: this process is already rank of a launched group (${} is set)",
           kRankEnv);
  std::vector<std::string> gpus;
  if (cuda) {
    gpus = visible_gpus();
    SS_CHECK(static_cast<int>(gpus.size()) >= n, "--gpus {}: expected {} visible GPUs, got {}", n, n, gpus.size());
  }
  disable_nvlink_multicast();
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sanastream-group-XXXXXX";
  const char* dir = ::mkdtemp(tmpl.data());
  SS_CHECK(dir != nullptr, "--gpus: cannot create a rendezvous directory '{}': {}", tmpl, std::strerror(errno));
  dir_ = dir;
  m_ = {0, n, dir_ + "/store"};

  // Everything the children need is prepared before fork(): between fork and exec only
  // async-signal-safe calls.
  std::vector<std::string> args = command_line();
  SS_CHECK(!args.empty(), "--gpus: cannot read this process's command line");
  char exe[4096];
  const ssize_t len = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  SS_CHECK(len > 0, "--gpus: cannot locate the executable: {}", std::strerror(errno));
  exe[len] = '\0';
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  // This environment without the variables each rank gets its own value of.
  std::vector<std::string> inherited;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (key != kRankEnv && key != kSizeEnv && key != kStoreEnv && !(cuda && key == "CUDA_VISIBLE_DEVICES"))
      inherited.push_back(kv);
  }
  for (int r = 1; r < n; ++r) {
    std::vector<std::string> env = inherited;
    env.push_back(fmt::format("{}={}", kRankEnv, r));
    env.push_back(fmt::format("{}={}", kSizeEnv, n));
    env.push_back(fmt::format("{}={}", kStoreEnv, m_.store));
    if (cuda) env.push_back("CUDA_VISIBLE_DEVICES=" + gpus[r]);
    std::vector<char*> envp;
    for (std::string& kv : env) envp.push_back(kv.data());
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    SS_CHECK(pid >= 0, "--gpus: cannot start rank {}: {}", r, std::strerror(errno));
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);  // the launcher died before prctl
      ::execve(exe, argv.data(), envp.data());
      ::_exit(127);
    }
    pids_.push_back(pid);
    status_.push_back(-1);
  }
  watcher_ = std::thread([this] { watch(); });
  log_info("--gpus {}: started ranks 1..{} (pids {}){}", n, n - 1, fmt::join(pids_, " "),
           cuda ? fmt::format(", GPUs {}", fmt::join(gpus, " ")) : std::string(", on the CPU"));
}

void Launch::watch() {
  size_t running = pids_.size();
  while (running > 0 && !stop_) {
    for (size_t i = 0; i < pids_.size(); ++i) {
      if (status_[i] != -1) continue;
      int st = 0;
      if (::waitpid(pids_[i], &st, WNOHANG) != pids_[i]) continue;
      status_[i] = st;
      --running;
      if (failed(st)) {
        // A rank that fails would leave the others waiting in a collective: end the group now.
        log_line(LogLevel::kWarn, fmt::format("error: rank {} (pid {}) {}; stopping the group", i + 1, pids_[i],
                                              describe_status(st)));
        for (size_t j = 0; j < pids_.size(); ++j)
          if (status_[j] == -1) ::kill(pids_[j], SIGTERM);
        std::_Exit(1);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void Launch::wait() {
  if (watcher_.joinable()) watcher_.join();
}

Launch::~Launch() {
  stop_ = true;
  if (watcher_.joinable()) watcher_.join();
  for (size_t i = 0; i < pids_.size(); ++i) {
    if (status_[i] != -1) continue;
    ::kill(pids_[i], SIGTERM);
    ::waitpid(pids_[i], nullptr, 0);
  }
  if (!dir_.empty()) remove_tree(dir_);
}

}  // namespace sanastream::dist
