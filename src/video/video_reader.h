// Video decoding through FFmpeg's libraries (libavformat, libavcodec, libswscale); no torch here.
// A VideoReader opens a file, a URL or "-" (stdin: any format FFmpeg detects there, y4m and nut
// included), describes its video stream and hands out frames in presentation order as packed
// RGB24 with their presentation times in seconds. On request it also keeps the input's audio: the
// compressed packets met while demuxing, in demux order, for a writer to copy or decode (see
// audio_decoder.h). Every failure (missing, unreadable, non-video, truncated or corrupt files,
// codecs FFmpeg cannot decode, URLs that do not answer within ReaderOptions::timeout) throws
// sanastream::Error with one line naming the input; FFmpeg's own log lines never reach stderr
// (they go to the debug log, and the errors among them into the thrown message). Decoder errors
// before the first frame are not failures: they are those of a stream joined between keyframes
// (a live stream, a cut transport stream), unless no frame follows; in a live source (below) damaged
// data is lost packets at any time: a warning, and decoding goes on. A SIGINT (core/interrupt.h)
// stops a blocked read and throws Interrupted.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "video/audio_stream.h"
#include "video/rational.h"

namespace sanastream::video {

struct VideoInfo {
  std::string path;          // as given; "-" = stdin
  std::string container;     // demuxer name, e.g. "matroska,webm"
  std::string codec;         // decoder name, e.g. "ffv1", "h264"
  std::string pixel_format;  // the decoder's output format, e.g. "yuv420p"
  int stream_index = -1;     // the stream being read
  int width = 0;             // every frame read has this size
  int height = 0;
  Rational frame_rate;       // average frame rate, else the stream's base rate; 0/1 when unknown
  Rational time_base;        // unit of the stream's timestamps
  double start_time = 0;     // seconds (the first presentation time the container announces)
  double duration = 0;       // seconds; 0 when the container does not say
  int64_t frame_count = 0;   // frames the container announces; 0 when it does not say
  double fps() const { return frame_rate.value(); }
  // "1280×704 h264 (yuv420p), 30 fps, 5.000 s, mov,mp4,m4a,3gp,3g2,mj2"
  std::string summary() const;
};

struct Frame {
  int width = 0;
  int height = 0;
  int64_t index = 0;          // 0-based position in presentation order
  double time = 0;            // presentation time in seconds (timestamp × time base)
  std::vector<uint8_t> rgb;   // [height, width, 3] RGB24, rows packed (3·width bytes each)
};

struct ReaderOptions {
  int stream = -1;       // index of the video stream to read; -1 = FFmpeg's best video stream
  int threads = 0;       // decoder threads; 0 = FFmpeg chooses
  bool audio = false;    // keep the packets of FFmpeg's best audio stream (read_audio() drains them)
  double timeout = 5;    // seconds a network URL may take to connect or stall a read; 0 = no limit
  std::string format;    // FFmpeg input format ("v4l2", "flv", …); "" = probed from the data
  bool listen = false;   // be the server: wait for a sender to connect (rtmp, srt, tcp, http)
  double listen_timeout = 0;  // seconds to wait for the sender; 0 = as long as it takes
  // FFmpeg demuxer/protocol options (KEY=VALUE: "video_size=1280x720", "framerate=30", …); an option
  // neither the format nor the protocol knows is an error.
  std::vector<std::pair<std::string, std::string>> options;
};

// Whether path is a network URL ("rtmp://…", "http://…"; not "file:" or "pipe:").
bool is_network_url(const std::string& path);
// Whether an input is a live source, whose end is a dropped connection rather than the end of the
// video: rtmp(s), srt, udp, rtp and tcp URLs, and capture devices (format v4l2).
bool is_live_source(const std::string& path, const std::string& format);

class VideoReader {
 public:
  VideoReader();
  ~VideoReader();
  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;

  // Opens path ("-" = stdin) and its decoder; a reader already open is closed first.
  void open(const std::string& path, const ReaderOptions& options = {});
  bool is_open() const { return impl_ != nullptr; }
  const VideoInfo& info() const;
  // The audio stream kept (ReaderOptions::audio); empty when not asked for or the input has none.
  const std::optional<AudioInfo>& audio() const;
  // Decodes the next frame in presentation order into frame (its buffer is reused). Returns false
  // at the end of the stream. Frames whose size differs from info() are scaled to it. A frame
  // without a timestamp gets the previous frame's time plus one frame interval. Audio packets
  // demuxed on the way are queued for read_audio(); at the end of the stream all of them are.
  bool read(Frame& frame);
  // Moves the oldest queued audio packet (demux order) into packet. Returns false when none is
  // queued: before read() has returned false that means none has been demuxed since the last call
  // (call it after each frame to keep the queue short); after, that the audio is over.
  bool read_audio(AudioPacket& packet);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sanastream::video
