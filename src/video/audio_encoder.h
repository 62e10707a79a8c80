// The writer's audio encoder (internal to src/video): decoded audio (audio_decoder.h) in, AAC or
// Opus packets out. Samples are resampled and remixed to what the encoder takes and cut into its
// frame size; timestamps count samples from the first frame's time, so the audio keeps its place
// on the source clock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "video/audio_decoder.h"
#include "video/ffmpeg_log.h"
#include "video/video_encoder.h"

struct AVCodecContext;

namespace sanastream::video {

class AudioEncoder {
 public:
  // name: the output, as messages name it; encoder: FFmpeg's encoder name (OutputPlan::audio_encoder);
  // channels and sample_rate: the input's (the rate is kept when the encoder takes it, else the
  // nearest higher one it takes).
  AudioEncoder(const std::string& name, const std::string& encoder, int channels, int sample_rate, bool global_header,
               FfmpegErrors* errors);
  ~AudioEncoder();
  AudioEncoder(const AudioEncoder&) = delete;
  AudioEncoder& operator=(const AudioEncoder&) = delete;

  const AVCodecContext* context() const;
  // Encodes the samples of frame; packets come out in the encoder's time base (1/sample rate).
  void encode(const AudioFrame& frame, const PacketSink& sink);
  // Encodes what is buffered and drains the encoder (end of stream).
  void flush(const PacketSink& sink);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sanastream::video
