#include "video/ffmpeg_log.h"

#include <cstdarg>
#include <cstdio>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

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

}  // namespace sanastream::video
