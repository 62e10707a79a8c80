// sanastream golden-check DIR: every golden set under DIR against the SPEC §9 thresholds.
#include <cstdio>
#include <sstream>

#include "command.h"
#include "core/error.h"
#include "core/json_report.h"
#include "core/log.h"
#include "pipeline/golden_check.h"

namespace sanastream::cli {

namespace {
struct GoldenCli {
  std::string root, dtype = "fp32", device = "cpu", require, json;
  bool list = false;
};

void run(const GoldenCli& o) {
  pipeline::GoldenCheckOptions opt;
  opt.root = o.root;
  opt.rt = make_runtime(o.device, o.dtype);
  std::stringstream ss(o.require);
  std::string k;
  while (std::getline(ss, k, ','))
    if (!k.empty()) {
      SS_CHECK(k == "dit" || k == "vae" || k == "text", "--require: expected kinds among dit,vae,text, got '{}'", k);
      opt.require.insert(k);
    }
  pipeline::GoldenReport rep = pipeline::run_golden_check(opt);
  int passed = 0;
  for (const auto& s : rep.sets) {
    // The first failing tensor, else the one closest to its limit.
    const pipeline::TensorCheck* worst = nullptr;
    int ok = 0;
    for (const auto& c : s.checks) {
      ok += c.pass;
      auto score = [](const pipeline::TensorCheck& t) { return t.pass ? t.diff.rel_l2 / t.threshold : 1e30; };
      if (!worst || score(c) > score(*worst)) worst = &c;
    }
    std::string detail = s.message;
    if (worst)
      detail = fmt::format("{}/{} tensors; {} {}: {} (limit {:.1e}){}", ok, s.checks.size(),
                           worst->pass ? "worst" : "FAILED", worst->name, worst->note.empty() ? worst->diff.describe() : worst->note,
                           worst->threshold, s.message.empty() ? "" : "; " + s.message);
    std::string status = s.status;
    for (auto& ch : status) ch = static_cast<char>(std::toupper(ch));
    std::printf("%-22s %-5s %-16s %6.1fs  %s\n", s.name.c_str(), s.kind.c_str(), status.c_str(), s.seconds,
                detail.c_str());
    if (o.list)
      for (const auto& c : s.checks)
        std::printf("    %s %-56s %s (limit %.1e)%s\n", c.pass ? "ok  " : "FAIL", c.name.c_str(),
                    c.diff.describe().c_str(), c.threshold, c.note.empty() ? "" : (" [" + c.note + "]").c_str());
    passed += s.status == "pass";
  }
  std::printf("golden-check (%s, %s): %d of %zu sets passed; %s\n", o.device.c_str(), o.dtype.c_str(), passed,
              rep.sets.size(), rep.ok ? "OK" : "FAILED");
  if (!o.json.empty()) write_json_report(o.json, rep.to_json());
  SS_CHECK(rep.ok, "golden-check failed");
}
}  // namespace

void register_golden_check(CLI::App& app) {
  auto o = std::make_shared<GoldenCli>();
  auto* sub = app.add_subcommand("golden-check", "Compare against the golden reference sets (SPEC §9 thresholds)");
  sub->add_option("dir", o->root, "A golden set or a directory of sets")->required();
  sub->add_option("--dtype", o->dtype, "fp32 | bf16")->capture_default_str();
  sub->add_option("--device", o->device, "cpu | cuda[:N]")->capture_default_str();
  sub->add_option("--require", o->require, "Kinds that must be implemented and pass (e.g. dit,vae,text)");
  sub->add_flag("--list", o->list, "Print every compared tensor");
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run(*o); }); });
}

}  // namespace sanastream::cli
