#include "video/ffmpeg_log.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include "core/error.h"
#include "core/log.h"

namespace sanastream::video {

namespace {

// The FfmpegErrors of the context that logged (found through its opaque pointer, which FFmpeg
// copies into its decoder and encoder threads), or null.
FfmpegErrors* errors_of(void* avcl) {
  if (avcl == nullptr) return nullptr;
  const AVClass* cls = *static_cast<const AVClass**>(avcl);
  if (cls == avformat_get_class()) return static_cast<FfmpegErrors*>(static_cast<AVFormatContext*>(avcl)->opaque);
  if (cls == avcodec_get_class()) return static_cast<FfmpegErrors*>(static_cast<AVCodecContext*>(avcl)->opaque);
  return nullptr;
}

void ffmpeg_log(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > AV_LOG_ERROR && log_level() < LogLevel::kDebug) return;
  char text[1024];
  va_list copy;
  va_copy(copy, vl);
  std::vsnprintf(text, sizeof text, fmt, copy);
  va_end(copy);
  std::string message(text);
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) message.pop_back();
  if (message.empty()) return;
  const AVClass* cls = avcl ? *static_cast<const AVClass**>(avcl) : nullptr;
  log_debug("ffmpeg [{}] {}", cls ? cls->item_name(avcl) : "-", message);
  if (level > AV_LOG_ERROR) return;
  if (FfmpegErrors* errors = errors_of(avcl)) errors->record(message);
}

std::once_flag g_route_once;

}  // namespace

void FfmpegErrors::record(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++count_;
  last_ = line;
}

bool FfmpegErrors::any() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return count_ > 0;
}

std::string FfmpegErrors::last() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_;
}

void FfmpegErrors::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  count_ = 0;
  last_.clear();
}

void route_ffmpeg_log() {
  std::call_once(g_route_once, [] { av_log_set_callback(&ffmpeg_log); });
}

std::string av_error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

std::string display_name(const std::string& path, bool output) {
  if (path != "-") return path;
  return output ? "stdout" : "stdin";
}

std::string url_scheme(const std::string& path) {
  const size_t end = path.find("://");
  return end == std::string::npos ? std::string() : path.substr(0, end);
}

void set_network_options(const std::string& url, bool output, double timeout, bool listen, double listen_timeout,
                         AVDictionary** options) {
  const std::string scheme = url_scheme(url);
  if (scheme == "srt" && output)  // seconds
    av_dict_set_int(options, "linger", std::max<int64_t>(1, static_cast<int64_t>(std::ceil(timeout))), 0);
  if (timeout > 0) {
    av_dict_set_int(options, "rw_timeout", static_cast<int64_t>(timeout * 1e6), 0);  // µs
    if (scheme == "srt" && !listen) av_dict_set_int(options, "connect_timeout", static_cast<int64_t>(timeout * 1e3), 0);
    if (scheme == "udp" || scheme == "rtp")  // its receiving thread waits on its own timeout (µs)
      av_dict_set_int(options, "timeout", static_cast<int64_t>(timeout * 1e6), 0);
  }
  if (!listen) return;
  const bool bounded = listen_timeout > 0;
  if (scheme == "srt") {
    av_dict_set(options, "mode", "listener", 0);
    if (bounded) av_dict_set_int(options, "listen_timeout", static_cast<int64_t>(listen_timeout * 1e6), 0);  // µs
  } else if (scheme == "rtmp" || scheme == "tcp" || scheme == "http") {
    av_dict_set(options, "listen", "1", 0);
    if (bounded && scheme == "rtmp")  // whole seconds
      av_dict_set_int(options, "timeout", std::max<int64_t>(1, static_cast<int64_t>(std::ceil(listen_timeout))), 0);
    if (bounded && scheme != "rtmp") av_dict_set_int(options, "listen_timeout", static_cast<int64_t>(listen_timeout * 1e3), 0);  // ms
  } else {
    SS_CHECK(scheme == "udp" || scheme == "rtp", "{}: expected an rtmp, srt, tcp, http, udp or rtp URL to listen on, "
             "got {}", url, scheme.empty() ? "a file" : "'" + scheme + "://'");
  }
}

}  // namespace sanastream::video
