// golden-check: runs every golden set under a root (its kind from its config.json: DiT, VAE or
// text encoder) and compares every fp32 reference tensor by name at the SPEC §9 thresholds.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/compare.h"
#include "core/runtime.h"
#include "io/safetensors.h"

namespace sanastream::pipeline {

struct TensorCheck {
  std::string name;
  TensorDiff diff;
  double threshold = 0;
  bool pass = false;
  std::string note;  // e.g. "last frame only", "not produced"
};

struct GoldenSetResult {
  std::string name;
  std::string kind;     // "dit", "vae", "text", "unknown"
  std::string status;   // "pass", "fail", "not-implemented", "error"
  std::string message;
  std::vector<TensorCheck> checks;
  double seconds = 0;
};

struct GoldenReport {
  std::vector<GoldenSetResult> sets;
  bool ok = true;
  nlohmann::json to_json() const;
};

// A golden set on disk.
struct GoldenSet {
  std::string dir;
  std::string name;
  nlohmann::json config;
  // Every reference tensor of the set (all *.safetensors except inputs and weights).
  io::TensorMap load_references() const;
  io::TensorMap load_inputs() const;
};

// A kind's checker: produce our tensors for the set and the threshold of each reference name.
struct GoldenKind {
  std::string name;
  std::function<bool(const nlohmann::json& config)> matches;
  // Fills `checks` (via compare_references) or throws.
  std::function<void(const GoldenSet&, const Runtime&, GoldenSetResult&)> run;
};

// The kinds the build knows (DiT, and the VAE and text encoder once implemented).
const std::vector<GoldenKind>& golden_kinds();

struct GoldenCheckOptions {
  std::string root;
  Runtime rt;
  std::set<std::string> require;  // kinds that must be implemented and present
};
GoldenReport run_golden_check(const GoldenCheckOptions& opt);

// Compares each reference by name against ours. threshold(name) < 0 skips a name (run parameters,
// reference-only tensors). Missing tensors fail with note "not produced".
void compare_references(const io::TensorMap& refs, const io::TensorMap& ours,
                        const std::function<double(const std::string&)>& threshold, GoldenSetResult& result);

}  // namespace sanastream::pipeline
