#include "video/video_reader.h"

#include <algorithm>
#include <array>
#include <deque>
#include <mutex>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavdevice/avdevice.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "video/ffmpeg_log.h"

namespace sanastream::video {

namespace {

// FFmpeg polls this during blocking I/O (a read from a pipe or the network interrupted by SIGINT).
int interrupt_callback(void*) { return interrupt_requested() ? 1 : 0; }

AudioInfo describe_audio(const AVStream* st) {
  const AVCodecParameters* par = st->codecpar;
  AudioInfo a;
  a.stream_index = st->index;
  a.codec = avcodec_get_name(par->codec_id);
  a.sample_rate = par->sample_rate;
  a.channels = par->ch_layout.nb_channels;
  char layout[128] = {0};
  if (av_channel_layout_describe(&par->ch_layout, layout, sizeof layout) > 0) a.channel_layout = layout;
  a.time_base = {st->time_base.num, st->time_base.den};
  if (st->start_time != AV_NOPTS_VALUE) a.start_time = st->start_time * av_q2d(st->time_base);
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0) a.duration = st->duration * av_q2d(st->time_base);
  a.bit_rate = par->bit_rate;
  AVCodecParameters* copy = avcodec_parameters_alloc();
  SS_CHECK(copy != nullptr && avcodec_parameters_copy(copy, par) >= 0, "expected memory for audio parameters, got none");
  a.parameters = std::shared_ptr<const AVCodecParameters>(copy, [](const AVCodecParameters* p) {
    auto* q = const_cast<AVCodecParameters*>(p);
    avcodec_parameters_free(&q);
  });
  return a;
}

int sws_colorspace(AVColorSpace cs) {
  switch (cs) {
    case AVCOL_SPC_BT709: return SWS_CS_ITU709;
    case AVCOL_SPC_FCC: return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
    default: return SWS_CS_ITU601;  // BT.470BG, SMPTE 170M and unspecified
  }
}

bool full_range(const AVFrame* f) {
  switch (static_cast<AVPixelFormat>(f->format)) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P: return true;
    default: return f->color_range == AVCOL_RANGE_JPEG;
  }
}

}  // namespace

bool is_network_url(const std::string& path) {
  const std::string scheme = url_scheme(path);
  return !scheme.empty() && scheme != "file";
}

bool is_live_source(const std::string& path, const std::string& format) {
  static constexpr std::array<const char*, 7> kLive = {"rtmp", "rtmps", "rtmpt", "srt", "udp", "rtp", "tcp"};
  const std::string scheme = url_scheme(path);
  for (const char* s : kLive)
    if (scheme == s) return true;
  return format == "v4l2" || format == "video4linux2";
}

struct VideoReader::Impl {
  VideoInfo info;
  std::optional<AudioInfo> audio;
  std::string name;  // for messages
  AVFormatContext* fmt = nullptr;
  AVCodecContext* dec = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* frame = nullptr;
  SwsContext* sws = nullptr;
  int sws_w = 0, sws_h = 0, sws_fmt = -1, sws_cs = -1, sws_full = -1;
  bool draining = false;
  bool finished = false;
  int64_t next_index = 0;
  double last_time = 0;
  std::deque<AudioPacket> audio_queue;  // demuxed, not yet handed out; demux order
  int64_t audio_next_pts = 0;           // where the last queued packet ends (stream time base)
  FfmpegErrors demux_errors;            // FFmpeg error lines of this reader's demuxer
  FfmpegErrors decode_errors;           // and of its decoder
  std::string startup_error;            // a decoder error tolerated before the first frame
  bool live = false;                    // a live source: damaged data after the first frame is lost packets
  std::string read_error;               // a live source's read error, thrown once the decoder is drained

  ~Impl() {
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
  }

  // FFmpeg's text for a failed call's code, with the last error line it logged for this reader.
  std::string reason(int ret) const {
    const FfmpegErrors& logged = demux_errors.any() ? demux_errors : decode_errors;
    return logged.any() ? fmt::format("{} ({})", av_error_text(ret), logged.last()) : av_error_text(ret);
  }

  // Throws when FFmpeg logged an error for this reader's demuxer, or for its decoder once a frame
  // has come out: the file is truncated or corrupt. Decoder errors before the first frame are those
  // of a stream joined between keyframes (a live stream, a cut transport stream): they are kept
  // aside, and are fatal only when no frame follows.
  void check_logged_errors() {
    FfmpegErrors& logged = demux_errors.any() ? demux_errors : decode_errors;
    if (!logged.any()) return;
    if (live && next_index > 0) {  // packets lost on the way: the decoder recovers at the next keyframe
      log_warn("{}: damaged data near frame {} ({}); going on", name, next_index, logged.last());
      logged.clear();
      return;
    }
    if (&logged == &decode_errors && next_index == 0) {
      startup_error = decode_errors.last();
      log_debug("{}: skipping undecodable data before the first frame ({})", name, startup_error);
      decode_errors.clear();
      return;
    }
    SS_FAIL("{}: expected a complete, decodable video, got a truncated or corrupt one near frame {} ({})", name,
            next_index, logged.last());
  }

  // Moves the packet just demuxed into the audio queue, giving it a timestamp when it has none.
  void queue_audio() {
    const AVRational tb = fmt->streams[audio->stream_index]->time_base;
    if (packet->pts == AV_NOPTS_VALUE) packet->pts = packet->dts != AV_NOPTS_VALUE ? packet->dts : audio_next_pts;
    if (packet->dts == AV_NOPTS_VALUE) packet->dts = packet->pts;
    packet->time_base = tb;
    audio_next_pts = packet->pts + packet->duration;
    AudioPacket queued;
    av_packet_move_ref(queued.av(), packet);
    audio_queue.push_back(std::move(queued));
  }

  void convert(Frame& out) {
    const int fw = frame->width, fh = frame->height, ff = frame->format;
    const int cs = sws_colorspace(frame->colorspace);
    const int full = full_range(frame) ? 1 : 0;
    if (sws == nullptr || fw != sws_w || fh != sws_h || ff != sws_fmt || cs != sws_cs || full != sws_full) {
      sws_freeContext(sws);
      sws = sws_getContext(fw, fh, static_cast<AVPixelFormat>(ff), info.width, info.height, AV_PIX_FMT_RGB24,
                           SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP, nullptr,
                           nullptr, nullptr);
      SS_CHECK(sws != nullptr, "{}: expected a pixel format FFmpeg can convert to RGB, got {} ({}×{})", name,
               av_get_pix_fmt_name(static_cast<AVPixelFormat>(ff)) ? av_get_pix_fmt_name(static_cast<AVPixelFormat>(ff))
                                                                   : "unknown",
               fw, fh);
      sws_setColorspaceDetails(sws, sws_getCoefficients(cs), full, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                               1 << 16, 1 << 16);
      sws_w = fw;
      sws_h = fh;
      sws_fmt = ff;
      sws_cs = cs;
      sws_full = full;
    }
    out.width = info.width;
    out.height = info.height;
    out.rgb.resize(static_cast<size_t>(info.width) * info.height * 3);
    uint8_t* dst[4] = {out.rgb.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {3 * info.width, 0, 0, 0};
    const int rows = sws_scale(sws, frame->data, frame->linesize, 0, fh, dst, dst_stride);
    SS_CHECK(rows == info.height, "{}: expected {} rows from the RGB conversion, got {}", name, info.height, rows);

    const int64_t ts = frame->best_effort_timestamp;
    const double interval = info.fps() > 0 ? 1.0 / info.fps() : 0.0;
    if (ts != AV_NOPTS_VALUE) {
      out.time = ts * av_q2d(fmt->streams[info.stream_index]->time_base);
    } else {
      out.time = next_index == 0 ? info.start_time : last_time + interval;
    }
    last_time = out.time;
    out.index = next_index++;
  }
};

std::string VideoInfo::summary() const {
  std::string s = fmt::format("{}×{} {} ({})", width, height, codec, pixel_format);
  if (fps() > 0) s += fmt::format(", {:.6g} fps", fps());
  if (duration > 0) s += fmt::format(", {:.3f} s", duration);
  if (frame_count > 0) s += fmt::format(", {} frames", frame_count);
  return s + ", " + container;
}

VideoReader::VideoReader() = default;
VideoReader::~VideoReader() = default;
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;

const VideoInfo& VideoReader::info() const {
  SS_CHECK(impl_ != nullptr, "expected an open VideoReader, got a closed one");
  return impl_->info;
}

const std::optional<AudioInfo>& VideoReader::audio() const {
  SS_CHECK(impl_ != nullptr, "expected an open VideoReader, got a closed one");
  return impl_->audio;
}

void VideoReader::open(const std::string& path, const ReaderOptions& options) {
  route_ffmpeg_log();
  impl_.reset();
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.name = display_name(path);
  m.info.path = path;
  m.live = is_live_source(path, options.format);

  m.fmt = avformat_alloc_context();
  SS_CHECK(m.fmt != nullptr, "{}: out of memory opening the file", m.name);
  m.fmt->opaque = &m.demux_errors;
  m.fmt->interrupt_callback = {&interrupt_callback, nullptr};
  const std::string url = path == "-" ? "pipe:0" : path;
  const AVInputFormat* input_format = nullptr;
  if (!options.format.empty()) {
    static std::once_flag devices;
    std::call_once(devices, avdevice_register_all);
    input_format = av_find_input_format(options.format.c_str());
    SS_CHECK(input_format != nullptr, "{}: expected an input format this FFmpeg has (e.g. v4l2, flv, mpegts), got '{}'",
             m.name, options.format);
  }
  AVDictionary* open_options = nullptr;
  const bool network = is_network_url(path);
  if (network) set_network_options(path, false, options.timeout, options.listen, options.listen_timeout, &open_options);
  SS_CHECK(network || !options.listen, "{}: expected a network URL to listen on, got a file", m.name);
  for (const auto& [key, value] : options.options) av_dict_set(&open_options, key.c_str(), value.c_str(), 0);
  int ret = avformat_open_input(&m.fmt, url.c_str(), input_format, &open_options);  // frees fmt on failure
  std::string unknown;
  for (const AVDictionaryEntry* e = nullptr; (e = av_dict_get(open_options, "", e, AV_DICT_IGNORE_SUFFIX));) {
    const bool ours = std::any_of(options.options.begin(), options.options.end(),
                                  [&](const auto& kv) { return kv.first == e->key; });
    if (ours) unknown += fmt::format("{}{}", unknown.empty() ? "" : ", ", e->key);
  }
  av_dict_free(&open_options);
  if (ret < 0 && interrupt_requested()) throw Interrupted();
  const bool silent = network && (ret == AVERROR(EIO) || ret == AVERROR(ETIMEDOUT)) && !m.demux_errors.any();
  SS_CHECK(ret >= 0, "{}: expected a readable video {}, got {}", m.name, network ? "source" : "file",
           ret == AVERROR(ENOENT) ? std::string("no such file")
           : silent ? fmt::format("no stream within {} s ({})", options.timeout, av_error_text(ret))
                    : m.reason(ret));
  SS_CHECK(unknown.empty(), "{}: expected options that the {} input knows, got unknown option(s) {}", m.name,
           m.fmt->iformat->name, unknown);
  // FFmpeg's tty demuxer takes any text file (.txt among others) and renders it as ANSI art.
  SS_CHECK(std::string(m.fmt->iformat->name) != "tty", "{}: expected a video file, got text", m.name);
  ret = avformat_find_stream_info(m.fmt, nullptr);
  if (ret < 0 && interrupt_requested()) throw Interrupted();
  SS_CHECK(ret >= 0, "{}: expected a readable video file, got unreadable stream information ({})", m.name,
           m.reason(ret));
  m.info.container = m.fmt->iformat->name;

  int index = options.stream;
  if (index < 0) {
    index = av_find_best_stream(m.fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (index >= 0 && (m.fmt->streams[index]->disposition & AV_DISPOSITION_ATTACHED_PIC)) index = -1;
    if (index < 0) {
      std::string streams;
      for (unsigned i = 0; i < m.fmt->nb_streams; ++i) {
        const AVCodecParameters* p = m.fmt->streams[i]->codecpar;
        const char* type = av_get_media_type_string(p->codec_type);
        streams += fmt::format("{}{} {}", i ? ", " : "", type ? type : "unknown", avcodec_get_name(p->codec_id));
      }
      SS_FAIL("{}: expected a video stream, got {}", m.name, streams.empty() ? "no streams" : "only " + streams);
    }
  } else {
    SS_CHECK(index < static_cast<int>(m.fmt->nb_streams), "{}: expected a stream index below {}, got {}", m.name,
             m.fmt->nb_streams, index);
    const AVCodecParameters* p = m.fmt->streams[index]->codecpar;
    const char* type = av_get_media_type_string(p->codec_type);
    SS_CHECK(p->codec_type == AVMEDIA_TYPE_VIDEO, "{}: expected stream {} to be video, got {} {}", m.name, index,
             type ? type : "unknown", avcodec_get_name(p->codec_id));
  }
  int audio_index = -1;
  if (options.audio) {
    audio_index = av_find_best_stream(m.fmt, AVMEDIA_TYPE_AUDIO, -1, index, nullptr, 0);
    if (audio_index >= 0) m.audio = describe_audio(m.fmt->streams[audio_index]);
  }
  for (unsigned i = 0; i < m.fmt->nb_streams; ++i) {
    const bool kept = static_cast<int>(i) == index || static_cast<int>(i) == audio_index;
    m.fmt->streams[i]->discard = kept ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
  }
  AVStream* st = m.fmt->streams[index];
  const AVCodecParameters* par = st->codecpar;
  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (codec == nullptr) {
    char tag[AV_FOURCC_MAX_STRING_SIZE] = {0};
    av_fourcc_make_string(tag, par->codec_tag);
    SS_FAIL("{}: expected a video codec FFmpeg can decode, got codec '{}' (tag {})", m.name,
            avcodec_get_name(par->codec_id), tag);
  }
  m.dec = avcodec_alloc_context3(codec);
  SS_CHECK(m.dec != nullptr, "{}: out of memory opening the decoder", m.name);
  m.dec->opaque = &m.decode_errors;
  ret = avcodec_parameters_to_context(m.dec, par);
  SS_CHECK(ret >= 0, "{}: cannot configure the {} decoder ({})", m.name, codec->name, av_error_text(ret));
  m.dec->pkt_timebase = st->time_base;
  m.dec->thread_count = options.threads;
  ret = avcodec_open2(m.dec, codec, nullptr);
  SS_CHECK(ret >= 0, "{}: expected a video codec FFmpeg can decode, got {} failing to open: {}", m.name,
           codec->name, m.reason(ret));
  SS_CHECK(m.dec->width > 0 && m.dec->height > 0, "{}: expected a video stream with a frame size, got {}×{}", m.name,
           m.dec->width, m.dec->height);
  m.check_logged_errors();

  VideoInfo& info = m.info;
  info.stream_index = index;
  info.codec = codec->name;
  const char* pix = av_get_pix_fmt_name(m.dec->pix_fmt);
  info.pixel_format = pix ? pix : "unknown";
  info.width = m.dec->width;
  info.height = m.dec->height;
  AVRational rate = st->avg_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = st->r_frame_rate;
  if (rate.num > 0 && rate.den > 0) info.frame_rate = {rate.num, rate.den};
  info.time_base = {st->time_base.num, st->time_base.den};
  if (st->start_time != AV_NOPTS_VALUE) info.start_time = st->start_time * av_q2d(st->time_base);
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
    info.duration = st->duration * av_q2d(st->time_base);
  else if (m.fmt->duration != AV_NOPTS_VALUE && m.fmt->duration > 0)
    info.duration = static_cast<double>(m.fmt->duration) / AV_TIME_BASE;
  info.frame_count = st->nb_frames > 0 ? st->nb_frames : 0;

  m.packet = av_packet_alloc();
  m.frame = av_frame_alloc();
  SS_CHECK(m.packet != nullptr && m.frame != nullptr, "{}: out of memory", m.name);
  if (m.audio) {
    const AVStream* ast = m.fmt->streams[m.audio->stream_index];
    m.audio_next_pts = ast->start_time != AV_NOPTS_VALUE ? ast->start_time : 0;
  }
  log_debug("{}: {}{}", m.name, info.summary(), m.audio ? ", audio " + m.audio->summary() : std::string());
  impl_ = std::move(impl);
}

bool VideoReader::read(Frame& out) {
  SS_CHECK(impl_ != nullptr, "expected an open VideoReader, got a closed one");
  Impl& m = *impl_;
  if (m.finished) return false;
  for (;;) {
    int ret = avcodec_receive_frame(m.dec, m.frame);
    m.check_logged_errors();
    if (ret == 0) {
      m.convert(out);
      av_frame_unref(m.frame);
      return true;
    }
    if (ret == AVERROR_EOF) {
      m.finished = true;
      SS_CHECK(m.next_index > 0 || m.startup_error.empty(), "{}: expected decodable frames, got none ({})", m.name,
               m.startup_error);
      SS_CHECK(m.read_error.empty(), "{}: expected a complete, readable video, got a read error near frame {} ({})",
               m.name, m.next_index, m.read_error);
      return false;
    }
    SS_CHECK(ret == AVERROR(EAGAIN) && !m.draining, "{}: expected decodable frames, got a decoder error near frame {} ({})",
             m.name, m.next_index, av_error_text(ret));
    ret = av_read_frame(m.fmt, m.packet);
    if (ret < 0 && interrupt_requested()) throw Interrupted();
    m.check_logged_errors();
    // The end, or a live source's connection lost: the frames the decoder holds come out first.
    if (ret == AVERROR_EOF || (ret < 0 && m.live)) {
      if (ret != AVERROR_EOF) m.read_error = av_error_text(ret);
      m.draining = true;
      ret = avcodec_send_packet(m.dec, nullptr);
      SS_CHECK(ret >= 0, "{}: cannot flush the decoder ({})", m.name, av_error_text(ret));
      continue;
    }
    SS_CHECK(ret >= 0, "{}: expected a complete, readable video, got a read error near frame {} ({})", m.name,
             m.next_index, av_error_text(ret));
    if (m.audio && m.packet->stream_index == m.audio->stream_index) {
      m.queue_audio();
      continue;
    }
    if (m.packet->stream_index != m.info.stream_index) {
      av_packet_unref(m.packet);
      continue;
    }
    ret = avcodec_send_packet(m.dec, m.packet);
    av_packet_unref(m.packet);
    m.check_logged_errors();
    SS_CHECK(ret >= 0, "{}: expected decodable frames, got corrupt data near frame {} ({})", m.name, m.next_index,
             av_error_text(ret));
  }
}

bool VideoReader::read_audio(AudioPacket& packet) {
  SS_CHECK(impl_ != nullptr, "expected an open VideoReader, got a closed one");
  if (impl_->audio_queue.empty()) return false;
  packet = std::move(impl_->audio_queue.front());
  impl_->audio_queue.pop_front();
  return true;
}

}  // namespace sanastream::video
