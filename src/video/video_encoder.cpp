#include "video/video_encoder.h"

#include <algorithm>
#include <cmath>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/dict.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include "core/error.h"

namespace sanastream::video {

namespace {

constexpr int kMpeg4MaxTimeBaseDen = 65535;  // MPEG-4 Part 2's limit; a finer rate is approximated

// Ticks per frame interval: fine enough to keep the source clock's offsets (the first frame need
// not start on the frame grid), coarse enough for each encoder. y4m's header rate is the time base
// itself.
int ticks_per_frame(const std::string& encoder, Rational rate) {
  if (encoder == "wrapped_avframe") return 1;
  if (encoder == "mpeg4") return std::max(1, std::min(100, kMpeg4MaxTimeBaseDen / rate.num));
  return 100;
}

// The settings each encoder gets: a quality level rather than a bit rate, speed suited to streaming.
// A live output also gets no encoder delay (x264 zerolatency: no B-frames, no look-ahead) and a
// keyframe every 2 s, where a receiver joining the stream can start.
void encoder_options(const VideoEncoderSettings& s, AVCodecContext* ctx, AVDictionary** opts) {
  const std::string& encoder = s.encoder;
  if (s.live) ctx->gop_size = std::max(1, static_cast<int>(std::lround(2 * s.frame_rate.value())));
  if (encoder == "libx264") {
    av_dict_set(opts, "preset", "veryfast", 0);
    av_dict_set(opts, "crf", "20", 0);
    if (s.live) av_dict_set(opts, "tune", "zerolatency", 0);
  } else if (encoder == "libvpx-vp9") {
    ctx->bit_rate = 0;  // constant quality
    av_dict_set(opts, "crf", "32", 0);
    av_dict_set(opts, "deadline", "realtime", 0);
    av_dict_set(opts, "cpu-used", "8", 0);
    av_dict_set(opts, "row-mt", "1", 0);
  } else if (encoder == "mpeg4") {
    ctx->flags |= AV_CODEC_FLAG_QSCALE;
    ctx->global_quality = FF_QP2LAMBDA * 3;
  } else if (encoder == "ffv1") {
    av_dict_set(opts, "level", "3", 0);  // slices, so that threads help
  }
}

}  // namespace

struct VideoEncoder::Impl {
  VideoEncoderSettings settings;
  AVCodecContext* enc = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  SwsContext* sws = nullptr;
  FfmpegErrors* errors = nullptr;
  std::string who;  // "OUT: libx264 encoder", for messages
  int64_t last_pts = 0;
  int64_t count = 0;

  ~Impl() {
    sws_freeContext(sws);
    av_packet_free(&packet);
    av_frame_free(&frame);
    avcodec_free_context(&enc);
  }

  std::string reason(int ret) const { return errors->any() ? errors->last() : av_error_text(ret); }

  void drain(const PacketSink& sink) {
    for (;;) {
      const int ret = avcodec_receive_packet(enc, packet);
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      SS_CHECK(ret >= 0, "{}: expected packets, got an error after frame {} ({})", who, count, reason(ret));
      sink(packet);
      av_packet_unref(packet);
    }
  }
};

VideoEncoder::VideoEncoder(const VideoEncoderSettings& s, FfmpegErrors* errors) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.settings = s;
  m.errors = errors;
  m.who = fmt::format("{}: {} encoder", s.name, s.encoder);
  const AVCodec* codec = avcodec_find_encoder_by_name(s.encoder.c_str());
  SS_CHECK(codec != nullptr, "{}: expected FFmpeg's {} encoder, got a build without it", s.name, s.encoder);
  const AVPixelFormat pix = av_get_pix_fmt(s.pixel_format.c_str());
  SS_CHECK(pix != AV_PIX_FMT_NONE, "{}: expected a pixel format, got '{}'", m.who, s.pixel_format);
  m.enc = avcodec_alloc_context3(codec);
  m.frame = av_frame_alloc();
  m.packet = av_packet_alloc();
  SS_CHECK(m.enc != nullptr && m.frame != nullptr && m.packet != nullptr, "{}: expected memory, got none", m.who);
  m.enc->opaque = errors;
  m.enc->width = s.width;
  m.enc->height = s.height;
  m.enc->pix_fmt = pix;
  m.enc->framerate = {s.frame_rate.num, s.frame_rate.den};
  AVRational tb{s.frame_rate.den, s.frame_rate.num};
  const int k = ticks_per_frame(s.encoder, s.frame_rate);
  av_reduce(&tb.num, &tb.den, tb.num, static_cast<int64_t>(tb.den) * k,
            s.encoder == "mpeg4" ? kMpeg4MaxTimeBaseDen : INT32_MAX);
  m.enc->time_base = tb;
  m.enc->sample_aspect_ratio = {1, 1};
  m.enc->thread_count = s.threads;
  if (pix == AV_PIX_FMT_BGR0) {
    m.enc->colorspace = AVCOL_SPC_RGB;
    m.enc->color_range = AVCOL_RANGE_JPEG;
  } else {
    m.enc->colorspace = AVCOL_SPC_SMPTE170M;  // the BT.601 matrix the conversion below uses
    m.enc->color_range = AVCOL_RANGE_MPEG;
  }
  if (s.global_header) m.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary* opts = nullptr;
  encoder_options(s, m.enc, &opts);
  const int ret = avcodec_open2(m.enc, codec, &opts);
  av_dict_free(&opts);
  SS_CHECK(ret >= 0, "{}: expected it to open for {}×{} {} at {}/{} fps, got {}", m.who, s.width, s.height,
           s.pixel_format, s.frame_rate.num, s.frame_rate.den, m.reason(ret));

  m.sws = sws_getContext(s.width, s.height, AV_PIX_FMT_RGB24, s.width, s.height, pix,
                         SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr);
  SS_CHECK(m.sws != nullptr, "{}: expected a conversion from RGB24 to {}, got none", m.who, s.pixel_format);
  const int* bt601 = sws_getCoefficients(SWS_CS_ITU601);
  sws_setColorspaceDetails(m.sws, bt601, 1, bt601, pix == AV_PIX_FMT_BGR0 ? 1 : 0, 0, 1 << 16, 1 << 16);
  m.frame->format = pix;
  m.frame->width = s.width;
  m.frame->height = s.height;
  m.frame->colorspace = m.enc->colorspace;
  m.frame->color_range = m.enc->color_range;
  SS_CHECK(av_frame_get_buffer(m.frame, 0) >= 0, "{}: expected memory for a frame, got none", m.who);
  m.last_pts = INT64_MIN;
}

VideoEncoder::~VideoEncoder() = default;

const AVCodecContext* VideoEncoder::context() const { return impl_->enc; }

void VideoEncoder::encode(const Frame& in, const PacketSink& sink) {
  Impl& m = *impl_;
  SS_CHECK(in.width == m.settings.width && in.height == m.settings.height &&
               in.rgb.size() == static_cast<size_t>(in.width) * in.height * 3,
           "{}: expected an RGB24 frame of {}×{} to encode, got {}×{} ({} bytes)", m.settings.name, m.settings.width,
           m.settings.height, in.width, in.height, in.rgb.size());
  // The encoder or the muxer may still hold the previous frame's buffer (wrapped_avframe does).
  SS_CHECK(av_frame_make_writable(m.frame) >= 0, "{}: expected memory for a frame, got none", m.who);
  const uint8_t* src[4] = {in.rgb.data(), nullptr, nullptr, nullptr};
  const int src_stride[4] = {3 * in.width, 0, 0, 0};
  sws_scale(m.sws, src, src_stride, 0, in.height, m.frame->data, m.frame->linesize);
  const AVRational tb = m.enc->time_base;
  int64_t pts = std::llround(in.time * tb.den / tb.num);
  if (m.last_pts != INT64_MIN && pts <= m.last_pts) pts = m.last_pts + 1;
  m.frame->pts = pts;
  m.last_pts = pts;
  const int ret = avcodec_send_frame(m.enc, m.frame);
  SS_CHECK(ret >= 0, "{}: expected to take frame {}, got {}", m.who, m.count, m.reason(ret));
  ++m.count;
  m.drain(sink);
}

void VideoEncoder::flush(const PacketSink& sink) {
  Impl& m = *impl_;
  const int ret = avcodec_send_frame(m.enc, nullptr);
  if (ret == AVERROR_EOF) return;  // flushed before
  SS_CHECK(ret >= 0, "{}: cannot flush ({})", m.who, m.reason(ret));
  m.drain(sink);
}

}  // namespace sanastream::video
