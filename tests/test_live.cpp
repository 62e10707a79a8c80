// Live sources and sinks of `sanastream edit` (issue 7), with real servers: FFmpeg's own RTMP and
// SRT listen modes receive what sanastream sends, and FFmpeg pushes synthetic streams into
// sanastream listening. Covered: a 30-second stream in and out over RTMP and over SRT (decodable,
// every frame), a connection dropped mid-stream and reconnected, unreachable sources failing fast,
// --realtime dropping (or repeating) whole chunks behind a slow engine while keeping the pace, and
// the control channel (prompt change at the next chunk, bad commands, pause/resume, stdin).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/compare.h"
#include "core/stats.h"
#include "edit/control.h"
#include "io/safetensors.h"
#include "support/edit_support.h"
#include "support/media_tools.h"

using namespace sanastream;
using namespace sanastream::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A port nobody uses now (bound once by the kernel's choice, then released).
int free_port(int type) {
  const int fd = socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Whether a local socket is bound to port: TCP listening (/proc/net/tcp state 0A) or UDP bound
// (/proc/net/udp). A probe connection would be taken for the sender, so the table is read instead.
bool bound(int port, bool tcp) {
  std::ifstream f(tcp ? "/proc/net/tcp" : "/proc/net/udp");
  std::string line;
  std::getline(f, line);
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state;
    in >> slot >> local >> remote >> state;
    const size_t colon = local.find(':');
    if (colon == std::string::npos || std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
    if (!tcp || state == "0A") return true;
  }
  return false;
}

bool wait_bound(int port, bool tcp, double seconds) {
  const auto t0 = Clock::now();
  while (seconds_since(t0) < seconds) {
    if (bound(port, tcp)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// `sanastream -q edit` in the background with the tiny package; stderr to DIR/NAME.err.
std::vector<std::string> edit_args(const std::vector<std::string>& args) {
  std::vector<std::string> all = {SANASTREAM_CLI_PATH, "-q", "edit", "--model", tiny_package(), "--seed", "7"};
  all.insert(all.end(), args.begin(), args.end());
  return all;
}

// ffmpeg pushing n seconds of a 96×64 16 fps test pattern with a 440 Hz tone (H.264 + AAC).
std::vector<std::string> feeder(const std::string& url, const std::string& format, double seconds, bool paced) {
  std::vector<std::string> a = {"ffmpeg", "-v", "error"};
  if (paced) a.push_back("-re");
  for (const std::string& s : {"-f", "lavfi", "-i", "testsrc2=size=96x64:rate=16", "-f", "lavfi", "-i",
                               "sine=frequency=440:sample_rate=44100", "-t"})
    a.push_back(s);
  a.push_back(std::to_string(seconds));
  for (const std::string& s : {"-c:v", "libx264", "-g", "16", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f"}) a.push_back(s);
  a.push_back(format);
  a.push_back(url);
  return a;
}

// The 30-second stream in over rtmp or srt (sanastream listening), out over the same protocol to an
// FFmpeg listening and saving it: every frame arrives, decodable, with the audio.
void expect_stream_through(const std::string& protocol) {
  const bool rtmp = protocol == "rtmp";
  const int in = free_port(rtmp ? SOCK_STREAM : SOCK_DGRAM), out = free_port(rtmp ? SOCK_STREAM : SOCK_DGRAM);
  const std::string in_url = protocol + "://127.0.0.1:" + std::to_string(in) + (rtmp ? "/live/in" : "");
  const std::string out_url = protocol + "://127.0.0.1:" + std::to_string(out) + (rtmp ? "/live/out" : "");
  const std::string format = rtmp ? "flv" : "mpegts";
  const std::string dir = temp_dir("live_" + protocol);
  const std::string received = dir + "/received." + (rtmp ? "flv" : "ts");
  std::vector<std::string> listen = {"ffmpeg", "-v", "error", "-y"};
  for (const std::string& a : rtmp ? std::vector<std::string>{"-listen", "1", "-i", out_url}
                                   : std::vector<std::string>{"-i", out_url + "?mode=listener"})
    listen.push_back(a);
  for (const std::string& a : {"-c", "copy", "-f", format.c_str()}) listen.push_back(a);
  listen.push_back(received);
  Process receiver(listen, "", dir + "/receiver.err");
  ASSERT_TRUE(wait_bound(out, rtmp, 10)) << "the receiver does not listen: " << slurp(dir + "/receiver.err");
  Process editor(edit_args({"--listen", "-i", in_url, "-o", out_url, "-p", "make it snowy", "--reconnect", "0",
                            "--json", dir + "/run.json"}),
                 "", dir + "/edit.err");
  ASSERT_TRUE(wait_bound(in, rtmp, 30)) << slurp(dir + "/edit.err");
  // RTMP (TCP) takes the stream as fast as it comes; SRT's live mode delivers at the pace it was sent.
  Process feed(feeder(rtmp ? in_url : in_url + "?linger=5", format, 30, !rtmp), "", dir + "/feeder.err");
  EXPECT_EQ(feed.wait(120), 0) << slurp(dir + "/feeder.err");
  ASSERT_EQ(editor.wait(180), 0) << slurp(dir + "/edit.err");
  EXPECT_EQ(receiver.wait(30), 0) << slurp(dir + "/receiver.err");
  const json j = read_json(dir + "/run.json");
  EXPECT_EQ(j["frames_in"], 480);
  EXPECT_EQ(j["frames_out"], 480);
  EXPECT_TRUE(j["source"]["live"].get<bool>());
  const Probe p = ffprobe(received);
  ASSERT_TRUE(p.ok && p.of("video")) << received;
  EXPECT_EQ(p.of("video")->codec, "h264");
  EXPECT_EQ(p.of("video")->frames, 480);
  ASSERT_NE(p.of("audio"), nullptr);
  EXPECT_NEAR(p.of("audio")->end - p.of("audio")->start, 30.0, 0.2);
}

}  // namespace

TEST(EditLive, ThirtySecondsInOverRtmpOutOverRtmp) { expect_stream_through("rtmp"); }

TEST(EditLive, ThirtySecondsInOverSrtOutOverSrt) { expect_stream_through("srt"); }

// sanastream listens on RTMP; the first sender is killed mid-stream and a second one connects: the
// session reconnects with its caches and goes on, the output keeps both parts on one clock, and when
// no third sender comes within the window the session ends with one error line (exit 1) and a
// complete output.
TEST(EditLive, ADroppedConnectionReconnectsAndTheSessionContinues) {
  const std::string dir = temp_dir("live_reconnect");
  const int port = free_port(SOCK_STREAM);
  const std::string url = "rtmp://127.0.0.1:" + std::to_string(port) + "/live/in";
  const std::string out = dir + "/out.mkv";
  Process editor(edit_args({"--listen", "-i", url, "-o", out, "-p", "make it snowy", "--reconnect", "3",
                            "--reconnect-window", "8", "--json", dir + "/run.json"}),
                 "", dir + "/edit.err");
  ASSERT_TRUE(wait_bound(port, true, 30)) << slurp(dir + "/edit.err");
  {
    Process first(feeder(url, "flv", 30, true), "", dir + "/feeder1.err");
    std::this_thread::sleep_for(std::chrono::seconds(3));
    first.signal(SIGKILL);
    first.wait(5);
  }
  ASSERT_TRUE(wait_bound(port, true, 10)) << "no longer listening: " << slurp(dir + "/edit.err");
  Process second(feeder(url, "flv", 5, false), "", dir + "/feeder2.err");
  EXPECT_EQ(second.wait(60), 0) << slurp(dir + "/feeder2.err");
  const auto t_end = Clock::now();
  EXPECT_EQ(editor.wait(120), 1) << slurp(dir + "/edit.err");
  EXPECT_LT(seconds_since(t_end), 8 + 15) << "the reconnection window is 8 s";
  const std::string err = slurp(dir + "/edit.err");
  EXPECT_NE(err.find("reconnection attempt(s) within 8 s failed"), std::string::npos) << err;
  const json j = read_json(dir + "/run.json");
  EXPECT_EQ(j["reconnects"], 1);
  EXPECT_FALSE(j["source_lost"].is_null());
  const int64_t frames = j["frames_out"];
  EXPECT_GE(frames, 5 * 16 + 16);  // the second sender's 5 s and at least 1 s of the first's
  EXPECT_NEAR(frames, j["frames_in"].get<int64_t>(), 4);  // model-rate frames by timestamp: a late frame is doubled
  const Probe p = ffprobe(out);
  ASSERT_TRUE(p.ok && p.of("video")) << out;
  EXPECT_EQ(p.of("video")->frames, frames);
  // One clock: the second part follows the first one frame later, no gap, no overlap.
  EXPECT_NEAR(p.of("video")->end - p.of("video")->start, frames / kTinyFps, 2 / kTinyFps);
}

// Nothing listens: a caller fails at once, before any model is loaded, with one line and exit 1.
// The time counted is the source's: the run minus a run failing on a missing local file (the start
// of the process, which a loaded machine stretches).
TEST(EditLive, AnUnreachableSourceFailsWithinFiveSeconds) {
  const std::string dir = temp_dir("live_unreachable");
  auto timed = [&](const std::string& input, CliResult* r) {
    const auto t0 = Clock::now();
    *r = run_edit_cli({"-i", input, "-o", dir + "/out.mp4", "-p", "make it snowy", "--timeout", "2"});
    return seconds_since(t0);
  };
  for (const std::string& url : {"rtmp://127.0.0.1:" + std::to_string(free_port(SOCK_STREAM)) + "/live/x",
                                 "srt://127.0.0.1:" + std::to_string(free_port(SOCK_DGRAM)),
                                 "http://127.0.0.1:" + std::to_string(free_port(SOCK_STREAM)) + "/clip.mp4",
                                 "udp://127.0.0.1:" + std::to_string(free_port(SOCK_DGRAM))}) {
    CliResult base, r;
    const double start = timed(dir + "/missing.mp4", &base);
    ASSERT_EQ(base.exit_code, 1) << base.err;
    const double took = timed(url, &r);
    EXPECT_EQ(r.exit_code, 1) << url;
    EXPECT_EQ(r.err_lines(), 1) << url << ": " << r.err;
    EXPECT_NE(r.err.find(url.substr(0, 12)), std::string::npos) << r.err;
    EXPECT_LT(took - start, 5.0) << url;
    EXPECT_FALSE(file_exists(dir + "/out.mp4") || file_exists(dir + "/out.mp4.part")) << url;
    std::printf("%s failed after %.2f s (a missing file: %.2f s): %s", url.c_str(), took, start, r.err.c_str());
  }
}

// A file read in real time by an engine too slow for it (the tiny model at 384×256 on the CPU):
// whole chunks are dropped and counted, the edited ones keep their source times (the output spans
// the input's time), and the latency is measured; with --lag-policy repeat the last edited chunk
// fills the gaps instead, so every input frame has an output frame.
TEST(EditRealtime, ASlowEngineDropsWholeChunksAndKeepsThePace) {
  const std::string dir = temp_dir("live_realtime");
  const int64_t frames = 17 + 5 * 24;
  const std::string src = synthetic_clip(dir, frames);
  for (const std::string policy : {"drop", "repeat"}) {
    const std::string out = dir + "/" + policy + ".mkv";
    auto r = run_edit_cli({"-i", src, "-o", out, "-p", "make it snowy", "--realtime", "--lag-policy", policy,
                           "--size", "384x256", "--first-chunk", "3", "--json", dir + "/" + policy + ".json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = read_json(dir + "/" + policy + ".json");
    const int64_t dropped = j["dropped_frames"], out_frames = j["frames_out"], repeated = j["repeated_frames"];
    std::printf("%s: %lld of %lld frames dropped, %lld repeated, %lld chunks edited, latency p50 %.0f ms p99 %.0f ms\n",
                policy.c_str(), static_cast<long long>(dropped), static_cast<long long>(frames),
                static_cast<long long>(repeated), static_cast<long long>(j["chunks"].get<int64_t>()),
                j["latency_ms_p50"].get<double>(), j["latency_ms_p99"].get<double>());
    EXPECT_GT(dropped, 0) << policy;
    EXPECT_TRUE(dropped % 24 == 0 || (dropped - 17) % 24 == 0) << "whole chunks: " << dropped;
    EXPECT_EQ(j["frames_in"], frames);
    // Repeats fill the dropped chunks, except a dropped first chunk (nothing edited to repeat yet).
    if (policy == "drop") EXPECT_EQ(repeated, 0);
    if (policy == "repeat") EXPECT_TRUE(repeated == dropped || repeated == dropped - 17) << repeated;
    EXPECT_EQ(out_frames, frames - dropped + repeated);
    EXPECT_GT(j["latency_ms_p50"].get<double>(), 0);
    EXPECT_GE(j["latency_ms_p99"].get<double>(), j["latency_ms_p50"].get<double>());
    const Probe p = ffprobe(out);
    ASSERT_TRUE(p.ok && p.of("video")) << out;
    EXPECT_EQ(p.of("video")->frames, out_frames);
    EXPECT_NEAR(p.of("video")->end, frames / kTinyFps, 1.5 / kTinyFps) << "the output keeps the source's clock";
  }
}

TEST(EditControl, ParsesTheFourCommandsAndRejectsTheRest) {
  using Kind = edit::ControlCommand::Kind;
  EXPECT_EQ(edit::parse_control_line("prompt: make it night").command->kind, Kind::kPrompt);
  EXPECT_EQ(edit::parse_control_line("  PROMPT :  make it night \r").command->text, "make it night");
  EXPECT_EQ(edit::parse_control_line("pause").command->kind, Kind::kPause);
  EXPECT_EQ(edit::parse_control_line("resume\r").command->kind, Kind::kResume);
  EXPECT_EQ(edit::parse_control_line(" stats ").command->kind, Kind::kStats);
  for (const std::string bad : {"prompt:", "prompt:   ", "pause now", "stats: all", "stop", "prompt make it night"}) {
    const auto p = edit::parse_control_line(bad);
    EXPECT_FALSE(p.command.has_value()) << bad;
    EXPECT_FALSE(p.error.empty()) << bad;
  }
}

TEST(EditControl, LatencyQuantilesInConstantMemoryAreWithinHalfAPercent) {
  LogHistogram h;
  std::vector<double> v;
  for (int i = 1; i <= 10000; ++i) {
    const double x = 5.0 + std::fmod(i * 7.31, 900.0);
    h.add(x);
    v.push_back(x);
  }
  for (double q : {0.0, 0.5, 0.9, 0.99, 1.0}) EXPECT_NEAR(h.quantile(q), percentile(v, q), 0.006 * percentile(v, q)) << q;
  EXPECT_EQ(LogHistogram().quantile(0.5), 0);
}

namespace {

// A client of the control socket: one command line out, one JSON line back.
class ControlClient {
 public:
  explicit ControlClient(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~ControlClient() { close(fd_); }
  bool connected() const { return connected_; }
  json ask(const std::string& line) {
    const std::string l = line + "\n";
    if (write(fd_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) return json();
    std::string got;
    char c = 0;
    while (read(fd_, &c, 1) == 1 && c != '\n') got.push_back(c);
    return got.empty() ? json() : json::parse(got);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

}  // namespace

// A file in real time with a control socket: `stats` answers at once, a bad command gets an error
// line and changes nothing, `prompt:` takes effect at the next chunk to begin — the chunks before it
// equal a run with the first prompt only, the chunks from it on differ — and pause/resume pass whole
// chunks through unedited.
TEST(EditControl, APromptChangeAppliesAtTheNextChunkAndBadCommandsChangeNothing) {
  const std::string dir = temp_dir("live_control");
  const int64_t frames = 17 + 6 * 24;
  const std::string src = synthetic_clip(dir, frames);
  const std::string sock = dir + "/ctl.sock";
  Process editor(edit_args({"-i", src, "-o", dir + "/b.mkv", "-p", "make it snowy", "--realtime", "--first-chunk", "3",
                            "--control", "unix:" + sock, "--dump-latents", dir + "/b.safetensors", "--json",
                            dir + "/b.json"}),
                 "", dir + "/edit.err");
  const auto t0 = Clock::now();
  while (!file_exists(sock) && seconds_since(t0) < 30) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ControlClient client(sock);
  ASSERT_TRUE(client.connected()) << slurp(dir + "/edit.err");
  const json stats = client.ask("stats");
  EXPECT_EQ(stats["ok"], true) << stats.dump();
  EXPECT_EQ(stats["prompt"], "make it snowy");
  for (const std::string bad : {"make it red", "prompt:", "pause please"}) {
    const json e = client.ask(bad);
    EXPECT_EQ(e["ok"], false) << bad;
    EXPECT_TRUE(e.contains("error")) << e.dump();
  }
  // Once chunk 1 has been edited, the new prompt: it applies to the chunk after the one in hand.
  while (client.ask("stats")["chunks"].get<int64_t>() < 2 && seconds_since(t0) < 60)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const json changed = client.ask("prompt: turn everything red");
  ASSERT_EQ(changed["ok"], true) << changed.dump();
  const int64_t at = changed["chunk"];
  EXPECT_GE(at, 2);
  ASSERT_LT(at, 7) << "the prompt came after the last chunk";
  ASSERT_EQ(editor.wait(120), 0) << slurp(dir + "/edit.err");
  EXPECT_FALSE(file_exists(sock)) << "the socket is removed at the end";

  const json j = read_json(dir + "/b.json");
  ASSERT_EQ(j["dropped_frames"], 0) << "the tiny model keeps up with 16 fps at 96×64";
  ASSERT_EQ(j["prompts"].size(), 2u) << j["prompts"].dump();
  EXPECT_EQ(j["prompts"][1]["chunk"], at);
  EXPECT_EQ(j["prompts"][1]["prompt"], "turn everything red");
  auto a = run_edit_cli({"-i", src, "-o", dir + "/a.mkv", "-p", "make it snowy", "--first-chunk", "3",
                         "--dump-latents", dir + "/a.safetensors"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const at::Tensor la = io::load_safetensors(dir + "/a.safetensors").at("output.latents");
  const at::Tensor lb = io::load_safetensors(dir + "/b.safetensors").at("output.latents");
  const int64_t before = 3 + 3 * (at - 1);  // latent frames of chunks 0 … at−1
  ASSERT_EQ(la.sizes(), lb.sizes());
  // In real time each latent frame is encoded as its frames arrive (8 at a time, not 24): the same
  // latents up to the convolutions' rounding on other frame counts.
  EXPECT_LT(compare_tensors(lb.narrow(2, 0, before), la.narrow(2, 0, before)).rel_l2, 1e-4);
  EXPECT_GT(compare_tensors(lb.narrow(2, before, 3), la.narrow(2, before, 3)).rel_l2, 1e-3);
}

// Paused after chunk 1 and resumed two chunks later: the chunks in between pass through unedited
// (not counted as edited), every frame still comes out.
TEST(EditControl, PauseAndResumeOverTheSocket) {
  const std::string dir = temp_dir("live_resume");
  const int64_t frames = 17 + 6 * 24;
  const std::string src = synthetic_clip(dir, frames);
  const std::string sock = dir + "/ctl.sock";
  Process editor(edit_args({"-i", src, "-o", dir + "/out.mkv", "-p", "make it snowy", "--realtime", "--first-chunk",
                            "3", "--control", "unix:" + sock, "--json", dir + "/run.json"}),
                 "", dir + "/edit.err");
  const auto t0 = Clock::now();
  while (!file_exists(sock) && seconds_since(t0) < 30) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ControlClient client(sock);
  ASSERT_TRUE(client.connected()) << slurp(dir + "/edit.err");
  while (client.ask("stats")["chunks"].get<int64_t>() < 1 && seconds_since(t0) < 60)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // The reply comes when the next chunk begins, paused; resume once two paused chunks are done.
  const json paused = client.ask("pause");
  ASSERT_EQ(paused["ok"], true) << paused.dump();
  while (client.ask("stats")["chunk"].get<int64_t>() < paused["chunk"].get<int64_t>() + 2 && seconds_since(t0) < 60)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(client.ask("stats")["paused"], true);
  const json resumed = client.ask("resume");
  ASSERT_EQ(resumed["ok"], true) << resumed.dump();
  const int64_t skipped = resumed["chunk"].get<int64_t>() - paused["chunk"].get<int64_t>();
  EXPECT_GE(skipped, 2) << "two chunks came out while paused";
  ASSERT_EQ(editor.wait(120), 0) << slurp(dir + "/edit.err");
  const json j = read_json(dir + "/run.json");
  EXPECT_EQ(j["dropped_frames"], 0);
  EXPECT_EQ(j["frames_out"], frames);
  EXPECT_EQ(j["stream_chunks"], 7);
  EXPECT_EQ(j["chunks"], 7 - skipped) << "the paused chunks passed through unedited";
  EXPECT_LT(resumed["chunk"].get<int64_t>(), 7) << "resumed before the end: later chunks are edited again";
}

TEST(EditControl, CommandsFromStdinAnswerOnStdout) {
  const std::string dir = temp_dir("live_pause");
  const int64_t frames = 17 + 4 * 24;
  const std::string src = synthetic_clip(dir, frames);
  // From stdin, read before the first chunk: a stats line, an error, then pause — every chunk passes
  // through until resume, which never comes.
  std::ofstream(dir + "/commands.txt") << "stats\nfly away\npause\n";
  auto r = run_cli({"-q", "edit", "--model", tiny_package(), "-i", src, "-o", dir + "/out.mkv", "-p", "make it snowy",
                    "--control", "stdin", "--realtime", "--json", dir + "/run.json"},
                   dir + "/commands.txt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream replies(r.out);
  std::vector<json> lines;
  for (std::string l; std::getline(replies, l);) lines.push_back(json::parse(l));
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0]["command"], "stats");
  EXPECT_EQ(lines[1]["ok"], false);
  EXPECT_EQ(lines[2]["command"], "pause");
  EXPECT_EQ(lines[2]["chunk"], 0);
  const json j = read_json(dir + "/run.json");
  EXPECT_EQ(j["chunks"], 0) << "every chunk passed through";
  EXPECT_EQ(j["frames_out"], frames);
  EXPECT_EQ(ffprobe(dir + "/out.mkv").of("video")->frames, frames);
}
