#include "video/audio_decoder.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>
}

#include "core/error.h"
#include "video/ffmpeg_log.h"

namespace sanastream::video {

struct AudioDecoder::Impl {
  std::string who;  // "OUT: mp3 audio", for messages
  AVCodecContext* dec = nullptr;
  AVFrame* frame = nullptr;
  SwrContext* swr = nullptr;
  int swr_format = -1, swr_rate = 0;
  AVChannelLayout swr_layout{};
  double next_time = 0;  // where the last frame ended, seconds
  FfmpegErrors errors;

  ~Impl() {
    swr_free(&swr);
    av_channel_layout_uninit(&swr_layout);
    av_frame_free(&frame);
    avcodec_free_context(&dec);
  }

  // Converts the decoded frame to interleaved float at its own rate and layout.
  void convert(AudioFrame& out) {
    const bool same = swr != nullptr && frame->format == swr_format && frame->sample_rate == swr_rate &&
                      av_channel_layout_compare(&frame->ch_layout, &swr_layout) == 0;
    if (!same) {
      swr_free(&swr);
      int ret = swr_alloc_set_opts2(&swr, &frame->ch_layout, AV_SAMPLE_FMT_FLT, frame->sample_rate, &frame->ch_layout,
                                    static_cast<AVSampleFormat>(frame->format), frame->sample_rate, 0, nullptr);
      if (ret >= 0) ret = swr_init(swr);
      SS_CHECK(ret >= 0, "{}: expected samples FFmpeg can convert to float, got {} ({})", who,
               av_get_sample_fmt_name(static_cast<AVSampleFormat>(frame->format)), av_error_text(ret));
      swr_format = frame->format;
      swr_rate = frame->sample_rate;
      av_channel_layout_uninit(&swr_layout);
      av_channel_layout_copy(&swr_layout, &frame->ch_layout);
    }
    out.sample_rate = frame->sample_rate;
    out.channels = frame->ch_layout.nb_channels;
    out.samples.resize(static_cast<size_t>(frame->nb_samples) * out.channels);
    uint8_t* dst[1] = {reinterpret_cast<uint8_t*>(out.samples.data())};
    const int n = swr_convert(swr, dst, frame->nb_samples, const_cast<const uint8_t**>(frame->extended_data),
                              frame->nb_samples);
    SS_CHECK(n == frame->nb_samples, "{}: expected {} converted samples, got {}", who, frame->nb_samples, n);
    const int64_t ts = frame->best_effort_timestamp;
    out.time = ts != AV_NOPTS_VALUE ? ts * av_q2d(dec->pkt_timebase) : next_time;
    next_time = out.time + static_cast<double>(frame->nb_samples) / frame->sample_rate;
  }

  void receive(std::vector<AudioFrame>& out) {
    for (;;) {
      const int ret = avcodec_receive_frame(dec, frame);
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      SS_CHECK(ret >= 0, "{}: expected decodable audio, got a decoder error near {:.3f} s ({})", who,
               next_time, errors.any() ? errors.last() : av_error_text(ret));
      out.emplace_back();
      convert(out.back());
      av_frame_unref(frame);
    }
  }
};

AudioDecoder::AudioDecoder(const AudioInfo& audio, const std::string& name) : impl_(std::make_unique<Impl>()) {
  route_ffmpeg_log();
  Impl& m = *impl_;
  m.who = fmt::format("{}: {} audio", name, audio.codec);
  SS_CHECK(audio.parameters != nullptr, "{}: expected codec parameters from a reader, got none", m.who);
  const AVCodec* codec = avcodec_find_decoder(audio.parameters->codec_id);
  SS_CHECK(codec != nullptr, "{}: expected an audio codec FFmpeg can decode, got '{}'", name, audio.codec);
  m.dec = avcodec_alloc_context3(codec);
  m.frame = av_frame_alloc();
  SS_CHECK(m.dec != nullptr && m.frame != nullptr, "{}: expected memory for a decoder, got none", m.who);
  m.dec->opaque = &m.errors;
  int ret = avcodec_parameters_to_context(m.dec, audio.parameters.get());
  SS_CHECK(ret >= 0, "{}: cannot configure the decoder ({})", m.who, av_error_text(ret));
  m.dec->pkt_timebase = {audio.time_base.num, audio.time_base.den};
  ret = avcodec_open2(m.dec, codec, nullptr);
  SS_CHECK(ret >= 0, "{}: expected an audio codec FFmpeg can decode, got {} failing to open ({})", name, codec->name,
           m.errors.any() ? m.errors.last() : av_error_text(ret));
  m.next_time = audio.start_time;
}

AudioDecoder::~AudioDecoder() = default;

void AudioDecoder::decode(const AudioPacket& packet, std::vector<AudioFrame>& out) {
  Impl& m = *impl_;
  SS_CHECK(packet.av() != nullptr, "{}: expected a packet, got an empty one", m.who);
  const int ret = avcodec_send_packet(m.dec, packet.av());
  SS_CHECK(ret >= 0, "{}: expected decodable audio, got corrupt data at {:.3f} s ({})", m.who, packet.time(),
           m.errors.any() ? m.errors.last() : av_error_text(ret));
  m.receive(out);
}

void AudioDecoder::flush(std::vector<AudioFrame>& out) {
  Impl& m = *impl_;
  const int ret = avcodec_send_packet(m.dec, nullptr);
  if (ret == AVERROR_EOF) return;  // flushed before
  SS_CHECK(ret >= 0, "{}: cannot flush the decoder ({})", m.who, av_error_text(ret));
  m.receive(out);
}

}  // namespace sanastream::video
