// sanastream info FILE|DIR: what a weights file holds and which model it is.
#include <cstdio>

#include "command.h"
#include "core/compare.h"
#include "core/json_report.h"
#include "io/checkpoint.h"
#include "model/model_kind.h"

namespace sanastream::cli {

namespace {
struct InfoOptions {
  std::string path;
  std::string json;
  bool summary = false;
};

void run_info(const InfoOptions& o) {
  io::WeightSet ws = io::load_weights(o.path);
  nlohmann::json report;
  report["path"] = ws.source;
  report["format"] = ws.format;
  report["wrapper"] = ws.selected.empty() ? nlohmann::json(nullptr) : nlohmann::json(ws.selected);
  int64_t params = 0, bytes = 0;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, t] : ws.tensors) {
    params += t.numel();
    bytes += t.numel() * t.element_size();
    list.push_back({{"name", name},
                    {"dtype", c10::toString(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"bytes", t.numel() * t.element_size()}});
  }
  report["tensors"] = list;
  report["parameters"] = params;
  report["bytes"] = bytes;
  report["skipped"] = ws.skipped;
  report["model"] = model::describe_weights(ws.tensors);

  std::printf("%s: %s%s, %zu tensors, %lld parameters, %.1f MB\n", ws.source.c_str(), ws.format.c_str(),
              ws.selected.empty() ? "" : (" (state dict under '" + ws.selected + "')").c_str(), ws.tensors.size(),
              static_cast<long long>(params), bytes / 1e6);
  if (!o.summary) {
    for (const auto& [name, t] : ws.tensors)
      std::printf("  %-64s %-10s %-24s %lld\n", name.c_str(), c10::toString(t.scalar_type()),
                  shape_str(t.sizes()).c_str(), static_cast<long long>(t.numel() * t.element_size()));
  }
  for (const auto& s : ws.skipped) std::printf("  skipped non-tensor leaf: %s\n", s.c_str());
  std::printf("model: %s\n", report["model"]["summary"].get<std::string>().c_str());
  if (!o.json.empty()) write_json_report(o.json, report);
}
}  // namespace

void register_info(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  auto* sub = app.add_subcommand("info", "Show the tensors of a weights file (.safetensors, shard index, .pth) and the model they form");
  sub->add_option("path", o->path, "Weights file, or a directory holding exactly one")->required();
  sub->add_flag("--summary", o->summary, "Do not list every tensor");
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run_info(*o); }); });
}

}  // namespace sanastream::cli
