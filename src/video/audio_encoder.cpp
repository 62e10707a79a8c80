#include "video/audio_encoder.h"

#include <cmath>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>
}

#include "core/error.h"

namespace sanastream::video {

namespace {

// The input's rate when the encoder takes it, else the smallest higher rate it takes, else its
// highest.
int choose_rate(const AVCodec* codec, int rate) {
  if (codec->supported_samplerates == nullptr) return rate;
  int higher = 0, highest = 0;
  for (const int* r = codec->supported_samplerates; *r != 0; ++r) {
    if (*r == rate) return rate;
    if (*r > rate && (higher == 0 || *r < higher)) higher = *r;
    highest = std::max(highest, *r);
  }
  return higher != 0 ? higher : highest;
}

// Float (planar or packed) when the encoder takes it, else its first format.
AVSampleFormat choose_format(const AVCodec* codec) {
  for (const AVSampleFormat* f = codec->sample_fmts; f && *f != AV_SAMPLE_FMT_NONE; ++f)
    if (*f == AV_SAMPLE_FMT_FLTP || *f == AV_SAMPLE_FMT_FLT) return *f;
  return codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
}

constexpr int64_t kBitsPerChannel = 64000;  // AAC LC and Opus are transparent or close at this rate

}  // namespace

struct AudioEncoder::Impl {
  std::string name;  // "OUT: aac encoder", for messages
  AVCodecContext* enc = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  AVAudioFifo* fifo = nullptr;
  SwrContext* swr = nullptr;
  int swr_channels = 0, swr_rate = 0;
  FfmpegErrors* errors = nullptr;
  bool started = false;
  int64_t next_pts = 0;  // of the next sample sent to the encoder, in 1/sample rate
  int frame_size = 0;

  ~Impl() {
    swr_free(&swr);
    av_audio_fifo_free(fifo);
    av_packet_free(&packet);
    av_frame_free(&frame);
    avcodec_free_context(&enc);
  }

  std::string reason(int ret) const { return errors->any() ? errors->last() : av_error_text(ret); }

  void drain(const PacketSink& sink) {
    for (;;) {
      const int ret = avcodec_receive_packet(enc, packet);
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      SS_CHECK(ret >= 0, "{}: expected packets, got {}", name, reason(ret));
      sink(packet);
      av_packet_unref(packet);
    }
  }

  // Sends n samples from the FIFO as one frame.
  void send(int n, const PacketSink& sink) {
    av_frame_unref(frame);
    frame->format = enc->sample_fmt;
    frame->sample_rate = enc->sample_rate;
    frame->nb_samples = n;
    av_channel_layout_copy(&frame->ch_layout, &enc->ch_layout);
    SS_CHECK(av_frame_get_buffer(frame, 0) >= 0, "{}: expected memory for a frame, got none", name);
    SS_CHECK(av_audio_fifo_read(fifo, reinterpret_cast<void**>(frame->data), n) == n,
             "{}: expected {} buffered samples, got fewer", name, n);
    frame->pts = next_pts;
    next_pts += n;
    const int ret = avcodec_send_frame(enc, frame);
    SS_CHECK(ret >= 0, "{}: expected to take {} samples, got {}", name, n, reason(ret));
    drain(sink);
  }

  // Resamples count frames of interleaved float (nullptr: what swr still holds) into the FIFO.
  void push(const float* samples, int count) {
    const int room = swr_get_out_samples(swr, count);
    SS_CHECK(room >= 0, "{}: cannot size the resampler's output", name);
    if (room == 0) return;
    SS_CHECK(av_audio_fifo_realloc(fifo, av_audio_fifo_size(fifo) + room) >= 0, "{}: expected memory, got none",
             name);
    std::vector<uint8_t*> planes(enc->ch_layout.nb_channels);
    const int bytes = av_get_bytes_per_sample(enc->sample_fmt);
    std::vector<uint8_t> buffer(static_cast<size_t>(room) * bytes * enc->ch_layout.nb_channels);
    const bool planar = av_sample_fmt_is_planar(enc->sample_fmt);
    for (size_t c = 0; c < planes.size(); ++c)
      planes[c] = buffer.data() + (planar ? c * static_cast<size_t>(room) * bytes : 0);
    const uint8_t* in[1] = {reinterpret_cast<const uint8_t*>(samples)};
    const int n = swr_convert(swr, planes.data(), room, samples ? in : nullptr, count);
    SS_CHECK(n >= 0, "{}: cannot resample ({})", name, av_error_text(n));
    SS_CHECK(av_audio_fifo_write(fifo, reinterpret_cast<void**>(planes.data()), n) == n,
             "{}: expected to buffer {} samples, got fewer", name, n);
  }
};

AudioEncoder::AudioEncoder(const std::string& name, const std::string& encoder, int channels, int sample_rate,
                           bool global_header, FfmpegErrors* errors)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.name = fmt::format("{}: {} encoder", name, encoder);
  m.errors = errors;
  const AVCodec* codec = avcodec_find_encoder_by_name(encoder.c_str());
  SS_CHECK(codec != nullptr, "{}: expected FFmpeg's {} encoder, got a build without it", name, encoder);
  SS_CHECK(channels > 0 && sample_rate > 0, "{}: expected channels and a sample rate, got {} at {} Hz", m.name,
           channels, sample_rate);
  m.enc = avcodec_alloc_context3(codec);
  m.frame = av_frame_alloc();
  m.packet = av_packet_alloc();
  SS_CHECK(m.enc != nullptr && m.frame != nullptr && m.packet != nullptr, "{}: expected memory, got none", m.name);
  m.enc->opaque = errors;
  av_channel_layout_default(&m.enc->ch_layout, channels);
  m.enc->sample_rate = choose_rate(codec, sample_rate);
  m.enc->sample_fmt = choose_format(codec);
  m.enc->time_base = {1, m.enc->sample_rate};
  m.enc->bit_rate = kBitsPerChannel * channels;
  if (global_header) m.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  int ret = avcodec_open2(m.enc, codec, nullptr);
  SS_CHECK(ret >= 0, "{}: expected it to open for {} channels at {} Hz, got {}", m.name, channels, m.enc->sample_rate,
           m.reason(ret));
  m.frame_size = (codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE) || m.enc->frame_size <= 0
                     ? 1024
                     : m.enc->frame_size;
  m.fifo = av_audio_fifo_alloc(m.enc->sample_fmt, channels, m.frame_size);
  SS_CHECK(m.fifo != nullptr, "{}: expected memory, got none", m.name);
}

AudioEncoder::~AudioEncoder() = default;

const AVCodecContext* AudioEncoder::context() const { return impl_->enc; }

void AudioEncoder::encode(const AudioFrame& in, const PacketSink& sink) {
  Impl& m = *impl_;
  SS_CHECK(in.channels > 0 && in.sample_rate > 0 && in.samples.size() % in.channels == 0,
           "{}: expected interleaved samples with channels and a rate, got {} values for {} channels at {} Hz",
           m.name, in.samples.size(), in.channels, in.sample_rate);
  if (m.swr == nullptr || in.channels != m.swr_channels || in.sample_rate != m.swr_rate) {
    if (m.swr != nullptr) m.push(nullptr, 0);  // what the old resampler holds, before the format changes
    swr_free(&m.swr);
    AVChannelLayout layout{};
    av_channel_layout_default(&layout, in.channels);
    int ret = swr_alloc_set_opts2(&m.swr, &m.enc->ch_layout, m.enc->sample_fmt, m.enc->sample_rate, &layout,
                                  AV_SAMPLE_FMT_FLT, in.sample_rate, 0, nullptr);
    av_channel_layout_uninit(&layout);
    if (ret >= 0) ret = swr_init(m.swr);
    SS_CHECK(ret >= 0, "{}: expected to resample {} channels at {} Hz, got {}", m.name, in.channels,
             in.sample_rate, av_error_text(ret));
    m.swr_channels = in.channels;
    m.swr_rate = in.sample_rate;
  }
  if (!m.started) {
    m.next_pts = std::llround(in.time * m.enc->sample_rate);
    m.started = true;
  }
  m.push(in.samples.data(), static_cast<int>(in.count()));
  while (av_audio_fifo_size(m.fifo) >= m.frame_size) m.send(m.frame_size, sink);
}

void AudioEncoder::flush(const PacketSink& sink) {
  Impl& m = *impl_;
  if (m.swr != nullptr) m.push(nullptr, 0);
  // The last frame may be short: AAC and Opus take that (AV_CODEC_CAP_SMALL_LAST_FRAME).
  while (av_audio_fifo_size(m.fifo) > 0) m.send(std::min(av_audio_fifo_size(m.fifo), m.frame_size), sink);
  const int ret = avcodec_send_frame(m.enc, nullptr);
  if (ret == AVERROR_EOF) return;  // flushed before
  SS_CHECK(ret >= 0, "{}: cannot flush ({})", m.name, m.reason(ret));
  m.drain(sink);
}

}  // namespace sanastream::video
