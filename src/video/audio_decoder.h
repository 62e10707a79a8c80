// Decoded audio for re-encoding: turns an input's audio packets (video_reader.h, in demux order)
// into float samples with their presentation times. FFmpeg-free header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "video/audio_stream.h"

namespace sanastream::video {

struct AudioFrame {
  int sample_rate = 0;         // Hz
  int channels = 0;
  double time = 0;             // presentation time of the first sample, seconds
  std::vector<float> samples;  // [count, channels] interleaved, nominally in [-1, 1]
  int64_t count() const { return channels > 0 ? static_cast<int64_t>(samples.size()) / channels : 0; }
};

class AudioDecoder {
 public:
  // Opens the decoder for audio's codec; throws one line when FFmpeg has none for it. name: the
  // file the messages name (the output the audio is decoded for).
  AudioDecoder(const AudioInfo& audio, const std::string& name);
  ~AudioDecoder();
  AudioDecoder(const AudioDecoder&) = delete;
  AudioDecoder& operator=(const AudioDecoder&) = delete;

  // Decodes one packet of the stream and appends the frames it completes to out. A frame without
  // a timestamp follows the previous one.
  void decode(const AudioPacket& packet, std::vector<AudioFrame>& out);
  // At the end of the stream: appends the frames the decoder still holds.
  void flush(std::vector<AudioFrame>& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sanastream::video
