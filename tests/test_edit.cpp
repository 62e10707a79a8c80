// `sanastream edit` end to end with a `tiny` random-weight package (make-package) on real footage
// from Debian packages (SANASTREAM_TEST_MEDIA, fetched by the CTest fixture): sizes, frame counts and
// durations at the model rate, audio kept in sync, pipes, streaming (the first frame out before the
// last frame in), the dump that feeds latent-edit, flat memory on a long input, a prompt schedule,
// Ctrl-C, and one-line errors for bad inputs. ffprobe judges what was written.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/compare.h"
#include "edit/edit_session.h"
#include "io/safetensors.h"
#include "support/edit_support.h"
#include "support/media_tools.h"
#include "support/test_env.h"

extern char** environ;

using namespace sanastream;
using namespace sanastream::test;
using nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kMedia = SANASTREAM_TEST_MEDIA;
constexpr double kFps = kTinyFps;

// A cut of a clip (stream copy, audio kept): the first `seconds`.
std::string cut(const std::string& clip, double seconds, const std::string& dir) {
  const std::string out = dir + "/cut_" + std::to_string(static_cast<int>(seconds * 10)) + "_" + clip;
  EXPECT_EQ(run_tool({"ffmpeg", "-v", "error", "-y", "-i", kMedia + "/" + clip, "-t", std::to_string(seconds), "-c",
                      "copy", out}),
            0);
  return out;
}

// Frames `edit` gives for `frames` source frames spanning `seconds` (constant rate): the model-rate
// frames with a source frame within half a source interval, k/fps < span − interval/2.
int64_t model_frames(double seconds, int64_t frames) {
  const double interval = seconds / static_cast<double>(frames);
  return static_cast<int64_t>(std::ceil((seconds - interval / 2) * kFps - 1e-6));
}

// The file's video and audio agree with the source's: size, frames at the model rate, duration, and the
// audio's end relative to the first picture (±1 model frame).
void expect_edited_copy(const std::string& source, const std::string& out, const std::string& audio_codec) {
  const Probe src = ffprobe(source), got = ffprobe(out);
  ASSERT_TRUE(src.ok && got.ok) << out;
  const ProbedStream* sv = src.of("video");
  const ProbedStream* v = got.of("video");
  ASSERT_TRUE(sv && v) << out;
  EXPECT_EQ(v->width, sv->width);
  EXPECT_EQ(v->height, sv->height);
  const double span = sv->end - sv->start;
  EXPECT_EQ(v->frames, model_frames(span, sv->frames)) << out;
  EXPECT_NEAR(v->end - v->start, span, 1 / kFps + 1e-3) << out;
  const ProbedStream* sa = src.of("audio");
  const ProbedStream* a = got.of("audio");
  if (audio_codec.empty()) {
    EXPECT_EQ(a, nullptr) << out;
    return;
  }
  ASSERT_TRUE(sa && a) << out;
  EXPECT_EQ(a->codec, audio_codec) << out;
  // Sync, measured where the sound ends relative to the first picture: Matroska shifts every stream by
  // MP3's encoder priming (69 ms for cockatoo), which ffprobe then counts as audio before the picture.
  EXPECT_NEAR(a->end - v->start, sa->end - sv->start, 1 / kFps) << out << ": audio out of sync";
  EXPECT_GE(a->end - a->start, sa->end - sa->start - 1 / kFps) << out << ": audio lost";
}

}  // namespace

// The README's main command (scripts/demo-edit.sh, as scripts/run.sh runs it) on a short real clip:
// the embedded demo model, found beside the executable, edits it to night — every frame out, the
// picture darker than the source's.
TEST(EditDemoModel, TheReadmeMainCommandTurnsAShortClipToNight) {
  const std::string dir = temp_dir("edit_readme");
  const std::string src = kMedia + "/realshort.mp4", out = dir + "/night.mp4";
  std::string log;
  ASSERT_EQ(run_tool({std::string(SANASTREAM_SOURCE_DIR) + "/scripts/demo-edit.sh", SANASTREAM_CLI_PATH, src, out}, &log),
            0)
      << log;
  EXPECT_FALSE(file_exists(out + ".part"));
  const json j = read_json(out + ".json");
  EXPECT_EQ(j["model_source"], "demo package");
  EXPECT_EQ(j["frames_in"], 36);
  EXPECT_EQ(j["frames_out"], 19);  // 1.2 s at the demo model's 16 fps
  EXPECT_EQ(ffprobe(out).of("video")->frames, 19);
  // Mean luma of every frame (ffmpeg: grey, raw).
  auto mean_luma = [](const std::string& path) {
    std::string grey;
    EXPECT_EQ(run_tool({"ffmpeg", "-v", "error", "-i", path, "-vf", "format=gray", "-f", "rawvideo", "-"}, &grey), 0);
    double sum = 0;
    for (unsigned char c : grey) sum += c;
    return grey.empty() ? 0.0 : sum / static_cast<double>(grey.size());
  };
  const double before = mean_luma(src), after = mean_luma(out);
  EXPECT_LT(after, 0.75 * before) << "source luma " << before << ", edited " << after;
}

// --gpus 2 (docs/MULTI_GPU.md) on the CPU: the VAE and DiT stages in their own threads give the
// one-device run's frames and latents byte for byte, with a prompt change mid-stream; the modes it
// does not take are one error line.
TEST(EditMultiGpu, PipelinedStagesGiveTheOneDeviceOutput) {
  const std::string dir = temp_dir("edit_gpus2");
  const std::string src = kMedia + "/cockatoo.mp4";  // 14 s: 9 chunks at 16 fps
  std::ofstream(dir + "/schedule.tsv") << "0\tmake it snowy\n3\tmake it look like night\n";
  for (const std::string gpus : {"1", "2"}) {
    auto r = run_edit_cli({"-i", src, "--prompt-schedule", dir + "/schedule.tsv", "--device", "cpu", "--gpus", gpus,
                           "--output-size", "64x36",
                           "-o", dir + "/out" + gpus + ".y4m", "--dump-latents", dir + "/lat" + gpus + ".safetensors",
                           "--json", dir + "/out" + gpus + ".json"});
    ASSERT_EQ(r.exit_code, 0) << gpus << ": " << r.err;
  }
  EXPECT_EQ(read_file(dir + "/out1.y4m"), read_file(dir + "/out2.y4m"));
  const io::TensorMap a = io::load_safetensors(dir + "/lat1.safetensors"),
                      b = io::load_safetensors(dir + "/lat2.safetensors");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) EXPECT_TRUE(at::equal(t, b.at(k))) << k;
  const json j = read_json(dir + "/out2.json");
  EXPECT_EQ(j["chunks"], 9);
  EXPECT_EQ(read_json(dir + "/out1.json")["chunks"], 9);
  EXPECT_EQ(j["prompts"].size(), 2u);
  auto bad = run_edit_cli({"-i", src, "-p", "make it snowy", "--device", "cpu", "--gpus", "2", "--realtime", "-o",
                           dir + "/bad.mp4"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err_lines(), 1) << bad.err;
  EXPECT_NE(bad.err.find("--gpus 2: expected 1, or 2 for the streaming mode without --realtime and --control"),
            std::string::npos)
      << bad.err;
  EXPECT_FALSE(file_exists(dir + "/bad.mp4"));
}

// --vae-call-latents 1: the VAE takes one latent frame a call (the peak memory of one piece); the
// latents and frames are the whole-chunk run's (auto on the CPU) up to the convolutions' rounding on
// other frame counts; the run reports the value it used; a bad value is one line.
TEST(EditMemory, VaeCallsOfOneLatentFrameGiveTheWholeChunksResult) {
  const std::string dir = temp_dir("edit_vae_calls");
  const std::string src = synthetic_clip(dir, 17 + 2 * 24);
  for (const std::string n : {"auto", "1"}) {  // auto: whole chunks on the CPU
    auto r = run_edit_cli({"-i", src, "-p", "make it snowy", "--device", "cpu", "--first-chunk", "3",
                           "--vae-call-latents", n, "-o", dir + "/out" + n + ".y4m", "--dump-latents",
                           dir + "/lat" + n + ".safetensors", "--json", dir + "/run" + n + ".json"});
    ASSERT_EQ(r.exit_code, 0) << n << ": " << r.err;
    EXPECT_EQ(read_json(dir + "/run" + n + ".json")["vae_call_latents"], n == "1" ? 1 : 0);
  }
  const io::TensorMap a = io::load_safetensors(dir + "/latauto.safetensors"),
                      b = io::load_safetensors(dir + "/lat1.safetensors");
  for (const char* k : {"inputs.src_latents", "output.latents"})
    EXPECT_LT(compare_tensors(b.at(k).to(at::kFloat), a.at(k).to(at::kFloat)).rel_l2, 1e-5) << k;
  const std::string ya = read_file(dir + "/outauto.y4m"), yb = read_file(dir + "/out1.y4m");
  ASSERT_EQ(ya.size(), yb.size());
  int64_t worst = 0;
  for (size_t i = 0; i < ya.size(); ++i)
    worst = std::max<int64_t>(worst, std::abs(static_cast<int>(static_cast<uint8_t>(ya[i])) -
                                              static_cast<int>(static_cast<uint8_t>(yb[i]))));
  EXPECT_LE(worst, 1);
  auto bad = run_edit_cli({"-i", src, "-p", "make it snowy", "--device", "cpu", "--vae-call-latents", "some", "-o",
                           dir + "/bad.y4m"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err_lines(), 1) << bad.err;
  EXPECT_FALSE(file_exists(dir + "/bad.y4m"));
}

// edit::run_edits (docs/MULTI_GPU.md): two sessions at once, each the output it has alone; a session
// that fails reports its error line while the others finish.
TEST(EditMultiStream, SessionsAtOnceGiveTheirOutputsAloneAndFailAlone) {
  const std::string dir = temp_dir("edit_streams");
  auto request = [&](const std::string& prompt, const std::string& out) {
    edit::EditRequest r;
    r.input = kMedia + "/realshort.mp4";
    r.prompt = prompt;
    r.output = dir + "/" + out;
    r.model = tiny_package();
    r.device = "cpu";
    r.seed = 7;
    return r;
  };
  edit::run_edit(request("make it snowy", "alone.y4m"));
  edit::EditRequest missing = request("make it snowy", "never.y4m");
  missing.input = dir + "/missing.mp4";
  const std::vector<json> results = edit::run_edits(
      {request("make it snowy", "a.y4m"), request("make it look like night", "b.y4m"), missing});
  ASSERT_EQ(results.size(), 3u);
  for (int k : {0, 1}) {
    EXPECT_FALSE(results[k].contains("error")) << results[k].dump();
    EXPECT_EQ(results[k]["frames_out"], 19) << k;
    EXPECT_TRUE(results[k]["latency_ms_p50"].is_number()) << k;
  }
  EXPECT_EQ(read_file(dir + "/a.y4m"), read_file(dir + "/alone.y4m"));
  EXPECT_NE(read_file(dir + "/a.y4m"), read_file(dir + "/b.y4m"));
  ASSERT_TRUE(results[2].contains("error"));
  EXPECT_NE(results[2]["error"].get<std::string>().find("missing.mp4"), std::string::npos) << results[2].dump();
  EXPECT_FALSE(file_exists(dir + "/never.y4m"));
}

TEST(EditFootage, RealshortMp4AndMkvKeepSizeDurationAndAacAudio) {
  const std::string dir = temp_dir("edit_realshort");
  const std::string src = kMedia + "/realshort.mp4";
  for (const char* ext : {"mp4", "mkv"}) {
    const std::string out = dir + "/out." + ext;
    auto r = run_edit_cli({"-i", src, "-p", "make it snowy", "-o", out, "--json", out + ".json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(file_exists(out + ".part"));
    expect_edited_copy(src, out, "aac");  // copied: both containers take AAC
    const json j = read_json(out + ".json");
    EXPECT_EQ(j["frames_in"], 36);
    EXPECT_EQ(j["output_size"], "320x240");
    EXPECT_EQ(j["processing_size"], "128x96");  // the package's resolution closest to 4:3
    EXPECT_EQ(j["frames_out"], ffprobe(out).of("video")->frames);
  }
}

TEST(EditFootage, CockatooMp3IsCopiedIntoMkvAndBecomesOpusInWebm) {
  const std::string dir = temp_dir("edit_cockatoo");
  const std::string src = cut("cockatoo.mp4", 2.0, dir);
  auto mkv = run_edit_cli({"-i", src, "-p", "make it snowy", "-o", dir + "/out.mkv"});
  ASSERT_EQ(mkv.exit_code, 0) << mkv.err;
  expect_edited_copy(src, dir + "/out.mkv", "mp3");
  auto webm = run_edit_cli({"-i", src, "-p", "make it snowy", "-o", dir + "/out.webm"});
  ASSERT_EQ(webm.exit_code, 0) << webm.err;
  expect_edited_copy(src, dir + "/out.webm", "opus");
  EXPECT_EQ(ffprobe(dir + "/out.webm").of("video")->codec, "vp9");
}

TEST(EditFootage, VtestAviWithoutAudio) {
  const std::string dir = temp_dir("edit_vtest");
  const std::string src = cut("vtest.avi", 3.0, dir);
  auto r = run_edit_cli({"-i", src, "-p", "make it snowy", "-o", dir + "/out.mp4", "--json", dir + "/out.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_edited_copy(src, dir + "/out.mp4", "");
  EXPECT_EQ(read_json(dir + "/out.json")["output_size"], "768x576");
}

TEST(EditPipe, Y4mFromFfmpegThroughEditToFfmpeg) {
  const std::string dir = temp_dir("edit_pipe");
  const std::string cmd = "ffmpeg -v error -i " + kMedia + "/realshort.mp4 -f yuv4mpegpipe - | " + SANASTREAM_CLI_PATH +
                          " -q edit --model " + tiny_package() + " -i - -p 'make it snowy' -o - | ffmpeg -v error -y -f "
                          "yuv4mpegpipe -i - " + dir + "/out.mkv";
  ASSERT_EQ(std::system(("bash -o pipefail -c \"" + cmd + "\"").c_str()), 0) << cmd;
  const Probe p = ffprobe(dir + "/out.mkv");
  ASSERT_TRUE(p.ok && p.of("video"));
  EXPECT_EQ(p.of("video")->frames, model_frames(36 * 1499.0 / 45000, 36));
  EXPECT_EQ(p.of("video")->width, 320);
}

// ffmpeg -re feeds 6 chunks of frames at real-time pace into `edit -i - -o -`; the first edited frame
// must come out before the feeder has written its last frame. The same run's --dump-latents then
// gives latent-edit's output.latents.
TEST(EditStreaming, FirstFrameOutBeforeTheLastFrameInAndTheDumpFeedsLatentEdit) {
  const std::string dir = temp_dir("edit_streaming");
  const int64_t frames = 17 + 5 * 24;  // 6 chunks with --first-chunk 3
  int feed[2], out[2];
  ASSERT_EQ(pipe2(feed, O_CLOEXEC), 0);  // only the dup2 copies reach the children
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  auto spawn = [](const std::vector<std::string>& args, int in_fd, int out_fd) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    EXPECT_EQ(posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0) << args[0];
    posix_spawn_file_actions_destroy(&fa);
    return pid;
  };
  const int null_in = open("/dev/null", O_RDONLY);
  const pid_t feeder = spawn({"ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=16",
                              "-frames:v", std::to_string(frames), "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"},
                             null_in, feed[1]);
  const pid_t editor = spawn({SANASTREAM_CLI_PATH, "-q", "edit", "--model", tiny_package(), "--seed", "7", "-i", "-", "-p",
                              "make it snowy", "-o", "-", "--first-chunk", "3", "--dump-latents",
                              dir + "/dump.safetensors", "--json", dir + "/run.json"},
                             feed[0], out[1]);
  close(null_in);
  close(feed[0]);
  close(feed[1]);
  close(out[1]);
  const auto t0 = Clock::now();
  std::atomic<double> feeder_done{-1};
  std::thread wait_feeder([&] {
    int status = 0;
    waitpid(feeder, &status, 0);
    feeder_done = std::chrono::duration<double>(Clock::now() - t0).count();
  });
  double first_frame = -1;  // when the first "FRAME" of the y4m stream arrived (the header comes at once)
  std::string y4m;
  char buf[65536];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) {
    y4m.append(buf, static_cast<size_t>(n));
    if (first_frame < 0 && y4m.find("FRAME") != std::string::npos)
      first_frame = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  close(out[0]);
  int status = 0;
  waitpid(editor, &status, 0);
  wait_feeder.join();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::printf("feeder wrote its last frame after %.2f s; the first edited frame came out after %.2f s\n",
              feeder_done.load(), first_frame);
  EXPECT_GT(first_frame, 0);
  EXPECT_LT(first_frame, feeder_done.load());
  std::ofstream(dir + "/out.y4m", std::ios::binary) << y4m;
  EXPECT_EQ(ffprobe(dir + "/out.y4m").of("video")->frames, frames);
  EXPECT_EQ(read_json(dir + "/run.json")["chunks"], 6);

  auto r = run_cli({"latent-edit", "--model", tiny_package(), "--inputs",
                    dir + "/dump.safetensors", "--output", dir + "/latent_edit.safetensors", "--first-chunk", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const at::Tensor want = io::load_safetensors(dir + "/dump.safetensors").at("output.latents");
  const at::Tensor got = io::load_safetensors(dir + "/latent_edit.safetensors").at("output.latents");
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LE(compare_tensors(got, want).rel_l2, 1e-4);
}

// 101 chunks of a synthetic stream (303 latent frames, rebased past a 48-position RoPE table every few
// chunks): the resident set after chunk 100 is within 50 MB of chunk 10's.
TEST(EditStreaming, ResidentMemoryIsFlatOverALongInput) {
  const std::string dir = temp_dir("edit_memory");
  const std::string src = synthetic_clip(dir, 17 + 100 * 24, "64x96");
  auto r = run_edit_cli({"-i", src, "-p", "make it snowy", "-o", dir + "/out.nut", "--first-chunk", "3",
                         "--rope-limit", "48", "--json", dir + "/run.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = read_json(dir + "/run.json");
  const auto rss = j["rss_mib_by_chunk"].get<std::vector<double>>();
  ASSERT_GE(rss.size(), 101u);
  std::printf("resident set: chunk 10 %.1f MiB, chunk 100 %.1f MiB\n", rss[10], rss[100]);
  EXPECT_LT(rss[100] - rss[10], 50.0);
}

// 3 chunks (17 + 24 + 24 frames at 16 fps: chunks start at 0, 1.0625 and 2.5625 s); the prompt
// scheduled at 1.5 s applies from chunk 2. Chunks 0 and 1 equal a run with the first prompt only;
// chunk 2 differs.
TEST(EditPromptSchedule, ChangesThePromptAtTheStatedChunk) {
  const std::string dir = temp_dir("edit_schedule");
  const std::string src = synthetic_clip(dir, 17 + 2 * 24);
  std::ofstream(dir + "/schedule.tsv") << "# seconds\tprompt\n0\tmake it snowy\n1.5\tturn everything red\n";
  auto a = run_edit_cli({"-i", src, "-p", "make it snowy", "-o", dir + "/a.mkv", "--first-chunk", "3", "--dump-latents",
                 dir + "/a.safetensors"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = run_edit_cli({"-i", src, "--prompt-schedule", dir + "/schedule.tsv", "-o", dir + "/b.mkv", "--first-chunk", "3",
                 "--dump-latents", dir + "/b.safetensors", "--json", dir + "/b.json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const json prompts = read_json(dir + "/b.json")["prompts"];
  ASSERT_EQ(prompts.size(), 2u) << prompts.dump();
  EXPECT_EQ(prompts[0]["chunk"], 0);
  EXPECT_EQ(prompts[1]["chunk"], 2);
  EXPECT_EQ(prompts[1]["prompt"], "turn everything red");
  const at::Tensor la = io::load_safetensors(dir + "/a.safetensors").at("output.latents");
  const at::Tensor lb = io::load_safetensors(dir + "/b.safetensors").at("output.latents");
  ASSERT_EQ(la.size(2), 9);
  EXPECT_TRUE(at::equal(la.narrow(2, 0, 6), lb.narrow(2, 0, 6)));
  EXPECT_GT(compare_tensors(lb.narrow(2, 6, 3), la.narrow(2, 6, 3)).rel_l2, 1e-3);
}

// --plan: the DiT's projections quantized (simulated, FP8): the latents move by the format's error,
// no more; a plan naming a gate is one line and exit 1, with no output.
TEST(EditQuantPlan, APlanMovesTheLatentsByTheFormatsError) {
  const std::string dir = temp_dir("edit_plan");
  const std::string src = synthetic_clip(dir, 17);
  std::ofstream(dir + "/plan.json") << R"({"format": "sanastream-quant-plan", "version": 1, "groups": [
      {"layers": ["attn.q", "attn.k", "attn.v", "attn.proj", "mlp.inverted_conv", "mlp.point_conv"],
       "blocks": [0, 1], "precision": "fp8"}]})";
  auto a = run_edit_cli({"-i", src, "-p", "make it snowy", "-o", dir + "/a.mkv", "--first-chunk", "3", "--dump-latents",
                         dir + "/a.safetensors"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = run_edit_cli({"-i", src, "-p", "make it snowy", "-o", dir + "/b.mkv", "--first-chunk", "3", "--dump-latents",
                         dir + "/b.safetensors", "--plan", dir + "/plan.json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const at::Tensor la = io::load_safetensors(dir + "/a.safetensors").at("output.latents");
  const at::Tensor lb = io::load_safetensors(dir + "/b.safetensors").at("output.latents");
  const double e = compare_tensors(lb, la).rel_l2;
  EXPECT_GT(e, 1e-4);
  EXPECT_LT(e, 0.2);
  std::ofstream(dir + "/gate.json") << R"({"format": "sanastream-quant-plan", "version": 1, "groups": [
      {"layers": ["attn.output_gate"], "blocks": [0, 1], "precision": "fp8"}]})";
  auto bad = run_edit_cli({"-i", src, "-p", "make it snowy", "-o", dir + "/c.mkv", "--plan", dir + "/gate.json"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err_lines(), 1) << bad.err;
  EXPECT_NE(bad.err.find("stays BF16"), std::string::npos) << bad.err;
  EXPECT_FALSE(file_exists(dir + "/c.mkv"));
}

TEST(EditInterrupt, SigintLeavesAValidShorterOutputAndExits130) {
  const std::string dir = temp_dir("edit_sigint");
  const std::string src = synthetic_clip(dir, 17 + 60 * 24);
  const std::string out = dir + "/out.mp4";
  std::vector<std::string> args = {SANASTREAM_CLI_PATH, "-q", "edit", "--model", tiny_package(), "-i", src, "-p",
                                   "make it snowy", "-o", out};
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  // Wait until edited frames reach OUT.part, then interrupt.
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline && !(file_exists(out + ".part") && fs::file_size(out + ".part") > 4096))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_FALSE(file_exists(out + ".part"));
  const Probe p = ffprobe(out);
  ASSERT_TRUE(p.ok && p.of("video")) << "the interrupted output is not readable";
  EXPECT_GT(p.of("video")->frames, 0);
  EXPECT_LT(p.of("video")->frames, 17 + 60 * 24);
}

TEST(EditErrors, BadInputsGiveOneLineExitOneAndNoOutput) {
  const std::string dir = temp_dir("edit_errors");
  std::ofstream(dir + "/readme.txt") << "not a video\n";
  std::ifstream in(kMedia + "/realshort.mp4", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir + "/half.mp4", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::ifstream avi_in(kMedia + "/vtest.avi", std::ios::binary);
  std::string avi((std::istreambuf_iterator<char>(avi_in)), {});
  for (size_t p = avi.find("div3"); p != std::string::npos && p < 4096; p = avi.find("div3", p)) avi.replace(p, 4, "QQQ9");
  std::ofstream(dir + "/unknown.avi", std::ios::binary) << avi.substr(0, 1 << 20);
  const std::string good = kMedia + "/realshort.mp4";
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"-i", dir + "/missing.mp4", "-p", "x"}, "missing.mp4"},
      {{"-i", dir + "/readme.txt", "-p", "x"}, "readme.txt"},
      {{"-i", dir + "/half.mp4", "-p", "x"}, "half.mp4"},
      {{"-i", dir + "/unknown.avi", "-p", "x"}, "unknown.avi"},
      {{"-i", "http://127.0.0.1:9/clip.mp4", "-p", "x"}, "127.0.0.1"},
      {{"-i", good, "-p", "x", "--size", "16x16"}, "--size"},
      {{"-i", good, "-p", "x", "--output-size", "0x240"}, "--output-size"},
      {{"-i", good, "-p", "   "}, "empty"},
      {{"-i", good}, "empty"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string out = dir + "/out" + std::to_string(i) + ".mp4";
    std::vector<std::string> args = {"edit", "--model", tiny_package(), "-o", out};
    args.insert(args.end(), cases[i].args.begin(), cases[i].args.end());
    const auto t0 = Clock::now();
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << cases[i].needle << ": " << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_NE(r.err.find(cases[i].needle), std::string::npos) << r.err;
    EXPECT_FALSE(file_exists(out)) << cases[i].needle;
    EXPECT_FALSE(file_exists(out + ".part")) << cases[i].needle;
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 30) << cases[i].needle;
  }
  // No package at all: one line naming --model.
  auto none = run_cli({"edit", "-i", good, "-p", "x", "-o", dir + "/none.mp4", "--model", dir + "/no-such-package"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("--model"), std::string::npos) << none.err;
}

// --mode bidirectional: the short-clip model on a whole clip (a package with a bidirectional DiT);
// longer clips and packages without that DiT are one line naming --mode streaming.
TEST(EditBidirectional, AShortClipWholeAndTooLongOrMissingModelRefused) {
  const std::string dir = temp_dir("edit_bidirectional");
  const std::string pkg = dir + "/bi";
  auto made = run_cli({"-q", "make-package", "--random-weights", "--preset", "tiny", "--bidirectional", pkg});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string src = kMedia + "/realshort.mp4";
  auto r = run_cli({"-q", "edit", "--model", pkg, "--mode", "bidirectional", "--steps", "2", "-i", src, "-p",
                    "make it snowy", "-o", dir + "/out.mp4", "--json", dir + "/out.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_edited_copy(src, dir + "/out.mp4", "aac");
  const json j = read_json(dir + "/out.json");
  EXPECT_EQ(j["mode"], "bidirectional");
  EXPECT_EQ(j["chunks"], 1);

  const std::string longer = cut("cockatoo.mp4", 7.0, dir);  // 112 frames at 16 fps > max_frames 81
  for (const auto& [model, out] : {std::pair{pkg, dir + "/long.mp4"}, std::pair{tiny_package(), dir + "/none.mp4"}}) {
    auto e = run_cli({"edit", "--model", model, "--mode", "bidirectional", "-i", model == pkg ? longer : src, "-p",
                      "make it snowy", "-o", out});
    EXPECT_EQ(e.exit_code, 1) << e.err;
    EXPECT_EQ(e.err_lines(), 1) << e.err;
    EXPECT_NE(e.err.find("--mode streaming"), std::string::npos) << e.err;
    EXPECT_FALSE(file_exists(out));
    EXPECT_FALSE(file_exists(out + ".part"));
  }
}

// eval --suite: every row edited with the package and measured; one table per family and overall.
TEST(EvalSuite, EditsEachRowAndSummarisesPerFamily) {
  const std::string dir = temp_dir("eval_suite");
  fs::copy_file(kMedia + "/realshort.mp4", dir + "/realshort.mp4");
  const std::string vtest = cut("vtest.avi", 1.5, dir);
  std::ofstream(dir + "/suite.jsonl") << "{\"source\": \"realshort.mp4\", \"prompt\": \"make it snowy\", \"family\": "
                                         "\"weather\", \"target\": \"realshort.mp4\"}\n\n"
                                      << json{{"source", vtest}, {"prompt", "turn it red"}, {"family", "colour"}}.dump()
                                      << "\n";
  auto r = run_cli({"-q", "eval", "--suite", dir + "/suite.jsonl", "--model", tiny_package(), "--json", dir + "/suite.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("weather"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("overall"), std::string::npos) << r.out;
  const json j = read_json(dir + "/suite.json");
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["overall"]["rows"], 2);
  EXPECT_EQ(j["families"]["weather"]["rows"], 1);
  EXPECT_EQ(j["families"]["colour"]["rows"], 1);
  EXPECT_TRUE(j["families"]["colour"]["psnr"].is_null());  // no target in that row
  const double w = j["families"]["weather"]["warp_error"].get<double>(), c = j["families"]["colour"]["warp_error"];
  EXPECT_NEAR(j["overall"]["warp_error"].get<double>(), (w + c) / 2, 1e-12);
  EXPECT_EQ(j["families"]["weather"]["psnr"], j["rows"][0]["figures"]["psnr"]);
  EXPECT_GT(j["rows"][1]["figures"]["e2e_fps"].get<double>(), 0);

  std::ofstream(dir + "/bad.jsonl") << "{\"source\": \"realshort.mp4\", \"family\": \"x\"}\n";
  auto bad = run_cli({"eval", "--suite", dir + "/bad.jsonl", "--model", tiny_package()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err_lines(), 1) << bad.err;
  EXPECT_NE(bad.err.find("\"prompt\""), std::string::npos) << bad.err;
}
