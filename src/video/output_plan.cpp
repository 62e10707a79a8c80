#include "video/output_plan.h"

#include <algorithm>
#include <cctype>
#include <iterator>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include "core/error.h"
#include "video/ffmpeg_log.h"

namespace sanastream::video {

namespace {

struct Format {
  const char* name;
  const char* muxer;
  const char* default_codec;   // the video codec written unless another is asked for
  const char* fallback_codec;  // when the default's encoder is missing (empty: none, an error)
  const char* audio_encoder;   // when the input's audio codec does not fit
};

constexpr Format kFormats[] = {
    {"mp4", "mp4", "h264", "mpeg4", "aac"},       {"mov", "mov", "h264", "mpeg4", "aac"},
    {"mkv", "matroska", "h264", "ffv1", "aac"},   {"webm", "webm", "vp9", "", "libopus"},
    {"nut", "nut", "rawvideo", "", "aac"},        {"y4m", "yuv4mpegpipe", "rawvideo", "", ""},
    {"flv", "flv", "h264", "", "aac"},            {"ts", "mpegts", "h264", "mpeg4", "aac"},
};
constexpr const char* kFormatList = "mp4, mov, mkv, webm, nut, y4m, flv, ts";

// The container a network output is sent in, by URL scheme (empty: not a URL we send to).
std::string url_format(const std::string& path) {
  const std::string scheme = url_scheme(path);
  if (scheme.empty() || scheme == "file") return "";
  if (scheme == "rtmp" || scheme == "rtmps") return "flv";
  if (scheme == "srt" || scheme == "udp" || scheme == "rtp" || scheme == "tcp") return "ts";
  SS_FAIL("{}: expected an rtmp, rtmps, srt, udp, rtp or tcp URL to send to, got '{}://'", path, scheme);
}

struct VideoCodec {
  const char* name;
  const char* encoder;
  AVCodecID id;
};

constexpr VideoCodec kVideoCodecs[] = {
    {"h264", "libx264", AV_CODEC_ID_H264},  {"mpeg4", "mpeg4", AV_CODEC_ID_MPEG4},
    {"ffv1", "ffv1", AV_CODEC_ID_FFV1},     {"vp9", "libvpx-vp9", AV_CODEC_ID_VP9},
    {"rawvideo", "rawvideo", AV_CODEC_ID_RAWVIDEO},
};
constexpr const char* kVideoCodecList = "h264, mpeg4, ffv1, vp9, rawvideo";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

const Format* find_format(const std::string& name) {
  for (const Format& f : kFormats)
    if (name == f.name) return &f;
  return nullptr;
}

const VideoCodec& find_codec(const std::string& name) {
  for (const VideoCodec& c : kVideoCodecs)
    if (name == c.name) return c;
  SS_FAIL("expected a video codec among {}, got '{}'", kVideoCodecList, name);
}

// Whether FFmpeg's muxer takes the codec (1 from avformat_query_codec; "don't know" counts as no).
// MPEG-TS cannot answer the query; it carries these audio codecs (and H.264, MPEG-4 Part 2 video).
bool muxer_accepts(const char* muxer, AVCodecID id) {
  if (std::string(muxer) == "mpegts") {
    constexpr AVCodecID kTs[] = {AV_CODEC_ID_H264, AV_CODEC_ID_MPEG4, AV_CODEC_ID_AAC, AV_CODEC_ID_MP3,
                                 AV_CODEC_ID_MP2,  AV_CODEC_ID_AC3,   AV_CODEC_ID_EAC3, AV_CODEC_ID_OPUS};
    return std::find(std::begin(kTs), std::end(kTs), id) != std::end(kTs);
  }
  const AVOutputFormat* ofmt = av_guess_format(muxer, nullptr, nullptr);
  return ofmt != nullptr && avformat_query_codec(ofmt, id, FF_COMPLIANCE_NORMAL) == 1;
}

const Format& choose_format(const std::string& path, const std::string& requested) {
  const std::string who = display_name(path, true);
  if (!requested.empty()) {
    const Format* f = find_format(lower(requested));
    SS_CHECK(f != nullptr, "{}: expected an output format among {}, got '{}'", who, kFormatList, requested);
    const std::string name = f->name;
    SS_CHECK(path != "-" || name == "y4m" || name == "nut" || name == "ts",
             "stdout: expected format y4m, nut or ts (the others need a seekable file), got {}", name);
    SS_CHECK(url_format(path).empty() || name == "flv" || name == "ts",
             "{}: expected format flv or ts for a network output (the others need a seekable file), got {}", who, name);
    return *f;
  }
  if (path == "-") return *find_format("y4m");
  if (const std::string net = url_format(path); !net.empty()) return *find_format(net);
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  const bool has_ext = dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
  const Format* f = has_ext ? find_format(lower(path.substr(dot + 1))) : nullptr;
  SS_CHECK(f != nullptr, "{}: expected an output ending in .mp4, .mov, .mkv, .webm, .nut, .y4m, .flv or .ts (or '-' "
           "for stdout, or an rtmp/srt/udp URL), got {}",
           path, has_ext ? "'" + path.substr(dot) + "'" : std::string("no extension"));
  return *f;
}

}  // namespace

bool ffmpeg_has_encoder(const std::string& encoder) { return avcodec_find_encoder_by_name(encoder.c_str()) != nullptr; }

std::string OutputPlan::summary() const {
  std::string s = fmt::format("{}: {}, {} ({}, {})", display_name(path, true), format, video_codec, video_encoder,
                              pixel_format);
  switch (audio) {
    case AudioMode::kNone: break;
    case AudioMode::kCopy: s += fmt::format(", audio {} copied", audio_codec); break;
    case AudioMode::kEncode: s += fmt::format(", audio {} ({})", audio_codec, audio_encoder); break;
    case AudioMode::kDropped: s += ", audio dropped"; break;
  }
  return s;
}

OutputPlan plan_output(const std::string& path, const WriterOptions& options, const EncoderAvailable& available) {
  SS_CHECK(!path.empty(), "expected an output path (or '-' for stdout), got an empty one");
  const Format& f = choose_format(path, options.format);
  OutputPlan plan;
  plan.path = path;
  plan.to_stdout = path == "-";
  plan.network = !url_format(path).empty();
  plan.format = f.name;
  plan.muxer = f.muxer;
  const std::string who = display_name(path, true);
  SS_CHECK(options.width > 0 && options.height > 0, "{}: expected a frame size, got {}×{}", who, options.width,
           options.height);
  SS_CHECK(options.frame_rate.num > 0 && options.frame_rate.den > 0, "{}: expected a positive frame rate, got {}/{}",
           who, options.frame_rate.num, options.frame_rate.den);

  // Video.
  const bool y4m = plan.format == "y4m";
  if (options.video_codec.empty()) {
    plan.video_codec = f.default_codec;
    const VideoCodec& c = find_codec(plan.video_codec);
    if (!available(c.encoder)) {
      SS_CHECK(*f.fallback_codec != '\0', "{}: expected FFmpeg's {} encoder for {} in {}, got a build without it", who,
               c.encoder, plan.video_codec, plan.format);
      const VideoCodec& fb = find_codec(f.fallback_codec);
      plan.warnings.push_back(fmt::format("{}: this FFmpeg has no {} encoder; writing {} instead of {}", who,
                                          c.encoder, fb.id == AV_CODEC_ID_FFV1 ? "FFV1 (lossless)" : "MPEG-4 Part 2",
                                          c.id == AV_CODEC_ID_H264 ? "H.264" : c.name));
      plan.video_codec = fb.name;
    }
  } else {
    plan.video_codec = lower(options.video_codec);
    const VideoCodec& c = find_codec(plan.video_codec);
    SS_CHECK(y4m ? c.id == AV_CODEC_ID_RAWVIDEO : muxer_accepts(f.muxer, c.id),
             "{}: expected a video codec that {} carries, got {}", who, plan.format, plan.video_codec);
    SS_CHECK(available(c.encoder), "{}: expected FFmpeg's {} encoder for {}, got a build without it", who, c.encoder,
             plan.video_codec);
  }
  const VideoCodec& vc = find_codec(plan.video_codec);
  plan.video_encoder = y4m ? "wrapped_avframe" : vc.encoder;
  const bool odd = options.width % 2 != 0 || options.height % 2 != 0;
  if (plan.video_encoder == "ffv1")
    plan.pixel_format = "bgr0";
  else if (plan.video_encoder == "libx264" && odd)
    plan.pixel_format = "yuv444p";  // x264 takes 4:2:0 at even sizes only
  else
    plan.pixel_format = "yuv420p";

  // Audio.
  if (!options.audio) return plan;
  const AudioInfo& a = *options.audio;
  SS_CHECK(a.parameters != nullptr, "{}: expected the input's audio parameters (from a reader), got none", who);
  if (y4m) {
    plan.audio = AudioMode::kDropped;
    plan.warnings.push_back(fmt::format("{}: y4m carries no audio; the input's {} audio is dropped (nut keeps it)", who,
                                        a.codec));
    return plan;
  }
  if (muxer_accepts(f.muxer, a.parameters->codec_id)) {
    plan.audio = AudioMode::kCopy;
    plan.audio_codec = a.codec;
    return plan;
  }
  plan.audio = AudioMode::kEncode;
  plan.audio_encoder = f.audio_encoder;
  plan.audio_codec = plan.audio_encoder == "libopus" ? "opus" : plan.audio_encoder;
  SS_CHECK(available(plan.audio_encoder), "{}: expected FFmpeg's {} encoder for the {} audio {} cannot carry, got a build without it",
           who, plan.audio_encoder, a.codec, plan.format);
  return plan;
}

}  // namespace sanastream::video
