// sanastream eval: temporal consistency, fidelity and speed of an edit, measured one way
// (docs/METRICS.md). Outputs are written only once every figure is computed.
#include <cstdio>
#include <memory>

#include "command.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/stats.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#ifdef SANASTREAM_WITH_EDIT
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "edit/edit_session.h"
#endif

namespace sanastream::cli {

namespace {
struct EvalCli {
  eval::EvalInputs inputs;
  std::string run_json, json, report, suite, model, plan;
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

#ifdef SANASTREAM_WITH_EDIT
// --suite: rows {"source", "prompt", "family", "target"?} (paths relative to the suite file); each
// row is edited with --model (sanastream edit's defaults, seed 0) and measured; one table per family
// and overall, the means of the rows' figures.
void run_suite(const EvalCli& o) {
  namespace fs = std::filesystem;
  SS_CHECK(!o.model.empty(), "--suite: expected --model (the package the suite measures)");
  std::ifstream in(o.suite);
  SS_CHECK(in.good(), "--suite {}: cannot read the file", o.suite);
  const fs::path base = fs::path(o.suite).parent_path();
  auto resolve = [&](const std::string& p) { return fs::path(p).is_absolute() ? p : (base / p).string(); };
  struct Row {
    std::string source, prompt, family, target;
  };
  std::vector<Row> rows;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    SS_CHECK(j.is_object(), "--suite {}:{}: expected a JSON object per line", o.suite, n);
    for (const char* k : {"source", "prompt", "family"})
      SS_CHECK(j.contains(k) && j[k].is_string(), "--suite {}:{}: expected \"{}\" (a string)", o.suite, n, k);
    SS_CHECK(!j.contains("target") || j["target"].is_string(), "--suite {}:{}: \"target\" must be a string", o.suite, n);
    rows.push_back({resolve(j["source"]), j["prompt"], j["family"], j.contains("target") ? resolve(j["target"]) : ""});
  }
  SS_CHECK(!rows.empty(), "--suite {}: no rows", o.suite);

  const fs::path work = fs::temp_directory_path() / ("sanastream-suite-" + std::to_string(::getpid()));
  fs::create_directories(work);
  const char* const keys[] = {"warp_error", "target_warp_error", "flicker_index", "edge_ssim", "psnr", "source_psnr",
                              "ssim",       "colour_error",      "colour_drift",  "dit_fps",   "e2e_fps"};
  nlohmann::json out_rows = nlohmann::json::array();
  std::map<std::string, std::map<std::string, std::vector<double>>> by_family;
  try {
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& row = rows[i];
      edit::EditRequest req;
      req.input = row.source;
      req.prompt = row.prompt;
      req.model = o.model;
      req.plan = o.plan;
      req.output = (work / ("edit" + std::to_string(i) + ".mkv")).string();
      log_info("suite row {}/{}: {} ({})", i + 1, rows.size(), row.source, row.family);
      const nlohmann::json run = edit::run_edit(req);
      const eval::EvalResult r = eval::evaluate({row.source, req.output, row.target, ""});
      const nlohmann::json m = {{"warp_error", r.edited.warp_error},
                                {"target_warp_error", r.target ? r.target->warp_error : eval::kNaN},
                                {"flicker_index", r.edited.flicker_index},
                                {"edge_ssim", r.edge_ssim},
                                {"psnr", r.psnr},
                                {"source_psnr", r.source_psnr},
                                {"ssim", r.ssim},
                                {"colour_error", r.colour_error},
                                {"colour_drift", r.colour_drift},
                                {"dit_fps", run["dit_fps"]},
                                {"e2e_fps", run["e2e_fps"]}};
      out_rows.push_back({{"source", row.source}, {"prompt", row.prompt}, {"family", row.family}, {"figures", m}});
      for (const char* k : keys)
        if (m[k].is_number() && std::isfinite(m[k].get<double>())) {
          by_family[row.family][k].push_back(m[k].get<double>());
          by_family["overall"][k].push_back(m[k].get<double>());
        }
      remove_tree(req.output);
    }
  } catch (...) {
    remove_tree(work.string());
    throw;
  }
  remove_tree(work.string());

  std::map<std::string, int> counts;
  for (const auto& row : rows) {
    ++counts[row.family];
    ++counts["overall"];
  }
  // The mean of each figure over a family's rows (null when no row has it, e.g. PSNR without targets).
  auto summarise = [&](const std::string& family, std::string* table) {
    nlohmann::json f = {{"rows", counts[family]}};
    std::string cells;
    for (const char* k : keys) {
      const std::vector<double>& v = by_family[family][k];
      double mean = 0;
      for (double x : v) mean += x / static_cast<double>(v.size());
      f[k] = v.empty() ? nlohmann::json(nullptr) : nlohmann::json(mean);
      cells += v.empty() ? fmt::format(" {:>9}", "-") : fmt::format(" {:>9.4g}", mean);
    }
    *table += fmt::format("{:<16} {:>5}{}\n", family, counts[family], cells);
    return f;
  };
  std::string table = fmt::format("{:<16} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                                  "family", "rows", "warp_err", "tgt_warp", "flicker", "edge_ssim", "psnr", "src_psnr",
                                  "ssim", "colour", "drift", "dit_fps", "e2e_fps");
  nlohmann::json report = {{"model", o.model}, {"rows", out_rows}, {"families", nlohmann::json::object()}};
  for (const auto& [family, n] : counts)
    if (family != "overall") report["families"][family] = summarise(family, &table);
  report["overall"] = summarise("overall", &table);
  if (!o.json.empty()) write_text_file_atomic(o.json, report.dump(2) + "\n");
  std::fputs(table.c_str(), o.json == "-" ? stderr : stdout);
}
#endif

void run(const EvalCli& o) {
#ifdef SANASTREAM_WITH_EDIT
  if (!o.suite.empty()) return run_suite(o);
#else
  SS_CHECK(o.suite.empty(), "--suite: this build has no `edit` (it needs FFmpeg and SentencePiece)");
#endif
  SS_CHECK(o.plan.empty(), "--plan: applies to the edits of --suite");
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
  sub->add_option("--source", o->inputs.source, "Source video ('-' = stdin)")->type_name("FILE");
  sub->add_option("--edited", o->inputs.edited, "Edited video; its frames define the time grid ('-' = stdin)")
      ->type_name("FILE");
  sub->add_option("--suite", o->suite,
                  "JSONL rows {\"source\", \"prompt\", \"family\", \"target\"?}: edit each with --model, measure, "
                  "one table per family and overall")
      ->type_name("FILE");
  sub->add_option("--model", o->model, "Model package the suite edits with")->type_name("DIR");
  sub->add_option("--plan", o->plan, "Quantization plan the suite edits with (JSON, docs/QUANT.md)")
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
  sub->callback([o] {
    // Without --suite, --source and --edited are required: a usage error (exit 2) like any other.
    if (o->suite.empty()) {
      if (o->inputs.source.empty()) throw CLI::RequiredError("--source");
      if (o->inputs.edited.empty()) throw CLI::RequiredError("--edited");
    }
    set_runner([o] { run(*o); });
  });
}

}  // namespace sanastream::cli
