// sanastream make-package --random-weights: a complete model package (SPEC §8, docs/MODELS.md) of
// seeded random weights — DiT, LTX-2 VAE, Gemma-2 text encoder and tokenizer — for tests and
// benchmarks. Its outputs are noise, and its model.json says so.
// sanastream assemble-package: a package from trained parts (a train checkpoint's DiT, VAE and text
// encoder) and a base package that gives the rest.
#include <chrono>
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "core/json_report.h"
#include "core/runtime.h"
#include "pipeline/model_package.h"

namespace sanastream::cli {

namespace {
struct MakePackageCli {
  std::string out, preset = "tiny", dtype = "bf16", tokenizer, json;
  uint64_t seed = 0;
  bool random_weights = false, bidirectional = false, force = false;
};

struct AssemblePackageCli {
  std::string out, base, dit, vae, text_encoder, dtype = "bf16", name, description, json;
  bool force = false;
};

std::string millions(int64_t n) { return fmt::format("{:.2f}M", n / 1e6); }

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void run(const MakePackageCli& o) {
  const auto start = std::chrono::steady_clock::now();
  pipeline::RandomPackageOptions opt;
  opt.preset = o.preset;
  opt.tokenizer = o.tokenizer;
  opt.seed = o.seed;
  opt.dtype = parse_dtype_name(o.dtype);
  opt.bidirectional = o.bidirectional;
  opt.force = o.force;
  const pipeline::RandomPackagePreset preset = pipeline::random_package_preset(o.preset, o.tokenizer);
  const pipeline::PackageReport r = pipeline::write_random_package(opt, o.out);
  const double seconds = seconds_since(start);
  std::printf("%s: random-weight package (preset %s, seed %llu, %s): DiT %s parameters (%lld blocks x %lld%s), VAE "
              "%s, text encoder %s; %.1f MB in %.1f s; its outputs are noise\n",
              r.dir.c_str(), o.preset.c_str(), static_cast<unsigned long long>(o.seed), o.dtype.c_str(),
              millions(r.dit_parameters).c_str(), static_cast<long long>(preset.dit.depth),
              static_cast<long long>(preset.dit.hidden), o.bidirectional ? ", + a bidirectional DiT" : "",
              millions(r.vae_parameters).c_str(), millions(r.text_encoder_parameters).c_str(), r.bytes / 1e6, seconds);
  if (!o.json.empty()) {
    nlohmann::json report = r.to_json();
    report["preset"] = o.preset;
    report["tokenizer"] = o.tokenizer;
    report["seed"] = o.seed;
    report["dtype"] = o.dtype;
    report["bidirectional"] = o.bidirectional;
    report["seconds"] = seconds;
    report["package"] = pipeline::load_model_package(r.dir).to_json();
    write_json_report(o.json, report);
  }
}

void run_assemble(const AssemblePackageCli& o) {
  const auto start = std::chrono::steady_clock::now();
  pipeline::AssembleOptions opt;
  opt.base = o.base;
  opt.dit = o.dit;
  opt.vae = o.vae;
  opt.text_encoder = o.text_encoder;
  opt.dtype = parse_dtype_name(o.dtype);
  opt.name = o.name;
  opt.description = o.description;
  opt.force = o.force;
  const pipeline::PackageReport r = pipeline::assemble_package(opt, o.out);
  const double seconds = seconds_since(start);
  std::printf("%s: package from trained parts (%s): DiT %s parameters, VAE %s, text encoder %s%s; %.1f MB in %.1f s\n",
              r.dir.c_str(), o.dtype.c_str(), millions(r.dit_parameters).c_str(), millions(r.vae_parameters).c_str(),
              millions(r.text_encoder_parameters).c_str(), o.text_encoder.empty() ? " (the base's)" : "",
              r.bytes / 1e6, seconds);
  if (!o.json.empty()) {
    nlohmann::json report = r.to_json();
    report["base"] = o.base;
    report["dit"] = o.dit;
    report["vae"] = o.vae;
    report["text_encoder"] = o.text_encoder;
    report["dtype"] = o.dtype;
    report["seconds"] = seconds;
    report["package"] = pipeline::load_model_package(r.dir).to_json();
    write_json_report(o.json, report);
  }
}

}  // namespace

void register_assemble_package(CLI::App& app) {
  auto o = std::make_shared<AssemblePackageCli>();
  auto* sub = app.add_subcommand(
      "assemble-package",
      "Write a model package from trained parts (a train checkpoint's DiT, VAE and text encoder) and a base package "
      "that gives the rest (model.json fields, DiT config, text-encoder config and tokenizer)");
  sub->add_option("out_dir", o->out, "Package directory to create (written as OUT_DIR.part, renamed when complete)")
      ->required();
  sub->add_option("--base", o->base,
                  "A model package: name, fps, resolutions, the DiT's config, the text encoder's config.json and "
                  "tokenizer.model (and its weights without --text-encoder)")
      ->required()
      ->type_name("PKG");
  sub->add_option("--dit", o->dit, "The DiT's weights (a checkpoint's dit_ema.safetensors)")
      ->required()
      ->type_name("FILE");
  sub->add_option("--vae", o->vae,
                  "A VAE directory: config.json + diffusion_pytorch_model.safetensors (a checkpoint's vae_ema/)")
      ->required()
      ->type_name("DIR");
  sub->add_option("--text-encoder", o->text_encoder,
                  "Gemma-2 weights (a checkpoint's text_encoder_ema.safetensors); default: the base package's")
      ->type_name("FILE");
  sub->add_option("--dtype", o->dtype, "bf16 | fp32 weights")->capture_default_str();
  sub->add_option("--name", o->name, "model.json name (default: the base's)");
  sub->add_option("--description", o->description, "model.json description (default: one naming the parts)");
  sub->add_flag("--force", o->force, "Replace OUT_DIR if it is a model package");
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run_assemble(*o); }); });
}

void register_make_package(CLI::App& app) {
  auto o = std::make_shared<MakePackageCli>();
  auto* sub = app.add_subcommand(
      "make-package", "Write a model package of seeded random weights (DiT, VAE, text encoder, tokenizer) for tests "
                      "and benchmarks; its outputs are noise");
  sub->add_option("out_dir", o->out, "Package directory to create (written as OUT_DIR.part, renamed when complete)")
      ->required();
  sub->add_flag("--random-weights", o->random_weights,
                "Required: the package holds seeded random weights (assemble-package builds one from trained parts; "
                "docs/MODELS.md one from the official downloads)")
      ->required();
  sub->add_option("--preset", o->preset,
                  "tiny (CPU tests) | small | demo (the demo model's shapes) | 2b (the official shapes, 12.2 GB in "
                  "bf16)")
      ->capture_default_str();
  sub->add_option("--tokenizer", o->tokenizer,
                  "A tokenizer.model (sanastream train-tokenizer) instead of the built-in test pieces; the Gemma "
                  "vocabulary is its piece count rounded up to 64")
      ->type_name("FILE");
  sub->add_option("--seed", o->seed, "Seed of the weights (same seed: identical files)")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "bf16 | fp32 weights")->capture_default_str();
  sub->add_flag("--bidirectional", o->bidirectional,
                "Also a bidirectional DiT (model.json dit_bidirectional, max_frames 81)");
  sub->add_flag("--force", o->force, "Replace OUT_DIR if it is a model package");
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run(*o); }); });
}

}  // namespace sanastream::cli
