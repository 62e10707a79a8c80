// The streaming edit session (SPEC §1, §3), the library API behind `sanastream edit`: a source (file,
// URL or "-") is decoded, sampled at the model's frame rate by timestamp, scaled to cover the
// processing size and centre-cropped, edited chunk by chunk (EditEngine: VAE encode → DiT → VAE
// decode), scaled back to cover the output size, and encoded/muxed with the source's audio — three
// stages joined by bounded queues (reader → engine → writer), so memory stays constant however long
// the input and the first edited frames leave once the first chunk is processed.
//
// Output timestamps follow the source clock: model-rate frame k is at t₀ + k/fps, t₀ the source's
// first frame. Every model-rate frame in gives one frame out (a short tail is padded and trimmed),
// except the frames --realtime drops.
// A Ctrl-C stops reading, writes what was edited, finalises the output and throws Interrupted.
//
// Live sources and sinks (docs/EDIT.md "Live"): rtmp/srt/udp/http/tcp URLs and capture devices in
// (as caller or, with `listen`, as server), rtmp/srt/udp out; a live source that drops is opened
// again with back-off while the model's caches stay (video/source_reader.h). With `realtime` the
// session follows the source clock (a file source is read at its own pace): when the engine falls
// behind, a whole chunk of input is dropped, or replaced by the last edited chunk (lag_policy
// "repeat"), and counted. A control channel (edit/control.h) changes the prompt, pauses and resumes
// at chunk boundaries.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "video/rate_sampler.h"

namespace sanastream::edit {

struct EditRequest {
  std::string input;             // file, URL or "-" (stdin)
  std::string output;            // file or "-" (stdout)
  std::string format;            // output container ("" = from the extension; y4m on stdout)
  std::string prompt;            // the instruction (may be empty when the schedule starts at 0)
  std::string prompt_schedule;   // file of lines SECONDS<TAB>prompt
  std::string model;             // --model ("" = $SANASTREAM_MODEL, then the demo package)
  std::string size;              // processing size WxH ("" = the model's resolution closest in aspect)
  std::string output_size;       // WxH ("" = the source's)
  double fps = 0;                // model frame rate (0 = the package's)
  int first_chunk = 0;           // latent frames of the first chunk (0: official rule when the length is known, else 3)
  std::string mode = "streaming";  // or "bidirectional": the short-clip model, whole clip, DPM + CFG
  int steps = 0;                  // 0: 4 (streaming) / 50 (bidirectional)
  double cfg = 6.0;               // CFG scale of the bidirectional mode
  bool efficient_cache = false;
  bool cuda_graphs = true;
  uint64_t seed = 0;
  std::string device;            // "" = cuda when available, else cpu
  int gpus = 1;                  // 2: the VAE on cuda:1, the DiT on cuda:0, pipelined (docs/MULTI_GPU.md;
                                 // on the CPU both stages share it)
  std::string dtype;             // "" = bf16 on CUDA, fp32 on the CPU
  std::string tile = "auto";     // VAE spatial tiling: SIZE[:OVERLAP] | 0 | auto (off on CUDA, the default on CPU)
  std::string vae_call_latents = "auto";  // latent frames a VAE call takes at most: N, 0 (a whole chunk) or
                                         // auto (1 on GPUs under 20 GiB, else 0)
  std::string dump_latents;      // safetensors file of the golden-named latents (for latent-edit)
  std::string prompt_cache_dir;  // on-disk prompt-embedding cache ("" = memory only)
  int64_t rope_limit = 0;        // RoPE positions before rebasing (SPEC §3); 0 = the model's table
  std::string plan;              // quantization plan file ("" = none; model/quant_plan.h)

  // Sources and sinks.
  std::string input_format;                 // FFmpeg input format (v4l2, flv, …); "" = probed
  std::vector<std::string> input_options;   // FFmpeg input options, KEY=VALUE
  bool listen = false;                      // wait for the source to connect (rtmp, srt, tcp, http)
  double timeout = 5;                       // network: seconds to connect or to stall a read/write
  int reconnect_attempts = 5;               // after a live source drops; 0 = a drop ends the stream
  double reconnect_window = 30;             // seconds all the attempts of one drop may take
  bool realtime = false;                    // follow the source clock; drop when behind
  std::string lag_policy = "drop";          // realtime, engine behind: drop | repeat (the last edited chunk)
  std::vector<std::string> control;         // control channel: stdin, tcp:[HOST:]PORT, unix:PATH
};

struct EditProgress {
  int64_t frames_out = 0;
  int64_t frames_expected = 0;  // 0 when the input's length is unknown
  double seconds = 0;           // since the first frame was read
  int64_t dropped = 0;          // input frames --realtime did not edit
};
using ProgressFn = std::function<void(const EditProgress&)>;

// Runs the edit. Returns the summary: frames in/out, chunks, DiT FPS, end-to-end FPS, first-frame
// latency, per-chunk and per-frame (input → output) latency p50/p99, peak memory, dropped and
// repeated frames, reconnections, the prompts and their chunks, the geometry and the output plan.
// Errors are sanastream::Error (one line); OUT and OUT.part are not left behind. A live source that
// dropped and did not come back is not thrown: the output keeps what was edited and the summary's
// "source_lost" says why (the CLI exits 1 with that line).
nlohmann::json run_edit(const EditRequest& request, const ProgressFn& progress = {});

// Several sessions at once (docs/MULTI_GPU.md), each in its own thread: request k whose device is ""
// or "cuda" is pinned to GPU k mod the visible GPUs (on a machine without one: the CPU); an explicit
// cuda:N or cpu is kept. Returns each session's summary (run_edit's, with its per-chunk and per-frame
// latency) in request order, or {"error": its one line} for one that failed while the others ran on.
// The summaries' peak-memory figures are the process's, shared by the sessions.
std::vector<nlohmann::json> run_edits(std::vector<EditRequest> requests);

// Lines "SECONDS<TAB>prompt" (blank lines and lines starting with # skipped), sorted by time.
struct ScheduledPrompt {
  double seconds = 0;
  std::string prompt;
};
std::vector<ScheduledPrompt> read_prompt_schedule(const std::string& path);

// Source frame times → model-rate frames by timestamp (the rule now lives in the video layer, shared
// with `sanastream make-target`).
using video::RateSampler;

}  // namespace sanastream::edit
