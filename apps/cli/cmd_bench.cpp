// sanastream bench: throughput, latency and memory of the engine's parts (docs/PERF.md).
#include "command.h"
#include "core/error.h"
#include "core/json_report.h"
#include "pipeline/bench.h"
#include "pipeline/edit_engine.h"

namespace sanastream::cli {

namespace {
struct BenchCli {
  pipeline::BenchOptions o;
  std::string size = "1280x704", json;
  bool no_graphs = false;
};

void run(BenchCli& c) {
  const pipeline::FrameSize size = pipeline::parse_frame_size(c.size, "--size");
  c.o.width = size.width;
  c.o.height = size.height;
  c.o.cuda_graphs = !c.no_graphs;
  nlohmann::json r = pipeline::run_bench(c.o);
  if (!c.json.empty()) write_json_report(c.json, r);
}
}  // namespace

void register_bench(CLI::App& app) {
  auto c = std::make_shared<BenchCli>();
  auto* sub = app.add_subcommand("bench", "Benchmark the DiT, the VAE or the whole pipeline (CUDA events after warm-up; random inputs, never zeros)");
  sub->add_option("--part", c->o.part, "dit | vae-encode | vae-decode | e2e | gdn (the GDN kernels vs the ATen path)")->capture_default_str();
  sub->add_option("--model", c->o.model,
                  "A model package; or DiT weights (dit) or a VAE directory (vae-*) (default: the 2B DiT and the LTX-2 VAE with seeded random weights)");
  sub->add_option("--size", c->size, "Frame size WxH (multiples of 32, or of a package's VAE ratio x DiT patch)")->capture_default_str();
  sub->add_option("--steps", c->o.steps, "Denoising steps per chunk")->capture_default_str();
  sub->add_flag("--efficient-cache", c->o.efficient_cache, "No t=0 cache pass (4 forwards per chunk)");
  sub->add_option("--dtype", c->o.dtype, "bf16 | fp32")->capture_default_str();
  sub->add_option("--device", c->o.device, "cuda[:N] | cpu")->capture_default_str();
  sub->add_option("--latent-frames", c->o.latent_frames, "Latent frames of the timed stream")->capture_default_str();
  sub->add_option("--first-chunk", c->o.first_chunk, "Latent frames of the first chunk")->capture_default_str();
  sub->add_option("--seed", c->o.seed, "Seed of the random weights and inputs")->capture_default_str();
  sub->add_option("--plan", c->o.plan,
                  "Quantization plan (JSON, docs/QUANT.md): its projections run in FP8/INT8 (FP8 GEMMs on GPUs "
                  "that have them, else simulated)")
      ->type_name("FILE");
  sub->add_option("--tile", c->o.tile, "VAE spatial tiling SIZE[:OVERLAP] | 0 | auto (off on CUDA)")->capture_default_str();
  sub->add_option("--vae-layout", c->o.vae_layout, "VAE activation layout: auto (ndhwc on CUDA) | ncdhw | ndhwc")
      ->capture_default_str();
  sub->add_flag("--no-graphs", c->no_graphs, "Run every call eagerly (no CUDA graphs)");
  sub->add_flag("--profile", c->o.profile,
                "Also time each region of one eager steady chunk (dit: per forward; vae-*: per chunk); only that "
                "chunk runs inside the CUDA profiler's range (ncu --profile-from-start off)");
  sub->add_option("--vae-call-latents", c->o.vae_call_latents,
                  "e2e: latent frames a VAE call takes at most (0: a whole chunk); 1 lowers peak GPU memory")
      ->capture_default_str();
  sub->add_flag("--text-encoder", c->o.text_encoder,
               "e2e: keep the text encoder resident on the device during the run, as edit does (the package's, "
               "else Gemma-2-2b's shapes with random weights); the peak memory includes it");
  sub->add_option("--pace", c->o.pace,
                  "e2e: also feed the frames in real time at FPS, encoding what has arrived whenever no frame waits, "
                  "and report the latency from a chunk's last frame to its edited frames (the first frame's first)")
      ->check(CLI::PositiveNumber)
      ->type_name("FPS");
  sub->add_option("--gpus", c->o.gpus,
                  "e2e: 2 = the VAE on cuda:1 and the DiT on cuda:0, pipelined (after the one-GPU run: speed-up and "
                  "whether the frames are the same; on the CPU both stages share it)")
      ->check(CLI::Range(1, 2))
      ->capture_default_str();
  sub->add_option("--streams", c->o.streams,
                  "e2e: K sessions at once, each with its own models on GPU k mod the visible GPUs (after one alone: "
                  "per-stream FPS and the throughput ratio)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  add_json_option(sub, &c->json);
  sub->callback([c] { set_runner([c] { run(*c); }); });
}

}  // namespace sanastream::cli
