// sanastream convert IN OUT.safetensors: any supported weights form to one safetensors file.
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "core/json_report.h"
#include "core/log.h"
#include "io/checkpoint.h"

namespace sanastream::cli {

namespace {
struct ConvertOptions {
  std::string input, output, dtype = "keep", json;
};

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
  io::WeightSet ws = io::load_weights(o.input);
  io::TensorMap out;
  for (auto& [name, t] : ws.tensors) out[name] = (!keep && t.is_floating_point()) ? t.to(target) : t;
  io::save_safetensors(o.output, out, {{"format", "pt"}, {"converted_from", ws.source}});
  for (const auto& s : ws.skipped) log_info("skipped non-tensor leaf: {}", s);
  std::printf("%s: %zu tensors written (%s)\n", o.output.c_str(), out.size(), keep ? "dtypes kept" : o.dtype.c_str());
  if (!o.json.empty())
    write_json_report(o.json, {{"input", ws.source}, {"output", o.output}, {"tensors", out.size()},
                               {"dtype", o.dtype}, {"skipped", ws.skipped}});
}
}  // namespace

void register_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  auto* sub = app.add_subcommand("convert", "Convert weights (.pth, shard sets, .safetensors) to one .safetensors file");
  sub->add_option("input", o->input, "Weights file or directory")->required();
  sub->add_option("output", o->output, "Output .safetensors file (written atomically)")->required();
  sub->add_option("--dtype", o->dtype, "keep | fp32 | bf16 | fp16 for floating-point tensors")->capture_default_str();
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run_convert(*o); }); });
}

}  // namespace sanastream::cli
