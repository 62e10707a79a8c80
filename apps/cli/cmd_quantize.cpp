// sanastream quantize --profile: a mixed-precision plan chosen by measurement (docs/QUANT.md).
#include <set>
#include <sstream>

#include "command.h"
#include "core/error.h"
#include "core/json_report.h"
#include "pipeline/edit_engine.h"
#include "pipeline/quant_search.h"
#include "train/data_cache.h"

namespace sanastream::cli {

namespace {
struct QuantizeCli {
  pipeline::QuantSearchOptions o;
  std::string size = "1280x704", precisions = "fp8,int8", data, json;
  bool profile = false;
};

// The first --clips clips and --prompts distinct prompts of a data cache of latents (their latent grid
// is checked against the model's at --size by the search).
pipeline::QuantSearchInputs read_inputs(const std::string& dir, int clips, int prompts) {
  const train::DataCache cache(dir);
  const train::CacheHeader& h = cache.header();
  SS_CHECK(h.kind == train::CacheKind::kLatents, "--data {}: expected a cache of latents (train-cache --latents), got "
           "frames", dir);
  pipeline::QuantSearchInputs in;
  in.name = fmt::format("--data {}", dir);
  std::set<std::string> seen;
  for (int64_t i = 0; i < cache.size(); ++i) {
    const train::CacheSample s = cache.load(i);
    if (static_cast<int>(in.clips.size()) < clips) in.clips.push_back(s.source);
    if (s.prompt_embeds.defined() && static_cast<int>(in.prompts.size()) < prompts && seen.insert(s.prompt).second)
      in.prompts.push_back({s.prompt_embeds, s.prompt_mask});
  }
  SS_CHECK(static_cast<int>(in.clips.size()) == clips && static_cast<int>(in.prompts.size()) == prompts,
           "--data {}: it holds {} clips and {} distinct prompts; --clips {} and --prompts {} ask for more", dir,
           cache.size(), seen.size(), clips, prompts);
  return in;
}

void run(QuantizeCli& c) {
  SS_CHECK(c.profile, "quantize: --profile is required (it measures this device; the plan is its result)");
  const pipeline::FrameSize size = pipeline::parse_frame_size(c.size, "--size");
  c.o.deploy.width = size.width;
  c.o.deploy.height = size.height;
  if (!c.data.empty()) c.o.inputs = read_inputs(c.data, c.o.clips, c.o.prompts);
  c.o.precisions.clear();
  std::stringstream ss(c.precisions);
  for (std::string item; std::getline(ss, item, ',');) c.o.precisions.push_back(ops::parse_precision(item));
  if (c.o.state.empty()) c.o.state = c.o.out + ".state.json";
  const pipeline::QuantSearchReport r = pipeline::quant_search(c.o);
  if (!r.complete) {
    std::printf("quantize: %d figures measured, %d reused; the time budget is spent: run the same command again "
                "to go on (measurements in %s)\n",
                r.measured, r.reused, c.o.state.c_str());
  } else {
    const auto& m = r.summary;
    std::printf("quantize: plan %s: %.1f dit_fps (BF16 %.1f, predicted %.1f), error %.4g (bound %.4g)%s; %d figures "
                "measured, %d reused\n",
                c.o.out.c_str(), m["plan_fps"].get<double>(), m["bf16_fps"].get<double>(),
                m["predicted_fps"].get<double>(), m["error"].get<double>(), c.o.max_error,
                m["dropped"].get<bool>() ? "; slower than BF16, so the DiT stays BF16" : "", r.measured, r.reused);
    if (!m["vae"].is_null())
      std::printf("quantize: VAE %s: PSNR %.2f dB against BF16 (bound %.1f), %.2f ms saved per chunk\n",
                  m["vae"]["precision"].get<std::string>().c_str(), m["vae"]["psnr"].get<double>(), c.o.min_vae_psnr,
                  m["vae"]["saved_ms_per_chunk"].get<double>());
  }
  if (!c.json.empty())
    write_json_report(c.json, {{"complete", r.complete}, {"measured", r.measured}, {"reused", r.reused},
                               {"plan", r.complete ? nlohmann::json(c.o.out) : nlohmann::json(nullptr)},
                               {"summary", r.summary}});
}
}  // namespace

void register_quantize(CLI::App& app) {
  auto c = std::make_shared<QuantizeCli>();
  auto* sub = app.add_subcommand("quantize", "Choose a mixed-precision plan by measuring this device (docs/QUANT.md)");
  sub->add_flag("--profile", c->profile, "Measure group times and candidate errors, then search (resumable)");
  sub->add_option("--model", c->o.deploy.model,
                  "A model package or DiT weights (default: the 2B DiT with seeded random weights)");
  sub->add_option("--out", c->o.out, "The plan to write (JSON, with every measured figure)")->required();
  sub->add_option("--state", c->o.state, "Measurements so far, resumed (default: OUT.state.json)");
  sub->add_option("--max-error", c->o.max_error, "Bound on the relative RMSE of the final latents against BF16")
      ->capture_default_str();
  sub->add_option("--min-fps", c->o.min_fps, "The plan's measured dit_fps must reach this")->capture_default_str();
  sub->add_option("--min-vae-psnr", c->o.min_vae_psnr,
                  "The FP8 VAE's decoded frames against BF16's, in dB, for the VAE to take FP8")
      ->capture_default_str();
  sub->add_option("--precisions", c->precisions, "Candidate precisions, comma-separated: fp8, int8")
      ->capture_default_str();
  sub->add_option("--size", c->size, "Frame size WxH it will run at")->capture_default_str();
  sub->add_option("--device", c->o.deploy.device, "cuda[:N] | cpu")->capture_default_str();
  sub->add_option("--dtype", c->o.deploy.dtype, "bf16 | fp32")->capture_default_str();
  sub->add_option("--first-chunk", c->o.deploy.first_chunk, "Latent frames of the first chunk")->capture_default_str();
  sub->add_option("--steps", c->o.deploy.steps, "Denoising steps per chunk")->capture_default_str();
  sub->add_option("--chunks", c->o.chunks, "Chunks per error run (at least 8)")->capture_default_str();
  sub->add_option("--prompts", c->o.prompts, "Error runs: prompts (seeded random captions, or --data's)")
      ->capture_default_str();
  sub->add_option("--clips", c->o.clips, "Error runs: clips (seeded random source latents, or --data's)")
      ->capture_default_str();
  sub->add_option("--data", c->data,
                  "Real prompts and clips for the error runs: a data cache of latents at --size "
                  "(train-cache --latents); its first clips and distinct prompts")
      ->type_name("DIR");
  sub->add_option("--seed", c->o.deploy.seed, "Seed of the random weights and inputs")->capture_default_str();
  sub->add_option("--budget-seconds", c->o.budget_seconds,
                  "Start no new measurement after this long (run the command again to go on)")
      ->capture_default_str();
  add_json_option(sub, &c->json);
  sub->callback([c] { set_runner([c] { run(*c); }); });
}

}  // namespace sanastream::cli
