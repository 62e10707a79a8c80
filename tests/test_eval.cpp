// Video decoding (src/video) and `sanastream eval` (src/eval): the known-answer tests of issue 8,
// the metric definitions against hand-computed values, pairing across frame rates, the JSON
// layout, the HTML report in headless Chromium, and one-line errors for bad inputs.
//
// Synthetic videos are written losslessly (FFV1 in Matroska, RGB) with the ffmpeg CLI from raw
// RGB frames made here, so every pixel value is known.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "core/error.h"
#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "eval/pairing.h"
#include "eval/report.h"
#include "io/safetensors.h"
#include "support/test_env.h"
#include "video/video_reader.h"

extern char** environ;

using namespace sanastream;
using sanastream::test::read_file;
using sanastream::test::file_exists;
using sanastream::test::run_cli;
using sanastream::test::temp_dir;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;
// The ffmpeg CLI (scripts/install-deps.sh installs it), found through PATH.
const std::string kFfmpeg = "ffmpeg";

// Runs a program (searched in PATH); stdout goes to out_file (or /dev/null), stderr to
// out_file.err (or /dev/null). Returns the exit code.
int run_tool(const std::vector<std::string>& args, const std::string& out_file = "") {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  const std::string err_file = out_file.empty() ? "/dev/null" : out_file + ".err";
  posix_spawn_file_actions_addopen(&fa, 1, out_file.empty() ? "/dev/null" : out_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return 127;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A clip of RGB24 frames.
struct Clip {
  int width = 0, height = 0;
  std::vector<std::vector<uint8_t>> frames;
};

uint8_t to_byte(double v) { return static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0)); }

// value(frame, x, y, channel) in [0, 1], rounded to 8 bits.
Clip make_clip(int width, int height, int frames, const std::function<double(int, double, double, int)>& value) {
  Clip c{width, height, {}};
  for (int f = 0; f < frames; ++f) {
    std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        for (int ch = 0; ch < 3; ++ch) rgb[(static_cast<size_t>(y) * width + x) * 3 + ch] = to_byte(value(f, x, y, ch));
    c.frames.push_back(std::move(rgb));
  }
  return c;
}

// A smooth texture in [0.15, 0.75], different per channel.
double texture(double x, double y, int ch) {
  return 0.45 + 0.12 * std::sin(2 * kPi * x / 13.0 + 0.9 * ch) + 0.1 * std::sin(2 * kPi * y / 9.0 + 0.5 * ch) +
         0.08 * std::sin(2 * kPi * (x + y) / 17.0 + 1.3 * ch);
}

// The texture moving by (vx, vy) pixels per frame: frame i → i + 1 has the exact flow (vx, vy).
Clip translating(int width, int height, int frames, double vx, double vy) {
  return make_clip(width, height, frames, [=](int f, double x, double y, int ch) {
    return texture(x - vx * f, y - vy * f, ch);
  });
}

// Writes clip losslessly: FFV1 in Matroska (RGB, bgr0) unless other encoder arguments are given.
void write_video(const std::string& path, const Clip& clip, const std::string& fps,
                 std::vector<std::string> encoder = {"-c:v", "ffv1", "-pix_fmt", "bgr0"}) {
  const std::string raw = path + ".rgb";
  {
    std::ofstream out(raw, std::ios::binary);
    for (const auto& f : clip.frames) out.write(reinterpret_cast<const char*>(f.data()), f.size());
  }
  std::vector<std::string> args{kFfmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                                "-s", std::to_string(clip.width) + "x" + std::to_string(clip.height),
                                "-framerate", fps, "-i", raw};
  args.insert(args.end(), encoder.begin(), encoder.end());
  args.push_back(path);
  const std::string log = path + ".log";
  ASSERT_EQ(run_tool(args, log), 0) << "ffmpeg failed (exit 127: not installed): " << read_file(log + ".err");
  fs::remove(raw);
}

// The JSON summary of an evaluation run in-process (the CLI writes the same object; the tests
// that need the binary itself run it, the others save its start-up).
json measure(const std::string& source, const std::string& edited, const std::string& target = "",
             const std::string& flow = "") {
  return eval::to_json(eval::evaluate({source, edited, target, flow}), nullptr);
}

// Expects evaluate() to fail with one line containing message.
void expect_eval_error(const eval::EvalInputs& in, const std::string& message) {
  try {
    eval::evaluate(in);
    ADD_FAILURE() << in.source << " / " << in.edited << ": expected an error containing " << message;
  } catch (const Error& e) {
    EXPECT_EQ(e.message().find('\n'), std::string::npos) << e.message();
    EXPECT_NE(e.message().find(message), std::string::npos) << e.message();
  }
}

std::string write_run_json(const std::string& dir) {
  const std::string path = dir + "/run.json";
  std::ofstream(path) << R"({"fps": 12.5, "latency_ms": {"p50": 80.5, "p99": 120}, "frames": 10, "model": "demo"})";
  return path;
}

std::vector<std::string> keys_of(const json& j) {
  std::vector<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.push_back(it.key());
  std::sort(k.begin(), k.end());
  return k;
}

cv::Mat constant_image(int w, int h, double v) { return cv::Mat(h, w, CV_32FC3, cv::Scalar::all(v)); }

cv::Mat random_image(int w, int h, unsigned seed) {
  cv::Mat m(h, w, CV_32FC3);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0.0, 1.0);
  return m;
}

// SSIM by its definition, with explicit loops over every window inside the image (double).
double naive_ssim(const cv::Mat& a, const cv::Mat& b) {
  const int r = 5;
  double g[11], gsum = 0;
  for (int k = -r; k <= r; ++k) gsum += g[k + r] = std::exp(-k * k / (2 * 1.5 * 1.5));
  for (double& v : g) v /= gsum;
  const double c1 = 1e-4, c2 = 9e-4;
  double total = 0;
  for (int ch = 0; ch < a.channels(); ++ch) {
    double sum = 0;
    int n = 0;
    for (int y = r; y < a.rows - r; ++y)
      for (int x = r; x < a.cols - r; ++x) {
        double mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
        for (int dy = -r; dy <= r; ++dy)
          for (int dx = -r; dx <= r; ++dx) {
            const double w = g[dy + r] * g[dx + r];
            const double p = a.ptr<float>(y + dy)[(x + dx) * a.channels() + ch];
            const double q = b.ptr<float>(y + dy)[(x + dx) * b.channels() + ch];
            mx += w * p, my += w * q, xx += w * p * p, yy += w * q * q, xy += w * p * q;
          }
        const double sx = xx - mx * mx, sy = yy - my * my, sxy = xy - mx * my;
        sum += (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sx + sy + c2));
        ++n;
      }
    total += sum / n;
  }
  return total / a.channels();
}

std::string find_in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "");
  std::string dir;
  while (std::getline(ss, dir, ':'))
    if (!dir.empty() && access((dir + "/" + program).c_str(), X_OK) == 0) return dir + "/" + program;
  return "";
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + needle.size())) ++n;
  return n;
}

// Expects open-and-read-all to fail with one line that contains every part of what.
void expect_reader_error(const std::string& path, const std::vector<std::string>& what) {
  try {
    video::VideoReader r;
    r.open(path);
    video::Frame f;
    while (r.read(f)) {
    }
    ADD_FAILURE() << path << ": expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message().find('\n'), std::string::npos) << e.message();
    for (const auto& w : what) EXPECT_NE(e.message().find(w), std::string::npos) << e.message();
  }
}

}  // namespace

// --- video reader -----------------------------------------------------------------------------------

TEST(VideoReader, DecodesLosslessRgbWithPresentationTimes) {
  const std::string dir = temp_dir("video_lossless");
  const Clip clip = make_clip(40, 30, 6, [](int f, double x, double y, int ch) {
    return std::fmod(0.37 * f + 0.011 * x * (ch + 1) + 0.023 * y, 1.0);
  });
  write_video(dir + "/a.mkv", clip, "30");
  video::VideoReader r;
  r.open(dir + "/a.mkv");
  const video::VideoInfo& info = r.info();
  EXPECT_EQ(info.width, 40);
  EXPECT_EQ(info.height, 30);
  EXPECT_DOUBLE_EQ(info.fps(), 30.0);
  EXPECT_EQ(info.codec, "ffv1");
  EXPECT_NE(info.container.find("matroska"), std::string::npos);
  EXPECT_NEAR(info.duration, 0.2, 0.002);
  EXPECT_NE(info.summary().find("40×30 ffv1"), std::string::npos) << info.summary();
  video::Frame f;
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(r.read(f)) << i;
    EXPECT_EQ(f.index, i);
    EXPECT_NEAR(f.time, i / 30.0, 0.0006);
    ASSERT_EQ(f.width, 40);
    ASSERT_EQ(f.height, 30);
    EXPECT_TRUE(f.rgb == clip.frames[i]) << "frame " << i;
  }
  EXPECT_FALSE(r.read(f));
  EXPECT_FALSE(r.read(f));
}

TEST(VideoReader, ConvertsYuvWithTheStreamsColourMatrix) {
  const std::string dir = temp_dir("video_yuv");
  const Clip clip = make_clip(32, 32, 2, [](int, double, double, int ch) { return (ch == 0 ? 200 : ch == 1 ? 100 : 50) / 255.0; });
  // BT.601 (the untagged default) and BT.709 (tagged): each decodes back to the colour.
  write_video(dir + "/601.mkv", clip, "25", {"-c:v", "ffv1", "-pix_fmt", "yuv444p"});
  write_video(dir + "/709.mkv", clip, "25",
              {"-vf", "scale=out_color_matrix=bt709:out_range=tv", "-colorspace", "bt709", "-c:v", "ffv1", "-pix_fmt",
               "yuv444p"});
  for (const std::string name : {"601", "709"}) {
    video::VideoReader r;
    r.open(dir + "/" + name + ".mkv");
    EXPECT_EQ(r.info().pixel_format, "yuv444p");
    video::Frame f;
    ASSERT_TRUE(r.read(f));
    const int expected[3] = {200, 100, 50};
    for (int ch = 0; ch < 3; ++ch) EXPECT_NEAR(f.rgb[16 * 32 * 3 + 16 * 3 + ch], expected[ch], 2) << name << " " << ch;
  }
}

TEST(VideoReader, OptionsPickTheStreamAndTheThreads) {
  const std::string dir = temp_dir("video_options");
  const Clip a = make_clip(24, 16, 3, [](int f, double x, double, int) { return 0.1 + 0.05 * f + 0.01 * x; });
  const Clip b = make_clip(24, 16, 3, [](int f, double, double y, int) { return 0.9 - 0.05 * f - 0.02 * y; });
  write_video(dir + "/a.mkv", a, "10");
  write_video(dir + "/b.mkv", b, "10");
  ASSERT_EQ(run_tool({kFfmpeg, "-v", "error", "-y", "-i", dir + "/a.mkv", "-f", "lavfi", "-i",
                      "sine=duration=0.3", "-i", dir + "/b.mkv", "-map", "0:v", "-map", "1:a", "-map", "2:v", "-c:v",
                      "copy", "-c:a", "pcm_s16le", dir + "/ab.mkv"}),
            0);
  for (int threads : {1, 2}) {
    video::VideoReader r;
    r.open(dir + "/ab.mkv", {2, threads});
    EXPECT_EQ(r.info().stream_index, 2);
    video::Frame f;
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(r.read(f));
      EXPECT_TRUE(f.rgb == b.frames[i]) << "threads " << threads << " frame " << i;
    }
    EXPECT_FALSE(r.read(f));
  }
  video::VideoReader best;
  best.open(dir + "/ab.mkv");
  EXPECT_EQ(best.info().stream_index, 0);
  EXPECT_THROW(best.open(dir + "/ab.mkv", {1, 0}), Error);
  try {
    best.open(dir + "/ab.mkv", {1, 0});
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("expected stream 1 to be video, got audio"), std::string::npos) << e.message();
  }
  EXPECT_FALSE(best.is_open());
  try {
    best.open(dir + "/ab.mkv", {5, 0});
    ADD_FAILURE() << "stream 5 should not exist";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("expected a stream index below 3, got 5"), std::string::npos) << e.message();
  }
}

TEST(VideoReader, BadFilesGiveOneLineNamingTheFile) {
  const std::string dir = temp_dir("video_bad");
  std::ofstream(dir + "/garbage.mkv") << "this is not a video, just some text that no demuxer accepts";
  ASSERT_EQ(run_tool({kFfmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=0.2",
                      dir + "/audio.wav"}),
            0);
  const Clip clip = translating(64, 48, 30, 1, 0);
  write_video(dir + "/good.mkv", clip, "30");
  const std::string bytes = read_file(dir + "/good.mkv");
  std::ofstream(dir + "/truncated.mkv", std::ios::binary).write(bytes.data(), bytes.size() * 6 / 10);
  write_video(dir + "/good.avi", clip, "30", {"-c:v", "ffv1", "-pix_fmt", "bgr0"});
  std::string avi = read_file(dir + "/good.avi");
  ASSERT_GE(count_of(avi, "FFV1"), 1u);
  for (size_t p = avi.find("FFV1"); p != std::string::npos; p = avi.find("FFV1", p)) avi.replace(p, 4, "QQQ9");
  std::ofstream(dir + "/unknown_codec.avi", std::ios::binary) << avi;
  ASSERT_EQ(run_tool({kFfmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=30",
                      "-frames:v", "0", "-c:v", "ffv1", dir + "/empty.avi"}),
            0);

  expect_reader_error(dir + "/missing.mkv", {"missing.mkv", "no such file"});
  expect_reader_error(dir + "/garbage.mkv", {"garbage.mkv", "expected a readable video file"});
  expect_reader_error(dir + "/audio.wav", {"audio.wav", "expected a video stream, got only audio pcm_s16le"});
  expect_reader_error(dir + "/truncated.mkv", {"truncated.mkv", "truncated or corrupt"});
  expect_reader_error(dir + "/unknown_codec.avi", {"unknown_codec.avi", "codec FFmpeg can decode", "QQQ9"});
  video::VideoReader empty;
  empty.open(dir + "/empty.avi");
  video::Frame f;
  EXPECT_FALSE(empty.read(f));
}

// --- metrics against hand-computed values ----------------------------------------------------------

TEST(EvalMetrics, PsnrAndSsimMatchHandComputedValues) {
  // Constant frames 51/255 and 77/255: MSE = (26/255)², and in every window μ = the value, σ = 0,
  // so SSIM = (2ab + C1) / (a² + b² + C1).
  const double a = 51 / 255.0, b = 77 / 255.0;
  const cv::Mat ca = constant_image(16, 12, a), cb = constant_image(16, 12, b);
  // (Frames hold float32: agreement to float precision.)
  EXPECT_NEAR(eval::mse(ca, cb), (26 / 255.0) * (26 / 255.0), 1e-8);
  EXPECT_NEAR(eval::psnr(ca, cb), 20 * std::log10(255.0 / 26.0), 1e-5);
  EXPECT_NEAR(eval::ssim(ca, cb), (2 * a * b + 1e-4) / (a * a + b * b + 1e-4), 1e-6);
  EXPECT_DOUBLE_EQ(eval::psnr(ca, ca), eval::kPsnrCap);
  EXPECT_NEAR(eval::ssim(ca, ca), 1.0, 1e-12);
  // Structured frames: SSIM against the definition computed with plain loops.
  const cv::Mat ra = random_image(23, 17, 1), rb = random_image(23, 17, 2);
  cv::Mat rc = ra * 0.6 + rb * 0.4;
  EXPECT_NEAR(eval::ssim(ra, rb), naive_ssim(ra, rb), 1e-9);
  EXPECT_NEAR(eval::ssim(ra, rc), naive_ssim(ra, rc), 1e-9);
  EXPECT_GT(eval::ssim(ra, rc), eval::ssim(ra, rb));
  // PSNR of a known uniform offset on structured content.
  EXPECT_NEAR(eval::psnr(ra, ra + cv::Scalar::all(0.1)), 20.0, 1e-5);
  // Too small for the SSIM window.
  EXPECT_THROW(eval::ssim(constant_image(10, 20, 0.5), constant_image(10, 20, 0.5)), Error);
}

TEST(EvalMetrics, EdgeMapsAndLowPassFollowTheirDefinitions) {
  // A ramp of slope s has Sobel/8 gradient magnitude s inside the frame.
  cv::Mat ramp(20, 30, CV_32FC3);
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 30; ++x) ramp.at<cv::Vec3f>(y, x) = cv::Vec3f::all(0.01f * x);
  const cv::Mat e = eval::edge_map(ramp);
  EXPECT_NEAR(e.at<float>(10, 15), 0.01, 1e-6);
  EXPECT_NEAR(eval::edge_ssim(ramp, ramp), 1.0, 1e-12);
  // The low-pass keeps a constant frame and a constant offset passes through unchanged.
  EXPECT_DOUBLE_EQ(eval::lowpass_sigma(96, 64), 2.0);
  EXPECT_DOUBLE_EQ(eval::lowpass_sigma(20, 20), 1.0);
  const cv::Mat l0 = eval::lowpass_luma(ramp), l1 = eval::lowpass_luma(ramp + cv::Scalar::all(0.15));
  EXPECT_NEAR(eval::mean_abs_diff(l0, l1), 0.15, 1e-6);
  EXPECT_NEAR(eval::mean_abs_diff(eval::lowpass_luma(constant_image(20, 20, 0.3)), cv::Mat(20, 20, CV_32F, 0.3f)), 0,
              1e-7);
}

TEST(EvalMetrics, CoverCropScalesAndCentres) {
  cv::Mat img(6, 8, CV_32FC3);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) img.at<cv::Vec3f>(y, x) = cv::Vec3f(x, y, x + 10 * y);
  // 8×6 covering 4×2: scale 0.5 → 4×3 (2×2 means), then the centre rows [0, 2).
  const cv::Mat half = eval::cover_crop(img, 4, 2);
  ASSERT_EQ(half.cols, 4);
  ASSERT_EQ(half.rows, 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 4; ++x) {
      EXPECT_NEAR(half.at<cv::Vec3f>(y, x)[0], 2 * x + 0.5, 1e-5);
      EXPECT_NEAR(half.at<cv::Vec3f>(y, x)[1], 2 * y + 0.5, 1e-5);
    }
  // 8×6 covering 4×6: no scaling, the centre columns [2, 6).
  const cv::Mat mid = eval::cover_crop(img, 4, 6);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 4; ++x) EXPECT_EQ(mid.at<cv::Vec3f>(y, x), img.at<cv::Vec3f>(y, x + 2));
  // Same size: untouched.
  EXPECT_EQ(cv::norm(eval::cover_crop(img, 8, 6), img, cv::NORM_INF), 0);
}

TEST(EvalMetrics, WarpMaskAndErrorFollowTheirDefinitions) {
  const int w = 10, h = 6;
  const cv::Mat fwd(h, w, CV_32FC2, cv::Scalar(2, 0));
  // Out of frame: x + 2 > 9 for the last two columns.
  cv::Mat mask = eval::warp_mask(fwd, cv::Mat());
  EXPECT_EQ(cv::countNonZero(mask), 8 * h);
  EXPECT_EQ(cv::countNonZero(mask.colRange(8, 10)), 0);
  // A consistent backward flow keeps the same pixels; an inconsistent one (zero) occludes them all:
  // |f + b|² = 4 > 0.01 · 4 + 0.5.
  EXPECT_EQ(cv::countNonZero(eval::warp_mask(fwd, cv::Mat(h, w, CV_32FC2, cv::Scalar(-2, 0))) != mask), 0);
  const cv::Mat none = eval::warp_mask(fwd, cv::Mat(h, w, CV_32FC2, cv::Scalar(0, 0)));
  EXPECT_EQ(cv::countNonZero(none), 0);
  // Warping samples x + f: a horizontal ramp moved back by 2 pixels.
  cv::Mat ramp(h, w, CV_32FC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) ramp.at<cv::Vec3f>(y, x) = cv::Vec3f::all(0.05f * x);
  const cv::Mat warped = eval::warp_back(ramp, fwd);
  EXPECT_NEAR(warped.at<cv::Vec3f>(3, 4)[0], 0.05 * 6, 1e-6);
  // Error: mean over counted pixels and channels of the squared difference.
  const cv::Mat prev = constant_image(w, h, 0.5), cur = constant_image(w, h, 0.6);
  EXPECT_NEAR(eval::warp_error(prev, eval::warp_back(cur, fwd), mask), 0.01, 1e-7);
  EXPECT_TRUE(std::isnan(eval::warp_error(prev, cur, none)));
}

TEST(EvalPairing, NearestFrameWithinTheGapRequestsGoingForward) {
  const std::string dir = temp_dir("eval_pairing");
  write_video(dir + "/s.mkv", translating(16, 16, 5, 1, 0), "8");  // frames at k/8 s: exact in binary
  eval::NearestFrameStream s(dir + "/s.mkv", "source");
  EXPECT_DOUBLE_EQ(s.interval(), 0.125);
  EXPECT_EQ(s.nearest(0.17, 0.0625, 0).index, 1);
  EXPECT_EQ(s.nearest(0.1875, 0.0625, 1).index, 1);  // an exact tie goes to the earlier frame
  EXPECT_EQ(s.nearest(0.19, 0.0625, 2).index, 2);
  EXPECT_THROW(s.nearest(0.1, 0.0625, 3), Error);  // going back in time
  eval::NearestFrameStream t(dir + "/s.mkv", "target");
  EXPECT_EQ(t.nearest(0.5625, 0.0625, 0).index, 4);  // the last frame, 0.0625 s away
  EXPECT_THROW(t.nearest(0.6, 0.0625, 1), Error);    // past the end by more than the gap
}

// --- eval: the known answers of issue 8 ----------------------------------------------------------

TEST(Eval, IdenticalFramesGiveZeroWarpError) {
  const std::string dir = temp_dir("eval_identical");
  write_video(dir + "/still.mkv", translating(64, 48, 6, 0, 0), "30");
  const json j = measure(dir + "/still.mkv", dir + "/still.mkv");
  EXPECT_LT(j["edited"]["warp_error"].get<double>(), 1e-6);
  EXPECT_LT(j["source"]["warp_error"].get<double>(), 1e-6);
  EXPECT_EQ(j["edited"]["flicker_index"].get<double>(), 0.0);
  EXPECT_EQ(j["pairs"], 6);
}

TEST(Eval, EditEqualToTheSourceGivesTheSourcesOwnFigures) {
  const std::string dir = temp_dir("eval_same");
  write_video(dir + "/src.mkv", translating(96, 64, 10, 1, 0.5), "30");
  fs::copy_file(dir + "/src.mkv", dir + "/edit.mkv");
  const std::string run_json = write_run_json(dir);
  auto r = run_cli({"eval", "--source", dir + "/src.mkv", "--edited", dir + "/edit.mkv", "--target", dir + "/src.mkv",
                    "--run-json", run_json, "--json", dir + "/e.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(read_file(dir + "/e.json"));
  // Exactly the layout of the issue (more keys inside the objects).
  EXPECT_EQ(keys_of(j), (std::vector<std::string>{"edited", "pairs", "run", "source", "target"}));
  for (const char* k : {"warp_error", "flicker_index", "edge_ssim", "psnr", "ssim", "frames"})
    EXPECT_TRUE(j["edited"].contains(k)) << k;
  for (const char* role : {"source", "target"})
    for (const char* k : {"warp_error", "flicker_index"}) EXPECT_TRUE(j[role][k].is_number()) << role << " " << k;
  EXPECT_EQ(j["pairs"], 10);
  ASSERT_EQ(j["edited"]["frames"].size(), 10u);
  EXPECT_EQ(j["run"], json::parse(read_file(run_json)));
  // The same numbers, bit for bit.
  EXPECT_EQ(j["edited"]["warp_error"], j["source"]["warp_error"]);
  EXPECT_EQ(j["edited"]["flicker_index"], j["source"]["flicker_index"]);
  EXPECT_EQ(j["target"]["warp_error"], j["source"]["warp_error"]);
  EXPECT_GT(j["source"]["warp_error"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["edited"]["edge_ssim"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["edited"]["psnr"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(j["edited"]["ssim"].get<double>(), 1.0);
  for (size_t i = 0; i < 10; ++i) {
    const json& f = j["edited"]["frames"][i];
    EXPECT_EQ(f["index"], i);
    EXPECT_EQ(f["source_index"], i);
    EXPECT_EQ(f["target_index"], i);
    EXPECT_EQ(f.contains("warp_error"), i < 9);
    if (i < 9) {
      EXPECT_EQ(f["warp_error"], f["source_warp_error"]);
    }
  }
  // The terminal table shows the figures and the run beside them.
  for (const char* s : {"10 pairs compared at 96×64", "warp error", "flicker index", "edge SSIM", "PSNR (dB)",
                        "100.00", "speed (run)", "fps", "12.5", "{\"p50\":80.5,\"p99\":120}"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

TEST(Eval, TranslationWithItsExactFlowGivesNearZeroWarpError) {
  const std::string dir = temp_dir("eval_flow");
  const int w = 96, h = 64, n = 8;
  const double vx = 1.5, vy = 0.5;
  write_video(dir + "/src.mkv", translating(w, h, n, vx, vy), "30");
  // A different edit of the same motion (inverted colours) so the edit is not the source.
  write_video(dir + "/edit.mkv", make_clip(w, h, n, [&](int f, double x, double y, int ch) {
                return 0.9 - 0.8 * texture(x - vx * f, y - vy * f, ch);
              }),
              "30");
  auto flow_file = [&](const std::string& name, double fx, double fy, bool with_bwd, int transitions) {
    io::TensorMap m;
    at::Tensor f = at::empty({transitions, h, w, 2}, at::kFloat);
    f.select(3, 0).fill_(fx);
    f.select(3, 1).fill_(fy);
    m["flow"] = f;
    if (with_bwd) m["flow_bwd"] = -f;
    io::save_safetensors(dir + "/" + name, m);
    return dir + "/" + name;
  };
  const std::string src = dir + "/src.mkv", edit = dir + "/edit.mkv";
  const json exact = measure(src, edit, "", flow_file("exact.safetensors", vx, vy, true, n - 1));
  const double exact_error = exact["edited"]["warp_error"].get<double>();
  EXPECT_LT(exact_error, 1e-3);
  EXPECT_LT(exact["source"]["warp_error"].get<double>(), 1e-3);
  EXPECT_TRUE(exact["source"]["occlusion_check"].get<bool>());
  const json fwd_only = measure(src, edit, "", flow_file("fwd.safetensors", vx, vy, false, n - 1));
  EXPECT_LT(fwd_only["edited"]["warp_error"].get<double>(), 1e-3);
  EXPECT_FALSE(fwd_only["source"]["occlusion_check"].get<bool>());
  // Without flow_bwd only the pixels that leave the frame are dropped: 2 columns and 1 row.
  EXPECT_NEAR(fwd_only["edited"]["frames"][0]["counted_fraction"].get<double>(), (w - 2.0) * (h - 1.0) / (w * h), 1e-9);
  // The flow is what makes it small: no motion compensation is far worse.
  const json zero = measure(src, edit, "", flow_file("zero.safetensors", 0, 0, false, n - 1));
  EXPECT_GT(zero["edited"]["warp_error"].get<double>(), 50 * exact_error);
  // DIS finds the motion too.
  const json dis = measure(src, edit);
  EXPECT_LT(dis["edited"]["warp_error"].get<double>(), 1e-3);
  EXPECT_EQ(dis["source"]["flow"], "dis");
  // Too few or too many transitions are one clear error.
  expect_eval_error({src, edit, "", flow_file("short.safetensors", vx, vy, false, n - 2)},
                    "got 6 transitions for more than 7 edited frames");
  expect_eval_error({src, edit, "", flow_file("long.safetensors", vx, vy, false, n)},
                    "with F = 8 edited frames, got 8 transitions");
}

TEST(Eval, FlickeringTwinDiffersByTheClosedForm) {
  const std::string dir = temp_dir("eval_twin");
  const int w = 128, h = 96, n = 12;
  const double vx = 1.0, vy = 0.5;
  write_video(dir + "/src.mkv", translating(w, h, n, vx, vy), "30");
  // The smooth edit stays within [0.3, 0.78]; the twin adds 38/255 ≈ 0.149 to every value of
  // every other frame (8-bit 0.15), so nothing clips.
  auto edit = [&](int f, double x, double y, int ch) { return 0.9 - 0.8 * texture(x - vx * f, y - vy * f, ch); };
  const double d = 38 / 255.0;
  write_video(dir + "/smooth.mkv", make_clip(w, h, n, edit), "30");
  write_video(dir + "/twin.mkv", make_clip(w, h, n, [&](int f, double x, double y, int ch) {
                return edit(f, x, y, ch) + (f % 2 ? d : 0.0);
              }),
              "30");
  const json smooth = measure(dir + "/src.mkv", dir + "/smooth.mkv");
  const json twin = measure(dir + "/src.mkv", dir + "/twin.mkv");
  const double dw = twin["edited"]["warp_error"].get<double>() - smooth["edited"]["warp_error"].get<double>();
  EXPECT_NEAR(dw, 0.0225, 0.1 * 0.0225) << "smooth " << smooth["edited"]["warp_error"] << " twin "
                                          << twin["edited"]["warp_error"];
  EXPECT_NEAR(twin["edited"]["flicker_index"].get<double>(), 0.15, 0.015);
  EXPECT_LT(smooth["edited"]["flicker_index"].get<double>(), 0.1 * 0.15);
  EXPECT_EQ(smooth["source"], twin["source"]);
}

TEST(Eval, PsnrAndSsimOfVideosMatchHandComputedValues) {
  const std::string dir = temp_dir("eval_psnr");
  const double a = 51 / 255.0, b = 77 / 255.0;
  write_video(dir + "/a.mkv", make_clip(24, 16, 3, [&](int, double, double, int) { return a; }), "10");
  write_video(dir + "/b.mkv", make_clip(24, 16, 3, [&](int, double, double, int) { return b; }), "10");
  const json j = measure(dir + "/a.mkv", dir + "/a.mkv", dir + "/b.mkv");
  const double psnr = 20 * std::log10(255.0 / 26.0), ssim = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4);
  EXPECT_NEAR(j["edited"]["psnr"].get<double>(), psnr, 1e-5);
  EXPECT_NEAR(j["edited"]["ssim"].get<double>(), ssim, 1e-6);
  for (const json& f : j["edited"]["frames"]) {
    EXPECT_NEAR(f["psnr"].get<double>(), psnr, 1e-5);
    EXPECT_NEAR(f["ssim"].get<double>(), ssim, 1e-6);
  }
}

// Colour statistics: a constant frame against another (means differ by 26/255 in each channel, both
// σ = 0) is 26·√3 apart; an edit that darkens by one level per frame against a constant target
// drifts by the difference of its last and first quarters' errors; source PSNR is the source's.
TEST(Eval, ColourErrorAndDriftFollowTheirDefinitions) {
  const double a = 51 / 255.0, b = 77 / 255.0;
  EXPECT_NEAR(eval::colour_distance(constant_image(16, 12, a), constant_image(16, 12, b)), 26 * std::sqrt(3.0), 1e-4);
  const cv::Mat r = random_image(23, 17, 1);
  EXPECT_NEAR(eval::colour_distance(r, r), 0.0, 1e-12);
  EXPECT_NEAR(eval::colour_distance(r, r + cv::Scalar(0.1, 0, 0)), 25.5, 1e-3);  // σ unchanged

  const std::string dir = temp_dir("eval_colour");
  const int frames = 8;
  write_video(dir + "/src.mkv", make_clip(24, 16, frames, [&](int, double, double, int) { return b; }), "10");
  write_video(dir + "/edit.mkv",
              make_clip(24, 16, frames, [&](int f, double, double, int) { return (128.0 - f) / 255.0; }), "10");
  write_video(dir + "/tgt.mkv", make_clip(24, 16, frames, [&](int, double, double, int) { return 128 / 255.0; }), "10");
  const json j = measure(dir + "/src.mkv", dir + "/edit.mkv", dir + "/tgt.mkv");
  // Frame f is f levels off in each channel: error f·√3; quarters of 8 pairs: frames 6, 7 vs 0, 1.
  EXPECT_NEAR(j["edited"]["colour_error"].get<double>(), 3.5 * std::sqrt(3.0), 1e-3);
  EXPECT_NEAR(j["edited"]["colour_drift"].get<double>(), 6 * std::sqrt(3.0), 1e-3);
  EXPECT_NEAR(j["edited"]["source_psnr"].get<double>(), 20 * std::log10(255.0 / 51.0), 1e-4);
  EXPECT_NEAR(j["edited"]["frames"][3]["colour_error"].get<double>(), 3 * std::sqrt(3.0), 1e-3);
}

TEST(Eval, SixteenFpsEditOfAThirtyFpsSourcePairsByTime) {
  const std::string dir = temp_dir("eval_fps");
  const Clip src = translating(48, 32, 60, 1.0, 0.25);  // 2 s at 30 fps, every frame different
  write_video(dir + "/src.mkv", src, "30");
  // Edited frame k (at k/16 s) is source frame round(k · 30/16), ties to the earlier frame.
  auto expected = [](int k) {
    const double x = k * 30.0 / 16.0;
    return static_cast<int>(x - std::floor(x) > 0.5 ? std::ceil(x) : std::floor(x));
  };
  Clip edit{48, 32, {}};
  for (int k = 0; k < 32; ++k) edit.frames.push_back(src.frames[expected(k)]);
  write_video(dir + "/edit.mkv", edit, "16");
  const json j = measure(dir + "/src.mkv", dir + "/edit.mkv", dir + "/src.mkv");
  ASSERT_EQ(j["pairs"], 32);
  int ties = 0;
  for (int k = 0; k < 32; ++k) {
    const json& f = j["edited"]["frames"][k];
    EXPECT_EQ(f["source_index"], expected(k)) << "edited frame " << k;
    EXPECT_EQ(f["target_index"], expected(k)) << "edited frame " << k;
    EXPECT_NEAR(f["time"].get<double>(), k / 16.0, 0.0006);
    EXPECT_DOUBLE_EQ(f["psnr"].get<double>(), 100.0) << "edited frame " << k;
    ties += k % 8 == 4;
  }
  EXPECT_EQ(ties, 4);  // k = 4, 12, 20, 28 fall halfway between two source frames
  // One edited frame more (2.0 s) has no source frame within 1/60 s: the source ends at 59/30 s.
  edit.frames.push_back(src.frames[59]);
  write_video(dir + "/long.mkv", edit, "16");
  auto r = run_cli({"eval", "--source", dir + "/src.mkv", "--edited", dir + "/long.mkv", "--json", dir + "/x.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("edited frame 32 at 2.0000 s with none"), std::string::npos) << r.err;
  EXPECT_FALSE(file_exists(dir + "/x.json"));
}

TEST(Eval, ReadsOneInputFromStdin) {
  const std::string dir = temp_dir("eval_stdin");
  write_video(dir + "/src.mkv", translating(48, 32, 6, 1, 0), "30");
  write_video(dir + "/edit.mkv", translating(48, 32, 6, 1, 1), "30");
  const json from_file = measure(dir + "/src.mkv", dir + "/edit.mkv");
  auto r = run_cli({"eval", "--source", "-", "--edited", dir + "/edit.mkv", "--json", "-"}, dir + "/src.mkv");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json from_stdin = json::parse(r.out);  // stdout holds only the JSON; the table went to stderr
  EXPECT_EQ(from_stdin["edited"]["warp_error"], from_file["edited"]["warp_error"]);
  EXPECT_EQ(from_stdin["source"]["flicker_index"], from_file["source"]["flicker_index"]);
  EXPECT_EQ(from_stdin["source"]["path"], "-");
  EXPECT_NE(r.err.find("warp error"), std::string::npos) << r.err;
}

TEST(Eval, BadInputsGiveOneLineExitOneAndNoOutputs) {
  const std::string dir = temp_dir("eval_bad");
  const Clip clip = translating(48, 32, 12, 1, 0);
  write_video(dir + "/src.mkv", clip, "30");
  write_video(dir + "/short.mkv", Clip{48, 32, {clip.frames.begin(), clip.frames.begin() + 6}}, "30");
  write_video(dir + "/one.mkv", Clip{48, 32, {clip.frames[0]}}, "30");
  write_video(dir + "/tiny.mkv", translating(8, 8, 3, 0, 0), "30");
  std::ofstream(dir + "/garbage.mkv") << "not a video at all, only text";
  ASSERT_EQ(run_tool({kFfmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=0.2",
                      dir + "/audio.wav"}),
            0);
  ASSERT_EQ(run_tool({kFfmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=48x32:rate=30",
                      "-frames:v", "0", "-c:v", "ffv1", dir + "/empty.avi"}),
            0);
  const std::string bytes = read_file(dir + "/src.mkv");
  std::ofstream(dir + "/truncated.mkv", std::ios::binary).write(bytes.data(), bytes.size() * 6 / 10);
  std::ofstream(dir + "/bad_run.json") << "{\"fps\": ";
  std::ofstream(dir + "/list_run.json") << "[1, 2]";
  io::save_safetensors(dir + "/noflow.safetensors", {{"motion", at::zeros({11, 32, 48, 2})}});
  io::save_safetensors(dir + "/wrongsize.safetensors", {{"flow", at::zeros({11, 16, 48, 2})}});
  io::save_safetensors(dir + "/f64.safetensors", {{"flow", at::zeros({11, 32, 48, 2}, at::kDouble)}});
  io::save_safetensors(dir + "/away.safetensors", {{"flow", at::full({11, 32, 48, 2}, 100.0f)}});

  const std::string s = dir + "/src.mkv";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  // Through the binary: exit code 1, one line, nothing on stdout, no output file.
  const std::vector<Case> cases = {
      {{"--source", dir + "/missing.mkv", "--edited", s}, "missing.mkv: expected a readable video file, got no such file"},
      {{"--source", s, "--edited", dir + "/garbage.mkv"}, "garbage.mkv: expected a readable video file"},
      {{"--source", dir + "/audio.wav", "--edited", s}, "expected a video stream, got only audio"},
      {{"--source", dir + "/truncated.mkv", "--edited", s}, "truncated or corrupt"},
      {{"--source", dir + "/empty.avi", "--edited", s}, "expected video frames, got an empty video"},
      {{"--source", dir + "/short.mkv", "--edited", s}, "expected a source frame within half a source frame interval"},
      {{"--source", s, "--edited", s, "--run-json", dir + "/bad_run.json"}, "expected JSON, got a parse error"},
      {{"--source", s, "--edited", s, "--run-json", dir + "/list_run.json"}, "expected a JSON object"},
      {{"--source", s, "--edited", s, "--flow", dir + "/wrongsize.safetensors"}, "(F−1, 32, 48, 2)"},
      {{"--source", "-", "--edited", "-"}, "at most one input from stdin"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args{"eval"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    for (const std::string o : {"--json", "--report"}) {
      args.push_back(o);
      args.push_back(dir + "/out" + (o == "--json" ? std::string(".json") : std::string(".html")));
    }
    const auto r = run_cli(args);
    const std::string what = c.args[1] + " / " + c.args[3] + (c.args.size() > 4 ? " " + c.args[5] : "");
    EXPECT_EQ(r.exit_code, 1) << what << ": " << r.err;
    EXPECT_EQ(r.err_lines(), 1) << what << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << what << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << what << ": " << r.out;
    for (const char* out : {"/out.json", "/out.json.part", "/out.html", "/out.html.part"})
      EXPECT_FALSE(file_exists(dir + out)) << what << ": " << out;
  }
  EXPECT_EQ(run_cli({"eval", "--source", s}).exit_code, 2);  // --edited is required
  const auto help = run_cli({"eval", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* o : {"--source", "--edited", "--target", "--run-json", "--flow", "--json", "--report"})
    EXPECT_NE(help.out.find(o), std::string::npos) << o;
  // The same errors raised in the library (one line each).
  expect_eval_error({s, dir + "/empty.avi", "", ""}, "expected at least 2 frames (temporal metrics compare consecutive frames), got 0");
  expect_eval_error({s, dir + "/one.mkv", "", ""}, "expected at least 2 frames (temporal metrics compare consecutive frames), got 1");
  expect_eval_error({s, s, dir + "/short.mkv", ""}, "expected a target frame within half a target frame interval");
  expect_eval_error({dir + "/tiny.mkv", dir + "/tiny.mkv", "", ""}, "at least 11×11 pixels");
  expect_eval_error({s, s, "", dir + "/noflow.safetensors"}, "expected a tensor named 'flow'");
  expect_eval_error({s, s, "", dir + "/f64.safetensors"}, "expected 'flow' in F32");
  expect_eval_error({s, s, "", dir + "/away.safetensors"}, "the warp error is undefined");
}

TEST(Eval, HtmlReportOpensInHeadlessChromiumWithItsPlots) {
  const std::string dir = temp_dir("eval_report");
  write_video(dir + "/src.mkv", translating(96, 64, 20, 1, 0.5), "30");
  write_video(dir + "/edit.mkv", make_clip(96, 64, 20, [](int f, double x, double y, int ch) {
                return 0.9 - 0.8 * texture(x - f, y - 0.5 * f, ch) + (f % 5 == 0 ? 0.05 : 0.0);
              }),
              "30");
  const std::string run_json = write_run_json(dir);
  auto r = run_cli({"eval", "--source", dir + "/src.mkv", "--edited", dir + "/edit.mkv", "--target", dir + "/src.mkv",
                    "--run-json", run_json, "--report", dir + "/report.html"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string html = read_file(dir + "/report.html");
  EXPECT_EQ(html.find("http"), std::string::npos) << "the report must not reference anything outside itself";
  EXPECT_EQ(html.find("<script"), std::string::npos);

  const std::string chromium = find_in_path("chromium");
  if (chromium.empty()) {
    if (test::ci_mode()) FAIL() << "chromium is required under CI (scripts/install-deps.sh installs it)";
    GTEST_SKIP() << "chromium not installed";
  }
  const std::string dom_file = dir + "/dom.html";
  const int rc = run_tool({"timeout", "120", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", "--user-data-dir=" + dir + "/chromium-profile", "--dump-dom",
                           "file://" + dir + "/report.html"},
                          dom_file);
  ASSERT_EQ(rc, 0) << read_file(dom_file + ".err");
  const std::string dom = read_file(dom_file);
  // Five plots (warp error, flicker, edge SSIM, PSNR, SSIM), each with its curves.
  EXPECT_EQ(count_of(dom, "<svg class=\"plot\""), 5u) << dom.substr(0, 2000);
  for (const char* id : {"plot-warp", "plot-flicker", "plot-edge-ssim", "plot-psnr", "plot-ssim"}) {
    const size_t at = dom.find(std::string("id=\"") + id + "\"");
    ASSERT_NE(at, std::string::npos) << id;
    const size_t end = dom.find("</svg>", at);
    EXPECT_GE(count_of(dom.substr(at, end - at), "<polyline class=\"series"), 1u) << id;
  }
  // Warp error and flicker carry edited, source and target curves.
  EXPECT_EQ(count_of(dom, "data-series=\"target\""), 2u);
  // The strips: 20 pairs kept evenly (every second one: 10 columns) × source, edited, target.
  EXPECT_EQ(count_of(dom, "<img class=\"thumb\""), 30u);
  EXPECT_EQ(count_of(dom, "src=\"data:image/jpeg;base64,/9j/"), 30u);
  EXPECT_NE(dom.find("id=\"summary\""), std::string::npos);
  EXPECT_NE(dom.find("id=\"run\""), std::string::npos);
  EXPECT_NE(dom.find("latency_ms"), std::string::npos);
}
