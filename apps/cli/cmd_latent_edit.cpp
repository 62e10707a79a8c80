// sanastream latent-edit: the DiT samplers on latents (golden tensor names in and out).
#include <cstdio>
#include <sstream>

#include "command.h"
#include "core/compare.h"
#include "core/error.h"
#include "core/json_report.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "model/quant_plan.h"
#include "pipeline/dit_loader.h"
#include "pipeline/latent_edit.h"

namespace sanastream::cli {

namespace {
struct LatentEditCli {
  std::string model, model_config, inputs, output, dump, dump_calls, mode = "streaming", dtype = "fp32",
      device = "cpu", json, plan;
  int steps = 0, first_chunk = 0;
  int64_t rope_limit = 0;
  double cfg = -1;
  bool efficient_cache = false;
};

std::set<int> parse_calls(const std::string& s) {
  std::set<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      int v = std::stoi(item, &used);
      SS_CHECK(used == item.size() && v >= 0, "--dump-calls: expected comma-separated call numbers, got '{}'", s);
      out.insert(v);
    } catch (const std::logic_error&) {
      SS_FAIL("--dump-calls: expected comma-separated call numbers, got '{}'", s);
    }
  }
  return out;
}

void run(const LatentEditCli& o) {
  const Runtime rt = make_runtime(o.device, o.dtype);
  pipeline::LatentEditOptions opt;
  opt.mode = pipeline::parse_mode(o.mode);
  opt.steps = o.steps;
  opt.cfg = o.cfg;
  opt.first_chunk = o.first_chunk;
  opt.efficient_cache = o.efficient_cache;
  opt.rope_limit = o.rope_limit;
  SS_CHECK(!(o.efficient_cache && opt.mode == pipeline::SamplerMode::kBidirectional),
           "--efficient-cache applies to --mode streaming only");
  opt.dump = !o.dump.empty();
  opt.dump_calls = parse_calls(o.dump_calls);
  SS_CHECK(o.dump_calls.empty() || opt.dump, "--dump-calls needs --dump FILE");
  const io::TensorMap inputs = io::load_safetensors(o.inputs);
  auto dit = pipeline::load_dit(pipeline::resolve_dit_source(o.model, o.model_config), rt, model::load_quant_plan(o.plan));
  log_info("{}", dit->config().summary());
  pipeline::LatentEditResult r = pipeline::latent_edit(*dit, inputs, opt);
  io::save_safetensors(o.output, {{"output.latents", r.latents}});
  if (opt.dump) io::save_safetensors(o.dump, r.dump);
  std::printf("%s: output.latents %s, %lld model calls in %.2f s\n", o.output.c_str(),
              shape_str(r.latents.sizes()).c_str(), static_cast<long long>(r.model_calls), r.seconds);
  if (!o.json.empty())
    write_json_report(o.json, {{"output", o.output},
                               {"mode", o.mode},
                               {"dtype", o.dtype},
                               {"device", o.device},
                               {"model_calls", r.model_calls},
                               {"seconds", r.seconds},
                               {"model", dit->config().to_json()}});
}
}  // namespace

void register_latent_edit(CLI::App& app) {
  auto o = std::make_shared<LatentEditCli>();
  auto* sub = app.add_subcommand("latent-edit", "Run the DiT samplers on latents (inputs.* → output.latents)");
  sub->add_option("--model", o->model, "Model package, .pth, .safetensors, shard index or directory")->required();
  sub->add_option("--model-config", o->model_config, "JSON whose model/model_kwargs override detected settings");
  sub->add_option("--inputs", o->inputs, "safetensors with inputs.noise, inputs.src_latents, inputs.prompt_embeds, inputs.prompt_mask")
      ->required();
  sub->add_option("--output", o->output, "Output safetensors (output.latents)")->required();
  sub->add_option("--mode", o->mode, "streaming | bidirectional")->capture_default_str();
  sub->add_option("--steps", o->steps, "Sampler steps (default 4 streaming, 50 bidirectional)");
  sub->add_option("--cfg", o->cfg, "CFG scale (bidirectional; default 6)");
  sub->add_option("--first-chunk", o->first_chunk, "Latent frames of the first chunk (3, 4, 5; default: official rule)");
  sub->add_flag("--efficient-cache", o->efficient_cache, "Write caches from the last denoising call (no t=0 pass)");
  sub->add_option("--rope-limit", o->rope_limit,
                  "Temporal RoPE positions before the non-sink positions are rebased (default 0: the model's table, "
                  "1024; small values test long streams)");
  sub->add_option("--dtype", o->dtype, "fp32 | bf16")->capture_default_str();
  sub->add_option("--device", o->device, "cpu | cuda[:N]")->capture_default_str();
  sub->add_option("--plan", o->plan,
                  "Quantization plan (JSON, docs/QUANT.md): its projections run in FP8/INT8 (FP8 GEMMs on GPUs "
                  "that have them, else simulated)")
      ->type_name("FILE");
  sub->add_option("--dump", o->dump, "Write every call's x_in/v_out and the caches (golden names)");
  sub->add_option("--dump-calls", o->dump_calls, "Comma-separated calls whose activations to dump (e.g. 0,15)");
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run(*o); }); });
}

}  // namespace sanastream::cli
