// An input's audio stream as the reader hands it out: its description (with FFmpeg's codec
// parameters, which a writer needs to stream-copy or decode it) and its compressed packets.
// No FFmpeg headers here: the FFmpeg types are only named.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "video/rational.h"

struct AVCodecParameters;
struct AVPacket;

namespace sanastream::video {

struct AudioInfo {
  int stream_index = -1;       // in the input
  std::string codec;           // codec name, e.g. "aac", "mp3", "opus"
  int sample_rate = 0;         // Hz
  int channels = 0;
  std::string channel_layout;  // e.g. "mono", "stereo", "5.1"
  Rational time_base;          // unit of the packets' timestamps
  double start_time = 0;       // seconds (the first presentation time the container announces)
  double duration = 0;         // seconds; 0 when the container does not say
  int64_t bit_rate = 0;        // bits per second; 0 when unknown
  // The demuxer's codec parameters (extradata included), shared and never modified.
  std::shared_ptr<const AVCodecParameters> parameters;
  // "aac 48000 Hz mono, 1.173 s"
  std::string summary() const;
};

// One compressed audio packet, reference-counted by FFmpeg (moving is cheap; a moved-from packet
// is empty and may be assigned to again). Its timestamps are in the stream's time base; the reader
// gives every packet one (a packet without a presentation time gets its decoding time, or the
// previous packet's end).
class AudioPacket {
 public:
  AudioPacket();
  ~AudioPacket();
  AudioPacket(AudioPacket&& other) noexcept;
  AudioPacket& operator=(AudioPacket&& other) noexcept;
  AudioPacket(const AudioPacket&) = delete;
  AudioPacket& operator=(const AudioPacket&) = delete;

  double time() const;      // presentation time in seconds
  double duration() const;  // seconds; 0 when unknown
  int size() const;         // bytes
  const uint8_t* data() const;
  // The FFmpeg packet, for the decoder and the writer (its time_base field is set); null when empty.
  AVPacket* av() const { return packet_; }

 private:
  AVPacket* packet_ = nullptr;
};

}  // namespace sanastream::video
