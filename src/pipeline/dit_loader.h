// Locating a DiT: a model package (a directory with model.json naming its DiT), a .pth, a
// .safetensors, a shard index, or a directory holding exactly one of these.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "model/hybrid_dit.h"

namespace sanastream::pipeline {

struct DitSource {
  std::string weights_path;        // the resolved weights file
  nlohmann::json overrides = nlohmann::json::object();  // config keys (model.json or --model-config)
};

DitSource resolve_dit_source(const std::string& model_path, const std::string& model_config_path = "");

// `plan`: the quantization plan (model/quant_plan.h; empty: the runtime's dtype throughout).
std::unique_ptr<model::HybridDit> load_dit(const DitSource& src, const Runtime& rt, const model::QuantPlan& plan = {});

}  // namespace sanastream::pipeline
