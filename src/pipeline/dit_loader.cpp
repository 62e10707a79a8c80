#include "pipeline/dit_loader.h"

#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"

namespace sanastream::pipeline {

DitSource resolve_dit_source(const std::string& model_path, const std::string& model_config_path) {
  DitSource s;
  SS_CHECK(!model_path.empty(), "no model given (expected --model PATH)");
  const std::string package = model_path + "/model.json";
  if (is_directory(model_path) && path_exists(package)) {
    nlohmann::json m = nlohmann::json::parse(read_text_file(package), nullptr, false);
    SS_CHECK(m.is_object() && m.contains("dit") && m["dit"].is_object() && m["dit"].contains("weights"),
             "{}: expected a \"dit\": {{\"weights\": FILE}} entry", package);
    s.weights_path = io::resolve_weights_path(model_path + "/" + m["dit"]["weights"].get<std::string>(), "DiT");
    if (m["dit"].contains("config") && m["dit"]["config"].is_string())
      s.overrides = model::load_model_config_overrides(model_path + "/" + m["dit"]["config"].get<std::string>());
  } else {
    s.weights_path = io::resolve_weights_path(model_path, "DiT");
  }
  if (!model_config_path.empty()) s.overrides = model::load_model_config_overrides(model_config_path);
  return s;
}

std::unique_ptr<model::HybridDit> load_dit(const DitSource& src, const Runtime& rt) {
  io::WeightSet ws = io::load_weights(src.weights_path);
  try {
    return model::load_hybrid_dit(ws.tensors, src.overrides, rt);
  } catch (const Error& e) {
    SS_FAIL("{}: {}", src.weights_path, e.message());
  }
}

}  // namespace sanastream::pipeline
