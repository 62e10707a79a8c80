// sanastream edit: the streaming edit of a file, pipe, network stream or camera into a file, pipe
// or network stream (edit/edit_session.h).
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "core/json_report.h"
#include "core/log.h"
#include "edit/edit_session.h"

namespace sanastream::cli {

namespace {

struct EditCli {
  edit::EditRequest r;
  std::string json;
  bool no_graphs = false;
};

// "[#########.........]  120/480 frames   23.4 fps   ETA 0:15" on a terminal's stderr.
void draw_progress(const edit::EditProgress& p) {
  const double fps = p.seconds > 0 ? p.frames_out / p.seconds : 0;
  std::string bar;
  if (p.frames_expected > 0) {
    const int width = 30;
    const int done = static_cast<int>(std::min<double>(1.0, double(p.frames_out) / p.frames_expected) * width);
    bar = "[" + std::string(done, '#') + std::string(width - done, '.') + "] ";
  }
  std::string eta;
  if (p.frames_expected > p.frames_out && fps > 0) {
    const int s = static_cast<int>((p.frames_expected - p.frames_out) / fps);
    eta = fmt::format("   ETA {}:{:02d}", s / 60, s % 60);
  }
  const std::string total = p.frames_expected > 0 ? fmt::format("/{}", p.frames_expected) : "";
  const std::string dropped = p.dropped > 0 ? fmt::format("   {} dropped", p.dropped) : "";
  std::fprintf(stderr, "\r%s%lld%s frames   %.1f fps%s%s   ", bar.c_str(), static_cast<long long>(p.frames_out),
               total.c_str(), fps, dropped.c_str(), eta.c_str());
  std::fflush(stderr);
}

void run(EditCli& c) {
  signal(SIGPIPE, SIG_IGN);  // a reader that closes stdout early is a write error (one line), not a signal
  c.r.cuda_graphs = !c.no_graphs;
  const bool bar = isatty(STDERR_FILENO) && log_level() >= LogLevel::kWarn;
  nlohmann::json j = edit::run_edit(c.r, bar ? edit::ProgressFn(draw_progress) : edit::ProgressFn());
  if (bar) std::fputc('\n', stderr);
  if (!c.json.empty()) write_json_report(c.json, j);
  if (log_level() >= LogLevel::kWarn && c.r.output != "-")
    std::fprintf(stderr, "edit: %lld frames → %s (%.1f fps end to end, first frame after %.0f ms)\n",
                 static_cast<long long>(j["frames_out"].get<int64_t>()), c.r.output.c_str(), j["e2e_fps"].get<double>(),
                 j["first_frame_ms"].is_null() ? 0.0 : j["first_frame_ms"].get<double>());
  if (j["interrupted"].get<bool>()) throw Interrupted();
  if (!j["source_lost"].is_null()) SS_FAIL("{}", j["source_lost"].get<std::string>());
}

}  // namespace

void register_edit(CLI::App& app) {
  auto c = std::make_shared<EditCli>();
  auto* sub = app.add_subcommand(
      "edit",
      "Edit a video with a text instruction while it is read: -i INPUT -p \"instruction\" -o OUTPUT "
      "(files, URLs or '-' for stdin/stdout)");
  sub->add_option("-i,--input", c->r.input,
                  "Source video: a file, '-' (stdin), a URL (rtmp://, srt://, udp://, http(s)://, tcp://) or a "
                  "device (with --input-format v4l2)")
      ->required();
  sub->add_option("-o,--output", c->r.output,
                  "Edited video: .mp4/.mov/.mkv (H.264), .webm (VP9 + Opus), .nut, .y4m, .flv, .ts, '-' (stdout, "
                  "y4m), or a URL to send to (rtmp:// as FLV; srt://, udp://, rtp://, tcp:// as MPEG-TS)")
      ->required();
  sub->add_option("-p,--prompt", c->r.prompt, "The instruction, e.g. \"make it snowy\"");
  sub->add_option("--prompt-schedule", c->r.prompt_schedule,
                  "File of lines SECONDS<TAB>prompt: each applies from the first chunk starting at or after that time");
  sub->add_option("-m,--model", c->r.model, "Model package (default: $SANASTREAM_MODEL, then the demo package)");
  sub->add_option("--size", c->r.size, "Processing size WxH (default: the model's resolution closest in aspect)");
  sub->add_option("--output-size", c->r.output_size, "Output size WxH (default: the source's)");
  sub->add_option("--fps", c->r.fps, "Model frame rate (default: the package's)");
  sub->add_option("--format", c->r.format,
                  "Output container: mp4, mov, mkv, webm, nut, y4m, flv, ts (default: from the name or URL)");
  sub->add_option("--input-format", c->r.input_format, "FFmpeg input format, e.g. v4l2 for a camera (default: probed)");
  sub->add_option("--input-option", c->r.input_options,
                  "FFmpeg input option KEY=VALUE (repeatable), e.g. video_size=1280x720, framerate=30");
  sub->add_flag("--listen", c->r.listen, "Wait for the source to connect (rtmp, srt, tcp, http: be the server)");
  sub->add_option("--timeout", c->r.timeout, "Network: seconds to connect or to stall a read/write (0: no limit)")
      ->capture_default_str();
  sub->add_option("--reconnect", c->r.reconnect_attempts,
                  "Reconnection attempts after a live source drops (0: a drop ends the stream)")
      ->capture_default_str();
  sub->add_option("--reconnect-window", c->r.reconnect_window, "Seconds the attempts after one drop may take in all")
      ->capture_default_str();
  sub->add_flag("--realtime", c->r.realtime,
                "Follow the source clock (a file is read at its own pace); when the engine falls behind, whole "
                "chunks of input are dropped");
  sub->add_option("--lag-policy", c->r.lag_policy,
                  "--realtime, engine behind: drop (the output skips) | repeat (the last edited chunk again)")
      ->capture_default_str();
  sub->add_option("--control", c->r.control,
                  "Control channel (repeatable): stdin, tcp:[HOST:]PORT or unix:PATH; lines 'prompt: TEXT', 'pause', "
                  "'resume', 'stats', one JSON line back each");
  sub->add_option("--rope-limit", c->r.rope_limit,
                  "RoPE positions before the stream's positions are rebased (default: the model's table, 1024)");
  sub->add_option("--first-chunk", c->r.first_chunk,
                  "Latent frames of the first chunk, 3-5 (default: the official rule for files of known length, else 3)");
  sub->add_option("--mode", c->r.mode,
                  "streaming | bidirectional (the short-clip model: whole clip up to max_frames, DPM-Solver++, CFG)")
      ->capture_default_str();
  sub->add_option("--steps", c->r.steps, "Denoising steps (default: 4 per chunk streaming, 50 bidirectional)");
  sub->add_option("--cfg", c->r.cfg, "CFG scale of the bidirectional mode")->capture_default_str();
  sub->add_flag("--efficient-cache", c->r.efficient_cache, "No t=0 cache pass (the last step writes the caches)");
  sub->add_option("--seed", c->r.seed, "Seed of the noise")->capture_default_str();
  sub->add_option("--device", c->r.device, "cuda[:N] | cpu (default: cuda when available)");
  sub->add_option("--gpus", c->r.gpus,
                  "2: the VAE on cuda:1 and the DiT on cuda:0, pipelined: a chunk costs the slower GPU's time, the "
                  "frames are the one-GPU run's (streaming files; not with --realtime or --control)")
      ->check(CLI::Range(1, 2))
      ->capture_default_str();
  sub->add_option("--dtype", c->r.dtype, "bf16 | fp32 (default: bf16 on CUDA, fp32 on the CPU)");
  sub->add_option("--tile", c->r.tile, "VAE spatial tiling SIZE[:OVERLAP] | 0 | auto (off on CUDA)")
      ->capture_default_str();
  sub->add_option("--vae-call-latents", c->r.vae_call_latents,
                  "Latent frames a VAE call takes at most: N, 0 (a whole chunk) or auto (1 on GPUs under 20 GiB: "
                  "lower peak memory, docs/PERF.md)")
      ->capture_default_str();
  sub->add_flag("--no-graphs", c->no_graphs, "Run every DiT call eagerly (no CUDA graphs)");
  sub->add_option("--dump-latents", c->r.dump_latents,
                  "Write inputs.noise, inputs.src_latents, inputs.prompt_embeds, inputs.prompt_mask and "
                  "output.latents (latent-edit's inputs) to FILE");
  sub->add_option("--prompt-cache", c->r.prompt_cache_dir, "Directory caching prompt embeddings on disk");
  sub->add_option("--plan", c->r.plan,
                  "Quantization plan (JSON, docs/QUANT.md): its projections run in FP8/INT8 (FP8 GEMMs on GPUs "
                  "that have them, else simulated)")
      ->type_name("FILE");
  add_json_option(sub, &c->json);
  sub->callback([c] { set_runner([c] { run(*c); }); });
}

}  // namespace sanastream::cli
