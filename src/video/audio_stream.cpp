#include "video/audio_stream.h"

#include <utility>

extern "C" {
#include <libavcodec/avcodec.h>
}

#include <fmt/format.h>

#include "core/error.h"

namespace sanastream::video {

std::string AudioInfo::summary() const {
  std::string s = fmt::format("{} {} Hz {}", codec, sample_rate, channel_layout);
  if (duration > 0) s += fmt::format(", {:.3f} s", duration);
  return s;
}

AudioPacket::AudioPacket() : packet_(av_packet_alloc()) {
  SS_CHECK(packet_ != nullptr, "expected memory for an audio packet, got none");
}

AudioPacket::~AudioPacket() { av_packet_free(&packet_); }

AudioPacket::AudioPacket(AudioPacket&& other) noexcept : packet_(std::exchange(other.packet_, nullptr)) {}

AudioPacket& AudioPacket::operator=(AudioPacket&& other) noexcept {
  std::swap(packet_, other.packet_);
  return *this;
}

double AudioPacket::time() const { return packet_ ? packet_->pts * av_q2d(packet_->time_base) : 0.0; }

double AudioPacket::duration() const { return packet_ ? packet_->duration * av_q2d(packet_->time_base) : 0.0; }

int AudioPacket::size() const { return packet_ ? packet_->size : 0; }

const uint8_t* AudioPacket::data() const { return packet_ ? packet_->data : nullptr; }

}  // namespace sanastream::video
