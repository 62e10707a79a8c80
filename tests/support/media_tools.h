// Test helpers for media files: running a tool from PATH (ffmpeg, ffprobe) and ffprobe's view of a
// file — the independent judge of what sanastream wrote (codecs, decoded frame counts, the time span
// each stream covers).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace sanastream::test {

// Runs a program found in PATH (stdin /dev/null, stderr dropped); returns its exit code and, with
// `out`, what it wrote on stdout. 127 when it cannot be started.
int run_tool(const std::vector<std::string>& args, std::string* out = nullptr);

// One stream of a file as ffprobe decodes it.
struct ProbedStream {
  std::string type;  // "video", "audio"
  std::string codec;
  int width = 0, height = 0, sample_rate = 0;
  int64_t frames = 0;                                       // decoded frames
  double start = std::numeric_limits<double>::infinity();   // first presentation time, seconds
  double end = -std::numeric_limits<double>::infinity();    // where the last frame ends
};

struct Probe {
  bool ok = false;
  std::string format;
  std::vector<ProbedStream> streams;
  const ProbedStream* of(const std::string& type) const;
};

Probe ffprobe(const std::string& path);

}  // namespace sanastream::test
