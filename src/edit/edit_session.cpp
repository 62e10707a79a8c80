#include "edit/edit_session.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <c10/core/DeviceGuard.h>
#include <torch/cuda.h>

#include "core/bounded_queue.h"
#include "core/error.h"
#include "core/stats.h"
#include "core/fs.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/runtime.h"
#include "edit/control.h"
#include "io/safetensors.h"
#include "model/quant_plan.h"
#include "ops/device.h"
#include "pipeline/edit_engine.h"
#include "pipeline/pipelined_engine.h"
#include "pipeline/model_package.h"
#include "pipeline/prompt_encoder.h"
#include "video/media_writer.h"
#include "video/output_plan.h"
#include "video/source_reader.h"

namespace sanastream::edit {

using nlohmann::json;
using pipeline::FrameSize;
using Clock = std::chrono::steady_clock;

// ---- Prompt schedule -----------------------------------------------------------------------------

std::vector<ScheduledPrompt> read_prompt_schedule(const std::string& path) {
  std::ifstream f(path);
  SS_CHECK(f.good(), "--prompt-schedule {}: cannot read the file", path);
  std::vector<ScheduledPrompt> out;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    SS_CHECK(tab != std::string::npos, "--prompt-schedule {}:{}: expected SECONDS<TAB>prompt, got '{}'", path, n, line);
    ScheduledPrompt p;
    try {
      size_t used = 0;
      p.seconds = std::stod(line.substr(0, tab), &used);
      SS_CHECK(used == tab, "");
    } catch (const std::exception&) {
      SS_FAIL("--prompt-schedule {}:{}: '{}' is not a time in seconds", path, n, line.substr(0, tab));
    }
    SS_CHECK(p.seconds >= 0 && std::isfinite(p.seconds), "--prompt-schedule {}:{}: time {} is negative", path, n,
             p.seconds);
    p.prompt = line.substr(tab + 1);
    SS_CHECK(!pipeline::python_strip(p.prompt).empty(), "--prompt-schedule {}:{}: the prompt is empty", path, n);
    out.push_back(std::move(p));
  }
  SS_CHECK(!out.empty(), "--prompt-schedule {}: no prompts in the file", path);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seconds < b.seconds; });
  return out;
}

namespace {

// ---- The stages ----------------------------------------------------------------------------------

struct SourceFrame {
  at::Tensor rgb;     // [h, w, 3] uint8, host
  double time = 0;    // model-rate time on the source clock
  int64_t index = 0;  // model-rate frame number (0 = the source's first frame)
  Clock::time_point arrival;  // when the source frame was read
};

struct EditedChunk {
  at::Tensor rgb;  // [n, h, w, 3] uint8, host
  std::vector<double> times;
  std::vector<Clock::time_point> arrivals;  // of the frames edited; empty for a repeated chunk
};

// The audio packets the reader met, for the writer (shared between the two threads).
class AudioQueue {
 public:
  void push(video::AudioPacket p) {
    std::lock_guard<std::mutex> lock(mu_);
    packets_.push_back(std::move(p));
  }
  // Moves out the packets up to `until` seconds (all of them with until = +inf).
  std::vector<video::AudioPacket> take(double until) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<video::AudioPacket> out;
    while (!packets_.empty() && packets_.front().time() <= until) {
      out.push_back(std::move(packets_.front()));
      packets_.pop_front();
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::deque<video::AudioPacket> packets_;
};

// How the stages stop: the first error of any of them (rethrown once all have stopped; the output
// is then abandoned), or a Ctrl-C (the output keeps what was edited).
class StopState {
 public:
  // Records the exception being handled.
  void fail() {
    try {
      throw;
    } catch (const Interrupted&) {
      interrupted_ = true;
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
      failed_ = true;
    }
  }
  bool failed() const { return failed_; }
  bool interrupted() const { return interrupted_ || interrupt_requested(); }
  bool stopping() const { return failed() || interrupted(); }
  void rethrow() {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mu_;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false}, interrupted_{false};
};

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// "KEY=VALUE" → (KEY, VALUE).
std::vector<std::pair<std::string, std::string>> parse_input_options(const std::vector<std::string>& options) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& o : options) {
    const size_t eq = o.find('=');
    SS_CHECK(eq != std::string::npos && eq > 0, "--input-option: expected KEY=VALUE, got '{}'", o);
    out.emplace_back(o.substr(0, eq), o.substr(eq + 1));
  }
  return out;
}

// What the threads share for the progress line, `stats` and the summary.
struct Counters {
  std::atomic<int64_t> source_frames{0}, frames_written{0}, dropped{0}, repeated{0};
  std::atomic<int64_t> chunks{0};        // edited
  std::atomic<int64_t> stream_chunk{0};  // the chunk in hand: edited, passed through or dropped
  std::atomic<bool> paused{false};
  std::mutex mu;  // the rest
  std::string prompt;
  LogHistogram latency_ms;  // per edited frame: read → written
};

// The first chunk's latent frames: --first-chunk, else the official rule (3 + T mod 3, T ≤ 3: one
// chunk) when the input announces its length, else 3.
int first_chunk_for(const EditRequest& r, const video::VideoInfo& info, double fps, int64_t* expected_frames) {
  *expected_frames = 0;
  if (info.duration > 0 && r.input != "-") *expected_frames = std::max<int64_t>(1, std::llround(info.duration * fps));
  if (r.first_chunk != 0) return r.first_chunk;
  if (*expected_frames == 0) return 3;
  const int64_t T = (*expected_frames - 1 + 7) / 8 + 1;
  return T <= 3 ? 3 : static_cast<int>(3 + T % 3);
}

// --vae-call-latents: a count, or auto — one latent frame per VAE call on GPUs of under 20 GiB (at
// 1280×704 the pipeline then peaks at 15.7 GB with the text encoder, 16.5 GB with whole chunks;
// docs/PERF.md), whole chunks elsewhere.
int64_t vae_call_latents_for(const std::string& spec, const Runtime& rt) {
  if (spec == "auto") {
    const int64_t bytes = ops::device_memory_bytes(rt);
    return bytes > 0 && bytes < (int64_t{20} << 30) ? 1 : 0;
  }
  size_t used = 0;
  int64_t n = -1;
  try {
    n = std::stoll(spec, &used);
  } catch (const std::exception&) {
  }
  SS_CHECK(used == spec.size() && n >= 0, "--vae-call-latents: expected auto or a count of latent frames (0: a whole "
           "chunk), got '{}'", spec);
  return n;
}

}  // namespace

json run_edit(const EditRequest& r, const ProgressFn& progress) {
  const auto t_start = Clock::now();
  // 1. Everything that can fail cheaply, before any model is loaded: prompts, input, output plan.
  std::vector<ScheduledPrompt> schedule;
  if (!r.prompt_schedule.empty()) schedule = read_prompt_schedule(r.prompt_schedule);
  if (!r.prompt.empty() || schedule.empty() || schedule.front().seconds > 0) {
    SS_CHECK(!pipeline::python_strip(r.prompt).empty(),
             schedule.empty() ? "--prompt: the instruction is empty"
                              : "--prompt: the instruction is empty (the schedule does not start at 0 s)");
    schedule.insert(schedule.begin(), ScheduledPrompt{0.0, r.prompt});
  }
  SS_CHECK(r.fps >= 0 && r.fps <= 240, "--fps {}: expected a frame rate in (0, 240]", r.fps);
  SS_CHECK(r.mode == "streaming" || r.mode == "bidirectional", "--mode: expected streaming or bidirectional, got '{}'",
           r.mode);
  const bool whole_clip = r.mode == "bidirectional";
  SS_CHECK(!whole_clip || r.prompt_schedule.empty(), "--prompt-schedule: the bidirectional mode has one prompt");
  SS_CHECK(!whole_clip || r.dump_latents.empty(), "--dump-latents: the streaming mode's (latent-edit --mode "
           "bidirectional takes the encode-prompt and encode-video outputs instead)");
  SS_CHECK(!whole_clip || (!r.realtime && r.control.empty()), "--realtime and --control: the streaming mode's (the "
           "bidirectional mode edits a whole clip at once)");
  SS_CHECK(r.gpus == 1 || (r.gpus == 2 && !whole_clip && !r.realtime && r.control.empty()),
           "--gpus {}: expected 1, or 2 for the streaming mode without --realtime and --control", r.gpus);
  SS_CHECK(r.lag_policy == "drop" || r.lag_policy == "repeat", "--lag-policy: expected drop or repeat, got '{}'",
           r.lag_policy);
  SS_CHECK(r.rope_limit >= 0, "--rope-limit: expected a positive number of positions, got {}", r.rope_limit);
  SS_CHECK(r.timeout >= 0 && r.reconnect_window >= 0 && r.reconnect_attempts >= 0,
           "--timeout, --reconnect, --reconnect-window: expected values ≥ 0, got {}, {}, {}", r.timeout,
           r.reconnect_attempts, r.reconnect_window);
  SS_CHECK(r.input != "-" || std::find(r.control.begin(), r.control.end(), "stdin") == r.control.end(),
           "--control stdin: stdin carries the input video");
  std::optional<FrameSize> size_override, output_override;
  if (!r.size.empty()) size_override = pipeline::parse_frame_size(r.size, "--size");
  if (!r.output_size.empty()) output_override = pipeline::parse_frame_size(r.output_size, "--output-size");

  video::SourceReader reader;
  video::ReaderOptions ro;
  ro.audio = true;
  ro.format = r.input_format;
  ro.options = parse_input_options(r.input_options);
  ro.listen = r.listen;
  ro.timeout = r.timeout;
  reader.open(r.input, ro, {r.reconnect_attempts, r.reconnect_window});
  const pipeline::ModelChoice choice = pipeline::resolve_model_dir(r.model);
  const pipeline::ModelPackage pkg = pipeline::load_model_package(choice.dir);
  const double fps = r.fps > 0 ? r.fps : pkg.fps;
  const video::VideoInfo info = reader.info();
  const FrameSize source{info.width, info.height};
  const int64_t multiple = pkg.pixel_multiple();
  FrameSize proc;
  if (size_override) {
    proc = pipeline::floor_to_multiple(*size_override, multiple, "--size");
    if (!(proc == *size_override))
      log_warn("--size {}: floored to {} (multiples of {})", size_override->str(), proc.str(), multiple);
  } else {
    std::vector<FrameSize> res;
    for (const auto& wh : pkg.resolutions) res.push_back({wh[0], wh[1]});
    proc = pipeline::closest_resolution(source, res);
  }
  const FrameSize out_size = output_override ? *output_override : source;
  int64_t expected = 0;
  const int first_chunk = first_chunk_for(r, info, fps, &expected);
  const model::DitVariant variant = whole_clip ? model::DitVariant::kBidirectional : model::DitVariant::kStreaming;
  if (whole_clip) {
    SS_CHECK(pkg.has_variant(variant), "--mode bidirectional: model {} has no bidirectional DiT (model.json "
             "dit_bidirectional); use --mode streaming", pkg.dir);
    SS_CHECK(expected <= pkg.max_frames, "--mode bidirectional takes clips of up to {} frames at {} fps; {} has {}: "
             "use --mode streaming", pkg.max_frames, fps, r.input, expected);
  }

  video::WriterOptions wo;
  wo.width = static_cast<int>(out_size.width);
  wo.height = static_cast<int>(out_size.height);
  wo.frame_rate = std::abs(fps - std::round(fps)) < 1e-9 ? video::Rational{static_cast<int>(std::lround(fps)), 1}
                                                         : video::Rational{static_cast<int>(std::lround(fps * 1000)), 1000};
  wo.format = r.format;
  wo.audio = reader.audio();
  wo.timeout = r.timeout;
  const video::OutputPlan plan = video::plan_output(r.output, wo);  // a bad path or format fails here
  SS_CHECK(r.dump_latents.empty() || r.dump_latents != r.output, "--dump-latents: the same path as the output");

  // 2. The models and the prompts.
  if (pkg.random_weights)
    log_warn("model {}: seeded random weights — the output is noise (a package for tests and benchmarks)", pkg.dir);
  const Runtime rt = make_runtime(r.device.empty() ? (cuda_available() ? "cuda" : "cpu") : r.device,
                                  r.dtype.empty() ? (cuda_available() && r.device != "cpu" ? "bf16" : "fp32") : r.dtype);
  // --gpus 2: the VAE on the second GPU (on the CPU: the same CPU), the DiT on the first.
  if (r.gpus == 2 && rt.is_cuda())
    SS_CHECK(rt.device.index() == 0 && torch::cuda::device_count() >= 2,
             "--gpus 2: expected --device cuda and 2 visible GPUs, got {} and {} GPU(s)", rt.device.str(),
             torch::cuda::device_count());
  Runtime vae_rt = rt;
  if (r.gpus == 2 && rt.is_cuda()) vae_rt.device = at::Device(at::kCUDA, 1);
  const int64_t vae_call_latents = vae_call_latents_for(r.vae_call_latents, vae_rt);
  const model::QuantPlan quant = model::load_quant_plan(r.plan);
  auto dit = pipeline::load_package_dit(pkg, variant, rt, quant);
  auto vae = pipeline::load_package_vae(pkg, vae_rt);
  vae->set_resnet_precision(quant.vae);
  SS_CHECK(whole_clip || pkg.vae.decoder == model::VaeDecoderKind::kCausal,
           "model {}: the streaming edit decodes with the causal VAE decoder; model.json names '{}'", pkg.dir,
           model::decoder_kind_name(pkg.vae.decoder));
  pipeline::PromptEncoder prompts(pkg.text_encoder.path, rt, model::Gemma2Attention::kEager, r.prompt_cache_dir);
  std::vector<pipeline::PromptEmbedding> embeddings;
  for (const auto& p : schedule)
    embeddings.push_back(prompts.encode(p.prompt, whole_clip ? pipeline::PromptMode::kBidirectional
                                                             : pipeline::PromptMode::kStreaming));
  const pipeline::PromptEmbedding negative =
      whole_clip ? prompts.encode_negative(pipeline::kDefaultNegativePrompt) : pipeline::PromptEmbedding{};

  pipeline::EditEngineOptions eo;
  eo.steps = r.steps > 0 ? r.steps : 4;
  eo.first_chunk = first_chunk;
  eo.efficient_cache = r.efficient_cache;
  eo.cuda_graphs = r.cuda_graphs;
  eo.seed = r.seed;
  eo.tiling = r.tile == "auto" ? (rt.is_cuda() ? model::VaeTiling{} : model::default_vae_tiling())
                               : model::parse_vae_tiling(r.tile);
  eo.vae_call_latents = vae_call_latents;
  eo.dump = !r.dump_latents.empty();
  eo.rope_limit = r.rope_limit;
  std::unique_ptr<pipeline::EditEngine> engine;
  // --gpus 2: the stages pipelined over the two GPUs. On one GPU they run one after another: overlapped
  // on their own streams they gained 1 % and cost 0.6 GB (docs/PERF.md).
  std::unique_ptr<pipeline::PipelinedEditEngine> piped;
  if (r.gpus == 2)
    piped = std::make_unique<pipeline::PipelinedEditEngine>(*dit, *vae, proc, eo);
  else if (!whole_clip)
    engine = std::make_unique<pipeline::EditEngine>(*dit, *vae, proc, eo);
  // Frames the next chunk takes.
  auto next_chunk_frames = [&] { return piped ? piped->chunk_frames() : engine->chunk_frames(); };
  pipeline::WholeClipOptions wc;
  wc.dpm.steps = r.steps > 0 ? r.steps : 50;
  wc.dpm.cfg = r.cfg;
  wc.decoder = pkg.vae.decoder;
  wc.tiling = eo.tiling;
  wc.seed = r.seed;
  // The frames one step of the engine takes: a chunk, or the whole clip.
  const int64_t step_frames = whole_clip ? pkg.max_frames : next_chunk_frames();
  ops::reset_peak_memory(rt);

  Counters counters;
  counters.prompt = schedule.front().prompt;
  Clock::time_point t_first_read{}, t_first_write{};
  std::atomic<bool> first_read{false}, first_written{false};
  std::unique_ptr<ControlChannel> control;
  if (!r.control.empty())
    control = std::make_unique<ControlChannel>(r.control, r.output == "-", [&] {
      std::lock_guard<std::mutex> lock(counters.mu);
      return json{{"frames_in", counters.source_frames.load()}, {"frames_out", counters.frames_written.load()},
                  {"dropped_frames", counters.dropped.load()}, {"repeated_frames", counters.repeated.load()},
                  {"chunks", counters.chunks.load()}, {"chunk", counters.stream_chunk.load()},
                  {"paused", counters.paused.load()},
                  {"prompt", counters.prompt}, {"reconnects", reader.reconnects()},
                  {"latency_ms_p50", counters.latency_ms.quantile(0.5)},
                  {"latency_ms_p99", counters.latency_ms.quantile(0.99)}};
    });

  video::MediaWriter writer;
  writer.open(r.output, wo);
  log_info("edit: {} → {} ({} processing, {} out, {} fps, first chunk {}), model {} ({}){}", info.summary(),
           plan.summary(), proc.str(), out_size.str(), fps, first_chunk, pkg.dir, choice.source,
           control && !control->address().empty() ? ", control " + control->address() : "");

  // 3. The stages: reader thread → engine (this thread) → writer thread. In real time the reader
  // never waits for the engine (room for several chunks); the engine drops what it cannot catch up.
  BoundedQueue<SourceFrame> frames_in(static_cast<size_t>(r.realtime ? 4 * step_frames + 48 : step_frames + 24));
  BoundedQueue<EditedChunk> chunks_out(r.realtime ? 8 : 2);
  AudioQueue audio;
  StopState state;
  std::string source_lost;

  std::thread read_thread([&] {
    try {
      RateSampler sampler(fps);
      video::Frame frame;
      at::Tensor held;
      Clock::time_point held_arrival;
      int64_t next_model_frame = 0;
      // A file read in real time is paced by its own clock (a live source paces itself).
      const bool pace = r.realtime && !reader.live();
      double first_time = 0;
      auto send = [&](int64_t n) {
        for (int64_t i = 0; i < n; ++i)
          if (!frames_in.push(SourceFrame{held, sampler.model_time(next_model_frame), next_model_frame++, held_arrival}))
            return false;
        return true;
      };
      while (!state.stopping() && reader.read(frame)) {
        if (!first_read.exchange(true)) {
          t_first_read = Clock::now();
          first_time = frame.time;
        }
        if (pace)
          std::this_thread::sleep_until(t_first_read + std::chrono::duration_cast<Clock::duration>(
                                                           std::chrono::duration<double>(frame.time - first_time)));
        ++counters.source_frames;
        const int64_t n = sampler.push(frame.time);
        if (!send(n)) break;
        held = at::from_blob(frame.rgb.data(), {frame.height, frame.width, 3}, at::kByte).clone();
        held_arrival = Clock::now();
        video::AudioPacket p;
        while (reader.read_audio(p)) audio.push(std::move(p));
      }
      if (!state.stopping()) {
        if (held.defined()) send(sampler.finish());
        video::AudioPacket p;
        while (reader.read_audio(p)) audio.push(std::move(p));
        source_lost = reader.lost();
      }
    } catch (...) {
      state.fail();
    }
    frames_in.close();
  });

  std::thread write_thread([&] {
    try {
      double last_time = -1;
      while (auto chunk = chunks_out.pop()) {
        for (int64_t i = 0; i < static_cast<int64_t>(chunk->times.size()); ++i) {
          video::Frame f;
          f.width = static_cast<int>(out_size.width);
          f.height = static_cast<int>(out_size.height);
          f.time = chunk->times[i];
          const at::Tensor img = chunk->rgb[i % chunk->rgb.size(0)];
          f.rgb.assign(img.data_ptr<uint8_t>(), img.data_ptr<uint8_t>() + img.numel());
          for (auto& p : audio.take(f.time)) writer.write_audio(p);
          writer.write(f);
          last_time = f.time;
          if (!first_written.exchange(true)) t_first_write = Clock::now();
          ++counters.frames_written;
          if (!chunk->arrivals.empty()) {
            const double ms = ms_since(chunk->arrivals[i]);
            std::lock_guard<std::mutex> lock(counters.mu);
            counters.latency_ms.add(ms);
          }
        }
        if (progress)
          progress({counters.frames_written.load(), expected,
                    first_read ? std::chrono::duration<double>(Clock::now() - t_first_read).count() : 0.0,
                    counters.dropped.load()});
      }
      // After an error the output is abandoned (the writer removes OUT.part). The audio after the
      // last frame: all of it at the end, up to one frame beyond it after a Ctrl-C.
      if (state.failed()) return;
      const double until = state.interrupted() ? last_time + 1 / fps : INFINITY;
      for (auto& p : audio.take(until)) writer.write_audio(p);
      writer.finish();
    } catch (...) {
      state.fail();
      chunks_out.close();
    }
  });

  std::vector<double> chunk_ms, dit_ms, rss_mib;  // per chunk
  json prompt_log = json::array();
  size_t prompt_index = 0;
  at::Tensor last_edited;  // [n, h, w, 3] uint8: what --lag-policy repeat shows
  // Sets the prompt of the chunks from `chunk` on.
  auto use_prompt = [&](const pipeline::PromptEmbedding& e, const std::string& text, double seconds) {
    if (engine) engine->set_prompt(e.embeds, e.mask);
    if (piped) piped->set_prompt(e.embeds, e.mask);
    prompt_log.push_back({{"chunk", counters.stream_chunk.load()}, {"seconds", seconds}, {"prompt", text}});
    std::lock_guard<std::mutex> lock(counters.mu);
    counters.prompt = text;
  };
  // The control commands received since the last chunk, applied before this one.
  auto apply_control = [&](double chunk_time) {
    for (const ControlCommand& c : control->take()) {
      json reply{{"ok", true}, {"command", command_name(c.kind)}, {"chunk", counters.stream_chunk.load()}};
      if (c.kind == ControlCommand::Kind::kPrompt) {
        try {
          use_prompt(prompts.encode(c.text, pipeline::PromptMode::kStreaming), c.text, chunk_time);
          reply["prompt"] = c.text;
        } catch (const Error& e) {
          reply = {{"ok", false}, {"command", "prompt"}, {"error", e.message()}};
        }
      } else {
        counters.paused = c.kind == ControlCommand::Kind::kPause;
      }
      control->reply(c.client, reply);
    }
  };
  // The pipelined engine: the chunks in it, in order, and the thread that takes them out to the writer.
  struct InFlight {
    Clock::time_point t0;
    std::vector<double> times;
    std::vector<Clock::time_point> arrivals;
  };
  BoundedQueue<InFlight> in_flight(4);
  std::thread collect_thread;
  if (piped)
    collect_thread = std::thread([&] {
      try {
        while (std::optional<InFlight> c = in_flight.pop()) {
          std::optional<at::Tensor> y = piped->pop();
          SS_CHECK(y.has_value(), "edit: the pipeline ended before chunk {}", counters.chunks.load());
          const at::Tensor out = ops::to_host(pipeline::model_to_rgb24(*y, out_size));
          ++counters.chunks;
          chunk_ms.push_back(ms_since(c->t0));
          rss_mib.push_back(ops::current_rss_mib());
          if (!chunks_out.push(EditedChunk{out, std::move(c->times), std::move(c->arrivals)})) break;
        }
      } catch (...) {
        state.fail();
        chunks_out.close();
      }
    });
  try {
    std::vector<SourceFrame> pending;
    int64_t ahead = 0;  // pending frames the engine has encoded already (EditEngine::encode_ahead)
    // Pending frames [begin, end) at the processing size, [1, 3, n, H, W] on the VAE's device.
    auto to_model = [&](int64_t begin, int64_t end) {
      std::vector<at::Tensor> rgb;
      for (int64_t i = begin; i < end; ++i) rgb.push_back(pending[static_cast<size_t>(i)].rgb);
      return pipeline::rgb24_to_model(at::stack(rgb), proc, vae_rt.dtype, vae_rt.device);
    };
    bool done = false;
    while (!done) {
      check_interrupt();
      if (state.failed()) break;
      std::optional<SourceFrame> f = frames_in.pop();
      if (f) pending.push_back(std::move(*f));
      done = !f;
      SS_CHECK(!whole_clip || static_cast<int64_t>(pending.size()) <= pkg.max_frames,
               "--mode bidirectional takes clips of up to {} frames at {} fps; {} is longer: use --mode streaming",
               pkg.max_frames, fps, r.input);
      if (pending.size() == 1 && f) {
        // A chunk begins: its prompt, the last scheduled at or before its first frame's time, then the
        // control channel's commands (a pause decides the whole chunk, before any of it is encoded).
        const double chunk_time = static_cast<double>(pending.front().index) / fps;
        size_t want = prompt_index;
        while (want + 1 < schedule.size() && schedule[want + 1].seconds <= chunk_time + 1e-9) ++want;
        if (prompt_log.empty() || want != prompt_index) {
          use_prompt(embeddings[want], schedule[want].prompt, chunk_time);
          prompt_index = want;
        }
        if (control) apply_control(chunk_time);
      }
      const int64_t want_frames = whole_clip ? std::numeric_limits<int64_t>::max() : next_chunk_frames();
      // Live: whenever no frame waits, the chunk's frames so far are encoded, so a complete chunk has
      // about one frame's encoding left (the first output sooner; the GPU works while frames come in).
      const auto have = static_cast<int64_t>(pending.size());
      if (engine && r.realtime && !done && !counters.paused && have > ahead && have < want_frames &&
          frames_in.size() == 0) {
        engine->encode_ahead(to_model(ahead, have));
        ahead = have;
      }
      if (pending.empty() || (!done && static_cast<int64_t>(pending.size()) < want_frames)) continue;
      check_interrupt();
      std::vector<double> times;
      std::vector<Clock::time_point> arrivals;
      for (const auto& sf : pending) {
        times.push_back(sf.time);
        arrivals.push_back(sf.arrival);
      }
      // Behind the source: a whole chunk already waits behind this one, so this one is dropped
      // (or shown as the last edited chunk again) to catch up — unless the engine has begun it.
      if (r.realtime && !done && ahead == 0 && static_cast<int64_t>(frames_in.size()) >= want_frames) {
        const auto n = static_cast<int64_t>(pending.size());
        counters.dropped += n;
        ++counters.stream_chunk;
        pending.clear();
        if (r.lag_policy == "repeat" && last_edited.defined()) {
          counters.repeated += n;
          if (!chunks_out.push(EditedChunk{last_edited, std::move(times), {}})) break;
        }
        continue;
      }
      const auto t0 = Clock::now();
      const at::Tensor x = to_model(ahead, static_cast<int64_t>(pending.size()));
      if (piped) {
        // The chunk enters the pipeline; the collector takes it out, in order, with its frames' times.
        piped->push(x, done);
        pending.clear();
        ++counters.stream_chunk;
        if (!in_flight.push(InFlight{t0, std::move(times), std::move(arrivals)})) break;
        continue;
      }
      at::Tensor y;
      if (counters.paused && ahead == 0) {
        y = x;  // passed through: the same cover-crop and scaling as an edited chunk
      } else if (engine) {
        // Live, the first chunk's first frame leaves as soon as it is decoded, ahead of the rest.
        pipeline::EditEngine::FramesFn first_out;
        if (r.realtime)
          first_out = [&](const at::Tensor& head) {
            const auto k = static_cast<std::ptrdiff_t>(head.size(2));
            chunks_out.push(EditedChunk{ops::to_host(pipeline::model_to_rgb24(head, out_size)),
                                        {times.begin(), times.begin() + k}, {arrivals.begin(), arrivals.begin() + k}});
            times.erase(times.begin(), times.begin() + k);
            arrivals.erase(arrivals.begin(), arrivals.begin() + k);
          };
        y = engine->process(x, done, first_out);
      } else {
        y = pipeline::edit_whole_clip(*dit, *vae, x, embeddings[prompt_index].embeds, embeddings[prompt_index].mask,
                                      negative.embeds, negative.mask, wc);
      }
      at::Tensor out = ops::to_host(pipeline::model_to_rgb24(y, out_size));
      if (!counters.paused || ahead > 0) {
        ++counters.chunks;
        chunk_ms.push_back(ms_since(t0));
        if (engine) dit_ms.push_back(engine->last_dit_ms());
        rss_mib.push_back(ops::current_rss_mib());
        last_edited = out;
      }
      pending.clear();
      ahead = 0;
      ++counters.stream_chunk;
      if (!chunks_out.push(EditedChunk{out, std::move(times), std::move(arrivals)})) break;
    }
  } catch (...) {
    state.fail();
  }
  // Stop the reader; the collector hands over what is in the pipeline; the writer finishes what was
  // edited (or abandons it after an error).
  in_flight.close();
  if (collect_thread.joinable()) collect_thread.join();
  frames_in.close();
  chunks_out.close();
  read_thread.join();
  write_thread.join();
  control.reset();
  state.rethrow();
  const bool interrupted = state.interrupted();
  if (!r.dump_latents.empty() && (piped ? piped->chunks_done() : engine ? engine->chunks_done() : 0) > 0) {
    const std::string part = r.dump_latents + ".part";
    io::save_safetensors(part, piped ? piped->dump() : engine->dump());
    std::filesystem::rename(part, r.dump_latents);
  }

  const double total_s = std::chrono::duration<double>(Clock::now() - (first_read ? t_first_read : t_start)).count();
  const ops::PeakMemory mem = ops::peak_memory(rt);
  std::vector<double> steady(chunk_ms.size() > 3 ? chunk_ms.begin() + 2 : chunk_ms.begin(),
                             chunk_ms.size() > 3 ? chunk_ms.end() - 1 : chunk_ms.end());
  const int64_t frames_out = counters.frames_written.load();
  json j;
  j["input"] = r.input;
  j["output"] = r.output;
  j["model"] = pkg.dir;
  j["model_source"] = choice.source;
  j["source"] = {{"size", source.str()}, {"fps", info.fps()}, {"frames_read", counters.source_frames.load()},
                 {"summary", info.summary()}, {"live", reader.live()}};
  j["processing_size"] = proc.str();
  j["output_size"] = out_size.str();
  j["fps"] = fps;
  j["first_chunk"] = whole_clip ? json(nullptr) : json(first_chunk);
  j["vae_call_latents"] = vae_call_latents;
  j["frames_in"] = counters.source_frames.load();
  j["frames_out"] = frames_out;
  j["chunks"] = counters.chunks.load();
  j["stream_chunks"] = counters.stream_chunk.load();
  j["mode"] = r.mode;
  j["realtime"] = r.realtime;
  j["lag_policy"] = r.lag_policy;
  j["dropped_frames"] = counters.dropped.load();
  j["repeated_frames"] = counters.repeated.load();
  j["reconnects"] = reader.reconnects();
  j["source_lost"] = source_lost.empty() ? json(nullptr) : json(source_lost);
  j["seconds"] = total_s;
  j["e2e_fps"] = total_s > 0 ? frames_out / total_s : 0.0;
  double dit_total = 0;
  for (double v : dit_ms) dit_total += v;
  j["dit_fps"] = dit_total > 0 ? json(frames_out / (dit_total / 1e3)) : json(nullptr);
  j["first_frame_ms"] = first_written ? json(std::chrono::duration<double, std::milli>(t_first_write - t_first_read).count())
                                      : json(nullptr);
  j["chunk_ms_p50"] = chunk_ms.empty() ? json(nullptr) : json(percentile(steady, 0.5));
  j["chunk_ms_p99"] = chunk_ms.empty() ? json(nullptr) : json(percentile(steady, 0.99));
  const bool measured = counters.latency_ms.count() > 0;
  j["latency_ms_p50"] = measured ? json(counters.latency_ms.quantile(0.5)) : json(nullptr);
  j["latency_ms_p99"] = measured ? json(counters.latency_ms.quantile(0.99)) : json(nullptr);
  j["chunks_ms"] = chunk_ms;
  j["peak_host_rss_mib"] = mem.host_rss_mib;
  j["rss_mib_by_chunk"] = rss_mib;
  j["peak_gpu_bytes"] = rt.is_cuda() ? json(mem.device_bytes) : json(nullptr);
  j["prompts"] = prompt_log;
  j["plan"] = plan.summary();
  j["interrupted"] = interrupted;
  j["device"] = rt.is_cuda() ? "cuda" : "cpu";
  j["dtype"] = dtype_label(rt.dtype);
  return j;
}

std::vector<json> run_edits(std::vector<EditRequest> requests) {
  const int gpus = cuda_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  std::vector<json> results(requests.size());
  std::vector<std::thread> threads;
  for (size_t k = 0; k < requests.size(); ++k) {
    EditRequest& r = requests[k];
    if (gpus > 0 && (r.device.empty() || r.device == "cuda"))
      r.device = fmt::format("cuda:{}", static_cast<int>(k) % gpus);
    threads.emplace_back([&r, &result = results[k]] {
      try {
        // The session's GPU is its thread's current device (CUDA graphs capture on the current stream).
        c10::OptionalDeviceGuard guard;
        if (r.device.rfind("cuda:", 0) == 0) guard.reset_device(at::Device(r.device));
        result = run_edit(r);
      } catch (const Error& e) {
        result = {{"error", e.message()}};
      } catch (const std::exception& e) {
        result = {{"error", std::string(e.what())}};
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return results;
}

}  // namespace sanastream::edit
