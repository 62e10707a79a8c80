// sanastream eval: temporal consistency, fidelity and speed of an edit, measured one way
// (docs/METRICS.md). Outputs are written only once every figure is computed.
#include <cstdio>
#include <memory>

#include "command.h"
#include "core/error.h"
#include "core/fs.h"
#include "eval/evaluate.h"
#include "eval/report.h"

namespace sanastream::cli {

namespace {
struct EvalCli {
  eval::EvalInputs inputs;
  std::string run_json, json, report;
};

// The object of a `sanastream edit --json` run file, carried under "run".
nlohmann::json load_run(const std::string& path) {
  const std::string text = read_text_file(path);
  nlohmann::json run;
  try {
    run = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    SS_FAIL("--run-json {}: expected JSON, got a parse error ({})", path, e.what());
  }
  SS_CHECK(run.is_object(), "--run-json {}: expected a JSON object (an edit --json file), got {}", path,
           run.type_name());
  return run;
}

void run(const EvalCli& o) {
  const int stdin_inputs = (o.inputs.source == "-") + (o.inputs.edited == "-") + (o.inputs.target == "-");
  SS_CHECK(stdin_inputs <= 1, "expected at most one input from stdin ('-'), got {}", stdin_inputs);
  const nlohmann::json run = o.run_json.empty() ? nlohmann::json() : load_run(o.run_json);
  eval::EvalOptions opt;
  opt.strip_frames = o.report.empty() ? 0 : 8;
  const eval::EvalResult r = eval::evaluate(o.inputs, opt);

  // Both files are complete before either is renamed into place.
  std::unique_ptr<AtomicFile> json_file, report_file;
  if (!o.json.empty()) {
    json_file = std::make_unique<AtomicFile>(o.json);
    json_file->write(eval::to_json(r, run).dump(2) + "\n");
  }
  if (!o.report.empty()) {
    report_file = std::make_unique<AtomicFile>(o.report);
    report_file->write(eval::render_html(r, run));
  }
  if (json_file) json_file->commit();
  if (report_file) report_file->commit();
  // The table goes to stderr when stdout carries the JSON or the report.
  std::FILE* table_out = (o.json == "-" || o.report == "-") ? stderr : stdout;
  std::fputs(eval::format_table(r, run).c_str(), table_out);
}
}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<EvalCli>();
  auto* sub = app.add_subcommand(
      "eval", "Measure an edit: warp error and flicker (temporal consistency), PSNR/SSIM against a target, edge "
              "SSIM against the source, and the speed of its run (docs/METRICS.md)");
  sub->add_option("--source", o->inputs.source, "Source video ('-' = stdin)")->required()->type_name("FILE");
  sub->add_option("--edited", o->inputs.edited, "Edited video; its frames define the time grid ('-' = stdin)")
      ->required()
      ->type_name("FILE");
  sub->add_option("--target", o->inputs.target, "Reference video for PSNR and SSIM ('-' = stdin)")->type_name("FILE");
  sub->add_option("--run-json", o->run_json, "The --json file of the `sanastream edit` run that made the edit")
      ->type_name("FILE");
  sub->add_option("--flow", o->inputs.flow,
                  "Precomputed flow instead of DIS: safetensors 'flow' F32 (F-1, H, W, 2) in pixels, frame i -> i+1, "
                  "and optionally 'flow_bwd' (i+1 -> i)")
      ->type_name("FILE");
  add_json_option(sub, &o->json);
  sub->add_option("--report", o->report, "Write a self-contained HTML report (curves and frame strips)")
      ->type_name("FILE");
  sub->callback([o] { set_runner([o] { run(*o); }); });
}

}  // namespace sanastream::cli
