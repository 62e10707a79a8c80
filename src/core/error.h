// The one error type of the library. Every check throws sanastream::Error with a message in
// "expected X, got Y" form and the file:line it came from; apps turn it into one stderr line and
// exit code 1. Library code never calls exit().
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace sanastream {

class Error : public std::runtime_error {
 public:
  Error(std::string message, const char* file, int line);
  // The message without the source location, for the user-facing line.
  const std::string& message() const { return message_; }
  const std::string& location() const { return location_; }

 private:
  std::string message_;
  std::string location_;
};

// Thrown when the user interrupted the run (SIGINT) and the outputs have been finalised.
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

namespace detail {
[[noreturn]] void fail(const char* file, int line, std::string message);
}  // namespace detail

}  // namespace sanastream

// SS_CHECK(cond, "fmt {}", args...): throws sanastream::Error when cond is false.
#define SS_CHECK(cond, ...)                                                       \
  do {                                                                            \
    if (!(cond)) ::sanastream::detail::fail(__FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

#define SS_FAIL(...) ::sanastream::detail::fail(__FILE__, __LINE__, fmt::format(__VA_ARGS__))
