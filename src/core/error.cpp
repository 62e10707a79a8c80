#include "core/error.h"

#include <cstring>

namespace sanastream {

namespace {
std::string short_location(const char* file, int line) {
  // Keep the path from "src/" on so messages do not depend on the build machine.
  const char* p = std::strstr(file, "src/");
  return fmt::format("{}:{}", p ? p : file, line);
}
}  // namespace

Error::Error(std::string message, const char* file, int line)
    : std::runtime_error(fmt::format("{} ({})", message, short_location(file, line))),
      message_(std::move(message)),
      location_(short_location(file, line)) {}

namespace detail {
void fail(const char* file, int line, std::string message) { throw Error(std::move(message), file, line); }
}  // namespace detail

}  // namespace sanastream
