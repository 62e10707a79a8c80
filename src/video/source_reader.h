// A source that survives dropped connections: a VideoReader that, for a live source (an rtmp, srt,
// udp, rtp or tcp URL, or a capture device), treats the end of the stream or a read error after the
// first frame as a dropped connection and opens the source again with back-off — up to
// ReconnectPolicy::attempts tries within ReconnectPolicy::window seconds — while the caller keeps
// its state (the edit session keeps the model's caches). The frames and audio packets of a new
// connection continue the clock of the old one: the first frame after a reconnection comes one
// frame interval after the last one before it, and the audio moves by the same offset.
//
// Files, pipes and http(s) inputs end where they end (FFmpeg's own http options resume a broken
// download). A source that cannot be opened at the start is an error at once; one that drops and
// does not come back ends the stream: read() returns false and lost() says why.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "video/video_reader.h"

namespace sanastream::video {

struct ReconnectPolicy {
  int attempts = 5;     // reconnection attempts after a drop; 0 = a drop ends the stream
  double window = 30;   // seconds all the attempts of one drop may take together
};

class SourceReader {
 public:
  // Opens the source (errors as VideoReader::open()).
  void open(const std::string& path, const ReaderOptions& options, const ReconnectPolicy& policy);
  const VideoInfo& info() const { return info_; }  // of the first connection
  const std::optional<AudioInfo>& audio() const { return audio_; }
  bool live() const { return live_; }

  // The next frame, its time on the first connection's clock. False at the end of the stream, and
  // when a live source dropped and every reconnection failed (lost() is then set).
  bool read(Frame& frame);
  // The next audio packet of the first connection's stream, timestamps moved with the frames'
  // (a later connection whose audio differs in codec, rate or channels has its audio dropped).
  bool read_audio(AudioPacket& packet);

  int reconnects() const { return reconnects_; }
  // Why a live source ended: "" while it has not, or when it ended without a drop (attempts = 0).
  const std::string& lost() const { return lost_; }

 private:
  bool reconnect(const std::string& why);

  std::string path_;
  ReaderOptions options_;
  ReconnectPolicy policy_;
  VideoReader reader_;               // closed once a reconnection failed
  VideoInfo info_;                   // the first connection's
  std::optional<AudioInfo> audio_;
  bool live_ = false;
  bool audio_matches_ = true;       // the current connection's audio is the first one's kind
  bool rebase_ = false;             // the next frame starts a new connection
  int64_t frames_ = 0;
  double last_time_ = 0, interval_ = 0, offset_ = 0;  // seconds; offset: added to this connection's times
  int reconnects_ = 0;
  std::string lost_;
};

}  // namespace sanastream::video
