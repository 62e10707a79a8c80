// FFmpeg's log routed into sanastream's (internal to src/video). FFmpeg never prints to stderr:
// every line goes to the debug log, and the error lines of a demuxer, muxer, decoder or encoder
// whose context's `opaque` points at an FfmpegErrors are recorded there, so that the one-line
// message thrown for a failed call can quote FFmpeg's reason.
#pragma once

#include <mutex>
#include <string>

struct AVDictionary;

namespace sanastream::video {

class FfmpegErrors {
 public:
  void record(const std::string& line);
  bool any() const;
  // The last error line recorded; empty when none.
  std::string last() const;
  // Forgets the lines recorded so far.
  void clear();

 private:
  mutable std::mutex mutex_;
  int count_ = 0;
  std::string last_;
};

// Installs the log callback (once per process; later calls do nothing).
void route_ffmpeg_log();

// FFmpeg's text for an AVERROR code, e.g. "No such file or directory".
std::string av_error_text(int code);

// "stdin" / "stdout" for "-", else the path: how messages name an input or output.
std::string display_name(const std::string& path, bool output = false);

// "rtmp" for "rtmp://host/app", "" for a path without a scheme.
std::string url_scheme(const std::string& path);

// The protocol options of a network URL: timeout (seconds to connect as a caller and to stall a read
// or write; 0 = none) and listen (be the server: wait for the peer to connect — rtmp, srt, tcp and
// http; udp and rtp always receive — for at most listen_timeout seconds, 0 = as long as it takes).
// An SRT sender (output) lingers at close for the timeout: live mode drops what is unsent otherwise.
void set_network_options(const std::string& url, bool output, double timeout, bool listen, double listen_timeout,
                         AVDictionary** options);

}  // namespace sanastream::video
