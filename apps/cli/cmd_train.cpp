// sanastream train --config train.json: trains (or fine-tunes) the DiT on a data cache, resuming the
// run directory's newest checkpoint (docs/TRAIN.md). sanastream train-cache: builds that cache from a
// manifest JSONL (needs FFmpeg and the text encoder; the trainer needs neither).
#include <chrono>
#include <cstdio>
#include <thread>

#include <ATen/Parallel.h>

#include "command.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/json_report.h"
#include "core/log.h"
#include "dist/launch.h"
#include "pipeline/edit_engine.h"
#include "train/trainer.h"
#ifdef SANASTREAM_WITH_TRAIN_CACHE
#include "train/cache_builder.h"
#endif

namespace sanastream::cli {

namespace {

struct TrainCli {
  std::string config, json;
  int64_t max_steps = 0, profile = 0;
  int gpus = 1;
  double time_limit = -1;
};

// A data-parallel group's collectives wait this long for a rank (a checkpoint written by rank 0, the
// first CUDA step) before the run fails.
constexpr std::chrono::minutes kGroupTimeout{30};

void run_train(const TrainCli& o) {
  train::TrainConfig cfg = train::load_train_config(o.config);
  if (o.max_steps > 0) cfg.max_steps = o.max_steps;
  if (o.time_limit >= 0) cfg.time_limit_s = o.time_limit;
  // --gpus N: this process is rank 0 and starts ranks 1 … N−1 (dist/launch.h), which run this same
  // command line; a started rank finds its place in the environment.
  dist::Membership m = dist::membership_from_env();
  const bool cuda = cfg.device.rfind("cuda", 0) == 0;
  std::unique_ptr<dist::Launch> launch;
  if (m.size == 1 && o.gpus > 1) {
    SS_CHECK(cfg.device == "cuda" || cfg.device == "cpu",
             "--gpus {}: expected device \"cuda\" (each rank takes its own GPU) or \"cpu\", got \"{}\"", o.gpus,
             cfg.device);
    train::check_data_parallel(cfg, o.gpus);
    launch = std::make_unique<dist::Launch>(o.gpus, cuda);
    m = launch->membership();
  }
  std::unique_ptr<dist::ProcessGroup> group;
  if (m.size > 1) {
    if (m.rank > 0) set_log_level(std::min(log_level(), LogLevel::kWarn));
    // The ranks share the host's cores: each as many threads as its share (more, and their OpenMP
    // pools oversubscribe the cores — 2 GPU ranks of the demo's training took 3.9 s a step instead of 1.3).
    at::set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / m.size));
    group = std::make_unique<dist::ProcessGroup>(m, cuda ? "nccl" : "gloo", kGroupTimeout);
  }
  train::Trainer trainer(cfg, group.get());
  const train::TrainReport r = trainer.run(o.profile);
  if (launch) launch->wait();
  if (m.rank > 0) return;
  std::printf(
      "%s: steps %lld..%lld of %lld%s, loss %.5g, %.3f steps/s, peak %.0f MiB host / %.0f MiB device; "
      "checkpoint %s\n",
      cfg.output.c_str(), static_cast<long long>(r.first_step), static_cast<long long>(r.last_step),
      static_cast<long long>(cfg.max_steps), r.finished ? " (done)" : "", r.last.loss, r.steps_per_s, r.peak_host_mib,
      r.peak_device_mib, r.checkpoint.c_str());
  if (!o.json.empty()) {
    nlohmann::json j = r.to_json();
    j["config"] = cfg.to_json();
    j["ranks"] = m.size;
    j["interrupted"] = interrupt_requested();
    write_json_report(o.json, j);
  }
  if (interrupt_requested()) throw Interrupted();
}

struct TrainCacheCli {
  std::string manifest, model, out, size, json, device = "cpu", dtype = "fp32", latent_dtype = "fp32";
  int64_t frames = 17, random = 0, latent_channels = 128, caption_channels = 2304, caption_length = 300;
  double fps = 0;
  bool latents = false;
  uint64_t seed = 0;
};

void run_train_cache(const TrainCacheCli& o) {
  const pipeline::FrameSize size = pipeline::parse_frame_size(o.size, "--size");
  nlohmann::json report;
  if (o.random > 0) {
    SS_CHECK(o.manifest.empty(), "--random: expected no --manifest, got '{}'", o.manifest);
    const auto start = std::chrono::steady_clock::now();
    train::write_random_latent_cache(o.out, {train::CacheKind::kLatents, size.width, size.height, o.frames}, o.random,
                                     o.latent_channels, o.caption_channels, o.caption_length, o.seed);
    report = {{"samples", o.random},
              {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
    std::printf("%s: %lld random latent clips (the data is noise: benchmarks and smoke runs)\n", o.out.c_str(),
                static_cast<long long>(o.random));
  } else {
#ifdef SANASTREAM_WITH_TRAIN_CACHE
    SS_CHECK(!o.manifest.empty() && !o.model.empty(),
             "train-cache: expected --manifest FILE and --model PKG (or --random N)");
    train::CacheBuildOptions opt;
    opt.manifest = o.manifest;
    opt.model = o.model;
    opt.out_dir = o.out;
    opt.width = size.width;
    opt.height = size.height;
    opt.frames = o.frames;
    opt.fps = o.fps;
    opt.latents = o.latents;
    opt.latent_dtype = o.latent_dtype;
    opt.device = o.device;
    opt.dtype = o.dtype;
    const train::CacheBuildReport r = train::build_data_cache(opt);
    report = r.to_json();
    std::printf("%s: %lld samples (%lld with a target), %s, in %.1f s\n", o.out.c_str(),
                static_cast<long long>(r.samples), static_cast<long long>(r.with_target),
                o.latents ? "latents" : "frames", r.seconds);
#else
    SS_FAIL(
        "train-cache --manifest: this build has no FFmpeg or SentencePiece (decode the videos on a machine that "
        "has them and carry the cache over; --random N works here)");
#endif
  }
  if (!o.json.empty()) write_json_report(o.json, report);
}

}  // namespace

void register_train(CLI::App& app) {
  auto o = std::make_shared<TrainCli>();
  auto* sub = app.add_subcommand("train",
                                 "Train or fine-tune the DiT on a data cache (flow matching, streaming "
                                 "self-rollout, Cycle-Reverse Regularization); resumes the run directory");
  sub->add_option("--config", o->config, "Training config (JSON, docs/TRAIN.md)")->required()->type_name("FILE");
  sub->add_option("--max-steps", o->max_steps, "Override max_steps (the run's total step count)");
  sub->add_option("--time-limit", o->time_limit,
                  "Override time_limit_s: stop with a checkpoint after this many seconds");
  sub->add_option("--profile", o->profile,
                  "Record the last N steps before max_steps with the op profiler (never the first, which warms up): "
                  "OUTPUT/profile.txt gets the time per phase (train::*), operator and CUDA kernel")
      ->type_name("N")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--gpus", o->gpus,
                  "Data-parallel over N GPUs: N processes (this one and N-1 it starts), each a share of every batch, "
                  "gradients averaged with NCCL; with device cpu, N CPU processes over Gloo")
      ->type_name("N")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run_train(*o); }); });

  auto c = std::make_shared<TrainCacheCli>();
  auto* cache = app.add_subcommand("train-cache",
                                   "Decode a manifest JSONL's videos and encode its prompts into a "
                                   "training data cache, or write one of random latents (docs/TRAIN.md)");
  cache->add_option("--out", c->out, "Cache directory to create")->required()->type_name("DIR");
  cache->add_option("--size", c->size,
                    "Frame size WxH (multiples of the VAE's spatial ratio, 32 for LTX-2; at least the training size)")
      ->required();
  cache->add_option("--frames", c->frames, "Frames per clip (1 + k·the VAE's temporal ratio, 8 for LTX-2)")
      ->capture_default_str();
  cache->add_option("--manifest", c->manifest,
                    "JSONL: source_video, start?, prompt?, reverse_prompt?, target_video? (docs/TRAIN.md)")
      ->type_name("FILE");
  cache->add_option("--model", c->model, "Model package (text encoder; the VAE for --latents)");
  cache->add_option("--fps", c->fps, "Frame rate clips are read at (default: the package's)");
  cache->add_flag("--latents", c->latents, "Store VAE latents instead of frames");
  cache->add_option("--latent-dtype", c->latent_dtype, "fp32 | fp16: how --latents are stored")->capture_default_str();
  cache->add_option("--device", c->device, "cpu | cuda[:N] (text encoder, VAE)")->capture_default_str();
  cache->add_option("--dtype", c->dtype, "fp32 | bf16")->capture_default_str();
  cache->add_option("--random", c->random, "Instead: N clips of seeded random latents and prompts (benchmarks)");
  cache->add_option("--latent-channels", c->latent_channels, "--random: latent channels")->capture_default_str();
  cache->add_option("--caption-channels", c->caption_channels, "--random: prompt embedding width")
      ->capture_default_str();
  cache->add_option("--caption-length", c->caption_length, "--random: prompt tokens")->capture_default_str();
  cache->add_option("--seed", c->seed, "--random: seed")->capture_default_str();
  add_json_option(cache, &c->json);
  cache->callback([c] { set_runner([c] { run_train_cache(*c); }); });
}

}  // namespace sanastream::cli
