// Shared test helpers: the CLI runner (exit code, stdout, stderr), temp dirs and the golden root.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace sanastream::test {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  // The number of non-empty stderr lines (errors must be exactly one).
  int err_lines() const;
};

// Runs the built `sanastream` binary with args; stdin from /dev/null unless stdin_file is given.
CliResult run_cli(const std::vector<std::string>& args, const std::string& stdin_file = "");

// A program running in the background: args[0] found in PATH, stdin /dev/null (or a file), stdout
// and stderr to files (or /dev/null). The destructor kills (SIGKILL) and reaps one still running.
class Process {
 public:
  explicit Process(const std::vector<std::string>& args, const std::string& stdout_file = "",
                   const std::string& stderr_file = "", const std::string& stdin_file = "");
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  bool started() const { return pid_ > 0; }
  void signal(int sig) const;
  // The exit code (128 + the signal for a killed one) once it ends; -1 when `seconds` pass first.
  int wait(double seconds);

 private:
  int pid_ = -1;
  int code_ = -1;
};

// A fresh directory under the build tree's test scratch area, removed at exit of the test program.
std::string temp_dir(const std::string& name);

// $SANASTREAM_GOLDEN, else the root resolved at configure time. Empty when absent (callers skip,
// or fail when CI=true).
std::string golden_root();
bool ci_mode();
bool file_exists(const std::string& path);

// The message of the sanastream::Error that f throws ("" when it throws none).
std::string error_of(const std::function<void()>& f);
// A file's bytes; writing one (not atomically: test inputs).
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

}  // namespace sanastream::test

// Skips the test when the golden data is absent; under CI=true a missing set is a failure.
#define REQUIRE_GOLDEN(path)                                                                   \
  do {                                                                                         \
    if (!::sanastream::test::file_exists(path)) {                                           \
      if (::sanastream::test::ci_mode()) FAIL() << "golden data missing under CI: " << (path); \
      GTEST_SKIP() << "golden data not found: " << (path);                                     \
    }                                                                                          \
  } while (0)
