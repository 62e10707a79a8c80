// Video I/O (src/video) on real footage: the clips of Debian's python3-imageio (realshort.mp4:
// H.264 + AAC; cockatoo.mp4: H.264 + MP3) and opencv-doc (vtest.avi: MS-MPEG-4 v3, no audio),
// fetched by scripts/fetch-test-media.sh (CTest fixture `fetch_test_media`) into
// SANASTREAM_TEST_MEDIA. Reading, writing every output format and reading back, stdin and stdout,
// the OUT.part protocol (SIGINT included) and one-line errors for bad inputs and outputs.
//
// ffprobe (package ffmpeg, scripts/install-deps.sh) is the independent judge of what was written:
// stream codecs, decoded frame counts and the time span each stream covers.
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "support/media_tools.h"
#include "core/interrupt.h"
#include "video/media_writer.h"
#include "video/output_plan.h"
#include "video/video_reader.h"

extern char** environ;

using namespace sanastream;
using namespace sanastream::video;
using sanastream::test::ffprobe;
using sanastream::test::Probe;
using sanastream::test::ProbedStream;
using sanastream::test::run_tool;
namespace fs = std::filesystem;

namespace {

const std::string kMediaDir = SANASTREAM_TEST_MEDIA;
const char* const kMediaFiles[] = {"realshort.mp4", "cockatoo.mp4", "vtest.avi"};

// The clips' known answers (ffprobe on the Debian files).
constexpr int64_t kRealshortFrames = 36;   // 320×240, 45000/1499 fps, AAC 48 kHz mono from 0 to 1.1733 s
constexpr int64_t kCockatooFrames = 280;   // 1280×720, 20 fps, MP3 16 kHz mono from 0 to 13.899 s
constexpr int64_t kVtestFrames = 795;      // 768×576, 10 fps

std::string media(const std::string& name) { return kMediaDir + "/" + name; }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs a program found in PATH; returns its exit code and what it wrote on stdout (stderr dropped).
// The single line and the needles of an error message.
void expect_one_line(const Error& e, const std::vector<std::string>& needles) {
  EXPECT_EQ(e.message().find('\n'), std::string::npos) << e.message();
  for (const auto& n : needles) EXPECT_NE(e.message().find(n), std::string::npos) << "missing '" << n << "' in: " << e.message();
}

// What a whole file holds, as the reader hands it out.
struct ReadBack {
  VideoInfo info;
  std::optional<AudioInfo> audio;
  std::vector<Frame> frames;
  std::vector<double> audio_times;  // packet presentation times
  double audio_end = 0;             // where the last packet ends
};

ReadBack read_all(const std::string& path, bool keep_pixels = true) {
  VideoReader r;
  ReaderOptions o;
  o.audio = true;
  r.open(path, o);
  ReadBack b;
  b.info = r.info();
  b.audio = r.audio();
  Frame f;
  AudioPacket p;
  auto drain = [&] {
    while (r.read_audio(p)) {
      b.audio_times.push_back(p.time());
      b.audio_end = std::max(b.audio_end, p.time() + p.duration());
    }
  };
  while (r.read(f)) {
    if (!keep_pixels) f.rgb.clear();
    b.frames.push_back(f);
    drain();
  }
  drain();
  return b;
}

double psnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size() || a.empty()) return 0;
  double se = 0;
  for (size_t i = 0; i < a.size(); ++i) se += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return se == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 * a.size() / se);
}

double mean_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::abs(double(a[i]) - b[i]);
  return a.empty() ? 1e9 : s / a.size();
}

// Frame `index` of path decoded to RGB24 by the ffmpeg CLI with the reader's scaler settings.
std::vector<uint8_t> ffmpeg_rgb_frame(const std::string& path, int index) {
  std::string raw;
  const int rc = run_tool({"ffmpeg", "-v", "error", "-i", path, "-sws_flags",
                           "bicubic+accurate_rnd+full_chroma_int+full_chroma_inp", "-vf",
                           "select=eq(n\\," + std::to_string(index) + ")", "-frames:v", "1", "-f", "rawvideo",
                           "-pix_fmt", "rgb24", "-"},
                          &raw);
  EXPECT_EQ(rc, 0) << path;
  return std::vector<uint8_t>(raw.begin(), raw.end());
}

WriterOptions writer_options(const VideoReader& r) {
  WriterOptions o;
  o.width = r.info().width;
  o.height = r.info().height;
  o.frame_rate = r.info().frame_rate;
  o.audio = r.audio();
  return o;
}

// The editing loop of `sanastream edit` with an identity edit: every frame and every audio packet of
// in go to out. max_frames >= 0 stops after that many frames (audio read so far is kept).
OutputPlan transcode(const std::string& in, const std::string& out, const std::string& format = "",
                     const std::string& video_codec = "", int64_t max_frames = -1) {
  VideoReader r;
  ReaderOptions ro;
  ro.audio = true;
  r.open(in, ro);
  WriterOptions wo = writer_options(r);
  wo.format = format;
  wo.video_codec = video_codec;
  MediaWriter w;
  w.open(out, wo);
  Frame f;
  AudioPacket p;
  while ((max_frames < 0 || w.frames_written() < max_frames) && r.read(f)) {
    w.write(f);
    while (r.read_audio(p)) w.write_audio(p);
  }
  if (max_frames < 0)
    while (r.read_audio(p)) w.write_audio(p);
  w.finish();
  return w.plan();
}

// Runs body with file descriptor fd (0 or 1) on a pipe: for fd 0, `input` is fed into it; for fd 1,
// what body writes is returned. No gtest assertion may run inside body while stdout is a pipe.
std::string with_pipe_on(int fd, const std::string& input, const std::function<void()>& body) {
  std::signal(SIGPIPE, SIG_IGN);
  std::fflush(stdout);
  const int saved = dup(fd);
  int p[2];
  if (pipe(p) != 0) throw std::runtime_error("pipe failed");
  std::string output;
  std::thread io;
  if (fd == 0) {
    dup2(p[0], 0);
    close(p[0]);
    io = std::thread([&, w = p[1]] {
      for (size_t off = 0; off < input.size();) {
        const ssize_t n = write(w, input.data() + off, input.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      close(w);
    });
  } else {
    dup2(p[1], 1);
    close(p[1]);
    io = std::thread([&, r = p[0]] {
      char buf[65536];
      for (ssize_t n; (n = read(r, buf, sizeof buf)) > 0;) output.append(buf, static_cast<size_t>(n));
      close(r);
    });
  }
  std::exception_ptr error;
  try {
    body();
  } catch (...) {
    error = std::current_exception();
  }
  std::fflush(stdout);
  dup2(saved, fd);  // closes the pipe's end: the feeder gets EPIPE or the collector EOF
  close(saved);
  io.join();
  if (error) std::rethrow_exception(error);
  return output;
}

class VideoIo : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kMediaFiles)
      ASSERT_TRUE(fs::exists(media(name))) << media(name) << " is missing: run scripts/fetch-test-media.sh "
                                           << kMediaDir << " (CTest's fixture fetch_test_media does)";
    std::string tmpl = (fs::temp_directory_path() / "sanastream-video-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // No OUT and no OUT.part: nothing was left behind.
  void expect_nothing_left(const std::string& out) const {
    EXPECT_FALSE(fs::exists(out)) << out;
    EXPECT_FALSE(fs::exists(out + ".part")) << out << ".part";
  }
  std::string dir_;
};

// --- reading -----------------------------------------------------------------------------------------

void expect_monotonic(const std::vector<Frame>& frames, double interval) {
  for (size_t i = 1; i < frames.size(); ++i) {
    EXPECT_GT(frames[i].time, frames[i - 1].time) << "frame " << i;
    EXPECT_NEAR(frames[i].time - frames[i - 1].time, interval, 1e-3) << "frame " << i;
  }
  for (size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(frames[i].index, static_cast<int64_t>(i));
}

TEST_F(VideoIo, ReadsRealshortH264WithAacAudio) {
  const ReadBack b = read_all(media("realshort.mp4"));
  EXPECT_EQ(b.info.codec, "h264");
  EXPECT_EQ(b.info.width, 320);
  EXPECT_EQ(b.info.height, 240);
  EXPECT_EQ(b.info.frame_rate.num, 45000);
  EXPECT_EQ(b.info.frame_rate.den, 1499);
  EXPECT_EQ(b.info.frame_count, kRealshortFrames);
  EXPECT_NEAR(b.info.duration, 1.1992, 1e-4);
  ASSERT_EQ(static_cast<int64_t>(b.frames.size()), kRealshortFrames);
  EXPECT_DOUBLE_EQ(b.frames[0].time, 0.0);
  expect_monotonic(b.frames, 1499.0 / 45000);
  for (const auto& f : b.frames) ASSERT_EQ(f.rgb.size(), 320u * 240 * 3);
  ASSERT_TRUE(b.audio.has_value());
  EXPECT_EQ(b.audio->codec, "aac");
  EXPECT_EQ(b.audio->sample_rate, 48000);
  EXPECT_EQ(b.audio->channels, 1);
  EXPECT_NEAR(b.audio->duration, 1.1733, 1e-3);
  EXPECT_EQ(b.audio_times.size(), 55u);
  EXPECT_TRUE(std::is_sorted(b.audio_times.begin(), b.audio_times.end()));
  EXPECT_NEAR(b.audio_end, 1.1733, 1e-3);
  // The pixels: what the ffmpeg CLI decodes, to rounding.
  for (int i : {0, 35}) EXPECT_LT(mean_abs_diff(b.frames[i].rgb, ffmpeg_rgb_frame(media("realshort.mp4"), i)), 0.5) << i;
}

TEST_F(VideoIo, ReadsCockatooH264WithMp3Audio) {
  const ReadBack b = read_all(media("cockatoo.mp4"), false);
  EXPECT_EQ(b.info.codec, "h264");
  EXPECT_EQ(b.info.width, 1280);
  EXPECT_EQ(b.info.height, 720);
  EXPECT_DOUBLE_EQ(b.info.fps(), 20.0);
  ASSERT_EQ(static_cast<int64_t>(b.frames.size()), kCockatooFrames);
  expect_monotonic(b.frames, 0.05);
  EXPECT_NEAR(b.frames.back().time, 13.95, 1e-6);
  ASSERT_TRUE(b.audio.has_value());
  EXPECT_EQ(b.audio->codec, "mp3");
  EXPECT_EQ(b.audio->sample_rate, 16000);
  EXPECT_EQ(b.audio->channels, 1);
  EXPECT_TRUE(std::is_sorted(b.audio_times.begin(), b.audio_times.end()));
  EXPECT_NEAR(b.audio_end, 13.898, 2e-3);
  VideoReader r;
  r.open(media("cockatoo.mp4"));
  Frame f;
  ASSERT_TRUE(r.read(f));
  EXPECT_LT(mean_abs_diff(f.rgb, ffmpeg_rgb_frame(media("cockatoo.mp4"), 0)), 0.5);
}

TEST_F(VideoIo, ReadsVtestMsmpeg4WithoutAudio) {
  const ReadBack b = read_all(media("vtest.avi"), false);
  EXPECT_EQ(b.info.codec, "msmpeg4");
  EXPECT_EQ(b.info.width, 768);
  EXPECT_EQ(b.info.height, 576);
  EXPECT_DOUBLE_EQ(b.info.fps(), 10.0);
  EXPECT_EQ(b.info.frame_count, kVtestFrames);
  ASSERT_EQ(static_cast<int64_t>(b.frames.size()), kVtestFrames);
  expect_monotonic(b.frames, 0.1);
  EXPECT_FALSE(b.audio.has_value());
  EXPECT_TRUE(b.audio_times.empty());
  VideoReader r;
  r.open(media("vtest.avi"));
  Frame f;
  ASSERT_TRUE(r.read(f));
  EXPECT_LT(mean_abs_diff(f.rgb, ffmpeg_rgb_frame(media("vtest.avi"), 0)), 0.5);
}

// A transport stream cut between keyframes, as a live stream is joined: the decoder's errors before
// the first keyframe ("first frame is no keyframe" from MPEG-4 Part 2) are skipped, and every frame
// FFmpeg decodes from there on is read, from a file or from stdin.
TEST_F(VideoIo, ReadsAStreamJoinedBetweenKeyframes) {
  ASSERT_EQ(run_tool({"ffmpeg", "-v", "error", "-i", media("cockatoo.mp4"), "-t", "4", "-c:v", "mpeg4", "-g", "20",
                      "-bf", "0", "-c:a", "aac", "-f", "mpegts", path("whole.ts")}),
            0);
  const std::string ts = read_bytes(path("whole.ts"));
  const std::string joined = ts.substr(ts.size() / 3 / 188 * 188);  // at a transport packet boundary
  write_bytes(path("joined.ts"), joined);
  const Probe p = ffprobe(path("joined.ts"));
  ASSERT_TRUE(p.ok);
  ASSERT_NE(p.of("video"), nullptr);
  ASSERT_GT(p.of("video")->frames, 20);
  ASSERT_LT(p.of("video")->frames, 80);
  const ReadBack file = read_all(path("joined.ts"), false);
  EXPECT_EQ(static_cast<int64_t>(file.frames.size()), p.of("video")->frames);
  expect_monotonic(file.frames, 0.05);
  ReadBack piped;
  with_pipe_on(0, joined, [&] { piped = read_all("-", false); });
  EXPECT_EQ(piped.frames.size(), file.frames.size());
}

// --- the output plan -------------------------------------------------------------------------------

AudioInfo audio_of(const std::string& path) {
  VideoReader r;
  ReaderOptions o;
  o.audio = true;
  r.open(path, o);
  return *r.audio();
}

WriterOptions plan_options(const std::optional<AudioInfo>& audio, int width = 320, int height = 240) {
  WriterOptions o;
  o.width = width;
  o.height = height;
  o.frame_rate = {30, 1};
  o.audio = audio;
  return o;
}

TEST_F(VideoIo, PlanFollowsTheTable) {
  const AudioInfo aac = audio_of(media("realshort.mp4"));
  const AudioInfo mp3 = audio_of(media("cockatoo.mp4"));
  struct Row {
    std::string path, format, codec, encoder, muxer;
    AudioMode with_aac;
    std::string aac_codec;
    AudioMode with_mp3;
    std::string mp3_codec;
  };
  const Row rows[] = {
      {"o.mp4", "mp4", "h264", "libx264", "mp4", AudioMode::kCopy, "aac", AudioMode::kCopy, "mp3"},
      {"o.MOV", "mov", "h264", "libx264", "mov", AudioMode::kCopy, "aac", AudioMode::kCopy, "mp3"},
      {"o.mkv", "mkv", "h264", "libx264", "matroska", AudioMode::kCopy, "aac", AudioMode::kCopy, "mp3"},
      {"o.webm", "webm", "vp9", "libvpx-vp9", "webm", AudioMode::kEncode, "opus", AudioMode::kEncode, "opus"},
      {"o.nut", "nut", "rawvideo", "rawvideo", "nut", AudioMode::kCopy, "aac", AudioMode::kCopy, "mp3"},
      {"o.y4m", "y4m", "rawvideo", "wrapped_avframe", "yuv4mpegpipe", AudioMode::kDropped, "", AudioMode::kDropped, ""},
      {"-", "y4m", "rawvideo", "wrapped_avframe", "yuv4mpegpipe", AudioMode::kDropped, "", AudioMode::kDropped, ""},
      {"o.flv", "flv", "h264", "libx264", "flv", AudioMode::kCopy, "aac", AudioMode::kCopy, "mp3"},
      {"o.ts", "ts", "h264", "libx264", "mpegts", AudioMode::kCopy, "aac", AudioMode::kCopy, "mp3"},
      {"rtmp://host/live/key", "flv", "h264", "libx264", "flv", AudioMode::kCopy, "aac", AudioMode::kCopy, "mp3"},
      {"srt://host:9000", "ts", "h264", "libx264", "mpegts", AudioMode::kCopy, "aac", AudioMode::kCopy, "mp3"},
      {"udp://239.0.0.1:5000", "ts", "h264", "libx264", "mpegts", AudioMode::kCopy, "aac", AudioMode::kCopy, "mp3"},
  };
  for (const Row& row : rows) {
    const OutputPlan none = plan_output(row.path, plan_options(std::nullopt));
    EXPECT_EQ(none.format, row.format) << row.path;
    EXPECT_EQ(none.video_codec, row.codec) << row.path;
    EXPECT_EQ(none.video_encoder, row.encoder) << row.path;
    EXPECT_EQ(none.muxer, row.muxer) << row.path;
    EXPECT_EQ(none.pixel_format, "yuv420p") << row.path;
    EXPECT_EQ(none.audio, AudioMode::kNone) << row.path;
    EXPECT_TRUE(none.warnings.empty()) << row.path;
    EXPECT_EQ(none.to_stdout, row.path == "-");
    EXPECT_EQ(none.network, row.path.find("://") != std::string::npos) << row.path;
    const OutputPlan a = plan_output(row.path, plan_options(aac));
    EXPECT_EQ(a.audio, row.with_aac) << row.path;
    EXPECT_EQ(a.audio_codec, row.aac_codec) << row.path;
    const OutputPlan m = plan_output(row.path, plan_options(mp3));
    EXPECT_EQ(m.audio, row.with_mp3) << row.path;
    EXPECT_EQ(m.audio_codec, row.mp3_codec) << row.path;
    if (row.with_mp3 == AudioMode::kEncode) EXPECT_EQ(m.audio_encoder, "libopus");
    if (row.format == "y4m") {
      ASSERT_EQ(a.warnings.size(), 1u);
      EXPECT_NE(a.warnings[0].find("y4m carries no audio"), std::string::npos) << a.warnings[0];
    }
  }
  // nut on stdout keeps the audio; an odd size takes 4:4:4 in H.264.
  WriterOptions nut = plan_options(aac);
  nut.format = "nut";
  EXPECT_EQ(plan_output("-", nut).audio, AudioMode::kCopy);
  EXPECT_EQ(plan_output("o.mp4", plan_options(std::nullopt, 321, 240)).pixel_format, "yuv444p");
  EXPECT_EQ(plan_output("o.mkv", plan_options(aac)).summary(), "o.mkv: mkv, h264 (libx264, yuv420p), audio aac copied");
}

// A network output is sent in a streaming container; a URL we cannot send to, or a container that
// needs a seekable file, is one line.
TEST_F(VideoIo, NetworkOutputsTakeStreamingContainersOnly) {
  WriterOptions mp4 = plan_options(std::nullopt);
  mp4.format = "mp4";
  WriterOptions ts = plan_options(std::nullopt);
  ts.format = "ts";
  EXPECT_EQ(plan_output("rtmp://host/live/key", ts).muxer, "mpegts");
  EXPECT_EQ(plan_output("-", ts).muxer, "mpegts");
  for (const auto& [path, options, needles] :
       std::vector<std::tuple<std::string, WriterOptions, std::vector<std::string>>>{
           {"rtmp://host/live/key", mp4, {"rtmp://host/live/key", "flv or ts", "mp4"}},
           {"http://host/out.mp4", plan_options(std::nullopt), {"http://", "rtmp, rtmps, srt"}},
       }) {
    try {
      plan_output(path, options);
      ADD_FAILURE() << path;
    } catch (const Error& e) {
      expect_one_line(e, needles);
    }
  }
  EXPECT_EQ(plan_output("file:o.mkv", plan_options(std::nullopt)).network, false);
}

TEST_F(VideoIo, PlanFallsBackWithAWarningWithoutLibx264) {
  const auto no_x264 = [](const std::string& e) { return e != "libx264" && ffmpeg_has_encoder(e); };
  for (const std::string path : {"o.mp4", "o.mov"}) {
    const OutputPlan p = plan_output(path, plan_options(std::nullopt), no_x264);
    EXPECT_EQ(p.video_codec, "mpeg4");
    EXPECT_EQ(p.video_encoder, "mpeg4");
    ASSERT_EQ(p.warnings.size(), 1u);
    EXPECT_NE(p.warnings[0].find("writing MPEG-4 Part 2 instead of H.264"), std::string::npos) << p.warnings[0];
  }
  const OutputPlan mkv = plan_output("o.mkv", plan_options(std::nullopt), no_x264);
  EXPECT_EQ(mkv.video_codec, "ffv1");
  EXPECT_EQ(mkv.pixel_format, "bgr0");
  ASSERT_EQ(mkv.warnings.size(), 1u);
  EXPECT_NE(mkv.warnings[0].find("FFV1"), std::string::npos) << mkv.warnings[0];
  // No VP9 or no Opus: webm is impossible, said in one line.
  try {
    plan_output("o.webm", plan_options(std::nullopt), [](const std::string& e) { return e != "libvpx-vp9"; });
    ADD_FAILURE() << "webm without VP9";
  } catch (const Error& e) {
    expect_one_line(e, {"o.webm", "libvpx-vp9"});
  }
  try {
    plan_output("o.webm", plan_options(audio_of(media("cockatoo.mp4"))), [](const std::string& e) { return e != "libopus"; });
    ADD_FAILURE() << "webm without Opus";
  } catch (const Error& e) {
    expect_one_line(e, {"o.webm", "libopus", "mp3"});
  }
}

// --- writing and reading back ------------------------------------------------------------------------

// Matroska and WebM store no negative timestamps: when the audio starts with encoder priming
// before 0 (MP3 in cockatoo.mp4: 69 ms; Opus's pre-skip: 7 ms), FFmpeg shifts every stream by it.
constexpr double kMaxShift = 0.1;

// The audio of out sits where it sat in the source, relative to the first video frame: its end
// (where the sound's content ends) within one frame interval, its start within one frame interval
// plus the priming a container may have to keep.
void expect_in_sync(const Probe& in, const Probe& out, double frame) {
  const ProbedStream *iv = in.of("video"), *ia = in.of("audio"), *ov = out.of("video"), *oa = out.of("audio");
  ASSERT_TRUE(iv && ia && ov && oa);
  EXPECT_NEAR(ov->end - ov->start, iv->end - iv->start, 1e-3) << "video duration";
  EXPECT_NEAR(oa->end - ov->start, ia->end - iv->start, frame) << "where the audio ends";
  EXPECT_NEAR(oa->start - ov->start, ia->start - iv->start, frame + kMaxShift) << "where the audio starts";
  EXPECT_GE(ov->start, -1e-3);
  EXPECT_LT(ov->start, kMaxShift);
}

struct FormatCase {
  std::string ext;
  std::string video_codec;  // what ffprobe names the written video codec
  std::string audio_codec;  // "" = no audio stream
  double min_psnr;          // against the source frames (dB)
};

void PrintTo(const FormatCase& c, std::ostream* os) { *os << c.ext; }

class VideoIoFormats : public VideoIo, public ::testing::WithParamInterface<FormatCase> {};

TEST_P(VideoIoFormats, RealshortRoundTrips) {
  const FormatCase& c = GetParam();
  const std::string out = path("out." + c.ext);
  const ReadBack src = read_all(media("realshort.mp4"));
  const OutputPlan plan = transcode(media("realshort.mp4"), out);
  EXPECT_FALSE(fs::exists(out + ".part"));
  EXPECT_EQ(plan.audio_codec, c.audio_codec);
  EXPECT_EQ(plan.audio, c.audio_codec.empty() ? AudioMode::kDropped
                        : c.audio_codec == "aac" ? AudioMode::kCopy : AudioMode::kEncode);

  // What our reader sees: every frame at its time, close to the source.
  const ReadBack back = read_all(out);
  EXPECT_EQ(back.info.width, 320);
  EXPECT_EQ(back.info.height, 240);
  // The container's duration, the last frame's included (y4m and nut store none: FFmpeg estimates
  // it from the last timestamp).
  if (c.ext != "y4m" && c.ext != "nut") {
    EXPECT_GE(back.info.duration, src.info.duration - 1e-3);
    EXPECT_LT(back.info.duration, src.info.duration + kMaxShift);
  }
  ASSERT_EQ(back.frames.size(), src.frames.size());
  EXPECT_GE(back.frames[0].time, 0.0);
  EXPECT_LT(back.frames[0].time, kMaxShift);
  for (size_t i = 0; i < back.frames.size(); ++i) {
    EXPECT_NEAR(back.frames[i].time - back.frames[0].time, src.frames[i].time, 1e-3) << "frame " << i;
    EXPECT_GT(psnr(back.frames[i].rgb, src.frames[i].rgb), c.min_psnr) << "frame " << i;
  }
  EXPECT_EQ(back.audio.has_value(), !c.audio_codec.empty());
  if (back.audio) EXPECT_EQ(back.audio->codec, c.audio_codec);

  // What ffprobe sees: the codecs, the frame count, and each stream where the source had it.
  const Probe p = ffprobe(out);
  ASSERT_TRUE(p.ok) << out;
  const ProbedStream* v = p.of("video");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->codec, c.video_codec);
  EXPECT_EQ(v->frames, kRealshortFrames);
  const double frame = 1499.0 / 45000;
  EXPECT_NEAR(v->end - v->start, kRealshortFrames * frame, 1e-3);
  const ProbedStream* a = p.of("audio");
  if (c.audio_codec.empty()) {
    EXPECT_EQ(a, nullptr);
    return;
  }
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->codec, c.audio_codec);
  expect_in_sync(ffprobe(media("realshort.mp4")), p, frame);
  // And in this clip the two streams cover the same time.
  EXPECT_NEAR(a->end, v->end, frame);
}

INSTANTIATE_TEST_SUITE_P(, VideoIoFormats,
                         ::testing::Values(FormatCase{"mp4", "h264", "aac", 32}, FormatCase{"mov", "h264", "aac", 32},
                                           FormatCase{"mkv", "h264", "aac", 32}, FormatCase{"webm", "vp9", "opus", 28},
                                           FormatCase{"nut", "rawvideo", "aac", 34},
                                           FormatCase{"y4m", "rawvideo", "", 34}),
                         [](const auto& info) { return info.param.ext; });

// cockatoo.mp4 (H.264 + MP3) transcoded to `out`: every frame, the audio as planned, in sync.
void expect_cockatoo_as(const std::string& out, AudioMode mode, const std::string& video_codec,
                        const std::string& audio_codec) {
  const OutputPlan plan = transcode(media("cockatoo.mp4"), out);
  EXPECT_EQ(plan.audio, mode);
  const Probe in = ffprobe(media("cockatoo.mp4"));
  const Probe p = ffprobe(out);
  ASSERT_TRUE(p.ok);
  ASSERT_NE(p.of("video"), nullptr);
  ASSERT_NE(p.of("audio"), nullptr);
  EXPECT_EQ(p.of("video")->codec, video_codec);
  EXPECT_EQ(p.of("video")->frames, kCockatooFrames);
  EXPECT_EQ(p.of("audio")->codec, audio_codec);
  expect_in_sync(in, p, 0.05);
}

TEST_F(VideoIo, CockatooMp3IsReencodedToOpusInWebm) {
  expect_cockatoo_as(path("cockatoo.webm"), AudioMode::kEncode, "vp9", "opus");
}

TEST_F(VideoIo, CockatooMp3IsCopiedIntoMkv) {
  expect_cockatoo_as(path("cockatoo.mkv"), AudioMode::kCopy, "h264", "mp3");
}

TEST_F(VideoIo, VtestWithoutAudioGivesAVideoOnlyFile) {
  const std::string out = path("vtest.mov");
  const OutputPlan plan = transcode(media("vtest.avi"), out, "", "", 100);
  EXPECT_EQ(plan.audio, AudioMode::kNone);
  const Probe p = ffprobe(out);
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.streams.size(), 1u);
  EXPECT_EQ(p.of("video")->frames, 100);
  EXPECT_EQ(p.of("video")->width, 768);
  EXPECT_NEAR(p.of("video")->end, 10.0, 1e-3);
}

// The codecs a build without libx264 writes (mpeg4 in mp4/mov, FFV1 in mkv) give valid files; FFV1
// keeps the RGB frames exactly.
TEST_F(VideoIo, FallbackCodecsWriteValidFiles) {
  const ReadBack src = read_all(media("realshort.mp4"));
  for (const auto& [ext, codec] : {std::pair<std::string, std::string>{"mp4", "mpeg4"}, {"mov", "mpeg4"}, {"mkv", "ffv1"}}) {
    const std::string out = path("fallback." + ext);
    transcode(media("realshort.mp4"), out, "", codec);
    const Probe p = ffprobe(out);
    ASSERT_TRUE(p.ok) << out;
    EXPECT_EQ(p.of("video")->codec, codec);
    EXPECT_EQ(p.of("video")->frames, kRealshortFrames) << out;
    ASSERT_NE(p.of("audio"), nullptr) << out;
    const ReadBack back = read_all(out);
    ASSERT_EQ(back.frames.size(), src.frames.size()) << out;
    for (size_t i = 0; i < back.frames.size(); ++i) {
      EXPECT_NEAR(back.frames[i].time, src.frames[i].time, 1e-3) << out << " frame " << i;
      if (codec == "ffv1")
        EXPECT_TRUE(back.frames[i].rgb == src.frames[i].rgb) << "frame " << i;
      else
        EXPECT_GT(psnr(back.frames[i].rgb, src.frames[i].rgb), 30) << out << " frame " << i;
    }
  }
}

// MPEG-4 Part 2 takes time bases with denominators up to 65535 only: a rate such as 90000/3001
// still opens (on an approximate time base) and keeps every frame.
TEST_F(VideoIo, Mpeg4TakesRatesBeyondItsTimeBaseLimit) {
  VideoReader r;
  r.open(media("realshort.mp4"));
  WriterOptions o = writer_options(r);
  o.frame_rate = {90000, 3001};
  o.video_codec = "mpeg4";
  const std::string out = path("rate.mp4");
  MediaWriter w;
  w.open(out, o);
  Frame f;
  while (r.read(f)) w.write(f);
  w.finish();
  const Probe p = ffprobe(out);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.of("video")->codec, "mpeg4");
  EXPECT_EQ(p.of("video")->frames, kRealshortFrames);
}

// --- stdin and stdout ---------------------------------------------------------------------------------

TEST_F(VideoIo, Y4mOnStdoutReadsBackFromStdin) {
  std::string y4m;
  OutputPlan plan;
  y4m = with_pipe_on(1, "", [&] { plan = transcode(media("realshort.mp4"), "-"); });
  EXPECT_TRUE(plan.to_stdout);
  EXPECT_EQ(plan.format, "y4m");
  EXPECT_EQ(plan.audio, AudioMode::kDropped);
  ASSERT_EQ(y4m.rfind("YUV4MPEG2 W320 H240 F45000:1499", 0), 0u) << y4m.substr(0, 60);
  ReadBack back;
  with_pipe_on(0, y4m, [&] { back = read_all("-"); });
  EXPECT_EQ(back.info.path, "-");
  EXPECT_EQ(back.info.width, 320);
  ASSERT_EQ(static_cast<int64_t>(back.frames.size()), kRealshortFrames);
  expect_monotonic(back.frames, 1499.0 / 45000);
  EXPECT_FALSE(back.audio.has_value());
  EXPECT_FALSE(fs::exists("-"));
  EXPECT_FALSE(fs::exists("-.part"));
}

TEST_F(VideoIo, NutOnStdoutCarriesTheAudio) {
  std::string nut = with_pipe_on(1, "", [&] { transcode(media("realshort.mp4"), "-", "nut"); });
  ASSERT_GT(nut.size(), 320u * 240 * 3 / 2 * kRealshortFrames);
  ReadBack back;
  with_pipe_on(0, nut, [&] { back = read_all("-"); });
  EXPECT_EQ(back.info.container, "nut");
  EXPECT_EQ(static_cast<int64_t>(back.frames.size()), kRealshortFrames);
  ASSERT_TRUE(back.audio.has_value());
  EXPECT_EQ(back.audio->codec, "aac");
  EXPECT_EQ(back.audio_times.size(), 55u);
}

TEST_F(VideoIo, FormatsThatNeedASeekableFileAreRefusedOnStdout) {
  for (const std::string format : {"mp4", "mkv", "webm", "mov"}) {
    WriterOptions o = plan_options(std::nullopt);
    o.format = format;
    MediaWriter w;
    try {
      w.open("-", o);
      ADD_FAILURE() << format << " on stdout";
    } catch (const Error& e) {
      expect_one_line(e, {"stdout", "y4m, nut or ts", format});
    }
  }
}

// --- OUT.part ---------------------------------------------------------------------------------------

TEST_F(VideoIo, OutputIsWrittenAsPartAndRenamedByFinish) {
  const std::string out = path("clip.mp4");
  VideoReader r;
  ReaderOptions ro;
  ro.audio = true;
  r.open(media("realshort.mp4"), ro);
  MediaWriter w;
  w.open(out, writer_options(r));
  EXPECT_TRUE(w.is_open());
  EXPECT_TRUE(fs::exists(out + ".part"));
  EXPECT_FALSE(fs::exists(out));
  Frame f;
  AudioPacket p;
  while (r.read(f)) {
    w.write(f);
    while (r.read_audio(p)) w.write_audio(p);
    EXPECT_FALSE(fs::exists(out));
  }
  while (r.read_audio(p)) w.write_audio(p);
  EXPECT_FALSE(fs::exists(out));
  w.finish();
  EXPECT_TRUE(w.finished());
  EXPECT_FALSE(w.is_open());
  EXPECT_EQ(w.frames_written(), kRealshortFrames);
  EXPECT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".part"));
  EXPECT_EQ(ffprobe(out).of("video")->frames, kRealshortFrames);
  w.finish();  // a second finish does nothing
  EXPECT_THROW(w.write(f), Error);
}

TEST_F(VideoIo, AWriterDestroyedWithoutFinishLeavesNothing) {
  for (const std::string ext : {"mp4", "mkv", "webm", "nut", "y4m"}) {
    const std::string out = path("abandoned." + ext);
    {
      VideoReader r;
      ReaderOptions ro;
      ro.audio = true;
      r.open(media("realshort.mp4"), ro);
      MediaWriter w;
      w.open(out, writer_options(r));
      Frame f;
      for (int i = 0; i < 5 && r.read(f); ++i) w.write(f);
      EXPECT_TRUE(fs::exists(out + ".part"));
    }
    expect_nothing_left(out);
  }
  // Re-opening abandons the first output the same way.
  MediaWriter w;
  w.open(path("first.mkv"), plan_options(std::nullopt));
  w.open(path("second.mkv"), plan_options(std::nullopt));
  expect_nothing_left(path("first.mkv"));
  EXPECT_TRUE(fs::exists(path("second.mkv.part")));
}

// A SIGINT mid-run: the loop stops at the next check, finish() makes OUT a valid, shorter file. The
// loop writes each audio packet once the video has reached its time (as `edit` does, its frames
// coming out later than they are read), so the sound ends with the last frame.
TEST_F(VideoIo, SigintMidRunLeavesAValidShorterFile) {
  const std::string out = path("interrupted.mp4");
  constexpr int kFrames = 40;  // 2 s of cockatoo.mp4
  EXPECT_EXIT(
      {
        install_interrupt_handler();
        VideoReader r;
        ReaderOptions ro;
        ro.audio = true;
        r.open(media("cockatoo.mp4"), ro);
        MediaWriter w;
        w.open(out, writer_options(r));
        Frame f;
        std::deque<AudioPacket> held;
        try {
          while (r.read(f)) {
            w.write(f);
            for (AudioPacket p; r.read_audio(p);) held.push_back(std::move(p));
            while (!held.empty() && held.front().time() < f.time + 0.05) {
              w.write_audio(held.front());
              held.pop_front();
            }
            if (w.frames_written() == kFrames) std::raise(SIGINT);
            check_interrupt();
          }
        } catch (const Interrupted&) {
          w.finish();
          std::_Exit(130);
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(130), "");
  EXPECT_FALSE(fs::exists(out + ".part"));
  const Probe p = ffprobe(out);
  ASSERT_TRUE(p.ok) << out;
  ASSERT_NE(p.of("video"), nullptr);
  EXPECT_EQ(p.of("video")->frames, kFrames);
  EXPECT_NEAR(p.of("video")->end, kFrames * 0.05, 1e-3);
  ASSERT_NE(p.of("audio"), nullptr);
  EXPECT_NEAR(p.of("audio")->start, 0.0, 1e-3);
  EXPECT_NEAR(p.of("audio")->end, kFrames * 0.05, 0.05 + 0.036);  // a frame interval and an MP3 packet
  const ReadBack back = read_all(out, false);
  EXPECT_EQ(static_cast<int64_t>(back.frames.size()), kFrames);
}

// A SIGINT while the reader waits on stdin (a live stream that went quiet): the blocked read stops
// with Interrupted and what was written is finished.
TEST_F(VideoIo, SigintStopsABlockedStdinReadAndTheOutputIsFinished) {
  constexpr int kFrames = 8;
  const std::string y4m_file = path("head.y4m");
  transcode(media("realshort.mp4"), y4m_file, "", "", kFrames);
  const std::string y4m = read_bytes(y4m_file);
  const std::string out = path("live.mkv");
  EXPECT_EXIT(
      {
        install_interrupt_handler();
        int fds[2];
        if (pipe(fds) != 0) std::_Exit(3);
        dup2(fds[0], 0);
        close(fds[0]);
        const pthread_t reader_thread = pthread_self();
        std::thread([&, w = fds[1]] {
          for (size_t off = 0; off < y4m.size();) {
            const ssize_t n = write(w, y4m.data() + off, y4m.size() - off);
            if (n <= 0) std::_Exit(4);
            off += static_cast<size_t>(n);
          }
          std::this_thread::sleep_for(std::chrono::seconds(1));  // the stream goes quiet; the pipe stays open
          pthread_kill(reader_thread, SIGINT);
          std::this_thread::sleep_for(std::chrono::seconds(30));
          std::_Exit(5);
        }).detach();
        VideoReader r;
        r.open("-");
        MediaWriter w;
        w.open(out, writer_options(r));
        Frame f;
        try {
          while (r.read(f)) w.write(f);
        } catch (const Interrupted&) {
          w.finish();
          std::_Exit(w.frames_written() == kFrames ? 130 : 6);
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(130), "");
  EXPECT_FALSE(fs::exists(out + ".part"));
  const Probe p = ffprobe(out);
  ASSERT_TRUE(p.ok) << out;
  EXPECT_EQ(p.of("video")->frames, kFrames);
}

// --- bad inputs and outputs ---------------------------------------------------------------------------

class VideoIoErrors : public VideoIo {
 protected:
  // Transcoding in to OUT fails with one line holding every needle; neither OUT nor OUT.part is left.
  void expect_failure(const std::string& in, const std::vector<std::string>& needles, ReaderOptions options = {},
                      double max_seconds = 10) {
    const std::string out = path("out.mkv");
    const auto start = std::chrono::steady_clock::now();
    try {
      VideoReader r;
      options.audio = true;
      r.open(in, options);
      MediaWriter w;
      w.open(out, writer_options(r));
      Frame f;
      while (r.read(f)) w.write(f);
      w.finish();
      ADD_FAILURE() << in << ": expected an error";
    } catch (const Error& e) {
      expect_one_line(e, needles);
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), max_seconds) << in;
    expect_nothing_left(out);
  }
};

TEST_F(VideoIoErrors, MissingFile) {
  expect_failure(path("missing.mp4"), {path("missing.mp4"), "expected a readable video file, got no such file"});
}

TEST_F(VideoIoErrors, TextFiles) {
  write_bytes(path("note.mp4"), "hello, this is a plain text file, not a video\n");
  expect_failure(path("note.mp4"), {path("note.mp4"), "expected a readable video file", "moov atom not found"});
  // A longer text named .txt: FFmpeg's tty demuxer would render it as ANSI art.
  std::string text;
  for (int i = 0; i < 200; ++i) text += "line " + std::to_string(i) + ": some words of a README, not a video\n";
  write_bytes(path("readme.txt"), text);
  expect_failure(path("readme.txt"), {path("readme.txt"), "expected a video file, got text"});
}

TEST_F(VideoIoErrors, TruncatedFiles) {
  // The first half of an mp4 whose index (moov) is at the end.
  const std::string mp4 = read_bytes(media("realshort.mp4"));
  write_bytes(path("half.mp4"), mp4.substr(0, mp4.size() / 2));
  expect_failure(path("half.mp4"), {path("half.mp4"), "expected a readable video file", "moov atom not found"});
  // An mkv cut in the middle of its clusters: the error comes mid-stream, after OUT.part was opened.
  transcode(media("realshort.mp4"), path("whole.mkv"));
  const std::string mkv = read_bytes(path("whole.mkv"));
  write_bytes(path("cut.mkv"), mkv.substr(0, mkv.size() * 6 / 10));
  expect_failure(path("cut.mkv"), {path("cut.mkv"), "truncated or corrupt"});
}

TEST_F(VideoIoErrors, UnsupportedCodec) {
  std::string avi = read_bytes(media("vtest.avi"));
  ASSERT_LT(avi.find("div3"), 4096u);  // the stream header's codec tags
  for (size_t p = avi.find("div3"); p != std::string::npos && p < 4096; p = avi.find("div3", p)) avi.replace(p, 4, "QQQ9");
  write_bytes(path("unknown.avi"), avi);
  expect_failure(path("unknown.avi"), {path("unknown.avi"), "expected a video codec FFmpeg can decode", "QQQ9"});
}

TEST_F(VideoIoErrors, NonVideoFile) {
  // An audio-only file: the source's AAC track alone.
  ASSERT_EQ(run_tool({"ffmpeg", "-v", "error", "-i", media("realshort.mp4"), "-map", "0:a", "-c", "copy",
                      path("sound.m4a")}),
            0);
  expect_failure(path("sound.m4a"), {path("sound.m4a"), "expected a video stream, got only audio aac"});
}

// Opening url fails within max_seconds (a child process, killed by SIGALRM if it hangs) with one
// line, which the child prints for the matcher.
void expect_url_fails_fast(const std::string& url, const ReaderOptions& options, unsigned max_seconds,
                           const std::string& pattern) {
  EXPECT_EXIT(
      {
        alarm(max_seconds);
        try {
          VideoReader r;
          r.open(url, options);
        } catch (const Error& e) {
          std::fprintf(stderr, "%s\n", e.message().c_str());
          std::_Exit(e.message().find('\n') == std::string::npos ? 0 : 2);
        }
        std::_Exit(3);
      },
      ::testing::ExitedWithCode(0), pattern);
}

TEST_F(VideoIoErrors, UnreachableUrls) {
  // Nobody listens: refused at once.
  expect_url_fails_fast("http://127.0.0.1:9/x.mp4", {}, 5,
                        "^http://127\\.0\\.0\\.1:9/x\\.mp4: expected a readable video source, got Connection refused");
  // A server that takes the connection and never answers: the timeout ends the wait.
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(s, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  ReaderOptions quick;
  quick.timeout = 1;
  expect_url_fails_fast("http://127.0.0.1:" + port + "/clip.mp4", quick, 5,
                        "^http://127\\.0\\.0\\.1:" + port + "/clip\\.mp4: expected a readable video source, got .*timed out");
  close(s);
}

TEST_F(VideoIoErrors, BadOutputs) {
  const WriterOptions o = plan_options(audio_of(media("realshort.mp4")));
  struct Case {
    std::string path, format;
    std::vector<std::string> needles;
  };
  const Case cases[] = {
      {path("out.avi"), "", {path("out.avi"), "expected an output ending in .mp4", "'.avi'"}},
      {path("out"), "", {path("out"), "no extension"}},
      {path("out.mp4"), "gif", {path("out.mp4"), "expected an output format among", "'gif'"}},
      {path("no/such/dir/out.mp4"), "", {path("no/such/dir/out.mp4"), "expected a writable output"}},
  };
  for (const Case& c : cases) {
    WriterOptions wo = o;
    wo.format = c.format;
    try {
      MediaWriter w;
      w.open(c.path, wo);
      ADD_FAILURE() << c.path << ": expected an error";
    } catch (const Error& e) {
      expect_one_line(e, c.needles);
    }
    expect_nothing_left(c.path);
  }
  WriterOptions codec = o;
  codec.video_codec = "vp9";
  try {
    plan_output(path("out.mov"), codec);
  } catch (const Error& e) {
    ADD_FAILURE() << "mov carries VP9: " << e.message();
  }
  codec.video_codec = "ffv1";
  EXPECT_THROW(plan_output(path("out.webm"), codec), Error);
  // A frame of the wrong size: one line; the writer, destroyed, leaves nothing.
  const std::string out = path("wrong.mkv");
  try {
    MediaWriter w;
    w.open(out, o);
    Frame f;
    f.width = 10;
    f.height = 10;
    f.rgb.assign(300, 0);
    w.write(f);
    ADD_FAILURE() << "a 10×10 frame into a 320×240 output";
  } catch (const Error& e) {
    expect_one_line(e, {out, "320×240", "10×10"});
  }
  expect_nothing_left(out);
  // OUT cannot replace what is there (a directory): finish() fails in one line, OUT.part goes.
  const std::string taken = path("taken.mkv");
  fs::create_directory(taken);
  try {
    MediaWriter w;
    w.open(taken, o);
    w.finish();
    ADD_FAILURE() << "renamed over a directory";
  } catch (const Error& e) {
    expect_one_line(e, {taken, "expected " + taken + ".part to be renamed to it"});
  }
  EXPECT_TRUE(fs::is_directory(taken));
  EXPECT_FALSE(fs::exists(taken + ".part"));
}

TEST_F(VideoIoErrors, GarbageOnStdin) {
  try {
    with_pipe_on(0, "this is not a video stream\n", [] { read_all("-"); });
    ADD_FAILURE() << "garbage on stdin";
  } catch (const Error& e) {
    expect_one_line(e, {"stdin: expected a readable video file"});
  }
}

// FFmpeg's own log lines (it logs plenty for a truncated file) never reach stderr.
TEST_F(VideoIoErrors, FfmpegLogsNeverReachStderr) {
  const std::string mp4 = read_bytes(media("realshort.mp4"));
  write_bytes(path("half.mp4"), mp4.substr(0, mp4.size() / 2));
  transcode(media("realshort.mp4"), path("whole.mkv"));
  const std::string mkv = read_bytes(path("whole.mkv"));
  write_bytes(path("cut.mkv"), mkv.substr(0, mkv.size() * 6 / 10));
  std::fflush(stderr);
  const int saved = dup(2);
  const std::string log = path("stderr.txt");
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  dup2(fd, 2);
  close(fd);
  int errors = 0;
  for (const std::string in : {path("half.mp4"), path("cut.mkv"), std::string("http://127.0.0.1:9/x.mp4")}) {
    try {
      read_all(in);
    } catch (const Error&) {
      ++errors;
    }
  }
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  EXPECT_EQ(errors, 3);
  EXPECT_EQ(read_bytes(log), "");
}

}  // namespace
