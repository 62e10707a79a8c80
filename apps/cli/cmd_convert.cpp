// sanastream convert IN OUT.safetensors: any supported weights form to one safetensors file; with
// --from ltx2-native, the LTX-2 video VAE of a Lightricks-native checkpoint in the diffusers layout.
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "core/json_report.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "model/ltx2_vae.h"
#include "model/ltx2_vae_convert.h"

namespace sanastream::cli {

namespace {
struct ConvertOptions {
  std::string input, output, dtype = "keep", json, from = "checkpoint", vae_config;
};

// The VAE of a Lightricks-native LTX-2 checkpoint ("vae." keys) renamed to the diffusers layout (SPEC §4);
// with --vae-config, checked against that config before anything is written.
io::TensorMap convert_ltx2_native(const ConvertOptions& o, std::string* source, std::vector<std::string>* dropped) {
  *source = io::resolve_weights_path(o.input, "checkpoint");
  model::Ltx2NativeConversion c = model::convert_ltx2_native_vae(io::load_safetensors(*source));
  if (!o.vae_config.empty()) {
    try {
      model::Ltx2Vae check(c.tensors, model::load_ltx2_vae_config(o.vae_config), make_runtime("cpu", "fp32"));
    } catch (const Error& e) {
      SS_FAIL("{}: the converted VAE does not match {}: {}", *source, o.vae_config, e.message());
    }
  }
  log_info("ltx2-native: {} VAE tensors renamed, {} statistics dropped, {} tensors of other components ignored",
           c.tensors.size(), c.dropped.size(), c.ignored);
  *dropped = c.dropped;
  return c.tensors;
}

void run_convert(const ConvertOptions& o) {
  const std::string ext = ".safetensors";
  SS_CHECK(o.output.size() > ext.size() && o.output.compare(o.output.size() - ext.size(), ext.size(), ext) == 0,
           "convert: expected an output path ending in .safetensors, got '{}'", o.output);
  at::ScalarType target = at::kFloat;
  const bool keep = o.dtype == "keep";
  if (!keep) {
    if (o.dtype == "fp32") target = at::kFloat;
    else if (o.dtype == "bf16") target = at::kBFloat16;
    else if (o.dtype == "fp16") target = at::kHalf;
    else SS_FAIL("--dtype: expected keep, fp32, bf16 or fp16, got '{}'", o.dtype);
  }
  SS_CHECK(o.from == "checkpoint" || o.from == "ltx2-native", "--from: expected checkpoint or ltx2-native, got '{}'",
           o.from);
  SS_CHECK(o.vae_config.empty() || o.from == "ltx2-native", "--vae-config applies to --from ltx2-native only");
  io::WeightSet ws;
  std::vector<std::string> dropped;
  if (o.from == "ltx2-native") {
    ws.tensors = convert_ltx2_native(o, &ws.source, &dropped);
  } else {
    ws = io::load_weights(o.input);
  }
  io::TensorMap out;
  for (auto& [name, t] : ws.tensors) out[name] = (!keep && t.is_floating_point()) ? t.to(target) : t;
  io::save_safetensors(o.output, out, {{"format", "pt"}, {"converted_from", ws.source}});
  for (const auto& s : ws.skipped) log_info("skipped non-tensor leaf: {}", s);
  for (const auto& s : dropped) log_info("dropped (the diffusers layout keeps no such tensor): {}", s);
  std::printf("%s: %zu tensors written (%s)\n", o.output.c_str(), out.size(), keep ? "dtypes kept" : o.dtype.c_str());
  if (!o.json.empty())
    write_json_report(o.json, {{"input", ws.source}, {"output", o.output}, {"tensors", out.size()},
                               {"dtype", o.dtype}, {"skipped", ws.skipped}, {"from", o.from}, {"dropped", dropped}});
}
}  // namespace

void register_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  auto* sub = app.add_subcommand("convert", "Convert weights (.pth, shard sets, .safetensors) to one .safetensors file");
  sub->add_option("input", o->input, "Weights file or directory")->required();
  sub->add_option("output", o->output, "Output .safetensors file (written atomically)")->required();
  sub->add_option("--dtype", o->dtype, "keep | fp32 | bf16 | fp16 for floating-point tensors")->capture_default_str();
  sub->add_option("--from", o->from, "checkpoint (any supported form, keys kept) | ltx2-native (the video VAE of a "
                  "Lightricks LTX-2 checkpoint, renamed to the diffusers layout)")->capture_default_str();
  sub->add_option("--vae-config", o->vae_config, "With --from ltx2-native: a diffusers config.json the converted VAE "
                  "must match");
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run_convert(*o); }); });
}

}  // namespace sanastream::cli
