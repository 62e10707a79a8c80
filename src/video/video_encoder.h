// The writer's video encoder (internal to src/video): RGB24 frames in, compressed packets out.
// RGB is converted with the BT.601 matrix to limited-range YUV (and tagged so), or kept as RGB for
// FFV1; frame times in seconds become timestamps on a grid that divides the frame interval.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "video/ffmpeg_log.h"
#include "video/rational.h"
#include "video/video_reader.h"

struct AVCodecContext;
struct AVPacket;

namespace sanastream::video {

struct VideoEncoderSettings {
  std::string name;          // the output, as messages name it
  std::string encoder;       // FFmpeg's encoder name (OutputPlan::video_encoder)
  std::string pixel_format;  // OutputPlan::pixel_format
  int width = 0;
  int height = 0;
  Rational frame_rate;
  int threads = 0;
  bool global_header = false;  // the container wants codec headers out of band (mp4, mkv, …)
  bool live = false;           // a network stream: no encoder delay, a keyframe every 2 s
};

// Receives each packet, timestamps in the encoder's time base; it may take the packet's reference.
using PacketSink = std::function<void(AVPacket*)>;

class VideoEncoder {
 public:
  // errors: where FFmpeg's error lines for this encoder are recorded (outlives the encoder).
  VideoEncoder(const VideoEncoderSettings& settings, FfmpegErrors* errors);
  ~VideoEncoder();
  VideoEncoder(const VideoEncoder&) = delete;
  VideoEncoder& operator=(const VideoEncoder&) = delete;

  const AVCodecContext* context() const;
  // Encodes frame (the settings' size) at frame.time seconds. A time that does not advance past
  // the previous frame's timestamp is moved to the next tick of the grid.
  void encode(const Frame& frame, const PacketSink& sink);
  // Drains the encoder's delayed packets (end of stream).
  void flush(const PacketSink& sink);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sanastream::video
