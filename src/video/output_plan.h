// What a MediaWriter writes for a path and its options: the container, the video encoder and its
// pixel format, and what happens to the input's audio. Planned before any file is created, so a bad
// path, format or codec is one clear error and leaves nothing behind. FFmpeg-free header.
//
//   file OUT.mp4/.mov : H.264 (libx264), else MPEG-4 Part 2 with a warning   audio: copy, else AAC
//   file OUT.mkv      : H.264 (libx264), else FFV1 (lossless RGB) w/ warning  audio: copy, else AAC
//   file OUT.webm     : VP9 (libvpx-vp9)                                      audio: copy, else Opus
//   OUT.nut / --format nut (also on stdout) : raw video (yuv420p)             audio: copy, else AAC
//   OUT.y4m / "-" (stdout, the default there) : raw video (yuv420p)           audio: dropped (warning)
//   OUT.flv, rtmp://… (push)                  : H.264 (libx264), FLV          audio: copy, else AAC
//   OUT.ts, srt://…, udp://…, rtp://…, tcp:// : H.264 (libx264), else MPEG-4 Part 2, MPEG-TS   audio: copy, else AAC
// "copy" means the container accepts the input's codec (FFmpeg's avformat_query_codec). A network
// output is live: written as it comes (no OUT.part), encoded with low delay (x264 zerolatency) and a
// keyframe every 2 s, so a receiver that joins late starts within 2 s.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "video/audio_stream.h"
#include "video/rational.h"

namespace sanastream::video {

struct WriterOptions {
  int width = 0;                   // of every frame written
  int height = 0;
  Rational frame_rate;             // nominal rate: the output's time grid (and y4m's header rate)
  std::string format;              // mp4, mov, mkv, webm, nut, y4m; "" = from the extension ("-": y4m)
  std::string video_codec;         // h264, mpeg4, ffv1, vp9, rawvideo; "" = the format's default
  std::optional<AudioInfo> audio;  // the input's audio stream to carry (VideoReader::audio()); empty = none
  int threads = 0;                 // encoder threads; 0 = FFmpeg chooses
  double timeout = 5;              // network outputs: seconds to connect or to stall a write; 0 = no limit
  bool listen = false;             // network outputs: wait for the receiver to connect (rtmp, srt, tcp)
};

enum class AudioMode {
  kNone,     // the options name no audio
  kCopy,     // packets stream-copied
  kEncode,   // decoded and re-encoded with audio_encoder
  kDropped,  // the container carries none (y4m); a warning says so
};

struct OutputPlan {
  std::string path;           // as given; "-" = stdout
  bool to_stdout = false;
  bool network = false;       // a URL: live, written in place (no OUT.part)
  std::string format;         // mp4, mov, mkv, webm, nut, y4m, flv, ts
  std::string muxer;          // FFmpeg's muxer: mp4, mov, matroska, webm, nut, yuv4mpegpipe, flv, mpegts
  std::string video_codec;    // h264, mpeg4, ffv1, vp9, rawvideo
  std::string video_encoder;  // FFmpeg's encoder: libx264, mpeg4, ffv1, libvpx-vp9, rawvideo, wrapped_avframe
  std::string pixel_format;   // yuv420p; yuv444p for libx264 at odd sizes; bgr0 for FFV1
  AudioMode audio = AudioMode::kNone;
  std::string audio_codec;    // the output's audio codec (copy: the input's); "" without audio
  std::string audio_encoder;  // kEncode: aac or libopus
  std::vector<std::string> warnings;  // one line each; the writer logs them
  // "out.mp4: mp4, h264 (libx264, yuv420p), audio aac copied"
  std::string summary() const;
};

// Whether this FFmpeg build has an encoder of that name ("libx264", …).
using EncoderAvailable = std::function<bool(const std::string& encoder)>;
bool ffmpeg_has_encoder(const std::string& encoder);

// Plans path with options; throws one line for a bad path, format, codec or frame geometry.
OutputPlan plan_output(const std::string& path, const WriterOptions& options,
                       const EncoderAvailable& available = ffmpeg_has_encoder);

}  // namespace sanastream::video
