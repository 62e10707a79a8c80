#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace sanastream {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kWarn)};
std::mutex g_mutex;
}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_line(LogLevel level, const std::string& text) {
  const char* tag = level == LogLevel::kWarn ? "warning: " : (level == LogLevel::kDebug ? "debug: " : "");
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "sanastream: %s%s\n", tag, text.c_str());
}

}  // namespace sanastream
