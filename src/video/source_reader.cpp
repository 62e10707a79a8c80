#include "video/source_reader.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

extern "C" {
#include <libavcodec/avcodec.h>
}

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "video/ffmpeg_log.h"

namespace sanastream::video {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Sleeps, waking every 50 ms to let a Ctrl-C through.
void sleep_for(double seconds) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < until) {
    check_interrupt();
    std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
  }
  check_interrupt();
}

// An error's message without the source's name in front (the caller's message names it once).
std::string without_name(const std::string& message, const std::string& name) {
  return message.rfind(name + ": ", 0) == 0 ? message.substr(name.size() + 2) : message;
}

// Whether a later connection's audio can go on in the first one's output stream.
bool same_audio(const std::optional<AudioInfo>& a, const std::optional<AudioInfo>& b) {
  if (!a || !b) return !a && !b;
  return a->codec == b->codec && a->sample_rate == b->sample_rate && a->channels == b->channels;
}

}  // namespace

void SourceReader::open(const std::string& path, const ReaderOptions& options, const ReconnectPolicy& policy) {
  SS_CHECK(policy.attempts >= 0 && policy.window >= 0,
           "expected a reconnection policy of ≥ 0 attempts within ≥ 0 s, got {} attempts within {} s", policy.attempts,
           policy.window);
  path_ = path;
  options_ = options;
  policy_ = policy;
  reader_.open(path, options);
  info_ = reader_.info();
  audio_ = reader_.audio();
  live_ = is_live_source(path, options.format);
  interval_ = info_.fps() > 0 ? 1 / info_.fps() : 1.0 / 30;
}

bool SourceReader::read(Frame& frame) {
  for (;;) {
    if (!reader_.is_open()) return false;
    std::string why = "the stream ended";
    try {
      if (reader_.read(frame)) {
        if (rebase_) {
          offset_ = last_time_ + interval_ - frame.time;
          rebase_ = false;
        }
        frame.time += offset_;
        frame.index = frames_++;
        last_time_ = frame.time;
        return true;
      }
    } catch (const Error& e) {
      if (!live_ || frames_ == 0) throw;
      why = without_name(e.message(), display_name(path_));
    }
    if (!live_ || policy_.attempts == 0 || !reconnect(why)) return false;
  }
}

bool SourceReader::reconnect(const std::string& why) {
  const std::string name = display_name(path_);
  const double at = last_time_;
  log_warn("{}: the connection dropped at {:.1f} s ({}); reconnecting", name, at, why);
  const auto start = Clock::now();
  std::string last = why;
  double delay = 0.25;
  for (int attempt = 1; attempt <= policy_.attempts; ++attempt) {
    sleep_for(std::min(delay, std::max(0.0, policy_.window - seconds_since(start))));
    const double left = policy_.window - seconds_since(start);
    if (left <= 0) break;
    ReaderOptions o = options_;
    o.timeout = o.timeout > 0 ? std::min(o.timeout, left) : left;
    o.listen_timeout = left;
    try {
      reader_.open(path_, o);
    } catch (const Error& e) {
      last = without_name(e.message(), name);
      log_info("{}: reconnection attempt {} failed ({})", name, attempt, last);
      delay *= 2;
      continue;
    }
    audio_matches_ = same_audio(audio_, reader_.audio());
    if (!audio_matches_)
      log_warn("{}: the reconnected stream's audio differs from the first connection's; its audio is dropped", name);
    rebase_ = true;
    ++reconnects_;
    log_warn("{}: reconnected after {:.1f} s (attempt {})", name, seconds_since(start), attempt);
    return true;
  }
  lost_ = fmt::format("{}: the connection dropped at {:.1f} s ({}) and {} reconnection attempt(s) within {:.0f} s "
                      "failed (last: {})",
                      name, at, why, policy_.attempts, policy_.window, last);
  return false;
}

bool SourceReader::read_audio(AudioPacket& packet) {
  while (reader_.is_open() && reader_.read_audio(packet)) {
    if (!audio_ || !audio_matches_) continue;
    if (offset_ != 0) {
      AVPacket* p = packet.av();
      const int64_t shift = std::llround(offset_ / av_q2d(p->time_base));
      if (p->pts != AV_NOPTS_VALUE) p->pts += shift;
      if (p->dts != AV_NOPTS_VALUE) p->dts += shift;
    }
    return true;
  }
  return false;
}

}  // namespace sanastream::video
