// sanastream make-package --random-weights: a complete model package (SPEC §8, docs/MODELS.md) of
// seeded random weights — DiT, LTX-2 VAE, Gemma-2 text encoder and tokenizer — for tests and
// benchmarks. Its outputs are noise, and its model.json says so.
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
  std::string out, preset = "tiny", dtype = "bf16", json;
  uint64_t seed = 0;
  bool random_weights = false, bidirectional = false, force = false;
};

std::string millions(int64_t n) { return fmt::format("{:.2f}M", n / 1e6); }

void run(const MakePackageCli& o) {
  const auto start = std::chrono::steady_clock::now();
  pipeline::RandomPackageOptions opt;
  opt.preset = o.preset;
  opt.seed = o.seed;
  opt.dtype = parse_dtype_name(o.dtype);
  opt.bidirectional = o.bidirectional;
  opt.force = o.force;
  const pipeline::RandomPackagePreset preset = pipeline::random_package_preset(o.preset);
  const pipeline::RandomPackageReport r = pipeline::write_random_package(opt, o.out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: random-weight package (preset %s, seed %llu, %s): DiT %s parameters (%lld blocks x %lld%s), VAE "
              "%s, text encoder %s; %.1f MB in %.1f s; its outputs are noise\n",
              r.dir.c_str(), o.preset.c_str(), static_cast<unsigned long long>(o.seed), o.dtype.c_str(),
              millions(r.dit_parameters).c_str(), static_cast<long long>(preset.dit.depth),
              static_cast<long long>(preset.dit.hidden), o.bidirectional ? ", + a bidirectional DiT" : "",
              millions(r.vae_parameters).c_str(), millions(r.text_encoder_parameters).c_str(), r.bytes / 1e6, seconds);
  if (!o.json.empty()) {
    nlohmann::json report = r.to_json();
    report["preset"] = o.preset;
    report["seed"] = o.seed;
    report["dtype"] = o.dtype;
    report["bidirectional"] = o.bidirectional;
    report["seconds"] = seconds;
    report["package"] = pipeline::load_model_package(r.dir).to_json();
    write_json_report(o.json, report);
  }
}
}  // namespace

void register_make_package(CLI::App& app) {
  auto o = std::make_shared<MakePackageCli>();
  auto* sub = app.add_subcommand(
      "make-package", "Write a model package of seeded random weights (DiT, VAE, text encoder, tokenizer) for tests "
                      "and benchmarks; its outputs are noise");
  sub->add_option("out_dir", o->out, "Package directory to create (written as OUT_DIR.part, renamed when complete)")
      ->required();
  sub->add_flag("--random-weights", o->random_weights,
                "Required: the package holds seeded random weights (docs/MODELS.md builds one from the official "
                "downloads)")
      ->required();
  sub->add_option("--preset", o->preset, "tiny (CPU tests) | small | 2b (the official shapes, 12.2 GB in bf16)")
      ->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the weights (same seed: identical files)")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "bf16 | fp32 weights")->capture_default_str();
  sub->add_flag("--bidirectional", o->bidirectional,
                "Also a bidirectional DiT (model.json dit_bidirectional, max_frames 81)");
  sub->add_flag("--force", o->force, "Replace OUT_DIR if it is a model package");
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run(*o); }); });
}

}  // namespace sanastream::cli
