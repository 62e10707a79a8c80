#include "support/media_tools.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <nlohmann/json.hpp>

extern char** environ;

namespace sanastream::test {

int run_tool(const std::vector<std::string>& args, std::string* out) {
  int fds[2];
  if (pipe(fds) != 0) return 127;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  if (rc != 0) return 127;
  int status = 0;
  waitpid(pid, &status, 0);
  if (out) *out = std::move(text);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const ProbedStream* Probe::of(const std::string& type) const {
  for (const auto& s : streams)
    if (s.type == type) return &s;
  return nullptr;
}

namespace {

double number(const nlohmann::json& j, const char* key, double otherwise = 0) {
  if (!j.contains(key)) return otherwise;
  const auto& v = j[key];
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    try {
      return std::stod(v.get<std::string>());
    } catch (...) {
    }
  }
  return otherwise;
}

}  // namespace

Probe ffprobe(const std::string& path) {
  std::string text;
  Probe p;
  if (run_tool({"ffprobe", "-v", "error", "-of", "json", "-show_entries",
                "format=format_name:stream=index,codec_type,codec_name,width,height,sample_rate,r_frame_rate:"
                "frame=stream_index,best_effort_timestamp_time,pkt_duration_time,nb_samples",
                path},
               &text) != 0)
    return p;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return p;
  p.ok = true;
  p.format = j["format"].value("format_name", "");
  std::vector<double> interval;
  for (const auto& s : j["streams"]) {
    ProbedStream ps;
    ps.type = s.value("codec_type", "");
    ps.codec = s.value("codec_name", "");
    ps.width = s.value("width", 0);
    ps.height = s.value("height", 0);
    ps.sample_rate = static_cast<int>(number(s, "sample_rate"));
    const std::string rate = s.value("r_frame_rate", "0/1");
    const double num = std::stod(rate.substr(0, rate.find('/'))), den = std::stod(rate.substr(rate.find('/') + 1));
    interval.push_back(num > 0 && den > 0 ? den / num : 0);
    p.streams.push_back(ps);
  }
  for (const auto& f : j["frames"]) {
    const size_t i = f.value("stream_index", 0);
    if (i >= p.streams.size() || !f.contains("best_effort_timestamp_time")) continue;
    ProbedStream& s = p.streams[i];
    const double t = number(f, "best_effort_timestamp_time");
    const double nominal = s.type == "audio" ? number(f, "nb_samples") / std::max(1, s.sample_rate) : interval[i];
    const double d = number(f, "pkt_duration_time", nominal);
    ++s.frames;
    s.start = std::min(s.start, t);
    s.end = std::max(s.end, t + d);
  }
  return p;
}

}  // namespace sanastream::test
