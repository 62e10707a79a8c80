#include "video/media_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include "core/error.h"
#include "core/log.h"
#include "video/audio_decoder.h"
#include "video/audio_encoder.h"
#include "video/ffmpeg_log.h"
#include "video/video_encoder.h"

namespace sanastream::video {

struct MediaWriter::Impl {
  OutputPlan plan;
  std::string name;       // for messages
  std::string part_path;  // OUT.part; empty for stdout
  FfmpegErrors errors;    // FFmpeg error lines of the muxer and the encoders
  AVFormatContext* oc = nullptr;
  AVStream* video_stream = nullptr;
  AVStream* audio_stream = nullptr;
  std::unique_ptr<VideoEncoder> video;
  std::unique_ptr<AudioDecoder> audio_decoder;  // AudioMode::kEncode
  std::unique_ptr<AudioEncoder> audio_encoder;
  std::vector<AudioFrame> decoded;  // reused
  AVPacket* packet = nullptr;       // reused for copied audio
  bool finished = false;

  ~Impl() { abandon(); }

  std::string reason(int ret) const { return errors.any() ? errors.last() : av_error_text(ret); }

  // Frees everything; an unfinished OUT.part is removed.
  void abandon() {
    audio_encoder.reset();
    audio_decoder.reset();
    video.reset();
    av_packet_free(&packet);
    if (oc != nullptr) {
      if (oc->pb != nullptr) avio_closep(&oc->pb);
      avformat_free_context(oc);
      oc = nullptr;
      if (!finished && !part_path.empty()) std::remove(part_path.c_str());
    }
  }

  // Muxes pkt (timestamps in `from`) into stream st; takes the packet's reference.
  void mux(AVPacket* pkt, AVRational from, AVStream* st) {
    pkt->stream_index = st->index;
    pkt->pos = -1;
    av_packet_rescale_ts(pkt, from, st->time_base);
    const int ret = av_interleaved_write_frame(oc, pkt);
    SS_CHECK(ret >= 0, "{}: expected to write the {} stream, got {}", name,
             st == video_stream ? "video" : "audio", reason(ret));
  }

  int64_t frames = 0;

  PacketSink video_sink() {
    return [this](AVPacket* p) { mux(p, video->context()->time_base, video_stream); };
  }
  PacketSink audio_sink() {
    return [this](AVPacket* p) { mux(p, audio_encoder->context()->time_base, audio_stream); };
  }

  void encode_decoded_audio() {
    for (const AudioFrame& f : decoded) audio_encoder->encode(f, audio_sink());
    decoded.clear();
  }
};

MediaWriter::MediaWriter() = default;
MediaWriter::~MediaWriter() = default;
MediaWriter::MediaWriter(MediaWriter&&) noexcept = default;
MediaWriter& MediaWriter::operator=(MediaWriter&&) noexcept = default;

bool MediaWriter::is_open() const { return impl_ != nullptr && !impl_->finished; }

bool MediaWriter::finished() const { return impl_ != nullptr && impl_->finished; }

const OutputPlan& MediaWriter::plan() const {
  SS_CHECK(impl_ != nullptr, "expected an opened MediaWriter, got a closed one");
  return impl_->plan;
}

int64_t MediaWriter::frames_written() const { return impl_ ? impl_->frames : 0; }

void MediaWriter::open(const std::string& path, const WriterOptions& options) {
  route_ffmpeg_log();
  impl_.reset();
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.plan = plan_output(path, options);
  m.name = display_name(path, true);
  for (const std::string& w : m.plan.warnings) log_warn("{}", w);

  const AVOutputFormat* ofmt = av_guess_format(m.plan.muxer.c_str(), nullptr, nullptr);
  SS_CHECK(ofmt != nullptr, "{}: expected FFmpeg's {} muxer, got a build without it", m.name, m.plan.muxer);
  int ret = avformat_alloc_output_context2(&m.oc, ofmt, nullptr, nullptr);
  SS_CHECK(ret >= 0, "{}: expected memory for the {} muxer, got none", m.name, m.plan.muxer);
  m.oc->opaque = &m.errors;
  const bool global_header = (ofmt->flags & AVFMT_GLOBALHEADER) != 0;

  VideoEncoderSettings vs;
  vs.name = m.name;
  vs.encoder = m.plan.video_encoder;
  vs.pixel_format = m.plan.pixel_format;
  vs.width = options.width;
  vs.height = options.height;
  vs.frame_rate = options.frame_rate;
  vs.threads = options.threads;
  vs.global_header = global_header;
  vs.live = m.plan.network;
  m.video = std::make_unique<VideoEncoder>(vs, &m.errors);
  m.video_stream = avformat_new_stream(m.oc, nullptr);
  SS_CHECK(m.video_stream != nullptr, "{}: expected memory for a stream, got none", m.name);
  const AVCodecContext* venc = m.video->context();
  ret = avcodec_parameters_from_context(m.video_stream->codecpar, venc);
  SS_CHECK(ret >= 0, "{}: cannot describe the video stream ({})", m.name, av_error_text(ret));
  m.video_stream->time_base = venc->time_base;
  m.video_stream->avg_frame_rate = venc->framerate;
  m.video_stream->r_frame_rate = venc->framerate;
  m.video_stream->sample_aspect_ratio = venc->sample_aspect_ratio;

  if (m.plan.audio == AudioMode::kCopy || m.plan.audio == AudioMode::kEncode) {
    const AudioInfo& a = *options.audio;
    m.audio_stream = avformat_new_stream(m.oc, nullptr);
    SS_CHECK(m.audio_stream != nullptr, "{}: expected memory for a stream, got none", m.name);
    if (m.plan.audio == AudioMode::kCopy) {
      ret = avcodec_parameters_copy(m.audio_stream->codecpar, a.parameters.get());
      m.audio_stream->codecpar->codec_tag = 0;  // the output container's own tag
      m.audio_stream->time_base = {a.time_base.num, a.time_base.den};
      m.packet = av_packet_alloc();
      SS_CHECK(m.packet != nullptr, "{}: expected memory for a packet, got none", m.name);
    } else {
      m.audio_decoder = std::make_unique<AudioDecoder>(a, m.name);
      m.audio_encoder = std::make_unique<AudioEncoder>(m.name, m.plan.audio_encoder, a.channels, a.sample_rate,
                                                       global_header, &m.errors);
      ret = avcodec_parameters_from_context(m.audio_stream->codecpar, m.audio_encoder->context());
      m.audio_stream->time_base = m.audio_encoder->context()->time_base;
    }
    SS_CHECK(ret >= 0, "{}: cannot describe the audio stream ({})", m.name, av_error_text(ret));
  }

  const std::string url = m.plan.to_stdout ? "pipe:1" : m.plan.network ? path : path + ".part";
  if (!m.plan.to_stdout && !m.plan.network) m.part_path = url;
  AVDictionary* io_options = nullptr;
  if (m.plan.network) set_network_options(path, true, options.timeout, options.listen, 0, &io_options);
  SS_CHECK(m.plan.network || !options.listen, "{}: expected a network URL to listen on, got a file", m.name);
  ret = avio_open2(&m.oc->pb, url.c_str(), AVIO_FLAG_WRITE, nullptr, &io_options);
  av_dict_free(&io_options);
  SS_CHECK(ret >= 0, "{}: expected a writable output, got {} {}", m.name, m.reason(ret),
           m.plan.to_stdout ? "writing stdout" : m.plan.network ? "connecting" : "creating " + url);
  AVDictionary* mux_options = nullptr;
  if (m.plan.format == "flv") av_dict_set(&mux_options, "flvflags", "no_duration_filesize", 0);  // no seek back
  ret = avformat_write_header(m.oc, &mux_options);
  av_dict_free(&mux_options);
  SS_CHECK(ret >= 0, "{}: expected the {} header to be written, got {}", m.name, m.plan.format, m.reason(ret));
  log_debug("{}", m.plan.summary());
  impl_ = std::move(impl);
}

void MediaWriter::write(const Frame& frame) {
  SS_CHECK(is_open(), "expected an open MediaWriter, got {}", impl_ ? "a finished one" : "a closed one");
  impl_->video->encode(frame, impl_->video_sink());
  ++impl_->frames;
}

void MediaWriter::write_audio(const AudioPacket& packet) {
  SS_CHECK(is_open(), "expected an open MediaWriter, got {}", impl_ ? "a finished one" : "a closed one");
  Impl& m = *impl_;
  SS_CHECK(m.plan.audio != AudioMode::kNone, "{}: expected no audio packets (opened without audio), got one", m.name);
  SS_CHECK(packet.av() != nullptr, "{}: expected an audio packet, got an empty one", m.name);
  if (m.plan.audio == AudioMode::kDropped) return;
  if (m.plan.audio == AudioMode::kCopy) {
    const int ret = av_packet_ref(m.packet, packet.av());
    SS_CHECK(ret >= 0, "{}: expected memory for a packet, got none", m.name);
    m.mux(m.packet, packet.av()->time_base, m.audio_stream);
    return;
  }
  m.audio_decoder->decode(packet, m.decoded);
  m.encode_decoded_audio();
}

void MediaWriter::finish() {
  SS_CHECK(impl_ != nullptr, "expected an open MediaWriter, got a closed one");
  Impl& m = *impl_;
  if (m.finished) return;
  m.video->flush(m.video_sink());
  if (m.audio_encoder) {
    m.audio_decoder->flush(m.decoded);
    m.encode_decoded_audio();
    m.audio_encoder->flush(m.audio_sink());
  }
  int ret = av_write_trailer(m.oc);
  SS_CHECK(ret >= 0, "{}: expected the {} trailer to be written, got {}", m.name, m.plan.format, m.reason(ret));
  ret = avio_closep(&m.oc->pb);
  SS_CHECK(ret >= 0, "{}: expected the output to close, got {}", m.name, av_error_text(ret));
  if (!m.part_path.empty() && std::rename(m.part_path.c_str(), m.plan.path.c_str()) != 0)
    SS_FAIL("{}: expected {} to be renamed to it, got {}", m.name, m.part_path, std::strerror(errno));
  m.finished = true;
  log_debug("{}: {} frames written", m.name, m.frames);
  m.abandon();  // frees the encoders and the muxer; the file is complete
}

}  // namespace sanastream::video
